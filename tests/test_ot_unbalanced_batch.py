"""optical_core.ot.unbalanced_batch: the batched unbalanced Sinkhorn on padded ragged costs:
agreement with POT's ot.unbalanced per pair (random and real token costs), mass against τ,
per-pair stopping, gradients, and clear errors on bad input."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import ot as pot
import pytest
import torch
from _helpers import ragged_costs

from optical_core.ot.batch import pad_costs, sinkhorn_batch
from optical_core.ot.config import OTInputError
from optical_core.ot.costs import cost_matrix, uniform_marginal
from optical_core.ot.unbalanced_batch import sinkhorn_unbalanced_batch


def _pot_unbalanced(cost, eps, tau):
    """POT's plain scaling solver of the same problem, run until its scalings stop moving."""
    n, m = cost.shape
    return pot.unbalanced.sinkhorn_unbalanced(
        uniform_marginal(n), uniform_marginal(m), np.asarray(cost, dtype=np.float64), eps, tau,
        method="sinkhorn", reg_type="kl", stopThr=1e-10, numItermax=500000,
    )


@functools.cache
def _pot_unbalanced_refs(seed, eps, tau):
    """POT's plans for ``ragged_costs(seed, count=8)``, shared by both dtypes' tests."""
    costs = ragged_costs(seed, count=8)
    return costs, [_pot_unbalanced(c, eps, tau) for c in costs]


def _assert_unbalanced_matches_pot(costs, refs, dtype, eps, tau):
    c, a, b = pad_costs(costs, dtype=dtype)
    res = sinkhorn_unbalanced_batch(c, a, b, epsilon=eps, tau=tau, max_iter=100000, tol=1e-10)
    assert res.plan.dtype == dtype and bool(res.converged.all())
    for k, (ck, ref) in enumerate(zip(costs, refs)):
        n, m = ck.shape
        got = res.plan[k, :n, :m].double().numpy()
        assert np.abs(got - ref).max() < 1e-5
        assert float(res.plan[k, n:, :].abs().sum()) == 0.0
        assert float(res.plan[k, :, m:].abs().sum()) == 0.0
        gap = max(np.abs(got.sum(1) - 1 / n).sum(), np.abs(got.sum(0) - 1 / m).sum())
        assert float(res.marginal_error[k]) == pytest.approx(gap, abs=1e-5)


@pytest.mark.parametrize("eps", [0.05, 0.5])
@pytest.mark.parametrize("tau", [0.1, 1.0, 10.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_unbalanced_batched_plans_equal_pot_per_pair(eps, tau, dtype):
    costs, refs = _pot_unbalanced_refs(21, eps, tau)
    _assert_unbalanced_matches_pot(costs, refs, dtype, eps, tau)


@pytest.fixture(scope="module")
def real_token_costs(default_encoder):
    """Cosine costs between MiniLM tokens of German and English demo captions (they
    cluster in [0.6, 1.1], so at the training ε a few entries dominate each row)."""
    from optical_core.demo_set import load_demo

    return [cost_matrix(default_encoder.embed(p.tgt).embeddings,
                        default_encoder.embed(p.src).embeddings) for p in load_demo("de")[:6]]


@pytest.mark.parametrize(("eps", "tau"), [(0.01, 0.1), (0.01, 1.0), (0.05, 1.0)])
def test_unbalanced_batched_equals_pot_on_real_token_costs(real_token_costs, eps, tau):
    refs = [_pot_unbalanced(c, eps, tau) for c in real_token_costs]
    _assert_unbalanced_matches_pot(real_token_costs, refs, torch.float32, eps, tau)


def test_unbalanced_moves_less_mass_as_tau_shrinks():
    c, a, b = pad_costs(ragged_costs(22, count=6, lo=3, hi=10), dtype=torch.float64)
    masses, gaps = [], []
    for tau in (5.0, 1.0, 0.2, 0.05):
        res = sinkhorn_unbalanced_batch(c, a, b, epsilon=0.1, tau=tau, max_iter=50000, tol=1e-9)
        assert bool(res.converged.all())
        masses.append(res.plan.sum((1, 2)))
        gaps.append(res.marginal_error)
    for bigger, smaller in itertools.pairwise(masses):
        assert torch.all(smaller < bigger)
    for smaller, bigger in itertools.pairwise(gaps):
        assert torch.all(smaller < bigger)
    assert torch.all(masses[0] < 1.0)


def test_unbalanced_approaches_balanced_as_tau_grows():
    c, a, b = pad_costs(ragged_costs(23, count=4, lo=3, hi=8), dtype=torch.float64)
    balanced = sinkhorn_batch(c, a, b, epsilon=0.5, max_iter=50000, tol=1e-11).plan
    diffs = []
    for tau in (10.0, 100.0):
        res = sinkhorn_unbalanced_batch(c, a, b, epsilon=0.5, tau=tau, max_iter=100000, tol=1e-11)
        assert bool(res.converged.all())
        diffs.append(float((res.plan - balanced).abs().max()))
        # the plan's total mass tends to 1 as the relaxation tightens
        assert torch.allclose(res.plan.sum((1, 2)), torch.ones(4, dtype=torch.float64),
                              atol=5.0 / tau)
    assert diffs[1] < 0.2 * diffs[0] and diffs[1] < 2e-3


def test_unbalanced_pairs_stop_on_their_own_and_padding_is_masked():
    easy = np.array([[0.0, 2.0], [2.0, 0.0]])
    hard = ragged_costs(24, count=1, lo=12, hi=13)[0]
    c, a, b = pad_costs([easy, hard], dtype=torch.float64)
    c[0, 2:, :] = float("nan")  # padding of the easy pair: never read
    res = sinkhorn_unbalanced_batch(c, a, b, epsilon=0.05, tau=5.0, max_iter=20000, tol=1e-8)
    assert bool(res.converged.all()) and torch.isfinite(res.plan).all()
    assert int(res.iterations[0]) < int(res.iterations[1])


def test_unbalanced_gradients_flow_and_the_envelope_gradient_is_the_plan():
    torch.manual_seed(1)
    c = torch.rand(2, 3, 4, dtype=torch.float64, requires_grad=True)
    a = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]], dtype=torch.float64)
    b = torch.tensor([[0.25] * 4, [0.4, 0.6, 0.0, 0.0]], dtype=torch.float64)

    def plan_of(cost):
        # A fixed iteration count (tol=0) keeps the unrolled map smooth for finite differences.
        return sinkhorn_unbalanced_batch(cost, a, b, epsilon=0.5, tau=1.0, max_iter=30,
                                         tol=0.0).plan

    assert torch.autograd.gradcheck(plan_of, (c,), eps=1e-6, atol=1e-5)
    res = sinkhorn_unbalanced_batch(c, a, b, epsilon=0.1, tau=0.5, max_iter=5000, tol=1e-12)
    (res.plan.detach() * c).sum().backward()
    assert torch.equal(c.grad, res.plan.detach())


def test_unbalanced_batched_rejects_bad_input():
    with pytest.raises(OTInputError, match="τ"):
        sinkhorn_unbalanced_batch(torch.zeros(1, 2, 2), tau=0.0)
    with pytest.raises(OTInputError, match="τ"):
        sinkhorn_unbalanced_batch(torch.zeros(1, 2, 2), tau=float("inf"))
    with pytest.raises(OTInputError, match="ε"):
        sinkhorn_unbalanced_batch(torch.zeros(1, 2, 2), epsilon=-1.0)
    with pytest.raises(OTInputError, match="no tokens"):
        sinkhorn_unbalanced_batch(torch.zeros(1, 2, 2), b=torch.zeros(1, 2))
    c = torch.zeros(1, 2, 2)
    c[0, 1, 1] = float("inf")
    with pytest.raises(OTInputError, match="NaN/inf"):
        sinkhorn_unbalanced_batch(c)

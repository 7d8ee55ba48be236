"""optical_core.ot.batch: the batched Sinkhorn on padded ragged costs: agreement with POT per
pair, marginals, gradients, and clear errors on bad input."""

from __future__ import annotations

import numpy as np
import ot as pot
import pytest
import torch
from _helpers import ragged_costs, random_cost
from hypothesis import given, settings
from hypothesis import strategies as st

from optical_core.ot.batch import pad_costs, sinkhorn_batch
from optical_core.ot.config import OTInputError
from optical_core.ot.costs import cost_matrix, uniform_marginal


@pytest.mark.parametrize("eps", [0.05, 0.1, 0.5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_batched_plans_equal_pot_per_pair(eps, dtype):
    costs = ragged_costs(11)
    c, a, b = pad_costs(costs, dtype=dtype)
    res = sinkhorn_batch(c, a, b, epsilon=eps, max_iter=20000, tol=1e-9)
    assert res.plan.dtype == dtype
    assert bool(res.converged.all())
    for k, ck in enumerate(costs):
        n, m = ck.shape
        ref = pot.sinkhorn(uniform_marginal(n), uniform_marginal(m), ck, eps,
                           method="sinkhorn_log", stopThr=1e-12, numItermax=200000)
        got = res.plan[k, :n, :m].double().numpy()
        assert np.abs(got - ref).max() < 1e-4
        # Nothing leaks into the padding.
        assert float(res.plan[k].sum()) == pytest.approx(1.0, abs=1e-5)
        assert float(res.plan[k, n:, :].abs().sum()) == 0.0
        assert float(res.plan[k, :, m:].abs().sum()) == 0.0


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), eps=st.sampled_from([0.03, 0.1, 1.0]))
def test_batched_marginals_hold_for_random_sizes(seed, eps):
    costs = ragged_costs(seed, count=5, lo=1, hi=9)
    rng = np.random.default_rng(seed)
    wa = [rng.uniform(0.1, 1.0, c.shape[0]) for c in costs]
    c, a, b = pad_costs(costs, weights_a=wa, dtype=torch.float64)
    res = sinkhorn_batch(c, a, b, epsilon=eps, max_iter=20000, tol=1e-8)
    assert bool(res.converged.all())
    assert torch.allclose(res.plan.sum(2), a, atol=1e-6)
    assert torch.allclose(res.plan.sum(1), b, atol=1e-6)


def test_each_pair_stops_on_its_own():
    easy = np.array([[0.0, 2.0], [2.0, 0.0]])
    hard = ragged_costs(12, count=1, lo=12, hi=13)[0]
    c, a, b = pad_costs([easy, hard], dtype=torch.float64)
    res = sinkhorn_batch(c, a, b, epsilon=0.02, max_iter=5000, tol=1e-8)
    assert bool(res.converged.all())
    assert int(res.iterations[0]) < int(res.iterations[1])


def test_over_relaxation_needs_fewer_iterations_and_reaches_the_same_plan():
    costs = ragged_costs(13, count=8, lo=8, hi=16)
    c, a, b = pad_costs(costs, dtype=torch.float64)
    plain = sinkhorn_batch(c, a, b, epsilon=0.03, omega=1.0, max_iter=50000, tol=1e-9)
    fast = sinkhorn_batch(c, a, b, epsilon=0.03, max_iter=50000, tol=1e-9)
    assert bool(plain.converged.all()) and bool(fast.converged.all())
    assert int(fast.iterations.sum()) < int(plain.iterations.sum())
    assert float((fast.plan - plain.plan).abs().max()) < 1e-7


def test_scalings_that_underflow_are_redone_in_the_log_domain(monkeypatch):
    # float32 (a GPU run's compute dtype) underflows once C/ε passes ~87; at ε = 0.01 some
    # rows of the kernel vanish, the scaling steps divide by zero, and those pairs must come
    # back from the log domain with the right plan, not as NaN.
    import optical_core.ot.batch as ot_module

    redone = []
    log_chunk = ot_module._log_chunk

    def counting(c, *args):
        redone.append(c.shape[0])
        return log_chunk(c, *args)

    monkeypatch.setattr(ot_module, "_log_chunk", counting)
    rng = np.random.default_rng(23)
    costs = [cost_matrix(rng.normal(size=(n, 8)), rng.normal(size=(m, 8)))
             for n, m in [(3, 3), (4, 2), (2, 5)]]
    c, a, b = pad_costs(costs, dtype=torch.float32)
    res = sinkhorn_batch(c, a, b, epsilon=0.01, max_iter=20000, tol=1e-5,
                         compute_dtype=torch.float32)
    assert redone, "the case no longer reaches the log-domain fallback"
    assert torch.isfinite(res.plan).all() and bool(res.converged.all())
    for k, ck in enumerate(costs):
        n, m = ck.shape
        # POT's log-domain loop stalls near 4e-6 on the first pair (C/ε ≈ 150 costs
        # float64 digits in its LSE), so it stops at 1e-5 (27k iterations there).
        ref = pot.sinkhorn(uniform_marginal(n), uniform_marginal(m), ck, 0.01,
                           method="sinkhorn_log", stopThr=1e-5, numItermax=30000)
        assert np.abs(res.plan[k, :n, :m].double().numpy() - ref).max() < 1e-4


def test_float32_iterations_keep_marginals_and_stay_finite():
    # float32 cannot reach 1e-6 on every pair at small ε, so some pairs run to the budget,
    # but the plan must stay finite with its marginals near their targets.
    costs = ragged_costs(15, count=8, lo=2, hi=20)
    c, a, b = pad_costs(costs, dtype=torch.float32)
    for eps in (0.01, 0.05):
        res = sinkhorn_batch(c, a, b, epsilon=eps, max_iter=3000, tol=1e-6,
                             compute_dtype=torch.float32)
        assert res.plan.dtype == torch.float32 and torch.isfinite(res.plan).all()
        assert float(res.marginal_error.max()) < 1e-4
        assert torch.allclose(res.plan.sum(2), a, atol=1e-4)
        assert torch.allclose(res.plan.sum(1), b, atol=1e-4)


def test_converged_pairs_are_left_as_they_stopped():
    # Easy pairs converge long before the hard one and are frozen, not iterated on: their
    # reported error is the one they stopped at and still describes their plan.
    costs = [np.array([[0.0, 2.0], [2.0, 0.0]])] * 3 + ragged_costs(12, count=1, lo=12, hi=13)
    c, a, b = pad_costs(costs, dtype=torch.float64)
    res = sinkhorn_batch(c, a, b, epsilon=0.02, max_iter=5000, tol=1e-8)
    assert bool(res.converged.all())
    assert int(res.iterations[:3].max()) < int(res.iterations[3])
    got = torch.maximum((res.plan.sum(2) - a).abs().sum(1), (res.plan.sum(1) - b).abs().sum(1))
    assert torch.allclose(got, res.marginal_error, rtol=1e-3, atol=1e-12)
    assert float(res.marginal_error.max()) <= 1e-8


def test_batched_gradcheck_float64():
    torch.manual_seed(0)
    c = torch.rand(2, 3, 4, dtype=torch.float64, requires_grad=True)
    a = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]], dtype=torch.float64)
    b = torch.tensor([[0.25] * 4, [0.4, 0.6, 0.0, 0.0]], dtype=torch.float64)

    def plan_of(cost):
        # A fixed iteration count (tol=0) keeps the unrolled map smooth for finite differences.
        return sinkhorn_batch(cost, a, b, epsilon=0.5, max_iter=30, tol=0.0).plan

    assert torch.autograd.gradcheck(plan_of, (c,), eps=1e-6, atol=1e-5)


def test_envelope_gradient_of_ot_cost_is_the_plan():
    rng = np.random.default_rng(14)
    c = torch.tensor(random_cost(rng, 5, 6), dtype=torch.float64, requires_grad=True)
    res = sinkhorn_batch(c.unsqueeze(0), epsilon=0.1, max_iter=5000, tol=1e-10)
    loss = (res.plan.detach() * c.unsqueeze(0)).sum()
    loss.backward()
    assert torch.allclose(c.grad, res.plan[0].detach())


def test_batched_rejects_nan_and_empty_pairs():
    c = torch.zeros(1, 2, 2)
    c[0, 0, 1] = float("nan")
    with pytest.raises(OTInputError, match="NaN/inf"):
        sinkhorn_batch(c)
    with pytest.raises(OTInputError, match="no tokens"):
        sinkhorn_batch(torch.zeros(1, 2, 2), a=torch.zeros(1, 2))
    with pytest.raises(OTInputError):
        sinkhorn_batch(torch.zeros(1, 2, 2), epsilon=0.0)


def test_nan_in_padding_is_ignored():
    c, a, b = pad_costs([np.ones((2, 2)), np.ones((3, 3))])
    c[0, 2, 2] = float("nan")  # a padded cell of pair 0
    res = sinkhorn_batch(c, a, b, epsilon=0.1)
    assert torch.isfinite(res.plan).all()

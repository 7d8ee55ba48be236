"""optical_core.ot.solve: single solves (exact, Sinkhorn, partial, unbalanced): marginals,
agreement with POT, and clear errors on bad input."""

from __future__ import annotations

import numpy as np
import ot as pot
import pytest
from _helpers import random_cost
from hypothesis import given, settings
from hypothesis import strategies as st

from optical_core.ot.config import OTConfig, OTInputError
from optical_core.ot.costs import uniform_marginal, weighted_marginal
from optical_core.ot.solve import marginal_error, solve


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 12),
    m=st.integers(1, 12),
    seed=st.integers(0, 2**16),
    solver=st.sampled_from(["exact", "sinkhorn"]),
    eps=st.sampled_from([0.02, 0.05, 0.5]),
)
def test_balanced_marginals_hold(n, m, seed, solver, eps):
    rng = np.random.default_rng(seed)
    c = random_cost(rng, n, m)
    a = weighted_marginal(rng.uniform(0.2, 1.0, n))
    b = uniform_marginal(m)
    res = solve(c, a, b, OTConfig(solver=solver, epsilon=eps, max_iter=5000))
    assert res.plan.shape == (n, m)
    assert np.all(np.isfinite(res.plan)) and res.plan.min() >= 0
    assert np.allclose(res.plan.sum(1), a, atol=1e-5)
    assert np.allclose(res.plan.sum(0), b, atol=1e-5)
    assert res.marginal_error == pytest.approx(marginal_error(res.plan, a, b))
    assert res.cost == pytest.approx(float((res.plan * c).sum()))


def test_one_by_one_problem():
    for solver in ("exact", "sinkhorn", "partial", "unbalanced"):
        res = solve(np.array([[0.3]]), config=OTConfig(solver=solver, mass=1.0))
        assert res.plan.shape == (1, 1)
        assert np.isfinite(res.plan).all()


def test_exact_plan_is_sparse_and_sinkhorn_is_dense():
    rng = np.random.default_rng(3)
    c = random_cost(rng, 9, 9)
    exact = solve(c, config=OTConfig(solver="exact")).plan
    entropic = solve(c, config=OTConfig(solver="sinkhorn", epsilon=0.5)).plan
    # A vertex of the transport polytope has at most n + m - 1 non-zeros.
    assert (exact > 1e-12).sum() <= 9 + 9 - 1
    assert (entropic > 1e-12).sum() == 81


def test_sinkhorn_matches_pot_log_domain():
    rng = np.random.default_rng(4)
    c = random_cost(rng, 7, 11)
    ref = pot.sinkhorn(uniform_marginal(7), uniform_marginal(11), c, 0.05,
                       method="sinkhorn_log", stopThr=1e-12, numItermax=100000)
    res = solve(c, config=OTConfig(epsilon=0.05, tol=1e-9, max_iter=100000))
    assert np.abs(res.plan - ref).max() < 1e-6
    assert res.converged


def test_epsilon_controls_blur():
    rng = np.random.default_rng(5)
    c = random_cost(rng, 8, 8)

    def entropy(p):
        q = p[p > 0]
        return float(-(q * np.log(q)).sum())

    sharp = solve(c, config=OTConfig(epsilon=0.01, max_iter=20000)).plan
    blurred = solve(c, config=OTConfig(epsilon=1.0)).plan
    assert entropy(sharp) < entropy(blurred)


def test_tiny_epsilon_falls_back_to_log_domain_and_says_so():
    rng = np.random.default_rng(6)
    c = random_cost(rng, 6, 6) * 50  # C/ε ≈ 1e5: exp underflows in the scaling domain
    res = solve(c, config=OTConfig(epsilon=1e-3, max_iter=200))
    assert np.all(np.isfinite(res.plan))
    assert res.solver == "sinkhorn_log"
    assert any("log-domain" in msg for msg in res.messages)


def test_non_convergence_is_reported_not_hidden():
    rng = np.random.default_rng(7)
    c = random_cost(rng, 10, 10)
    res = solve(c, config=OTConfig(epsilon=0.005, max_iter=3))
    assert not res.converged
    assert any("stopped after" in msg for msg in res.messages)
    assert np.all(np.isfinite(res.plan))


def test_partial_moves_only_the_requested_mass():
    rng = np.random.default_rng(8)
    c = random_cost(rng, 6, 5)
    res = solve(c, config=OTConfig(solver="partial", mass=0.7))
    assert res.transported_mass == pytest.approx(0.7, abs=1e-8)
    assert res.unaligned_source.sum() == pytest.approx(0.3, abs=1e-8)
    assert np.all(res.plan.sum(1) <= uniform_marginal(6) + 1e-12)


def test_partial_leaves_the_costliest_token_unaligned():
    # Token 2 of the source is far from everything: partial transport drops it first.
    c = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [2.0, 2.0, 2.0]])
    res = solve(c, config=OTConfig(solver="partial", mass=2 / 3))
    assert res.unaligned_source[2] == pytest.approx(1 / 3, abs=1e-9)
    assert res.unaligned_source[:2].sum() == pytest.approx(0.0, abs=1e-9)


def test_unbalanced_relaxation_moves_less_mass_for_small_tau():
    rng = np.random.default_rng(9)
    c = random_cost(rng, 6, 6) + 0.5
    loose = solve(c, config=OTConfig(solver="unbalanced", epsilon=0.05, tau=0.05))
    tight = solve(c, config=OTConfig(solver="unbalanced", epsilon=0.05, tau=100.0))
    assert loose.transported_mass < tight.transported_mass
    assert tight.marginal_error < loose.marginal_error


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_cost_is_a_clear_error(bad):
    c = np.ones((3, 3))
    c[1, 2] = bad
    with pytest.raises(OTInputError, match="NaN/inf.*row 1, column 2"):
        solve(c)


@pytest.mark.parametrize("shape", [(0, 3), (3, 0), (0, 0)])
def test_empty_side_is_a_clear_error(shape):
    with pytest.raises(OTInputError, match="no tokens"):
        solve(np.ones(shape))


@pytest.mark.parametrize(
    "kwargs", [{"epsilon": 0.0}, {"epsilon": -1.0}, {"epsilon": float("nan")},
               {"solver": "magic"}, {"solver": "partial", "mass": 1.5},
               {"solver": "unbalanced", "tau": 0.0}, {"max_iter": 0}]
)
def test_bad_config_is_a_clear_error(kwargs):
    with pytest.raises(OTInputError):
        OTConfig(**kwargs)


def test_huge_epsilon_gives_the_independent_coupling():
    rng = np.random.default_rng(10)
    c = random_cost(rng, 4, 5)
    res = solve(c, config=OTConfig(epsilon=1e6))
    assert np.allclose(res.plan, np.outer(uniform_marginal(4), uniform_marginal(5)), atol=1e-6)

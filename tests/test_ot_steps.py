"""optical_core.ot.steps: Sinkhorn one scaling at a time, against POT's iterates and the
converged plan of optical_core.ot.solve."""

from __future__ import annotations

import warnings

import numpy as np
import ot as pot
import pytest
from _helpers import random_cost

from optical_core.ot.config import OTConfig, OTInputError
from optical_core.ot.costs import uniform_marginal, weighted_marginal
from optical_core.ot.solve import marginal_error, solve
from optical_core.ot.steps import sinkhorn_steps


def _pot_plan(a, b, c, eps, k):
    """POT's sinkhorn_knopp plan after exactly ``k`` iterations (no early stop)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "did not converge": on purpose
        return pot.bregman.sinkhorn_knopp(a, b, c, eps, numItermax=k, stopThr=0.0)


@pytest.mark.parametrize("eps", [0.05, 0.2])
def test_each_step_is_pots_plan_after_that_many_iterations(eps):
    rng = np.random.default_rng(7)
    c = random_cost(rng, 6, 9)
    a = weighted_marginal(rng.uniform(0.2, 1.0, 6))
    b = uniform_marginal(9)
    steps = sinkhorn_steps(c, a, b, epsilon=eps, n=8)
    assert [s.iteration for s in steps[:9]] == list(range(9))
    for s in steps[1:9]:
        ref = _pot_plan(a, b, c, eps, s.iteration)
        np.testing.assert_allclose(s.plan, ref, rtol=1e-7, atol=1e-12)
        assert s.marginal_error == pytest.approx(marginal_error(ref, a, b), abs=1e-12)


def test_iteration_zero_is_the_gibbs_kernel_scaled_to_mass_one():
    rng = np.random.default_rng(1)
    c = random_cost(rng, 4, 5)
    k0 = sinkhorn_steps(c, epsilon=0.1, n=3)[0]
    kernel = np.exp(-c / 0.1)
    np.testing.assert_allclose(k0.plan, kernel / kernel.sum(), rtol=1e-10)
    assert k0.iteration == 0 and k0.plan.sum() == pytest.approx(1.0)


def test_the_last_step_is_the_converged_plan_of_solve():
    rng = np.random.default_rng(3)
    c = random_cost(rng, 7, 11)
    steps = sinkhorn_steps(c, epsilon=0.05, n=5, tol=1e-9, max_iter=20000)
    last = steps[-1]
    assert last.converged and last.marginal_error <= 1e-9
    assert last.iteration > 5 and len(steps) == 7
    ref = solve(c, config=OTConfig(solver="sinkhorn", epsilon=0.05, tol=1e-9, max_iter=20000))
    np.testing.assert_allclose(last.plan, ref.plan, atol=1e-7)
    # Early steps are far from the marginals; the error falls to the tolerance.
    assert steps[1].marginal_error > 100 * last.marginal_error


def test_a_problem_that_converges_early_stops_the_list_there():
    c = np.zeros((3, 3))  # the kernel is uniform: one step fits both marginals
    steps = sinkhorn_steps(c, epsilon=0.1, n=10)
    assert steps[-1].iteration == 1 and steps[-1].converged and len(steps) == 2


def test_small_epsilon_stays_finite():
    rng = np.random.default_rng(5)
    c = random_cost(rng, 5, 5) * 50  # exp(−C/ε) underflows in the scaling form
    steps = sinkhorn_steps(c, epsilon=0.01, n=3, max_iter=50)
    assert all(np.isfinite(s.plan).all() for s in steps)
    assert steps[-1].iteration == 50 or steps[-1].converged


@pytest.mark.parametrize("kw, match", [
    ({"epsilon": 0.0}, "ε"), ({"epsilon": float("nan")}, "ε"), ({"n": -1}, "steps"),
    ({"a": [1.0, 1.0]}, "shape"), ({"a": [-1.0, 1.0, 1.0]}, "non-negative"),
])
def test_bad_input_is_a_clear_error(kw, match):
    with pytest.raises(OTInputError, match=match):
        sinkhorn_steps(np.ones((3, 4)), **kw)

"""optical_core.ot.plans: one OTConfig solves a padded batch; the linear solvers go through
``ot.solve`` pair by pair, the entropic ones through the batched torch Sinkhorn."""

from __future__ import annotations

import numpy as np
import torch

from optical_core.ot.batch import pad_costs, sinkhorn_batch
from optical_core.ot.config import OTConfig
from optical_core.ot.plans import batch_plans
from optical_core.ot.solve import solve
from optical_core.ot.unbalanced_batch import sinkhorn_unbalanced_batch


def _batch(seed: int = 0):
    rng = np.random.default_rng(seed)
    costs = [rng.uniform(0, 2, size=shape) for shape in ((3, 4), (5, 2), (1, 3))]
    return costs, *pad_costs(costs, dtype=torch.float64)


def test_exact_plans_are_pots_pair_by_pair_in_the_padded_layout():
    costs, cost, a, b = _batch()
    res = batch_plans(cost, a, b, OTConfig(solver="exact"))
    assert res.plan.shape == cost.shape and bool(res.converged.all())
    for k, c in enumerate(costs):
        want = solve(c, config=OTConfig(solver="exact")).plan
        n, m = c.shape
        np.testing.assert_allclose(res.plan[k, :n, :m].numpy(), want, atol=1e-12)
        assert abs(float(res.plan[k].sum()) - 1.0) < 1e-12
        assert float(res.plan[k, n:].abs().sum() + res.plan[k, :, m:].abs().sum()) == 0.0


def test_entropic_plans_are_the_batched_sinkhorns():
    _, cost, a, b = _batch(1)
    cfg = OTConfig(solver="sinkhorn", epsilon=0.1, max_iter=2000, tol=1e-9)
    want = sinkhorn_batch(cost, a, b, epsilon=0.1, max_iter=2000, tol=1e-9).plan
    torch.testing.assert_close(batch_plans(cost, a, b, cfg).plan, want)
    cfg = OTConfig(solver="unbalanced", epsilon=0.1, tau=0.5, max_iter=2000, tol=1e-9)
    want = sinkhorn_unbalanced_batch(cost, a, b, epsilon=0.1, tau=0.5, max_iter=2000,
                                     tol=1e-9).plan
    torch.testing.assert_close(batch_plans(cost, a, b, cfg).plan, want)

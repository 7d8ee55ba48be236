"""The plans of a padded batch of transport problems under one :class:`OTConfig`.

The distillation loss solves a batch of sentence pairs per step; which solver it uses is
its :class:`~optical_core.ot.solve.OTConfig`'s. :func:`batch_plans` sends the entropic
solvers to the batched torch Sinkhorn (:mod:`optical_core.ot.batch`) and the linear ones
(``exact``, ``partial``) to :func:`~optical_core.ot.solve.solve` pair by pair, so every
plan of the package comes from :mod:`optical_core.ot`.
"""

from __future__ import annotations

import torch

from optical_core.ot.batch import BatchOTResult, sinkhorn_batch
from optical_core.ot.config import OTConfig
from optical_core.ot.solve import solve
from optical_core.ot.unbalanced_batch import sinkhorn_unbalanced_batch


def batch_plans(cost: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                config: OTConfig) -> BatchOTResult:
    """Solve ``B`` padded problems with the solver of ``config``.

    Args:
        cost: ``(B, n, m)`` costs; rows and columns outside a pair's tokens are ignored.
        a: ``(B, n)`` source marginals, 0 on padding (each real row sums to 1).
        b: ``(B, m)`` target marginals, 0 on padding.
        config: the solver and its ε, τ, mass, iteration budget and tolerance.

    Returns:
        :class:`~optical_core.ot.batch.BatchOTResult` with ``(B, n, m)`` plans in
        ``cost``'s dtype and device, zero on padding; the linear solvers report 0
        iterations.

    Raises:
        OTInputError: a cost the solver cannot use (NaN, a spread beyond float64 at ε).
    """
    if config.solver == "sinkhorn":
        return sinkhorn_batch(cost, a, b, epsilon=config.epsilon, max_iter=config.max_iter,
                              tol=config.tol)
    if config.solver == "unbalanced":
        return sinkhorn_unbalanced_batch(cost, a, b, epsilon=config.epsilon, tau=config.tau,
                                         max_iter=config.max_iter, tol=config.tol)
    return _linear_plans(cost, a, b, config)


def _linear_plans(cost: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                  config: OTConfig) -> BatchOTResult:
    """``exact`` / ``partial`` plans through POT, one pair at a time (slow: for checks and
    small runs), each cut to its tokens with mass and put back into the padded layout."""
    plans = torch.zeros_like(cost)
    errors = torch.zeros(cost.shape[0], dtype=torch.float64)
    for k in range(cost.shape[0]):
        rows, cols = a[k] > 0, b[k] > 0
        res = solve(cost[k][rows][:, cols].double().cpu().numpy(),
                    a[k][rows].double().cpu().numpy(), b[k][cols].double().cpu().numpy(),
                    config)
        block = torch.as_tensor(res.plan, dtype=cost.dtype, device=cost.device)
        plans[k][rows.nonzero().squeeze(1).unsqueeze(1), cols.nonzero().squeeze(1)] = block
        errors[k] = res.marginal_error
    batch = cost.shape[0]
    return BatchOTResult(plan=plans, iterations=torch.zeros(batch, dtype=torch.long),
                         marginal_error=errors, converged=torch.ones(batch, dtype=torch.bool))

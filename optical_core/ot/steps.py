"""Sinkhorn one scaling at a time: the plans a step-through shows.

Sinkhorn solves the entropic transport problem ``min ⟨P, C⟩ − ε H(P)`` subject to
``P𝟙 = a`` and ``Pᵀ𝟙 = b`` by alternately rescaling the rows and columns of the Gibbs
kernel ``K = exp(−C / ε)``: with ``u⁰ = 𝟙 / n``,

    vᵏ = b / (Kᵀ uᵏ⁻¹),   uᵏ = a / (K vᵏ),   Pᵏ = diag(uᵏ) K diag(vᵏ),

the order of POT's ``sinkhorn_knopp``, so ``Pᵏ`` is the plan ``ot.sinkhorn(...,
numItermax=k)`` returns. After each step the rows hold ``a`` exactly and only the columns
are off; the marginal error ``max(‖Pᵏ𝟙 − a‖₁, ‖Pᵏᵀ𝟙 − b‖₁)`` falls towards 0. The updates
run in the log domain (the same iterates, without under- or overflow at small ε).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from optical_core.ot.config import OTInputError
from optical_core.ot.costs import uniform_marginal, weighted_marginal
from optical_core.ot.solve import check_cost, marginal_error


@dataclass(frozen=True)
class SinkhornStep:
    """One stage of Sinkhorn.

    Attributes:
        iteration: row/column scalings done: 0 for the kernel, ``k`` after ``k`` pairs.
        plan: ``(n, m)`` float64 plan at this stage (total mass 1).
        marginal_error: ``max(‖P𝟙 − a‖₁, ‖Pᵀ𝟙 − b‖₁)``, in units of mass (0 … 2).
        converged: the marginal error is at most the tolerance.
    """

    iteration: int
    plan: np.ndarray
    marginal_error: float
    converged: bool


def sinkhorn_steps(cost, a=None, b=None, epsilon: float = 0.05, n: int = 10,
                   tol: float = 1e-6, max_iter: int = 1000) -> list[SinkhornStep]:
    """The Sinkhorn plans of one problem: the kernel, the first ``n`` steps, the end.

    Args:
        cost: ``(n_src, m)`` finite cost matrix.
        a, b: ``(n_src,)`` / ``(m,)`` marginals, default uniform; normalised to mass 1.
        epsilon: entropic regularisation ε > 0, in cost units.
        n: how many single steps to keep (the list's entries 1 … n), ≥ 0.
        tol: a plan whose marginal error is at most ``tol`` has converged.
        max_iter: the most steps run in all.

    Returns:
        ``[kernel, step 1, …, step n, last]``: entry 0 is ``K / ΣK`` (``iteration = 0``);
        entry ``k`` the plan after ``k`` scalings; the last the plan at the first step whose
        marginal error is ≤ ``tol`` (or after ``max_iter`` steps). The list stops early at
        the step that converges, so its last entry is always where Sinkhorn stops.

    Raises:
        OTInputError: a cost or marginal :func:`~optical_core.ot.solve.solve` rejects, ε not
            a finite positive number, or ``n`` / ``max_iter`` out of range.
    """
    if not (np.isfinite(epsilon) and epsilon > 0):
        raise OTInputError("ε must be a finite number > 0 for Sinkhorn")
    if n < 0 or max_iter < 1:
        raise OTInputError("the number of steps must be ≥ 0 and max_iter ≥ 1")
    c = check_cost(cost)
    rows, cols = c.shape
    a = _marginal(a, rows, "a")
    b = _marginal(b, cols, "b")
    log_k = -c / epsilon
    log_a, log_b = np.log(a), np.log(b)

    def stage(k: int, log_p: np.ndarray) -> SinkhornStep:
        plan = np.exp(log_p)
        err = marginal_error(plan, a, b)
        return SinkhornStep(k, plan, err, err <= tol)

    steps = [stage(0, log_k - logsumexp(log_k))]
    f = np.full(rows, -np.log(rows))  # log u⁰ = log(𝟙 / n), POT's start
    last = steps[0]
    for k in range(1, max_iter + 1):
        g = log_b - logsumexp(log_k + f[:, None], axis=0)
        f = log_a - logsumexp(log_k + g[None, :], axis=1)
        last = stage(k, f[:, None] + log_k + g[None, :])
        if k <= n:
            steps.append(last)
        if last.converged:
            break
    return steps if steps[-1] is last else [*steps, last]


def _marginal(w, size: int, name: str) -> np.ndarray:
    """``w`` as a ``(size,)`` marginal of mass 1 (uniform for ``None``)."""
    if w is None:
        return uniform_marginal(size)
    w = weighted_marginal(w)
    if w.shape != (size,):
        raise OTInputError(f"marginal {name} has shape {w.shape}, expected ({size},)")
    return w

"""One transport problem through POT: exact, Sinkhorn, unbalanced and partial solvers.

:class:`OTConfig` is the one description of an OT problem's solver in the package: the
alignment pages, the retrieval scorers (:class:`~optical_core.retrieval.scorers.ScorerConfig`
holds one), the distillation loss and :class:`~optical_core.distill.config.DistillConfig`
all carry an :class:`OTConfig`. :func:`solve` checks its inputs (:func:`check_cost`), runs
the solver of an :class:`OTConfig` and returns an :class:`OTResult` that says what
happened: iterations, marginal error, convergence, the solver actually used (Sinkhorn
falls back to the log-domain version on numerical trouble), transported mass and
plain-language notes. :func:`optical_core.ot.plans.batch_plans` solves a padded batch with
the same config.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field

import numpy as np
import ot as pot

from optical_core.ot.config import OTConfig, OTInputError
from optical_core.ot.costs import uniform_marginal

# ------------------------------------------------------------------------- solvers


@dataclass
class OTResult:
    """A plan and what the solver says about it.

    Attributes:
        plan: ``(n, m)`` float64 transport plan.
        cost: ``<P, C>``, the transport cost in cost units.
        iterations: iterations the solver ran (0 for the exact solvers).
        marginal_error: ``max(‖P𝟙 − a‖₁, ‖Pᵀ𝟙 − b‖₁)``; for ``unbalanced`` and ``partial``
            the gap is intended and this reports it rather than an error.
        converged: the solver met ``tol`` within ``max_iter``.
        solver: the solver that produced the plan (may differ from the one asked for).
        transported_mass: ``P.sum()``; below 1 means some mass was left unaligned.
        unaligned_source: ``(n,)`` mass of each source token that was not transported.
        unaligned_target: ``(m,)`` the same for target tokens.
        messages: plain-language notes (fallbacks, non-convergence).
    """

    plan: np.ndarray
    cost: float
    iterations: int
    marginal_error: float
    converged: bool
    solver: str
    transported_mass: float
    unaligned_source: np.ndarray
    unaligned_target: np.ndarray
    messages: list[str] = field(default_factory=list)


def check_cost(cost) -> np.ndarray:
    """Validate a cost matrix and return it as float64.

    Raises:
        OTInputError: not 2-D, an empty side, or a NaN/inf entry.
    """
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2:
        raise OTInputError(f"the cost must be a 2-D matrix, got shape {c.shape}")
    if c.shape[0] == 0 or c.shape[1] == 0:
        raise OTInputError(
            f"one side has no tokens (cost shape {c.shape}); both texts need at least one token"
        )
    bad = ~np.isfinite(c)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise OTInputError(
            f"the cost matrix has {int(bad.sum())} NaN/inf entries (first at row {i}, "
            f"column {j}); check the embeddings for NaN or overflow"
        )
    return c


#: Largest cost spread, in units of ε, that the entropic solvers accept. Past it the
#: exponent ``C/ε`` carries rounding errors of ``C/ε · 2⁻⁵²`` (1e12 → 2e-4), no digit is
#: left to tell plans apart, and the plan would be the exact one up to rounding anyway.
MAX_SPREAD_OVER_EPSILON = 1e12
#: ε above this many times the cost spread gives a plan within about 1 % of ``a bᵀ``.
UNIFORM_EPSILON_FACTOR = 100.0


def epsilon_notes(spread: float, epsilon: float) -> list[str]:
    """Check ε against the spread ``max C − min C`` of the costs it regularises.

    Returns a note when ε swamps the costs (the plan is practically the uniform coupling).

    Raises:
        OTInputError: the spread exceeds :data:`MAX_SPREAD_OVER_EPSILON` × ε (e.g. costs
            of 1e30), which float64 cannot solve.
    """
    if spread > MAX_SPREAD_OVER_EPSILON * epsilon:
        raise OTInputError(
            f"the costs span {spread:.3g}, {spread / epsilon:.2g} times ε = {epsilon:g}: the "
            "entropic solvers cannot resolve that in float64. Divide the costs by their "
            "largest value, raise ε, or use the exact solver"
        )
    # Below 1e-9 the costs are all equal (e.g. repeated tokens): every plan is optimal.
    if spread > 1e-9 and epsilon > UNIFORM_EPSILON_FACTOR * spread:
        return [(
            f"ε = {epsilon:g} is over {UNIFORM_EPSILON_FACTOR:g} times the spread of the costs "
            f"({spread:.3g}): the plan is practically the uniform coupling and says nothing "
            "about which tokens match. Lower ε (0.05 suits cosine costs)."
        )]
    return []


def _check_marginal(w, n: int, name: str) -> np.ndarray:
    if w is None:
        return uniform_marginal(n)
    w = np.asarray(w, dtype=np.float64)
    if w.shape != (n,):
        raise OTInputError(f"marginal {name} has shape {w.shape}, expected ({n},)")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise OTInputError(f"marginal {name} must be finite, non-negative and not all zero")
    return w / w.sum()


def marginal_error(plan: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """``max(‖P𝟙 − a‖₁, ‖Pᵀ𝟙 − b‖₁)`` for a ``(n, m)`` plan."""
    return float(max(np.abs(plan.sum(1) - a).sum(), np.abs(plan.sum(0) - b).sum()))


def _call_pot(solver, *args, **kwargs):
    """Run a POT iterative solver; return its plan, its log and whether it hit numerical
    trouble (a "numerical errors" warning or a non-finite plan)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plan, log = solver(*args, log=True, **kwargs)
    plan = np.asarray(plan)
    trouble = any("numerical" in str(w.message).lower() for w in caught)
    return plan, log, trouble or not np.all(np.isfinite(plan))


def _pot_sinkhorn(a, b, c, cfg: OTConfig, method: str):
    plan, log, trouble = _call_pot(
        pot.sinkhorn, a, b, c, cfg.epsilon, method=method, numItermax=cfg.max_iter,
        stopThr=cfg.tol,
    )
    return plan, int(log.get("niter", cfg.max_iter)), trouble


def solve(cost, a=None, b=None, config: OTConfig | None = None) -> OTResult:
    """Solve one transport problem with POT.

    With cost ``C`` (``n × m``), marginals ``a`` (``n``) and ``b`` (``m``), each summing
    to 1, and the entropy ``H(P) = −Σ_ij P_ij (log P_ij − 1)``, the solvers compute::

        exact:       min_P ⟨P, C⟩                   s.t.  P𝟙 = a,  Pᵀ𝟙 = b,  P ≥ 0
        sinkhorn:    min_P ⟨P, C⟩ − ε H(P)          s.t.  P𝟙 = a,  Pᵀ𝟙 = b
        unbalanced:  min_P ⟨P, C⟩ − ε H(P) + τ KL(P𝟙 ‖ a) + τ KL(Pᵀ𝟙 ‖ b)
        partial:     min_P ⟨P, C⟩                   s.t.  P𝟙 ≤ a,  Pᵀ𝟙 ≤ b,  𝟙ᵀP𝟙 = mass

    Sinkhorn alternates ``u ← a / (K v)``, ``v ← b / (Kᵀ u)`` with ``K = exp(−C/ε)`` and
    returns ``P = diag(u) K diag(v)``; the unbalanced version raises both updates to the
    power ``τ / (τ + ε)``, so a large τ approaches the balanced plan.

    References:
        - Cuturi, "Sinkhorn Distances: Lightspeed Computation of Optimal Transport",
          NeurIPS 2013 (entropic OT, the Sinkhorn iterations).
        - Chizat, Peyré, Schmitzer, Vialard, "Scaling Algorithms for Unbalanced Optimal
          Transport Problems", Mathematics of Computation 2018 (the KL-relaxed marginals).
        - Flamary et al., "POT: Python Optimal Transport", JMLR 2021 (the solvers run here:
          ``ot.emd``, ``ot.sinkhorn``, ``ot.unbalanced.sinkhorn_unbalanced``,
          ``ot.partial.partial_wasserstein``).

    Args:
        cost: ``(n, m)`` cost matrix (finite).
        a: ``(n,)`` source marginal, default uniform.
        b: ``(m,)`` target marginal, default uniform.
        config: solver and its parameters, default :class:`OTConfig()`.

    Returns:
        :class:`OTResult`; never a NaN plan. The scaling Sinkhorn is tried first (fast);
        on numerical trouble the log-domain one is used and ``messages`` says so.

    Raises:
        OTInputError: NaN/inf in ``cost``, an empty side, unusable marginals, or (entropic
            solvers) costs whose spread is beyond float64 at this ε (:func:`epsilon_notes`).
    """
    cfg = config or OTConfig()
    c = check_cost(cost)
    n, m = c.shape
    a = _check_marginal(a, n, "a")
    b = _check_marginal(b, m, "b")
    messages: list[str] = []
    if cfg.solver in ("sinkhorn", "unbalanced"):
        messages += epsilon_notes(float(c.max() - c.min()), cfg.epsilon)
    iterations = 0
    converged = True
    used = cfg.solver

    if cfg.solver in ("exact", "partial"):
        plan = _solve_linear(a, b, c, cfg)
    elif cfg.solver == "sinkhorn":
        plan, iterations, used = _solve_sinkhorn(a, b, c, cfg, messages)
    else:  # unbalanced
        plan, iterations, used, converged = _solve_unbalanced(a, b, c, cfg, messages)
    plan = np.clip(np.nan_to_num(plan, nan=0.0, posinf=0.0, neginf=0.0), 0.0, None)
    err = marginal_error(plan, a, b)
    if cfg.solver == "sinkhorn":
        converged = err <= max(cfg.tol, 1e-12) * 10
    if cfg.solver == "sinkhorn" and not converged:
        messages.append(
            f"Sinkhorn stopped after {iterations} iterations with marginal error {err:.2g} "
            f"(> tol {cfg.tol:g}); raise the iteration budget or ε for an exact fit."
        )
    transported = float(plan.sum())
    return OTResult(
        plan=plan,
        cost=float((plan * c).sum()),
        iterations=iterations,
        marginal_error=err,
        converged=bool(converged),
        solver=used,
        transported_mass=transported,
        unaligned_source=np.clip(a - plan.sum(1), 0.0, None),
        unaligned_target=np.clip(b - plan.sum(0), 0.0, None),
        messages=messages,
    )


def _solve_sinkhorn(a, b, c, cfg: OTConfig, messages: list[str]):
    """The scaling Sinkhorn, or the log-domain one when it under- or overflows (noted)."""
    plan, iterations, trouble = _pot_sinkhorn(a, b, c, cfg, "sinkhorn")
    if not (trouble or plan.sum() <= 0):
        return plan, iterations, "sinkhorn"
    plan, iterations, _ = _pot_sinkhorn(a, b, c, cfg, "sinkhorn_log")
    messages.append(
        f"ε = {cfg.epsilon:g} is small for these costs: the scaling Sinkhorn under- or "
        "overflowed, so the log-domain Sinkhorn was used instead."
    )
    return plan, iterations, "sinkhorn_log"


def _solve_linear(a, b, c, cfg: OTConfig) -> np.ndarray:
    """The exact (or partial, ``cfg.mass`` < 1) plan from POT's network simplex.

    Raises:
        OTInputError: POT found no plan (it warns "Problem infeasible" and returns zeros
            when sums of the costs overflow float64, e.g. costs near 1e308).
    """
    mass = cfg.mass if cfg.solver == "partial" and cfg.mass < 1.0 - 1e-12 else 1.0
    plan = None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Problem infeasible")
        with contextlib.suppress(ValueError):  # POT's partial solver raises instead
            plan = np.asarray(pot.emd(a, b, c) if mass == 1.0
                              else pot.partial.partial_wasserstein(a, b, c, m=mass))
    if plan is None or abs(float(plan.sum()) - mass) > 1e-6:
        raise OTInputError(
            f"the {cfg.solver} solver found no plan for costs up to {np.abs(c).max():.3g} "
            "(their sums overflow float64); divide the costs by their largest value"
        )
    return plan


def _solve_unbalanced(a, b, c, cfg: OTConfig, messages: list[str]):
    def run(method: str):
        plan, log, bad = _call_pot(
            pot.unbalanced.sinkhorn_unbalanced, a, b, c, cfg.epsilon, cfg.tau, method=method,
            numItermax=cfg.max_iter, stopThr=cfg.tol,
        )
        errs = log.get("err") or [np.inf]
        # POT logs the relative change of the scalings once per iteration.
        return plan, len(errs), bad, float(errs[-1])

    plan, it, bad, err = run("sinkhorn")
    used = "unbalanced"
    if bad:
        plan, it, bad, err = run("sinkhorn_stabilized")
        used = "unbalanced_stabilized"
        messages.append(
            f"ε = {cfg.epsilon:g} is small for these costs: the plain unbalanced Sinkhorn "
            "overflowed, so the stabilised one was used instead."
        )
    converged = (not bad) and err < cfg.tol
    if not converged:
        messages.append(
            f"Unbalanced Sinkhorn stopped after {it} iterations before reaching tol {cfg.tol:g}."
        )
    return plan, it, used, converged

"""Optimal transport between two token sets: costs, marginals and solvers.

Conventions used throughout the package:

* ``C`` is an ``(n, m)`` cost matrix, rows are source tokens, columns target tokens.
  Cosine costs ``1 - cos`` lie in ``[0, 2]``; ε is given in the same units as ``C``.
* ``a`` (length ``n``) and ``b`` (length ``m``) are non-negative marginals that sum to 1.
* A plan ``P`` has ``P.sum(1) == a`` and ``P.sum(0) == b`` (balanced solvers); its entries
  are the mass moved between two tokens, so ``P * max(n, m)`` is close to 1 for a
  confident one-to-one link.
* ``marginal_error`` is ``max(‖P𝟙 − a‖₁, ‖Pᵀ𝟙 − b‖₁)``: the mass that sits in the wrong
  place, in the same units as the marginals.

Single pairs go through POT (exact, Sinkhorn, unbalanced, partial); many pairs at once go
through :func:`sinkhorn_batch`, a padded and masked log-domain Sinkhorn in torch that is
checked against POT pair by pair in the tests and in ``bench/bench_sinkhorn.py``, or its
unbalanced twin :func:`sinkhorn_unbalanced_batch` (KL-relaxed marginals, τ), checked
against ``ot.unbalanced.sinkhorn_unbalanced`` the same way.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import ot as pot
import torch

Metric = Literal["cosine", "sqeuclidean"]
Solver = Literal["exact", "sinkhorn", "unbalanced", "partial"]
METRICS: tuple[str, ...] = ("cosine", "sqeuclidean")
SOLVERS: tuple[str, ...] = ("exact", "sinkhorn", "unbalanced", "partial")


class OTInputError(ValueError):
    """Raised for inputs no solver can use (NaN/inf costs, an empty side, bad marginals)."""


# --------------------------------------------------------------------------- costs


def cost_matrix(x, y, metric: Metric = "cosine"):
    """Pairwise cost between two sets of vectors.

    Args:
        x: ``(n, d)`` or batched ``(B, n, d)`` array or tensor.
        y: ``(m, d)`` or ``(B, m, d)``, same type as ``x``.
        metric: ``"cosine"`` gives ``1 - cos`` in ``[0, 2]``; ``"sqeuclidean"`` gives
            ``‖x - y‖²`` on the raw vectors (unbounded: pick ε relative to its scale).

    Returns:
        ``(n, m)`` or ``(B, n, m)``, numpy in numpy out, torch in torch out (differentiable).
    """
    as_numpy = isinstance(x, np.ndarray)
    xt = torch.as_tensor(x) if as_numpy else x
    yt = torch.as_tensor(y) if as_numpy else y
    if metric == "cosine":
        xn = torch.nn.functional.normalize(xt, dim=-1, eps=1e-12)
        yn = torch.nn.functional.normalize(yt, dim=-1, eps=1e-12)
        c = 1.0 - xn @ yn.transpose(-1, -2)
        c = c.clamp(0.0, 2.0)
    elif metric == "sqeuclidean":
        c = (
            (xt * xt).sum(-1, keepdim=True)
            + (yt * yt).sum(-1).unsqueeze(-2)
            - 2.0 * xt @ yt.transpose(-1, -2)
        ).clamp_min(0.0)
    else:
        raise OTInputError(f"unknown cost metric {metric!r}; choose one of {METRICS}")
    return c.detach().cpu().numpy() if as_numpy else c


# ----------------------------------------------------------------------- marginals


def uniform_marginal(n: int) -> np.ndarray:
    """``(n,)`` uniform weights ``1/n``."""
    if n < 1:
        raise OTInputError("a side with no tokens has nothing to transport")
    return np.full(n, 1.0 / n)


def weighted_marginal(weights) -> np.ndarray:
    """Normalise non-negative token weights (norm, IDF, ...) into a marginal.

    Args:
        weights: ``(n,)`` finite, non-negative, not all zero.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size == 0:
        raise OTInputError("token weights must be a non-empty 1-D array")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise OTInputError("token weights must be finite and non-negative")
    total = w.sum()
    if total <= 0:
        raise OTInputError("token weights sum to zero; use uniform marginals instead")
    return w / total


def norm_weights(embeddings: np.ndarray) -> np.ndarray:
    """``(n,)`` L2 norms of ``(n, d)`` token embeddings, a cheap salience weight."""
    return np.linalg.norm(np.asarray(embeddings, dtype=np.float64), axis=-1)


# ------------------------------------------------------------------------- solvers


@dataclass(frozen=True)
class OTConfig:
    """How to solve one transport problem.

    Attributes:
        solver: ``exact`` (network simplex, sparse plan), ``sinkhorn`` (entropic),
            ``unbalanced`` (entropic with KL-relaxed marginals) or ``partial`` (exact, only
            ``mass`` of the total is moved, so a token may stay unaligned).
        epsilon: entropic regularisation in cost units (cosine costs span [0, 2]).
            Small ε → nearly one-to-one plan; large ε → blurred plan.
        tau: marginal relaxation of ``unbalanced``; large τ → close to balanced.
        mass: total mass moved by ``partial``, in (0, 1].
        max_iter: iteration budget of the iterative solvers.
        tol: stop when the marginal error falls below this.
    """

    solver: Solver = "sinkhorn"
    epsilon: float = 0.05
    tau: float = 1.0
    mass: float = 0.8
    max_iter: int = 1000
    tol: float = 1e-6

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise OTInputError(f"unknown solver {self.solver!r}; choose one of {SOLVERS}")
        if self.solver in ("sinkhorn", "unbalanced") and not (
            math.isfinite(self.epsilon) and self.epsilon > 0
        ):
            raise OTInputError(
                "ε must be a finite number > 0 for the entropic solvers (e.g. 0.05 for "
                "cosine costs); for the ε → 0 limit use the exact solver"
            )
        if self.solver == "unbalanced" and not (math.isfinite(self.tau) and self.tau > 0):
            raise OTInputError("τ must be a finite number > 0")
        if self.solver == "partial" and not (0 < self.mass <= 1):
            raise OTInputError("the transported mass must lie in (0, 1]")
        if self.max_iter < 1:
            raise OTInputError("max_iter must be at least 1")


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
        plan, iterations, trouble = _pot_sinkhorn(a, b, c, cfg, "sinkhorn")
        if trouble or plan.sum() <= 0:
            plan, iterations, _ = _pot_sinkhorn(a, b, c, cfg, "sinkhorn_log")
            used = "sinkhorn_log"
            messages.append(
                f"ε = {cfg.epsilon:g} is small for these costs: the scaling Sinkhorn under- or "
                "overflowed, so the log-domain Sinkhorn was used instead."
            )
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


# ----------------------------------------------------------------- batched torch


@dataclass
class BatchOTResult:
    """Plans of a padded batch.

    Attributes:
        plan: ``(B, n, m)``; zero on padded rows and columns.
        iterations: ``(B,)`` iterations each pair needed.
        marginal_error: ``(B,)`` as in :func:`marginal_error`.
        converged: ``(B,)`` bool.
    """

    plan: torch.Tensor
    iterations: torch.Tensor
    marginal_error: torch.Tensor
    converged: torch.Tensor


def sinkhorn_batch(
    cost: torch.Tensor,
    a: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    epsilon: float = 0.05,
    max_iter: int = 1000,
    tol: float = 1e-6,
    check_every: int = 10,
    omega: float = 1.95,
    compute_dtype: torch.dtype | None = None,
) -> BatchOTResult:
    """Entropic OT for many pairs at once: stabilised, padded, masked, differentiable.

    The iterations are Sinkhorn scaling steps on a kernel into which the log-domain
    potentials are absorbed at every check (Schmitzer's stabilisation, as POT's
    ``sinkhorn_stabilized``), so they are as cheap as plain scaling and as safe as the
    log domain. Three things keep iteration counts low:

    * each pair stops as soon as its own marginal error is below ``tol`` and leaves the
      working set, so one slow pair does not keep the others iterating;
    * updates are over-relaxed, ``u ← u (u_sinkhorn / u)^ω`` (Thibault et al. 2017), with a
      per-pair ω set from that pair's observed contraction rate ``r`` as
      ``2 / (1 + sqrt(1 - r))``; it shares Sinkhorn's fixed point, and a pair whose error
      rises is damped back towards plain Sinkhorn;
    * a chunk that over- or underflows is redone for that pair in the log domain.

    Args:
        cost: ``(B, n, m)`` costs; entries outside a pair's real tokens may be anything
            finite (they are masked by zero marginals).
        a: ``(B, n)`` source marginals, zero on padding, each row summing to 1
            (default: uniform over all ``n``).
        b: ``(B, m)`` target marginals, likewise.
        epsilon: regularisation in cost units, > 0.
        max_iter: iteration budget per pair.
        tol: stop a pair when its marginal error is below this.
        check_every: iterations between convergence checks.
        omega: largest over-relaxation factor allowed, in [1, 2); 1 is plain Sinkhorn.
        compute_dtype: dtype of the iterations; default float64 on CPU (float32 cannot
            reach a 1e-6 marginal error once ``C/ε`` is large) and the input dtype elsewhere.

    Returns:
        :class:`BatchOTResult` in the dtype of ``cost``. Gradients flow from ``plan`` to
        ``cost`` through the unrolled iterations; for a loss ``<P*, C>`` detach the plan
        instead (envelope theorem).

    Raises:
        OTInputError: NaN/inf in the real part of ``cost``, a pair with an empty side,
            ``epsilon <= 0``, or costs whose spread is beyond float64 at this ε
            (:func:`epsilon_notes`).
    """
    if not 1.0 <= omega < 2.0:
        raise OTInputError("omega must lie in [1, 2)")
    out_dtype = cost.dtype
    # Renormalise in the compute dtype: float32 marginals that sum to 1 ± 1e-7 would make
    # the balanced problem infeasible at a tighter tol.
    cost, a, b = _batch_inputs(cost, a, b, epsilon, compute_dtype, normalise=True)
    if cost.shape[0] == 0:
        return _empty_result(cost, out_dtype)
    real = (a > 0).unsqueeze(2) & (b > 0).unsqueeze(1)
    top = torch.finfo(cost.dtype).max
    spread = (cost.detach().masked_fill(~real, -top).amax((1, 2))
              - cost.detach().masked_fill(~real, top).amin((1, 2)))
    epsilon_notes(float(spread.max()), epsilon)  # raises on costs float64 cannot solve
    n_len, m_len = _real_lengths(a, b)
    opts = dict(epsilon=epsilon, max_iter=max_iter, tol=tol, check_every=check_every,
                omega=omega)
    plan, iterations, errors, converged = _sinkhorn_core(cost, a, b, n_len, m_len, **opts)
    return BatchOTResult(plan.to(out_dtype), iterations, errors.to(out_dtype), converged)


def _batch_inputs(cost, a, b, epsilon, compute_dtype, normalise: bool):
    """Check and cast the inputs of a batched solver.

    Returns ``cost (B, n, m)``, ``a (B, n)``, ``b (B, m)`` detached (marginals) in the
    compute dtype, with the cost zeroed outside each pair's real tokens.

    Raises:
        OTInputError: not ``(B, n, m)``, a bad ε, a pair with an empty side, NaN/inf on
            real tokens.
    """
    if cost.ndim != 3:
        raise OTInputError(f"batched cost must be (B, n, m), got {tuple(cost.shape)}")
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise OTInputError("ε must be a finite number > 0")
    bsz, n, m = cost.shape
    device = cost.device
    dtype = compute_dtype or (torch.float64 if device.type == "cpu" else cost.dtype)
    cost = cost.to(dtype)
    a = torch.full((bsz, n), 1.0 / n, device=device) if a is None else a
    b = torch.full((bsz, m), 1.0 / m, device=device) if b is None else b
    a = a.detach().to(dtype)
    b = b.detach().to(dtype)
    if normalise:
        a = a / a.sum(1, keepdim=True).clamp_min(torch.finfo(dtype).tiny)
        b = b / b.sum(1, keepdim=True).clamp_min(torch.finfo(dtype).tiny)
    if bsz == 0:
        return cost, a, b
    if ((a > 0).sum(1) == 0).any() or ((b > 0).sum(1) == 0).any():
        raise OTInputError("a pair in the batch has a side with no tokens")
    real = (a > 0).unsqueeze(2) & (b > 0).unsqueeze(1)
    if not torch.isfinite(cost.detach()[real]).all():
        raise OTInputError("the batched cost has NaN/inf entries on real tokens")
    # Padded entries must stay finite so that no inf - inf reaches the log-sum-exp.
    cost = torch.where(real, cost, torch.zeros((), dtype=dtype, device=device))
    return cost, a, b


def _empty_result(cost: torch.Tensor, out_dtype: torch.dtype) -> BatchOTResult:
    return BatchOTResult(
        cost.new_zeros(cost.shape).to(out_dtype), torch.zeros(0, dtype=torch.long),
        cost.new_zeros(0), torch.zeros(0, dtype=torch.bool),
    )


def _real_lengths(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B,)`` index + 1 of the last real (non-zero marginal) row and column per pair."""
    n, m = a.shape[1], b.shape[1]
    n_len = ((torch.arange(n, device=a.device) + 1) * (a > 0)).amax(1)
    m_len = ((torch.arange(m, device=b.device) + 1) * (b > 0)).amax(1)
    return n_len, m_len


def _sinkhorn_core(cost, a, b, n_len, m_len, epsilon, max_iter, tol, check_every, omega):
    """The iterations of :func:`sinkhorn_batch`, on the batch's real extent only."""
    bsz, n, m = cost.shape
    dtype, device = cost.dtype, cost.device
    n0, m0 = int(n_len.max()), int(m_len.max())
    cost, a, b = cost[:, :n0, :m0], a[:, :n0], b[:, :m0]
    log_a = torch.log(a)  # -inf on padding masks those rows out of every LSE
    log_b = torch.log(b)
    # Padded rows/columns get a dummy denominator of 1 so their scalings stay at 1.
    pad_a = (a <= 0).to(dtype)
    pad_b = (b <= 0).to(dtype)
    # One log-domain half-step first, so that the absorbed kernel starts well scaled.
    f = -epsilon * torch.logsumexp(log_b.unsqueeze(1) - cost / epsilon, dim=2)
    g = -epsilon * torch.logsumexp(log_a.unsqueeze(2) + (f.unsqueeze(2) - cost) / epsilon, dim=1)
    iterations = torch.full((bsz,), max_iter, dtype=torch.long)
    converged = torch.zeros(bsz, dtype=torch.bool)
    with torch.no_grad():  # the starting error lets the first chunk already measure a rate
        errors = _marginal_error(
            torch.exp(log_a.unsqueeze(2) + log_b.unsqueeze(1)
                      + (f.unsqueeze(2) + g.unsqueeze(1) - cost) / epsilon), a, b)
    # Per-pair state of the working set (CPU, float64), shrunk whenever pairs converge.
    active = torch.arange(bsz, device=device)
    idx = active.cpu()
    w_act = torch.ones(bsz, dtype=torch.float64)
    prev_act = errors.clone()
    checks_act = torch.ones(bsz, dtype=torch.long)
    gathered = False
    done = 1
    while done < max_iter and active.numel() > 0:
        steps = min(check_every, max_iter - done)
        if not gathered:  # advanced indexing is costly: only when the working set changed
            # The working set is trimmed to its longest remaining pair.
            nk, mk = int(n_len[active].max()), int(m_len[active].max())
            c_act = cost[active, :nk, :mk]
            la, lb = log_a[active, :nk], log_b[active, :mk]
            pa, pb = pad_a[active, :nk], pad_b[active, :mk]
            fa, ga = f[active, :nk], g[active, :mk]
            gathered = True
        w = w_act.to(dtype=dtype, device=device).view(-1, 1, 1)
        f0, g0 = fa, ga
        fa, ga, err, bad = _scaling_chunk(c_act, la, lb, pa, pb, f0, g0, w, epsilon, steps)
        if bad.any():  # over/underflow in the scaling steps: redo those pairs in log domain
            sel = bad.nonzero().squeeze(1)
            fl, gl, el = _log_chunk(
                c_act[sel], la[sel], lb[sel], f0[sel], g0[sel], w[sel].view(-1, 1), epsilon, steps
            )
            fa = fa.index_copy(0, sel, fl)
            ga = ga.index_copy(0, sel, gl)
            err[bad.cpu()] = el
        done += steps
        errors[idx] = err
        checks_act += 1
        if omega > 1.0:
            w_act = _next_omega(w_act, err / prev_act, checks_act, steps, omega)
        prev_act = err
        ok = err <= tol
        if ok.any() or done >= max_iter:
            f = f.index_copy(0, active, torch.cat([fa, f[active, nk:]], 1))
            g = g.index_copy(0, active, torch.cat([ga, g[active, mk:]], 1))
            gathered = False
            if ok.any():
                iterations[idx[ok]] = done
                converged[idx[ok]] = True
                keep = ~ok
                active, idx = active[keep.to(device)], idx[keep]
                w_act, prev_act, checks_act = w_act[keep], prev_act[keep], checks_act[keep]
    log_p = log_a.unsqueeze(2) + log_b.unsqueeze(1) + (f.unsqueeze(2) + g.unsqueeze(1) - cost) / epsilon
    plan = torch.nn.functional.pad(torch.exp(log_p), (0, m - m0, 0, n - n0))
    return plan, iterations, errors, converged


def _marginal_error(plan: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(B,)`` float64 CPU ``max(‖P𝟙 − a‖₁, ‖Pᵀ𝟙 − b‖₁)``; NaN counts as infinitely wrong."""
    err = torch.maximum((plan.sum(2) - a).abs().sum(1), (plan.sum(1) - b).abs().sum(1))
    return torch.nan_to_num(err.double().cpu(), nan=float("inf"), posinf=float("inf"))


def _next_omega(w, ratio, checks, steps, omega_max):
    """Per-pair over-relaxation factor for the next chunk (Young's SOR theory).

    ``ratio`` is the change of the marginal error over the last ``steps`` iterations, so
    ``λ = ratio^(1/steps)`` is the observed rate. Under SOR with factor ``ω`` the rate of
    plain Sinkhorn ``r`` satisfies ``(λ + ω − 1)² = λ ω² r``; the best factor for ``r`` is
    ``2 / (1 + sqrt(1 − r))``. The first chunk runs plain (ω = 1) to measure ``r``
    directly; later chunks only raise ω as the estimate of ``r`` firms up, and a pair
    whose error rises is damped halfway back to plain Sinkhorn.
    """
    lam = ratio.clamp(1e-300, 1.0).pow(1.0 / steps)
    r = ((lam + w - 1.0) ** 2 / (lam * w * w)).clamp(0.0, 1.0 - 1e-12)
    w_opt = (2.0 / (1.0 + torch.sqrt(1.0 - r))).clamp(1.0, omega_max)
    measurable = torch.isfinite(ratio) & (ratio < 1.0) & (checks >= 2)
    w_next = torch.where(measurable, torch.maximum(w, w_opt), w)
    rising = (w > 1.0) & (ratio > 1.0)
    return torch.where(rising, 1.0 + (w - 1.0) / 2, w_next)


def _scaling_chunk(c, la, lb, pad_a, pad_b, f, g, w, eps, steps):
    """``steps`` over-relaxed scaling iterations on the kernel with ``f, g`` absorbed.

    Returns the new potentials, the marginal error per pair (float64, CPU) and a mask of
    pairs whose scalings left the representable range.
    """
    kernel = torch.exp(la.unsqueeze(2) + lb.unsqueeze(1) + (f.unsqueeze(2) + g.unsqueeze(1) - c) / eps)
    a, b = la.exp().unsqueeze(2), lb.exp().unsqueeze(2)
    pa, pb = pad_a.unsqueeze(2), pad_b.unsqueeze(2)
    a_safe, b_safe = a + pa, b + pb
    u = torch.ones_like(a)
    v = torch.ones_like(b)
    kt = kernel.transpose(1, 2)
    relaxed = bool((w != 1).any())
    # Without autograd the updates run in place: at these sizes the cost is per-op overhead.
    inplace = not (torch.is_grad_enabled() and c.requires_grad)

    def relax(old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        if not relaxed:
            return new
        if inplace:
            return old.mul_(new.div_(old).pow_(w))
        return old * (new / old).pow(w)

    for _ in range(steps):
        u = relax(u, a_safe / torch.baddbmm(pa, kernel, v))
        v = relax(v, b_safe / torch.baddbmm(pb, kt, u))
    with torch.no_grad():
        bad = ~(torch.isfinite(u).all(1) & torch.isfinite(v).all(1) & (u > 0).all(1) & (v > 0).all(1)).squeeze(1)
    f = f + eps * torch.log(u.squeeze(2).clamp_min(torch.finfo(u.dtype).tiny))
    g = g + eps * torch.log(v.squeeze(2).clamp_min(torch.finfo(v.dtype).tiny))
    with torch.no_grad():
        err = _marginal_error(u * kernel * v.transpose(1, 2), a.squeeze(2), b.squeeze(2))
    return f, g, err, bad


def _log_chunk(c, la, lb, f, g, w, eps, steps):
    """The log-domain twin of :func:`_scaling_chunk`, for pairs that overflowed there."""
    for _ in range(steps):
        f_new = -eps * torch.logsumexp(lb.unsqueeze(1) + (g.unsqueeze(1) - c) / eps, dim=2)
        f = f + w * (f_new - f)
        g_new = -eps * torch.logsumexp(la.unsqueeze(2) + (f.unsqueeze(2) - c) / eps, dim=1)
        g = g + w * (g_new - g)
    with torch.no_grad():
        p = torch.exp(la.unsqueeze(2) + lb.unsqueeze(1) + (f.unsqueeze(2) + g.unsqueeze(1) - c) / eps)
        err = _marginal_error(p, la.exp(), lb.exp())
    return f, g, err


def sinkhorn_unbalanced_batch(
    cost: torch.Tensor,
    a: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    epsilon: float = 0.05,
    tau: float = 1.0,
    max_iter: int = 1000,
    tol: float = 1e-6,
    check_every: int = 10,
    compute_dtype: torch.dtype | None = None,
) -> BatchOTResult:
    """Unbalanced entropic OT for many pairs at once: log domain, padded, masked.

    Solves, per pair, the problem of POT's ``ot.unbalanced.sinkhorn_unbalanced`` with
    ``reg=ε``, ``reg_m=τ`` and ``reg_type="kl"``::

        min_P  <P, C> + ε KL(P | a⊗b) + τ KL(P𝟙 | a) + τ KL(Pᵀ𝟙 | b)

    by the scaling iterations ``u = (a / Kv)^φ``, ``v = (b / Kᵀu)^φ`` with
    ``φ = τ / (τ + ε)``, run on the potentials ``f = ε log u``, ``g = ε log v`` as
    log-sum-exps so that no ε under- or overflows. A token whose every cost is high
    keeps part of its mass (small τ: more is left; τ → ∞: balanced Sinkhorn).

    A pair stops when its fixed-point residual ``max(‖P𝟙 − a e^(−f/τ)‖₁,
    ‖Pᵀ𝟙 − b e^(−g/τ)‖₁)`` (mass units; it is the marginal error of the balanced case
    when τ → ∞) falls below ``tol``; it is checked every ``check_every`` iterations and
    converged pairs leave the working set.

    Args:
        cost: ``(B, n, m)`` costs; entries outside a pair's real tokens may be anything
            finite (they are masked by zero marginals).
        a: ``(B, n)`` source masses, zero on padding (default: uniform ``1/n``). They are
            used as given: the total mass enters the KL terms.
        b: ``(B, m)`` target masses, likewise.
        epsilon: entropic regularisation in cost units, > 0.
        tau: marginal relaxation in cost units, > 0.
        max_iter: iteration budget per pair.
        tol: stop a pair when its residual is below this.
        check_every: iterations between convergence checks.
        compute_dtype: dtype of the iterations; default float64 on CPU, the input dtype
            elsewhere.

    Returns:
        :class:`BatchOTResult` in the dtype of ``cost``; ``marginal_error`` is the gap
        ``max(‖P𝟙 − a‖₁, ‖Pᵀ𝟙 − b‖₁)``, which the relaxation intends, not a solver error.
        Gradients flow from ``plan`` to ``cost`` through the unrolled iterations; for a
        loss ``<P*, C>`` detach the plan instead (the KL terms do not depend on ``C``, so
        the envelope gradient is still ``P*``).

    Raises:
        OTInputError: NaN/inf in the real part of ``cost``, a pair with an empty side,
            ``epsilon <= 0`` or ``tau <= 0``.
    """
    if not (math.isfinite(tau) and tau > 0):
        raise OTInputError("τ must be a finite number > 0")
    out_dtype = cost.dtype
    cost, a, b = _batch_inputs(cost, a, b, epsilon, compute_dtype, normalise=False)
    bsz, n, m = cost.shape
    if bsz == 0:
        return _empty_result(cost, out_dtype)
    n_len, m_len = _real_lengths(a, b)
    n0, m0 = int(n_len.max()), int(m_len.max())
    # Scaled units: F = f/ε, G = g/ε, kernel exponent -C/ε.
    neg_k = -cost[:, :n0, :m0] / epsilon
    log_a, log_b = torch.log(a[:, :n0]), torch.log(b[:, :m0])  # -inf masks padding
    phi = tau / (tau + epsilon)
    big_f = neg_k.new_zeros(bsz, n0)
    big_g = neg_k.new_zeros(bsz, m0)
    iterations = torch.full((bsz,), max_iter, dtype=torch.long)
    converged = torch.zeros(bsz, dtype=torch.bool)
    active = torch.arange(bsz, device=cost.device)
    idx = active.cpu()
    done = 0
    while done < max_iter and active.numel() > 0:
        steps = min(check_every, max_iter - done)
        k, la, lb = neg_k[active], log_a[active], log_b[active]
        fa, ga = big_f[active], big_g[active]
        for _ in range(steps):
            fa = -phi * torch.logsumexp(k + (lb + ga).unsqueeze(1), dim=2)
            ga = -phi * torch.logsumexp(k + (la + fa).unsqueeze(2), dim=1)
        done += steps
        big_f = big_f.index_copy(0, active, fa)
        big_g = big_g.index_copy(0, active, ga)
        with torch.no_grad():
            res = _unbalanced_residual(k, la, lb, fa, ga, epsilon / tau)
        ok = res <= tol
        if ok.any():
            iterations[idx[ok]] = done
            converged[idx[ok]] = True
            active, idx = active[(~ok).to(active.device)], idx[~ok]
    plan = torch.exp(log_a.unsqueeze(2) + log_b.unsqueeze(1) + big_f.unsqueeze(2)
                     + big_g.unsqueeze(1) + neg_k)
    plan = torch.nn.functional.pad(plan, (0, m - m0, 0, n - n0))
    with torch.no_grad():
        gap = _marginal_error(plan, a, b)
    return BatchOTResult(plan.to(out_dtype), iterations, gap.to(out_dtype), converged)


def _unbalanced_residual(k, la, lb, big_f, big_g, eps_over_tau: float) -> torch.Tensor:
    """``(B,)`` float64 CPU distance of the plan's marginals from their fixed point.

    At the optimum ``P𝟙 = a e^(−f/τ)`` and ``Pᵀ𝟙 = b e^(−g/τ)`` (``f/τ = F ε/τ``).
    """
    log_p = la.unsqueeze(2) + lb.unsqueeze(1) + big_f.unsqueeze(2) + big_g.unsqueeze(1) + k
    p = torch.exp(log_p)
    row = (p.sum(2) - torch.exp(la - eps_over_tau * big_f)).abs().sum(1)
    col = (p.sum(1) - torch.exp(lb - eps_over_tau * big_g)).abs().sum(1)
    err = torch.maximum(row, col)
    return torch.nan_to_num(err.double().cpu(), nan=float("inf"), posinf=float("inf"))


def pad_costs(
    costs: list[np.ndarray] | list[torch.Tensor],
    weights_a: list | None = None,
    weights_b: list | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack ragged ``(n_k, m_k)`` costs into a padded batch with masking marginals.

    Returns:
        ``cost (B, n, m)``, ``a (B, n)``, ``b (B, m)``; padded marginal entries are 0 and
        each real marginal is uniform (or the given weights, normalised).
    """
    bsz = len(costs)
    n = max(int(c.shape[0]) for c in costs)
    m = max(int(c.shape[1]) for c in costs)
    cost = torch.zeros(bsz, n, m, dtype=dtype, device=device)
    a = torch.zeros(bsz, n, dtype=dtype, device=device)
    b = torch.zeros(bsz, m, dtype=dtype, device=device)
    for k, c in enumerate(costs):
        ck = torch.as_tensor(np.asarray(check_cost(c)) if isinstance(c, np.ndarray) else c)
        nk, mk = ck.shape
        cost[k, :nk, :mk] = ck.to(dtype)
        wa = uniform_marginal(nk) if weights_a is None else weighted_marginal(weights_a[k])
        wb = uniform_marginal(mk) if weights_b is None else weighted_marginal(weights_b[k])
        a[k, :nk] = torch.as_tensor(wa, dtype=dtype)
        b[k, :mk] = torch.as_tensor(wb, dtype=dtype)
    return cost, a, b

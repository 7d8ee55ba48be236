"""Many transport problems at once in torch: a padded, masked, stabilised Sinkhorn.

:func:`sinkhorn_batch` solves a batch of padded cost matrices (the training loss and the
OT rerank call it); it is checked against POT pair by pair in the tests and in
``bench/bench_sinkhorn.py``. Its KL-relaxed twin (τ) is
:func:`optical_core.ot.unbalanced_batch.sinkhorn_unbalanced_batch`, which shares the input
checks here (:func:`batch_inputs`). :func:`pad_costs` stacks ragged cost matrices into one
padded batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from optical_core.ot.config import OTInputError
from optical_core.ot.costs import uniform_marginal, weighted_marginal
from optical_core.ot.solve import MAX_SPREAD_OVER_EPSILON, check_cost, epsilon_notes

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
    potentials are absorbed (Schmitzer's stabilisation, as POT's ``sinkhorn_stabilized``)
    whenever the scalings leave a safe range, so they are as cheap as plain scaling and as
    safe as the log domain. What keeps the time low:

    * each pair stops as soon as its own marginal error is below ``tol`` and is frozen;
      once half of the working set has stopped, it is shrunk to the rest, trimmed to
      their extent, so one slow pair does not keep the others iterating;
    * updates are over-relaxed, ``u ← u + ω (u_sinkhorn − u)``, which shares Sinkhorn's
      fixed point and near it the rate of Thibault et al.'s (2017) geometric form, with a
      per-pair ω set from that pair's observed contraction rate ``r`` as
      ``2 / (1 + sqrt(1 - r))`` (:func:`_next_omega`);
    * a step is two batched vector–matrix products, a reciprocal and a ``lerp`` per
      side; the convergence check reads the marginals from the scalings without forming
      the plan;
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
    batch = batch_inputs(cost, a, b, epsilon, compute_dtype, normalise=True)
    if batch.cost.shape[0] == 0:
        return empty_result(batch.cost, out_dtype)
    epsilon_notes(batch.spread, epsilon)  # raises on costs float64 cannot solve
    plan, iterations, errors, converged = _sinkhorn_core(
        batch, epsilon=epsilon, max_iter=max_iter, tol=tol, check_every=check_every,
        omega=omega)
    return BatchOTResult(plan.to(out_dtype), iterations, errors.to(out_dtype), converged)


class BatchInputs(NamedTuple):
    """Checked inputs of a batched solver (see :func:`batch_inputs`)."""

    cost: torch.Tensor  # (B, n, m) in the compute dtype, zero outside real tokens
    a: torch.Tensor  # (B, n) detached, compute dtype
    b: torch.Tensor  # (B, m)
    n_len: np.ndarray  # (B,) index + 1 of each pair's last real row
    m_len: np.ndarray  # (B,) likewise for columns
    spread: float  # bounds max C − min C over any pair's real tokens (exact past the limit)


def batch_inputs(cost, a, b, epsilon, compute_dtype, normalise: bool) -> BatchInputs:
    """Check and cast the inputs of a batched solver (two device synchronisations).

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
        return BatchInputs(cost, a, b, np.zeros(0, np.int64), np.zeros(0, np.int64), 0.0)
    real_a, real_b = a > 0, b > 0
    pad = ~(real_a.unsqueeze(2) & real_b.unsqueeze(1))
    real = torch.cat([real_a, real_b], 1).cpu().numpy()
    n_len = np.where(real[:, :n], np.arange(1, n + 1), 0).max(1)
    m_len = np.where(real[:, n:], np.arange(1, m + 1), 0).max(1)
    if not (n_len.all() and m_len.all()):
        raise OTInputError("a pair in the batch has a side with no tokens")
    finite = (torch.isfinite(cost.detach()) | pad).all()
    # Padded entries must stay finite so that no inf - inf reaches the log-sum-exp.
    cost = torch.where(pad, torch.zeros((), dtype=dtype, device=device), cost)
    plain = cost.detach()
    # The range of the whole tensor (padding's zeros included) bounds every pair's spread.
    summary = torch.stack([finite.to(dtype), plain.amax(), plain.amin()]).tolist()
    if not summary[0]:
        raise OTInputError("the batched cost has NaN/inf entries on real tokens")
    spread = summary[1] - summary[2]
    if spread > MAX_SPREAD_OVER_EPSILON * epsilon:  # the bound is too loose to decide
        top = torch.finfo(dtype).max
        spread = float((plain.masked_fill(pad, -top).amax((1, 2))
                        - plain.masked_fill(pad, top).amin((1, 2))).max())
    return BatchInputs(cost, a, b, n_len, m_len, spread)


def empty_result(cost: torch.Tensor, out_dtype: torch.dtype) -> BatchOTResult:
    """The result of a batch of no pairs (``cost`` is ``(0, n, m)``)."""
    return BatchOTResult(
        cost.new_zeros(cost.shape).to(out_dtype), torch.zeros(0, dtype=torch.long),
        cost.new_zeros(0), torch.zeros(0, dtype=torch.bool),
    )


def _sinkhorn_core(batch: BatchInputs, epsilon, max_iter, tol, check_every, omega):
    """The iterations of :func:`sinkhorn_batch`, on the batch's real extent only.

    The state of a pair is its log-domain potentials ``f, g`` and the scalings ``x, y`` on
    top of them: the plan is ``diag(a∘x) K diag(b∘y)`` with ``K = exp((f ⊕ g − C)/ε)``.
    The iterations are plain scaling steps on two fixed kernels (:class:`_WorkingSet`);
    the scalings are folded back into the potentials only when they leave a safe range or
    the working set shrinks, so a chunk of iterations rebuilds nothing.
    """
    cost, a, b, n_len, m_len = batch.cost, batch.a, batch.b, batch.n_len, batch.m_len
    bsz, n, m = cost.shape
    n0, m0 = int(n_len.max()), int(m_len.max())
    cost, a, b = cost[:, :n0, :m0], a[:, :n0], b[:, :m0]
    log_a = torch.log(a)  # -inf on padding masks those rows out of every LSE
    log_b = torch.log(b)
    # One log-domain half-step first, so that the kernels start well scaled.
    f = -epsilon * torch.logsumexp(log_b.unsqueeze(1) - cost / epsilon, dim=2)
    g = -epsilon * torch.logsumexp(log_a.unsqueeze(2) + (f.unsqueeze(2) - cost) / epsilon, dim=1)
    in_place = not (torch.is_grad_enabled() and cost.requires_grad)
    # Scalings past this range are folded into the potentials (float32 ends near 1e±38).
    far = 1e30 if cost.dtype == torch.float64 else 1e10
    iterations = np.full(bsz, max_iter, dtype=np.int64)
    errors = np.full(bsz, np.inf)
    ws = _WorkingSet(cost, log_a, log_b, f, g, np.arange(bsz), n_len, m_len, epsilon)
    prev = ws.first_error()
    errors[:] = prev
    w = np.ones(bsz)  # per-pair over-relaxation factor; 0 freezes a converged pair
    w_before = w.copy()
    checks = np.ones(bsz, dtype=np.int64)
    live = np.ones(bsz, dtype=bool)  # pairs of the working set still iterating
    done = 1
    while done < max_iter:
        steps = min(check_every, max_iter - done)
        start = ws.snapshot()
        ws.iterate(w, steps, in_place)
        done += steps
        err, bad = ws.check()
        bad &= live
        if bad.any():  # over/underflow in the scaling steps: redo those pairs in log domain
            sel = np.flatnonzero(bad)
            err[sel] = ws.redo_in_log_domain(start, sel, w[sel], steps)
            w[sel] = 1.0 + (w[sel] - 1.0) / 2
        err = np.where(live, err, prev)  # a frozen pair keeps the error it stopped at
        errors[ws.idx] = err
        checks += 1
        if omega > 1.0:
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = err / prev
            w_next = _next_omega(w, w_before, ratio, checks, steps, omega)
            w_before, w = w, np.where(live, w_next, w)
        prev = err
        ok = live & (err <= tol)
        if ok.any():
            iterations[ws.idx[ok]] = done
            live &= ~ok
            w[ok] = 0.0
        finished = not live.any() or done >= max_iter
        far_out = ws.is_far(far)
        if finished or far_out or 2 * live.sum() <= live.size:
            f, g = ws.absorb_into(f, g)
            if finished:
                break
            keep = np.flatnonzero(live)
            if far_out:  # fold the scalings into fresh kernels
                ws = _WorkingSet(cost, log_a, log_b, f, g, ws.idx[keep], n_len, m_len, epsilon)
            else:  # drop the converged pairs, which costs an indexing pass and no exp
                ws.keep_only(keep, n_len, m_len)
            w, w_before = w[keep], w_before[keep]
            prev, checks, live = prev[keep], checks[keep], live[keep]
    log_p = (log_a.unsqueeze(2) + log_b.unsqueeze(1)
             + (f.unsqueeze(2) + g.unsqueeze(1) - cost) / epsilon)
    plan = torch.nn.functional.pad(torch.exp(log_p), (0, m - m0, 0, n - n0))
    converged = iterations < max_iter
    if done >= max_iter:  # a pair that met tol on the very last check converged too
        converged |= errors <= tol
    return (plan, torch.from_numpy(iterations), torch.from_numpy(errors),
            torch.from_numpy(converged))


class _WorkingSet:
    """The pairs of a batch that still iterate, trimmed to the longest of them.

    Per pair it holds the potentials ``f, g`` it started from, the scalings ``x`` (1, n)
    and ``y`` (1, m) on top of them, and two kernels that are not rebuilt while it lives:
    ``kr = (K diag(b))ᵀ`` (m, n) and ``kc = diag(a) K`` (n, m), zero on padding. Scalings
    are row vectors because a batched vector–matrix product is several times faster in
    torch on CPU than the matrix–vector one.
    """

    def __init__(self, cost, log_a, log_b, f, g, idx: np.ndarray, n_len, m_len, epsilon):
        self.idx, self.eps = idx, epsilon
        active = torch.from_numpy(idx).to(cost.device)
        self.active = active
        if idx.size == cost.shape[0]:  # the whole batch, in order, already trimmed
            self.nk, self.mk = cost.shape[1], cost.shape[2]
            self.c, self.la, self.lb, self.fa, self.ga = cost, log_a, log_b, f, g
        else:
            self.nk, self.mk = int(n_len[idx].max()), int(m_len[idx].max())
            self.c = cost[active, : self.nk, : self.mk]
            self.la, self.lb = log_a[active, : self.nk], log_b[active, : self.mk]
            self.fa, self.ga = f[active, : self.nk], g[active, : self.mk]
        self.a, self.b = self.la.exp().unsqueeze(1), self.lb.exp().unsqueeze(1)
        # Padded entries get a dummy denominator of 1 so that their scalings stay at 1.
        self.pa, self.pb = (self.a <= 0).to(cost.dtype), (self.b <= 0).to(cost.dtype)
        self.kr, self.kc = self._kernels(self.c, self.la, self.lb, self.fa, self.ga,
                                         1.0 - self.pa, 1.0 - self.pb)
        self.x, self.y = torch.ones_like(self.a), torch.ones_like(self.b)
        self.lo, self.hi = np.ones(idx.size), np.ones(idx.size)

    def keep_only(self, keep: np.ndarray, n_len: np.ndarray, m_len: np.ndarray) -> None:
        """Shrink to the pairs ``keep`` (positions in this set), trimmed to their extent.

        The potentials, kernels and scalings are carried over as they are, so call
        :meth:`absorb_into` first to save the dropped pairs' state.
        """
        self.idx = self.idx[keep]
        k = torch.from_numpy(keep).to(self.c.device)
        self.active = self.active[k]
        nk, mk = int(n_len[self.idx].max()), int(m_len[self.idx].max())
        self.nk, self.mk = nk, mk
        self.c = self.c[k, :nk, :mk]
        self.la, self.fa, self.a, self.pa, self.x = (
            t[k, ..., :nk] for t in (self.la, self.fa, self.a, self.pa, self.x))
        self.lb, self.ga, self.b, self.pb, self.y = (
            t[k, ..., :mk] for t in (self.lb, self.ga, self.b, self.pb, self.y))
        self.kr, self.kc = self.kr[k, :mk, :nk], self.kc[k, :nk, :mk]
        self.lo, self.hi = self.lo[keep], self.hi[keep]

    def _kernels(self, c, la, lb, fa, ga, real_a, real_b):
        """``kr`` and ``kc`` from the potentials; ``real_a`` (B, 1, n) is 1 on real rows."""
        base = (fa.unsqueeze(2) + ga.unsqueeze(1) - c) / self.eps
        kr = (torch.exp(base + lb.unsqueeze(1)) * real_a.transpose(1, 2)).transpose(1, 2)
        kc = torch.exp(base + la.unsqueeze(2)) * real_b
        return kr.contiguous(), kc

    @torch.no_grad()
    def first_error(self) -> np.ndarray:
        """The marginal error with ``x = y = 1``, right after the log-domain half-step.

        That step made the column marginals exact, so only the rows are off.
        """
        rows = self.kr.sum(1, keepdim=True).sub_(1.0).abs_().mul_(self.a).sum((1, 2))
        return np.nan_to_num(rows.to("cpu", torch.float64).numpy(), nan=np.inf)

    def snapshot(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x.clone(), self.y.clone()

    def iterate(self, w: np.ndarray, steps: int, in_place: bool) -> None:
        """``steps`` scaling steps, each half over-relaxed as ``x ← x + ω (x_sinkhorn − x)``.

        This linear relaxation shares Sinkhorn's fixed point and, near it, the rate of the
        geometric form ``x (x_sinkhorn / x)^ω`` (Thibault et al. 2017) without its per-entry
        power; ω = 0 leaves a pair where it is. A step that leaves the positive range is
        caught by :meth:`check` and redone in the log domain.
        """
        kr, kc, pa, pb, x, y = self.kr, self.kc, self.pa, self.pb, self.x, self.y
        if not (w != 1.0).any():
            for _ in range(steps):  # plain Sinkhorn
                x = torch.baddbmm(pa, y, kr)
                x = x.reciprocal_() if in_place else x.reciprocal()
                y = torch.baddbmm(pb, x, kc)
                y = y.reciprocal_() if in_place else y.reciprocal()
        else:
            wt = torch.from_numpy(w).to(dtype=x.dtype, device=x.device).view(-1, 1, 1)
            for _ in range(steps):
                if in_place:  # at these sizes a step's cost is mostly per-op overhead
                    x.lerp_(torch.baddbmm(pa, y, kr).reciprocal_(), wt)
                    y.lerp_(torch.baddbmm(pb, x, kc).reciprocal_(), wt)
                else:
                    x = torch.lerp(x, torch.baddbmm(pa, y, kr).reciprocal(), wt)
                    y = torch.lerp(y, torch.baddbmm(pb, x, kc).reciprocal(), wt)
        self.x, self.y = x, y

    @torch.no_grad()
    def check(self) -> tuple[np.ndarray, np.ndarray]:
        """Per pair: the marginal error (NaN → inf) and whether a scaling went bad."""
        x, y = self.x, self.y
        # Row marginal a∘x∘(K diag(b) y), column marginal b∘y∘(Kᵀ diag(a) x): no plan is formed.
        rows = torch.bmm(y, self.kr).mul_(x).sub_(1.0).abs_().mul_(self.a).sum((1, 2))
        cols = torch.bmm(x, self.kc).mul_(y).sub_(1.0).abs_().mul_(self.b).sum((1, 2))
        lo, hi = torch.aminmax(torch.cat([x, y], 2).squeeze(1), dim=1)
        stats = torch.stack([torch.maximum(rows, cols), lo, hi]).to("cpu", torch.float64).numpy()
        err = stats[0]
        bad = ~np.isfinite(err)
        err[bad] = np.inf  # NaN counts as infinitely wrong
        self.lo, self.hi = stats[1], stats[2]
        bad |= ~(self.lo > 0) | ~(self.hi < np.inf)
        return err, bad

    def is_far(self, far: float) -> bool:
        """Whether a scaling has left ``[1/far, far]`` (time to fold it into ``f, g``)."""
        return bool(((self.hi > far) | (self.lo < 1.0 / far)).any())

    def redo_in_log_domain(self, start, sel: np.ndarray, w: np.ndarray, steps: int) -> np.ndarray:
        """Redo the last chunk of pairs ``sel`` in the log domain from ``start``; their errors."""
        x0, y0 = start
        s = torch.from_numpy(sel).to(self.c.device)
        tiny = torch.finfo(x0.dtype).tiny
        f0 = self.fa[s] + self.eps * torch.log(x0[s].squeeze(1).clamp_min(tiny))
        g0 = self.ga[s] + self.eps * torch.log(y0[s].squeeze(1).clamp_min(tiny))
        wt = torch.from_numpy(w).to(dtype=f0.dtype, device=f0.device).view(-1, 1)
        c, la, lb = self.c[s], self.la[s], self.lb[s]
        fl, gl, err = _log_chunk(c, la, lb, f0, g0, wt, self.eps, steps)
        kr, kc = self._kernels(c, la, lb, fl, gl, 1.0 - self.pa[s], 1.0 - self.pb[s])
        self.fa, self.ga = self.fa.index_copy(0, s, fl), self.ga.index_copy(0, s, gl)
        self.kr, self.kc = self.kr.index_copy(0, s, kr), self.kc.index_copy(0, s, kc)
        self.x = self.x.index_copy(0, s, torch.ones_like(x0[s]))
        self.y = self.y.index_copy(0, s, torch.ones_like(y0[s]))
        self.lo[sel] = self.hi[sel] = 1.0
        return err.numpy()

    def absorb_into(self, f: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``f, g`` of the whole batch with this set's scalings folded in."""
        tiny = torch.finfo(self.x.dtype).tiny
        fa = self.fa + self.eps * torch.log(self.x.squeeze(1).clamp_min(tiny))
        ga = self.ga + self.eps * torch.log(self.y.squeeze(1).clamp_min(tiny))
        if self.nk < f.shape[1]:
            fa = torch.cat([fa, f[self.active, self.nk:]], 1)
        if self.mk < g.shape[1]:
            ga = torch.cat([ga, g[self.active, self.mk:]], 1)
        if self.idx.size == f.shape[0]:  # the whole batch, in order
            return fa, ga
        return f.index_copy(0, self.active, fa), g.index_copy(0, self.active, ga)


#: Largest raise of a pair's over-relaxation factor ω from one check to the next.
MAX_RAISE = 0.3


def _next_omega(w: np.ndarray, w_before: np.ndarray, ratio: np.ndarray, checks: np.ndarray,
                steps: int, omega_max: float) -> np.ndarray:
    """Per-pair over-relaxation factor for the next chunk (Young's SOR theory).

    ``ratio`` is the change of the marginal error over the last ``steps`` iterations, run
    with factor ``w`` (``w_before`` in the chunk before), so ``λ = ratio^(1/steps)`` is the
    observed rate. Under SOR with factor ``ω`` the rate of plain Sinkhorn ``r`` satisfies
    ``(λ + ω − 1)² = λ ω² r``; the best factor for ``r`` is ``2 / (1 + sqrt(1 − r))``. The
    first chunk runs plain (ω = 1) to measure ``r`` directly; later chunks only raise ω as
    the estimate of ``r`` firms up, by at most :data:`MAX_RAISE` a chunk, since a bigger
    switch sets off a transient that the relation misreads as a slow rate. An error that
    rises at a steady ω means ω is past the optimum, and the pair is damped halfway back
    to plain Sinkhorn; one that rises right after a raise is that transient and is let be.
    """
    measurable = (ratio < 1.0) & (checks >= 2)  # False for NaN
    with np.errstate(all="ignore"):
        lam = np.maximum(ratio, 1e-300) ** (1.0 / steps)
        r = np.minimum((lam + w - 1.0) ** 2 / (lam * w * w), 1.0 - 1e-12)
        w_opt = 2.0 / (1.0 + np.sqrt(1.0 - r))
    w_next = np.minimum(np.maximum(w, w_opt), np.minimum(omega_max, w + MAX_RAISE))
    w_next = np.where(measurable, w_next, w)
    unstable = (w > 1.0) & (ratio > 1.0) & (w <= w_before)
    return np.where(unstable, 1.0 + (w - 1.0) / 2, w_next)


def marginal_error(plan: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(B,)`` float64 CPU ``max(‖P𝟙 − a‖₁, ‖Pᵀ𝟙 − b‖₁)``; NaN counts as infinitely wrong."""
    err = torch.maximum((plan.sum(2) - a).abs().sum(1), (plan.sum(1) - b).abs().sum(1))
    return torch.nan_to_num(err.double().cpu(), nan=float("inf"), posinf=float("inf"))


def _log_chunk(c, la, lb, f, g, w, eps, steps):
    """The log-domain twin of :func:`_scaling_chunk`, for pairs that overflowed there."""
    for _ in range(steps):
        f_new = -eps * torch.logsumexp(lb.unsqueeze(1) + (g.unsqueeze(1) - c) / eps, dim=2)
        f = f + w * (f_new - f)
        g_new = -eps * torch.logsumexp(la.unsqueeze(2) + (f.unsqueeze(2) - c) / eps, dim=1)
        g = g + w * (g_new - g)
    with torch.no_grad():
        p = torch.exp(la.unsqueeze(2) + lb.unsqueeze(1)
                      + (f.unsqueeze(2) + g.unsqueeze(1) - c) / eps)
        err = marginal_error(p, la.exp(), lb.exp())
    return f, g, err


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

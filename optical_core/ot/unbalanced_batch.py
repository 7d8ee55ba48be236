"""Unbalanced entropic OT for many pairs at once in torch: the KL-relaxed twin (τ) of
:func:`optical_core.ot.batch.sinkhorn_batch`, a plain masked log-domain loop with per-pair
stopping, checked against POT's ``ot.unbalanced.sinkhorn_unbalanced`` pair by pair in the
tests. The OT loss's ``unbalanced`` solver (``optical distill --ot-solver unbalanced``)
calls it.
"""

from __future__ import annotations

import math

import torch

from optical_core.ot.batch import BatchOTResult, batch_inputs, empty_result, marginal_error
from optical_core.ot.config import OTInputError


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
    cost, a, b, n_len, m_len, _ = batch_inputs(cost, a, b, epsilon, compute_dtype,
                                                normalise=False)
    bsz, n, m = cost.shape
    if bsz == 0:
        return empty_result(cost, out_dtype)
    n0, m0 = int(n_len.max()), int(m_len.max())
    # Scaled units: F = f/ε, G = g/ε, kernel exponent -C/ε.
    neg_k = -cost[:, :n0, :m0] / epsilon
    log_a, log_b = torch.log(a[:, :n0]), torch.log(b[:, :m0])  # -inf masks padding
    big_f, big_g, iterations, converged = _unbalanced_iterations(
        neg_k, log_a, log_b, tau / (tau + epsilon), epsilon / tau, max_iter, tol, check_every)
    plan = torch.exp(log_a.unsqueeze(2) + log_b.unsqueeze(1) + big_f.unsqueeze(2)
                     + big_g.unsqueeze(1) + neg_k)
    plan = torch.nn.functional.pad(plan, (0, m - m0, 0, n - n0))
    with torch.no_grad():
        gap = marginal_error(plan, a, b)
    return BatchOTResult(plan.to(out_dtype), iterations, gap.to(out_dtype), converged)


def _unbalanced_iterations(
    neg_k: torch.Tensor, log_a: torch.Tensor, log_b: torch.Tensor, phi: float,
    eps_over_tau: float, max_iter: int, tol: float, check_every: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The scaling iterations of :func:`sinkhorn_unbalanced_batch` in scaled potentials.

    ``neg_k`` is ``(B, n, m)`` ``−C/ε``, ``log_a`` / ``log_b`` the ``(B, n)`` / ``(B, m)``
    log masses (−inf on padding), ``phi = τ / (τ + ε)``. Runs ``F ← −φ LSE(−C/ε + log b + G)``
    and ``G ← −φ LSE(−C/ε + log a + F)`` on the pairs still active, checking the residual of
    :func:`_unbalanced_residual` every ``check_every`` iterations; a pair whose residual is at
    most ``tol`` leaves the working set. Returns ``F (B, n)``, ``G (B, m)`` (``f/ε``, ``g/ε``),
    the iterations run per pair (``(B,)`` long, ``max_iter`` where not converged) and the
    ``(B,)`` converged flags.
    """
    bsz, n0, m0 = neg_k.shape
    big_f = neg_k.new_zeros(bsz, n0)
    big_g = neg_k.new_zeros(bsz, m0)
    iterations = torch.full((bsz,), max_iter, dtype=torch.long)
    converged = torch.zeros(bsz, dtype=torch.bool)
    active = torch.arange(bsz, device=neg_k.device)
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
            res = _unbalanced_residual(k, la, lb, fa, ga, eps_over_tau)
        ok = res <= tol
        if ok.any():
            iterations[idx[ok]] = done
            converged[idx[ok]] = True
            active, idx = active[(~ok).to(active.device)], idx[~ok]
    return big_f, big_g, iterations, converged


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

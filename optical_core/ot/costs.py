"""Costs and marginals of a transport problem between two token sets.

Conventions used throughout :mod:`optical_core.ot`:

* ``C`` is an ``(n, m)`` cost matrix, rows are source tokens, columns target tokens.
  Cosine costs ``1 - cos`` lie in ``[0, 2]``; ε is given in the same units as ``C``.
* ``a`` (length ``n``) and ``b`` (length ``m``) are non-negative marginals that sum to 1.
* A plan ``P`` has ``P.sum(1) == a`` and ``P.sum(0) == b`` (balanced solvers); its entries
  are the mass moved between two tokens, so ``P * max(n, m)`` is close to 1 for a
  confident one-to-one link.
* ``marginal_error`` is ``max(‖P𝟙 − a‖₁, ‖Pᵀ𝟙 − b‖₁)``: the mass that sits in the wrong
  place, in the same units as the marginals.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from optical_core.ot.config import OTInputError

Metric = Literal["cosine", "sqeuclidean"]
METRICS: tuple[str, ...] = ("cosine", "sqeuclidean")


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

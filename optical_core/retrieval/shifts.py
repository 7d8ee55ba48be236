"""Rank shifts between a clean and a noisy ranking of the same queries.

Rank shifts between a clean and a noisy run: the rank of the best-ranked relevant
document before and after, the change in reciprocal rank (ΔMRR@10 is its mean), and
Kendall's τ@k (:func:`kendall_tau_at_k`): τ-b (``scipy.stats.kendalltau``) between the
positions, in the two full rankings, of the documents in the union of both top-k lists.
τ@k = 1 means the top of the ranking kept its order; it ignores reshuffles further down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from optical_core.retrieval.corpus import QuerySet
from optical_core.retrieval.scorers import Ranking

if TYPE_CHECKING:  # pragma: no cover
    pass


# --------------------------------------------------------------------------- rank shifts


def relevant_ranks(ranking: Ranking, qset: QuerySet) -> np.ndarray:
    """``(nq,)`` 1-based rank of the best-ranked relevant document of each query."""
    pos = ranking.positions()
    return np.array(
        [int(pos[r, list(rel)].min()) + 1 for r, rel in enumerate(qset.relevant)],
        dtype=np.int64,
    )


def kendall_tau_at_k(order_a: np.ndarray, order_b: np.ndarray, k: int = 10) -> float:
    """Kendall's τ-b between two full rankings, restricted to their top ``k`` union.

    The documents in the union of both top-k lists are ranked by their positions in
    ``order_a`` and in ``order_b`` (full rankings of the same documents), and
    ``scipy.stats.kendalltau`` compares the two position vectors. 1: same order; -1:
    reversed; NaN when the union has fewer than two documents.
    """
    from scipy.stats import kendalltau

    a, b = np.asarray(order_a), np.asarray(order_b)
    union = np.unique(np.concatenate([a[:k], b[:k]]))
    if union.size < 2:
        return math.nan
    pa = np.empty(a.size, dtype=np.int64)
    pa[a] = np.arange(a.size)
    pb = np.empty(b.size, dtype=np.int64)
    pb[b] = np.arange(b.size)
    return float(kendalltau(pa[union], pb[union]).statistic)


@dataclass
class RankShifts:
    """Per-query movement between a clean and a noisy ranking.

    Attributes:
        query_ids: the queries.
        clean_rank, noisy_rank: 1-based rank of the best-ranked relevant document.
        shift: ``clean_rank - noisy_rank`` (positive: the relevant document moved up).
        rr_clean, rr_noisy: reciprocal rank at 10 (0 below rank 10).
        tau: Kendall τ@k per query (:func:`kendall_tau_at_k`).
        k: the k of τ@k.
    """

    query_ids: list[str]
    clean_rank: np.ndarray
    noisy_rank: np.ndarray
    shift: np.ndarray
    rr_clean: np.ndarray
    rr_noisy: np.ndarray
    tau: np.ndarray
    k: int = 10

    @property
    def delta_mrr(self) -> float:
        """Mean change of reciprocal rank@10 (noisy − clean), i.e. ΔMRR@10."""
        return float(np.mean(self.rr_noisy - self.rr_clean)) if len(self.rr_clean) else math.nan

    @property
    def mean_tau(self) -> float:
        t = self.tau[np.isfinite(self.tau)]
        return float(t.mean()) if t.size else math.nan

    def rows(self) -> list[dict[str, Any]]:
        return [
            {"query": q, "clean_rank": int(c), "noisy_rank": int(n), "shift": int(s),
             "delta_rr": float(b - a), "tau": float(t)}
            for q, c, n, s, a, b, t in zip(self.query_ids, self.clean_rank, self.noisy_rank,
                                           self.shift, self.rr_clean, self.rr_noisy, self.tau)
        ]


def _rr_at(ranks: np.ndarray, k: int = 10) -> np.ndarray:
    return np.where(ranks <= k, 1.0 / ranks, 0.0)


def rank_shifts(clean: Ranking, noisy: Ranking, qset: QuerySet, k: int = 10) -> RankShifts:
    """How each query's ranking moved from ``clean`` to ``noisy``."""
    if clean.order.shape != noisy.order.shape:
        raise ValueError("the two rankings cover different queries or documents")
    cr, nr = relevant_ranks(clean, qset), relevant_ranks(noisy, qset)
    tau = np.array([kendall_tau_at_k(clean.order[r], noisy.order[r], k)
                    for r in range(len(qset))])
    return RankShifts(list(qset.ids), cr, nr, cr - nr, _rr_at(cr), _rr_at(nr), tau, k)


def rank_change_labels(
    clean_order: np.ndarray, noisy_order: np.ndarray, depth: int = 10
) -> list[str]:
    """Arrow labels for the top ``depth`` of ``noisy_order`` relative to ``clean_order``:
    ``↑3`` (moved up three places), ``↓5``, ``=`` (same place), or ``new`` (not in the
    clean top ``depth``)."""
    clean_pos = np.empty(len(clean_order), dtype=np.int64)
    clean_pos[np.asarray(clean_order)] = np.arange(len(clean_order))
    out = []
    for r, doc in enumerate(np.asarray(noisy_order)[:depth]):
        before = int(clean_pos[doc])
        if before >= depth:
            out.append("new")
        elif before > r:
            out.append(f"↑{before - r}")
        elif before < r:
            out.append(f"↓{r - before}")
        else:
            out.append("=")
    return out

"""Metrics and statistics of a ranking (ranx), per query.

MRR@10, Recall@1/5/10, MAP and nDCG@10 come from ranx (``Qrels`` / ``Run`` /
``evaluate``), per query. ranx's Recall@k is the share of the relevant documents found in
the top k (with five relevant documents, R@1 is at most 0.2). Paired significance between
two runs uses ``ranx.compare`` (paired Student's t-test by default, or Fisher's
randomisation test). 95 % intervals are percentile bootstrap intervals over queries
(:func:`bootstrap_ci`, seeded), paired for differences.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from optical_core.retrieval.corpus import Corpus, QuerySet
from optical_core.retrieval.scorers import Ranking

if TYPE_CHECKING:  # pragma: no cover
    pass


METRICS: tuple[str, ...] = ("mrr@10", "recall@1", "recall@5", "recall@10", "map", "ndcg@10")
METRIC_LABELS: dict[str, str] = {
    "mrr@10": "MRR@10", "recall@1": "R@1", "recall@5": "R@5", "recall@10": "R@10",
    "map": "MAP", "ndcg@10": "nDCG@10",
}
STAT_TESTS: tuple[str, ...] = ("student", "fisher")

#: How many documents of each query a ranx run keeps by default.
DEFAULT_RUN_DEPTH = 1000


def format_percent(x: float | None) -> str:
    """A metric in [0, 1] as a 5-wide percentage for the text tables (``"  n/a"`` for a
    missing or NaN value): ``0.4213`` → ``" 42.1"``."""
    return "  n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:5.1f}"

# --------------------------------------------------------------------------- metrics


def to_ranx_qrels(qset: QuerySet, corpus: Corpus):
    """ranx ``Qrels``: every relevant document with relevance 1."""
    from ranx import Qrels

    return Qrels({
        qid: {corpus.doc_ids[j]: 1 for j in rel} for qid, rel in zip(qset.ids, qset.relevant)
    })


def to_ranx_run(
    ranking: Ranking, corpus: Corpus, name: str = "run", depth: int | None = DEFAULT_RUN_DEPTH
):
    """ranx ``Run`` of the top ``depth`` documents of each query.

    The scores given to ranx are ``depth - position`` (distinct), so that ranx ranks
    exactly as ``ranking`` does even where two documents have the same score.
    """
    from ranx import Run

    d = ranking.order.shape[1] if depth is None else min(depth, ranking.order.shape[1])
    ids = np.asarray(corpus.doc_ids)
    rank_scores = (d - np.arange(d)).astype(float).tolist()
    return Run(
        {qid: dict(zip(ids[ranking.order[r, :d]].tolist(), rank_scores))
         for r, qid in enumerate(ranking.query_ids)},
        name=name,
    )


def _quiet_numba():
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.filterwarnings("ignore", message=".*unsafe cast.*")
    # scipy's t-test on (nearly) identical per-query scores; the p-value is handled below.
    warnings.filterwarnings("ignore", message=".*[Pp]recision loss.*", category=RuntimeWarning)
    try:
        from numba.core.errors import NumbaTypeSafetyWarning

        warnings.simplefilter("ignore", NumbaTypeSafetyWarning)
    except ImportError:  # pragma: no cover
        pass
    return ctx


def per_query_metrics(
    ranking: Ranking,
    qset: QuerySet,
    corpus: Corpus,
    metrics: Sequence[str] = METRICS,
    depth: int | None = DEFAULT_RUN_DEPTH,
) -> dict[str, np.ndarray]:
    """Per-query metric values from ranx, as arrays aligned with ``qset.ids``."""
    from ranx import evaluate

    if list(ranking.query_ids) != list(qset.ids):
        raise ValueError("the ranking and the query set have different query ids")
    qrels = to_ranx_qrels(qset, corpus)
    run = to_ranx_run(ranking, corpus, depth=depth)
    ctx = _quiet_numba()
    try:
        evaluate(qrels, run, list(metrics), return_mean=True, save_results_in_run=True)
    finally:
        ctx.__exit__(None, None, None)
    return {m: np.array([run.scores[m][q] for q in qset.ids], dtype=np.float64)
            for m in metrics}


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-query ``values``.

    Queries are resampled with replacement ``n_boot`` times (``numpy`` generator seeded
    with ``seed``). For a paired difference pass the per-query differences. Returns
    ``(nan, nan)`` for no values.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        return (math.nan, math.nan)
    if not 0 < level < 1:
        raise ValueError("level must lie in (0, 1)")
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    step = max(1, 2_000_000 // v.size)  # bound the index matrix to ~16 MB
    for s in range(0, n_boot, step):
        b = min(step, n_boot - s)
        means[s:s + b] = v[rng.integers(0, v.size, size=(b, v.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


@dataclass
class MetricSummary:
    """Means, bootstrap intervals and per-query values of several metrics.

    Attributes:
        mean: metric → mean over queries.
        ci: metric → ``(low, high)`` 95 % bootstrap interval.
        per_query: metric → per-query values (aligned with the query set).
    """

    mean: dict[str, float]
    ci: dict[str, tuple[float, float]]
    per_query: dict[str, np.ndarray]

    @property
    def n_queries(self) -> int:
        return len(next(iter(self.per_query.values()))) if self.per_query else 0


def summarize(
    per_query: Mapping[str, np.ndarray], n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> MetricSummary:
    """Means and bootstrap intervals of per-query metric values."""
    return MetricSummary(
        mean={m: float(np.mean(v)) for m, v in per_query.items()},
        ci={m: bootstrap_ci(v, n_boot=n_boot, seed=seed, level=level)
            for m, v in per_query.items()},
        per_query={m: np.asarray(v) for m, v in per_query.items()},
    )


def evaluate_ranking(
    ranking: Ranking, qset: QuerySet, corpus: Corpus, metrics: Sequence[str] = METRICS,
    n_boot: int = 1000, seed: int = 0,
) -> MetricSummary:
    """ranx metrics of a ranking with bootstrap intervals."""
    return summarize(per_query_metrics(ranking, qset, corpus, metrics), n_boot=n_boot, seed=seed)


def compare_runs(
    ranking_a: Ranking,
    ranking_b: Ranking,
    qset: QuerySet,
    corpus: Corpus,
    metrics: Sequence[str] = METRICS,
    stat_test: str = "student",
    seed: int = 0,
    n_permutations: int = 1000,
) -> dict[str, float]:
    """Paired significance of the difference between two rankings (ranx ``compare``).

    Args:
        stat_test: ``student`` (two-sided paired t-test) or ``fisher`` (randomisation test
            with ``n_permutations`` permutations, seeded; its p-value is floored at
            ``1 / (n_permutations + 1)``, ranx reports 0 when no permutation beats the
            observed difference).

    Returns:
        metric → p-value.
    """
    from ranx import compare

    if stat_test not in STAT_TESTS:
        raise ValueError(f"unknown test {stat_test!r}; choose one of {STAT_TESTS}")
    qrels = to_ranx_qrels(qset, corpus)
    ra = to_ranx_run(ranking_a, corpus, name="A")
    rb = to_ranx_run(ranking_b, corpus, name="B")
    ctx = _quiet_numba()
    try:
        report = compare(
            qrels, [ra, rb], metrics=list(metrics), stat_test=stat_test,
            n_permutations=n_permutations, random_seed=seed, make_comparable=False,
        )
    finally:
        ctx.__exit__(None, None, None)
    comp = report.to_dict()["A"]["comparisons"]["B"]
    out = {}
    for m in metrics:
        p = float(comp[m])
        # Identical per-query scores: the t statistic is undefined (NaN); nothing differs.
        p = 1.0 if math.isnan(p) else p
        if stat_test == "fisher":  # a permutation p-value is never below 1 / (permutations + 1)
            p = max(p, 1.0 / (n_permutations + 1))
        out[m] = p
    return out

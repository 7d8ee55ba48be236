"""Robustness summaries (slope and area of a metric over CER) and paired tests.
"""

from __future__ import annotations

import numpy as np

# ========================================================================= summaries


def robustness(levels: list[float], per_query: np.ndarray, n_boot: int = 1000,
               seed: int = 0) -> dict[str, float]:
    """Slope and area of a metric against CER, with bootstrap intervals over queries.

    Args:
        levels: ``(L,)`` CER levels (fractions), including 0.
        per_query: ``(nq, L)`` per-query metric at each level (the same queries; the same
            resampled rows are used for every level, so the interval is paired).

    Returns:
        ``slope`` (metric change per unit CER, least squares; negative = degrades),
        ``auc`` (trapezoid area over ``[0, max level]`` divided by its width: the mean
        metric over the noise range), each with ``_low``/``_high`` (95 % percentile).
    """
    x = np.asarray(levels, dtype=np.float64)
    v = np.asarray(per_query, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != x.size or x.size < 2:
        raise ValueError("robustness needs (queries, levels) values and at least two levels")
    xc = x - x.mean()
    width = x.max() - x.min()

    def stats(means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # means: (B, L)
        slope = (means - means.mean(axis=1, keepdims=True)) @ xc / (xc @ xc)
        auc = ((means[:, 1:] + means[:, :-1]) / 2 * np.diff(x)).sum(axis=1) / width
        return slope, auc

    slope, auc = stats(v.mean(axis=0, keepdims=True))
    rng = np.random.default_rng(seed)
    bs, ba = [], []
    for s in range(0, n_boot, 200):
        idx = rng.integers(0, v.shape[0], size=(min(200, n_boot - s), v.shape[0]))
        b_slope, b_auc = stats(v[idx].mean(axis=1))
        bs.append(b_slope)
        ba.append(b_auc)
    bs_a, ba_a = np.concatenate(bs), np.concatenate(ba)
    return {"slope": float(slope[0]), "slope_low": float(np.quantile(bs_a, 0.025)),
            "slope_high": float(np.quantile(bs_a, 0.975)), "auc": float(auc[0]),
            "auc_low": float(np.quantile(ba_a, 0.025)), "auc_high": float(np.quantile(ba_a, 0.975))}


def paired_test(a: np.ndarray, b: np.ndarray, test: str = "student", seed: int = 0,
                n_permutations: int = 1000) -> float:
    """Two-sided p-value that per-query values ``b`` and ``a`` differ in mean (paired).

    ``student``: paired t-test (ranx's ``student``); ``fisher``: paired randomisation test
    (random sign flips of the differences), floored at ``1 / (n_permutations + 1)``.
    """
    from scipy import stats

    d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    if d.size < 2 or np.allclose(d, d[0]):
        return 1.0 if np.allclose(d, 0) else 0.0
    if test == "student":
        return float(stats.ttest_rel(b, a).pvalue)
    rng = np.random.default_rng(seed)
    obs = abs(d.mean())
    signs = rng.choice([-1.0, 1.0], size=(n_permutations, d.size))
    hits = int((np.abs((signs * d).mean(axis=1)) >= obs - 1e-12).sum())
    return max((hits + 1) / (n_permutations + 1), 1.0 / (n_permutations + 1))

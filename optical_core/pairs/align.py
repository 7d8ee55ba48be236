"""Align one sentence pair end to end: embeddings → cost → plan → links → scores.

This is the single code path behind the Alignment page, ``optical align`` and the tests;
each stage is a separate function so a page can re-solve from cached embeddings when only
a solver control moves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from optical_core import alignment as al
from optical_core.encoders.base import TokenEmbeddings
from optical_core.encoders.transformer import Encoder
from optical_core.ot.config import OTConfig
from optical_core.ot.costs import cost_matrix, norm_weights, uniform_marginal, weighted_marginal
from optical_core.ot.solve import OTResult, solve

Level = Literal["subword", "word"]
Weighting = Literal["uniform", "norm"]
LEVELS: tuple[str, ...] = ("subword", "word")
WEIGHTINGS: tuple[str, ...] = ("uniform", "norm")


@dataclass
class PairAlignment:
    """Everything the page, the CLI and the tests show about one aligned pair.

    Attributes:
        src_tokens, tgt_tokens: row and column labels (subwords or words).
        cost: ``(n, m)`` cost matrix.
        a, b: ``(n,)``, ``(m,)`` marginals used.
        ot: the solver's result (plan and diagnostics).
        links: links on the shown level, from ``link_method``.
        word_links: links between words (equal to ``links`` at word level).
        src_word_ids, tgt_word_ids: word index of each row / column.
        src_words, tgt_words: the words.
    """

    src_tokens: list[str]
    tgt_tokens: list[str]
    cost: np.ndarray
    a: np.ndarray
    b: np.ndarray
    ot: OTResult
    links: al.Links
    word_links: al.Links
    src_word_ids: list[int]
    tgt_word_ids: list[int]
    src_words: list[str]
    tgt_words: list[str]
    link_method: str = "ot"
    notes: list[str] = field(default_factory=list)

    @property
    def plan(self) -> np.ndarray:
        return self.ot.plan


def level_view(emb: TokenEmbeddings, level: Level) -> TokenEmbeddings:
    """The embeddings at subword level, or mean-pooled per word."""
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; choose one of {LEVELS}")
    return emb if level == "subword" else emb.word_level("mean")


def marginal_for(emb: TokenEmbeddings, weighting: Weighting) -> np.ndarray:
    """``(n,)`` marginal of a token set: uniform, or proportional to the vector norms."""
    if weighting == "uniform":
        return uniform_marginal(len(emb))
    if weighting == "norm":
        return weighted_marginal(norm_weights(emb.embeddings))
    raise ValueError(f"unknown marginal weighting {weighting!r}; choose one of {WEIGHTINGS}")


def links_from(
    plan: np.ndarray, cost: np.ndarray, method: str, threshold: float = al.DEFAULT_OT_THRESHOLD
) -> al.Links:
    """Links from a solved pair: ``ot`` thresholds the plan, ``argmax``/``itermax`` read the
    similarity ``1 - C/2`` (in [0, 1] for cosine costs) as SimAlign does.

    The plan is divided by its total mass first, so that the threshold means the same for
    partial and unbalanced plans (which move less than 1) as for balanced ones."""
    if method == "ot":
        mass = float(plan.sum())
        return al.threshold_links(plan / mass if mass > 0 else plan, threshold=threshold)
    similarity = 1.0 - cost / max(float(cost.max()), 2.0)
    return al.extract_links(similarity, method)


def align_embeddings(
    src: TokenEmbeddings,
    tgt: TokenEmbeddings,
    config: OTConfig | None = None,
    metric: str = "cosine",
    level: Level = "subword",
    weighting: Weighting = "uniform",
    link_method: str = "ot",
    threshold: float = al.DEFAULT_OT_THRESHOLD,
) -> PairAlignment:
    """Solve the transport problem between two embedded texts and extract links.

    Args:
        src, tgt: token embeddings of the two texts (see :mod:`optical_core.encoders`).
        config: the OT solver and its parameters.
        metric: ``cosine`` or ``sqeuclidean``.
        level: align subwords, or words (subword vectors mean-pooled per word).
        weighting: marginals ``uniform`` or proportional to token vector ``norm``.
        link_method: ``ot`` (plan threshold), ``argmax`` or ``itermax``.
        threshold: cut-off on ``P * max(n, m)`` for ``ot`` links.
    """
    s, t = level_view(src, level), level_view(tgt, level)
    cost = cost_matrix(s.embeddings.astype(np.float64), t.embeddings.astype(np.float64), metric)
    a, b = marginal_for(s, weighting), marginal_for(t, weighting)
    result = solve(cost, a, b, config or OTConfig())
    links = links_from(result.plan, cost, link_method, threshold)
    wl = links if level == "word" else al.word_links(links, src.word_ids, tgt.word_ids)
    notes = []
    for side, emb in (("source", src), ("target", tgt)):
        if emb.truncated:
            notes.append(
                f"The {side} text was cut at the model's limit; {emb.n_dropped} tokens "
                "at its end are not aligned."
            )
    return PairAlignment(
        src_tokens=s.tokens, tgt_tokens=t.tokens, cost=cost, a=a, b=b, ot=result,
        links=links, word_links=wl, src_word_ids=s.word_ids, tgt_word_ids=t.word_ids,
        src_words=src.words, tgt_words=tgt.words, link_method=link_method, notes=notes,
    )


def align_texts(
    encoder: Encoder,
    src_text: str,
    tgt_text: str,
    src_words: list[str] | None = None,
    tgt_words: list[str] | None = None,
    **kwargs,
) -> PairAlignment:
    """Embed two texts with one encoder and call :func:`align_embeddings`.

    ``src_words``/``tgt_words`` fix the word segmentation (e.g. gold-file tokens) so that
    word links use the same indices as a gold alignment.
    """
    src, tgt = encoder.token_embeddings(
        [src_text, tgt_text],
        None if src_words is None and tgt_words is None else [src_words, tgt_words],
    )
    return align_embeddings(src, tgt, **kwargs)


def score_pair(pair: PairAlignment, sure, possible=None) -> al.AlignmentScores:
    """Word-level AER, precision, recall and F1 of a pair against gold links."""
    return al.score_alignment(pair.word_links, sure, possible)


def score_gold(
    encoder: Encoder,
    gold,
    link_method: str = "argmax",
    config: OTConfig | None = None,
) -> al.AlignmentScores:
    """Corpus-level word-alignment scores of ``encoder`` on a gold set.

    Each pair is aligned on the gold file's own tokens (so link indices match), subword
    vectors averaged per word, and the counts micro-averaged over the corpus
    (:func:`optical_core.alignment.score_corpus`).

    Args:
        gold: items of :func:`optical_core.gold.load_gold` (``src_tokens``, ``tgt_tokens``,
            ``sure``, ``possible``).
        link_method: how links are read from the pair (default ``argmax``: the
            intersection of both argmax directions on the similarity, DESIGN's sanity setting).
        config: the OT settings for plan-based link methods (default ε = 0.05).
    """
    cfg = config or OTConfig(epsilon=0.05)
    preds = [
        align_texts(encoder, " ".join(g.src_tokens), " ".join(g.tgt_tokens),
                    src_words=list(g.src_tokens), tgt_words=list(g.tgt_tokens), level="word",
                    link_method=link_method, config=cfg).word_links
        for g in gold
    ]
    return al.score_corpus(preds, gold)

"""Why did a document move? The query↔document transport plan behind one rank change, and
the sentences that explain it, derived from the per-token numbers the page's table shows.

:func:`explain_tokens` is pure (arrays in, rows and sentences out): for every document token
it takes the best cosine with any query token before and after the noise, ``Δ = after −
before``, and one status from two stated thresholds (:class:`ExplainThresholds`):

======== ===============================================
lost     ``Δ ≤ −margin`` and ``after < matched``
weaker   ``Δ ≤ −margin`` and ``after ≥ matched``
gained   ``Δ ≥ +margin``
kept     ``|Δ| < margin`` and ``after ≥ matched``
weak     ``|Δ| < margin`` and ``after < matched`` (never matched well)
—        punctuation or a special token: not a content word
======== ===============================================

Each sentence names tokens of one status only, with their numbers, so a test (and a reader)
can hold the text against the table. :func:`explain_match` embeds the texts and solves the
two plans.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from optical_core.ot.config import OTConfig

if TYPE_CHECKING:  # pragma: no cover
    from optical_core.encoders.transformer import Encoder
    from optical_core.pairs.align import PairAlignment

#: Status of a token that is not a content word (punctuation, special tokens).
NOT_CONTENT = "—"
#: Statuses in the order the sentences name them.
STATUSES = ("lost", "weaker", "gained", "kept", "weak")
#: Word-piece markers stripped before judging a token (BERT ``##``, SentencePiece ``▁``,
#: byte-level BPE ``Ġ``).
_PIECE_MARKS = ("##", "▁", "Ġ")
_SPECIAL_RE = re.compile(r"^(\[[A-Z]+\]|<[^>]*>)$")


def is_content_token(token: str) -> bool:
    """Whether ``token`` is (part of) a word: it holds a letter or a digit once its
    word-piece marker is stripped, and it is no special token (``[CLS]``, ``<s>``, …)."""
    if _SPECIAL_RE.match(token):
        return False
    core = token
    for mark in _PIECE_MARKS:
        core = core.replace(mark, "")
    return any(unicodedata.category(ch)[0] in "LN" for ch in core)


@dataclass(frozen=True)
class ExplainThresholds:
    """The two cosine thresholds behind every status (cosine units, in [-1, 1]).

    Attributes:
        margin: the best cosine must change by at least this much to count as lost,
            weaker or gained.
        matched: a token is matched when its best cosine with the query is at least this.
    """

    margin: float = 0.15
    matched: float = 0.5


def token_status(change: float, after: float, th: ExplainThresholds) -> str:
    """One content token's status from ``change = after − before`` and ``after``."""
    if change <= -th.margin:
        return "lost" if after < th.matched else "weaker"
    if change >= th.margin:
        return "gained"
    return "kept" if after >= th.matched else "weak"


@dataclass(frozen=True)
class TokenGroup:
    """The document tokens of one status that a sentence names, each once, in text order.

    Attributes:
        status: one of :data:`STATUSES`.
        tokens: the tokens named.
        sentence: the sentence naming them, with each token's cosines.
    """

    status: str
    tokens: tuple[str, ...]
    sentence: str


@dataclass
class TokenExplanation:
    """Per-token rows and the sentences derived from them.

    Attributes:
        rows: one per document token: ``doc_token``, ``content`` (bool), ``clean_match`` /
            ``clean_cos`` (its best query token and cosine before the noise),
            ``noisy_match`` / ``noisy_cos`` (after), ``change`` (after − before) and
            ``status`` (:data:`STATUSES` or :data:`NOT_CONTENT`).
        groups: the sentences, one per status that has tokens, in :data:`STATUSES` order.
        thresholds: the thresholds the statuses used.
    """

    rows: list[dict[str, Any]]
    groups: list[TokenGroup]
    thresholds: ExplainThresholds = field(default_factory=ExplainThresholds)

    def named(self, status: str) -> list[str]:
        """The tokens the sentence of ``status`` names (none: ``[]``)."""
        return next((list(g.tokens) for g in self.groups if g.status == status), [])

    @property
    def sentences(self) -> list[str]:
        """The thresholds sentence, then one sentence per status that has tokens."""
        return [threshold_sentence(self.thresholds), *(g.sentence for g in self.groups)]


def threshold_sentence(th: ExplainThresholds) -> str:
    """The sentence that states the thresholds every status uses."""
    return (f"Each caption token's best cosine with any query token, before → after the noise: "
            f"a change of at least {th.margin:.2f} counts, and cosine ≥ {th.matched:.2f} "
            "counts as matched; punctuation is left out.")


_LEADS = {
    "lost": "Lost (fell by ≥ {m:.2f} to below {t:.2f})",
    "weaker": "Weaker but still matched (fell by ≥ {m:.2f}, still ≥ {t:.2f})",
    "gained": "Gained (rose by ≥ {m:.2f})",
    "kept": "Kept (changed by less than {m:.2f}, cosine ≥ {t:.2f})",
    "weak": "Never matched well (cosine below {t:.2f} before and after)",
}


def _group(status: str, rows: Sequence[dict[str, Any]], th: ExplainThresholds) -> TokenGroup:
    """The sentence of one status: each token once, with the cosines of its first row."""
    first: dict[str, dict[str, Any]] = {}
    for r in rows:
        first.setdefault(r["doc_token"], r)
    parts = [f"“{t}” ({r['clean_cos']:.2f} → {r['noisy_cos']:.2f})" for t, r in first.items()]
    lead = _LEADS[status].format(m=th.margin, t=th.matched)
    return TokenGroup(status, tuple(first), f"{lead}: {', '.join(parts)}.")


def explain_tokens(
    doc_tokens: Sequence[str],
    clean_tokens: Sequence[str],
    noisy_tokens: Sequence[str],
    sim_clean: np.ndarray,
    sim_noisy: np.ndarray,
    thresholds: ExplainThresholds | None = None,
    plan_noisy: np.ndarray | None = None,
) -> TokenExplanation:
    """Which document tokens lost, kept or gained their match under the noise.

    Args:
        doc_tokens: the document's ``m`` tokens (the columns).
        clean_tokens, noisy_tokens: the clean query's ``n`` and the noisy query's ``n'``
            tokens (the rows).
        sim_clean: ``(n, m)`` cosine of every clean query token with every document token
            (``1 − C`` of the clean plan's cosine cost).
        sim_noisy: ``(n', m)`` the same for the noisy query.
        thresholds: margin and matched level (default :class:`ExplainThresholds`).
        plan_noisy: ``(n', m)`` the noisy plan, when there is one: each row then also names
            ``plan_match``, the noisy query token that sends this document token the most
            mass (the darkest cell of its column in the heatmap), which may differ from
            its best cosine (Sinkhorn shares mass out by every row's and column's weight).

    Returns:
        the rows (one per document token, best match ``argmax_i sim[i, j]``) and one
        sentence per status, each naming only content tokens of that status.
    """
    th = thresholds or ExplainThresholds()
    sim_c, sim_n = np.asarray(sim_clean, dtype=np.float64), np.asarray(sim_noisy, dtype=np.float64)
    if sim_c.shape[1] != len(doc_tokens) or sim_n.shape[1] != len(doc_tokens):
        raise ValueError("the similarity matrices need one column per document token")
    rows = []
    for j, tok in enumerate(doc_tokens):
        ic, inn = int(np.argmax(sim_c[:, j])), int(np.argmax(sim_n[:, j]))
        before, after = float(sim_c[ic, j]), float(sim_n[inn, j])
        content = is_content_token(tok)
        rows.append({
            "doc_token": tok, "content": content, "clean_match": clean_tokens[ic],
            "clean_cos": before, "noisy_match": noisy_tokens[inn], "noisy_cos": after,
            "change": after - before,
            "status": token_status(after - before, after, th) if content else NOT_CONTENT,
        })
        if plan_noisy is not None:
            rows[-1]["plan_match"] = noisy_tokens[int(np.argmax(np.asarray(plan_noisy)[:, j]))]
    groups = [_group(s, [r for r in rows if r["status"] == s], th)
              for s in STATUSES if any(r["status"] == s for r in rows)]
    return TokenExplanation(rows, groups, th)


# --------------------------------------------------------------------------- plans


@dataclass
class PlanExplanation:
    """The query↔document plans before and after the noise, and what changed.

    Attributes:
        clean, noisy: :class:`~optical_core.pairs.align.PairAlignment` of the clean and the noisy
            query (rows) with the document (columns).
        tokens: the per-token rows and sentences (:func:`explain_tokens`) over the cosines
            ``1 − C`` of the two plans' cost matrices.
        score_clean, score_noisy: ``-<P*, C>`` of the two plans.
        doc_model: the name of the encoder that embedded the document.
        doc_fallback: a document encoder other than the query's was asked for, but its
            token vectors have another width than the query's (e.g. a CLIP teacher's text
            tower beside a student with a projection), so no plan could hold both: the
            query encoder embedded the document too.
    """

    clean: PairAlignment
    noisy: PairAlignment
    tokens: TokenExplanation
    score_clean: float
    score_noisy: float
    doc_model: str = ""
    doc_fallback: bool = False

    @property
    def doc_tokens(self) -> list[str]:
        """The document's tokens (the columns of both plans)."""
        return list(self.clean.tgt_tokens)

    @property
    def rows(self) -> list[dict[str, Any]]:
        """One row per document token (:attr:`TokenExplanation.rows`)."""
        return self.tokens.rows

    @property
    def lost(self) -> list[str]:
        """The content tokens the explanation calls lost."""
        return self.tokens.named("lost")

    @property
    def kept(self) -> list[str]:
        """The content tokens the explanation calls kept (still matched, little change)."""
        return self.tokens.named("kept")


def explain_match(
    encoder: Encoder,
    query_clean: str,
    query_noisy: str,
    document: str,
    epsilon: float = 0.05,
    thresholds: ExplainThresholds | None = None,
    doc_encoder: Encoder | None = None,
) -> PlanExplanation:
    """Why a document moved: the plans of the clean and the noisy query with it.

    The document side (columns) is the same in both plans, so each document token can be
    followed: which query token it matched best (by cosine) before and after, and by how
    much that best cosine changed (:func:`explain_tokens`).

    Args:
        encoder: embeds the queries.
        thresholds: the margin and matched level of the statuses.
        doc_encoder: embeds the document (default: ``encoder``), as the document index of
            :func:`optical_core.retrieval.scorers.search` does, e.g. a student's frozen
            teacher: the plans then transport the student's query tokens onto the
            teacher's document tokens, the costs the ``ot`` scorer ranks by. When its
            token vectors have another width than the query's, no cost matrix can hold
            both: ``encoder`` embeds the document instead and ``doc_fallback`` says so.
    """
    from optical_core.pairs.align import align_embeddings

    cfg = OTConfig(solver="sinkhorn", epsilon=epsilon, max_iter=2000, tol=1e-6)
    doc_encoder = encoder if doc_encoder is None else doc_encoder
    queries = encoder.token_embeddings([query_clean, query_noisy])
    doc = doc_encoder.token_embeddings([document])[0]
    fallback = doc.embeddings.shape[1] != queries[0].embeddings.shape[1]
    if fallback:
        doc_encoder = encoder
        doc = encoder.token_embeddings([document])[0]
    clean = align_embeddings(queries[0], doc, config=cfg)
    noisy = align_embeddings(queries[1], doc, config=cfg)
    tokens = explain_tokens(list(clean.tgt_tokens), list(clean.src_tokens),
                            list(noisy.src_tokens), 1.0 - clean.cost, 1.0 - noisy.cost,
                            thresholds, plan_noisy=noisy.plan)
    return PlanExplanation(
        clean=clean, noisy=noisy, tokens=tokens,
        score_clean=-float(clean.ot.cost), score_noisy=-float(noisy.ot.cost),
        doc_model=doc_encoder.name, doc_fallback=fallback,
    )

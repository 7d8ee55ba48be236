"""Why did a document move? The query↔document transport plan behind one rank change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from optical_core.ot.solve import OTConfig

if TYPE_CHECKING:  # pragma: no cover
    from optical_core.encoders.transformer import Encoder
    from optical_core.pairs.align import PairAlignment


# --------------------------------------------------------------------------- explanation


@dataclass
class PlanExplanation:
    """The query↔document plans before and after the noise, and what changed.

    Attributes:
        clean, noisy: :class:`~optical_core.pairs.align.PairAlignment` of the clean and the noisy
            query (rows) with the document (columns).
        doc_tokens: the document's tokens (the columns of both plans).
        rows: one per document token: its best-matching query token and cosine before
            and after, and the change (``lost`` when the cosine fell by more than
            ``lost_below``).
        score_clean, score_noisy: ``-<P*, C>`` of the two plans.
        doc_model: the name of the encoder that embedded the document.
        doc_fallback: a document encoder other than the query's was asked for, but its
            token vectors have another width than the query's (e.g. a CLIP teacher's text
            tower beside a student with a projection), so no plan could hold both: the
            query encoder embedded the document too.
    """

    clean: PairAlignment
    noisy: PairAlignment
    doc_tokens: list[str]
    rows: list[dict[str, Any]]
    score_clean: float
    score_noisy: float
    doc_model: str = ""
    doc_fallback: bool = False

    @property
    def lost(self) -> list[str]:
        """Document tokens whose best cosine with the query fell by more than the margin."""
        return [r["doc_token"] for r in self.rows if r["status"] == "lost"]

    def still_matched(self, min_cos: float = 0.5) -> list[str]:
        """Document tokens not lost whose best cosine with the noisy query is ≥ ``min_cos``."""
        return [r["doc_token"] for r in self.rows
                if r["status"] != "lost" and r["noisy_cos"] >= min_cos]


def explain_match(
    encoder: Encoder,
    query_clean: str,
    query_noisy: str,
    document: str,
    epsilon: float = 0.05,
    lost_below: float = 0.15,
    doc_encoder: Encoder | None = None,
) -> PlanExplanation:
    """Why a document moved: the plans of the clean and the noisy query with it.

    The document side (columns) is the same in both plans, so each document token can be
    followed: which query token it matched best (by cosine) before and after, and by how
    much that best cosine fell. A token whose best cosine fell by more than
    ``lost_below`` is reported as ``lost``, one that rose by more as ``gained``.

    Args:
        encoder: embeds the queries.
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
    doc_tokens = list(clean.tgt_tokens)
    sim_c, sim_n = 1.0 - clean.cost, 1.0 - noisy.cost
    rows = []
    for j, tok in enumerate(doc_tokens):
        ic, inn = int(np.argmax(sim_c[:, j])), int(np.argmax(sim_n[:, j]))
        bc, bn = float(sim_c[ic, j]), float(sim_n[inn, j])
        change = bn - bc
        status = "lost" if change < -lost_below else "gained" if change > lost_below else "kept"
        rows.append({
            "doc_token": tok, "clean_match": clean.src_tokens[ic], "clean_cos": bc,
            "noisy_match": noisy.src_tokens[inn], "noisy_cos": bn, "change": change,
            "status": status,
        })
    return PlanExplanation(
        clean=clean, noisy=noisy, doc_tokens=doc_tokens, rows=rows,
        score_clean=-float(clean.ot.cost), score_noisy=-float(noisy.ot.cost),
        doc_model=doc_encoder.name, doc_fallback=fallback,
    )

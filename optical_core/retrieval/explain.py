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
    """

    clean: PairAlignment
    noisy: PairAlignment
    doc_tokens: list[str]
    rows: list[dict[str, Any]]
    score_clean: float
    score_noisy: float

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
) -> PlanExplanation:
    """Why a document moved: the plans of the clean and the noisy query with it.

    The document side (columns) is the same in both plans, so each document token can be
    followed: which query token it matched best (by cosine) before and after, and by how
    much that best cosine fell. A token whose best cosine fell by more than
    ``lost_below`` is reported as ``lost``, one that rose by more as ``gained``.
    """
    from optical_core.pairs.align import align_embeddings

    cfg = OTConfig(solver="sinkhorn", epsilon=epsilon, max_iter=2000, tol=1e-6)
    embs = encoder.token_embeddings([query_clean, query_noisy, document])
    clean = align_embeddings(embs[0], embs[2], config=cfg)
    noisy = align_embeddings(embs[1], embs[2], config=cfg)
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
    )

"""Scorers of x→en retrieval: one score per (query, document).

* ``dense``: cosine of the model's pooled, unit-norm sentence embeddings.
* ``maxsim``: ColBERT-style late interaction, ``(1/n) Σ_i max_j cos(q_i, d_j)`` over the
  ``n`` query tokens and the document's tokens (subwords, special tokens removed).
* ``ot``: the top ``rerank_depth`` documents of ``dense`` are re-scored by
  ``-<P*, C>`` with ``C = 1 - cos`` between query and document tokens, uniform marginals
  and ``P*`` the entropic plan of the config's :class:`~optical_core.ot.solve.OTConfig` (one
  :func:`optical_core.ot.plans.batch_plans` call per query over all candidates). Documents
  below the rerank depth keep their dense order under the re-ranked ones; their reported
  score is ``-3 - (1 - cos)`` (below any OT score, which lies in ``[-2, 0]``), so sorting a
  run file by score gives back the ranking.

Rankings are full (every document of the corpus is ranked, ties broken by document
order). Runs handed to ranx and written to files are cut at ``run_depth`` (1000), so MAP
is MAP@1000 (exact for corpora of at most 1000 documents).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from optical_core.ot.batch import pad_costs
from optical_core.ot.config import OTConfig
from optical_core.ot.plans import batch_plans
from optical_core.retrieval.cache import model_fingerprint
from optical_core.retrieval.index import (
    DocumentIndex,
    EncodedQueries,
    check_comparable,
    encode_queries,
    unit_rows,
)

if TYPE_CHECKING:  # pragma: no cover
    from optical_core.encoders.transformer import Encoder


SCORERS: tuple[str, ...] = ("dense", "maxsim", "ot")
SCORER_LABELS: dict[str, str] = {
    "dense": "dense (cosine of pooled embeddings)",
    "maxsim": "MaxSim (late interaction)",
    "ot": "OT rerank of the dense top k",
}

#: Documents beyond the OT rerank depth get ``_OT_BELOW + (cos - 1)``: below every OT score.
_OT_BELOW = -3.0

# --------------------------------------------------------------------------- scorers


@dataclass(frozen=True)
class ScorerConfig:
    """How to score.

    Attributes:
        scorer: ``dense``, ``maxsim`` or ``ot``.
        rerank_depth: candidates of the dense ranking re-scored by ``ot``.
        ot: the plan of the ``ot`` scorer: a Sinkhorn :class:`~optical_core.ot.solve.OTConfig`
            (its ε in cost units: cosine costs lie in [0, 2]; its iteration budget and
            stopping level).
    """

    scorer: str = "dense"
    rerank_depth: int = 20
    ot: OTConfig = field(default_factory=OTConfig)

    def __post_init__(self) -> None:
        if self.scorer not in SCORERS:
            raise ValueError(f"unknown scorer {self.scorer!r}; choose one of {SCORERS}")
        if self.rerank_depth < 1:
            raise ValueError("rerank_depth must be at least 1")
        if self.ot.solver != "sinkhorn":
            raise ValueError("the OT rerank solves balanced Sinkhorn plans, not "
                             f"{self.ot.solver!r}")

    @property
    def needs_tokens(self) -> bool:
        return self.scorer in ("maxsim", "ot")

    @property
    def needs_sentence(self) -> bool:
        return self.scorer in ("dense", "ot")


@dataclass
class Ranking:
    """Full rankings of a set of queries.

    Attributes:
        scorer: the scorer that produced it.
        query_ids: one id per row.
        order: ``(nq, N)`` document indices, best first.
        scores: ``(nq, N)`` the score of each ranked document (sorted descending, so sorting
            by score gives ``order`` back, up to ties).
        notes: plain-language remarks (e.g. Sinkhorn pairs that did not converge).
    """

    scorer: str
    query_ids: list[str]
    order: np.ndarray
    scores: np.ndarray
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.query_ids)

    def positions(self) -> np.ndarray:
        """``(nq, N)`` 0-based position of every document in each query's ranking."""
        pos = np.empty_like(self.order)
        rows = np.arange(self.order.shape[0])[:, None]
        pos[rows, self.order] = np.arange(self.order.shape[1])[None, :]
        return pos


def dense_scores(queries: EncodedQueries, index: DocumentIndex) -> np.ndarray:
    """``(nq, N)`` cosine similarities of the pooled embeddings."""
    return queries.sentence @ index.sentence.T


def maxsim_scores(
    queries: EncodedQueries, index: DocumentIndex, chunk_tokens: int = 2048
) -> np.ndarray:
    """``(nq, N)`` MaxSim: mean over query tokens of the best cosine with a document token."""
    if queries.tokens is None:
        raise ValueError("maxsim needs query token embeddings (encode_queries(tokens=True))")
    if index.token_vectors is None or index.token_offsets is None:
        raise ValueError("maxsim needs document token embeddings (index.ensure_tokens)")
    starts = index.token_offsets[:-1]
    out = np.empty((len(queries.tokens), index.n_docs), dtype=np.float32)
    q = 0
    while q < len(queries.tokens):  # chunks of queries with at most chunk_tokens tokens
        group = [queries.tokens[q]]
        while q + len(group) < len(queries.tokens) and (
            sum(len(g) for g in group) + len(queries.tokens[q + len(group)]) <= chunk_tokens
        ):
            group.append(queries.tokens[q + len(group)])
        stacked = np.concatenate(group, axis=0)
        sims = stacked @ index.token_vectors.T  # (tokens, T)
        best = np.maximum.reduceat(sims, starts, axis=1)  # (tokens, N)
        row = 0
        for k, g in enumerate(group):
            out[q + k] = best[row:row + len(g)].mean(axis=0)
            row += len(g)
        q += len(group)
    return out


def ot_scores(
    query_tokens: np.ndarray,
    doc_tokens: Sequence[np.ndarray],
    config: OTConfig | None = None,
):
    """``-<P*, C>`` of one query against candidate documents, in one batched Sinkhorn call.

    Args:
        query_tokens: ``(n, d)`` query token vectors.
        doc_tokens: ``(m_k, d)`` token vectors of each candidate.
        config: the plan's ε, iteration budget and tolerance (default :class:`OTConfig()`).

    Returns:
        ``(scores (K,), result)`` with the :class:`~optical_core.ot.batch.BatchOTResult` (plans
        padded to the longest candidate). ``C = 1 - cos`` clipped to [0, 2], as
        :func:`optical_core.ot.costs.cost_matrix` computes it.
    """
    q = unit_rows(query_tokens).astype(np.float64)
    costs = [np.clip(1.0 - q @ unit_rows(d).astype(np.float64).T, 0.0, 2.0) for d in doc_tokens]
    with single_thread():
        cost, a, b = pad_costs(costs, dtype=torch.float64)
        res = batch_plans(cost, a, b, config or OTConfig())
        scores = -(res.plan.double() * cost).sum(dim=(1, 2))
    return scores.numpy(), res


_THREADS_LOCK = threading.Lock()
_THREADS_USERS = 0
_THREADS_SAVED = 0


class single_thread:
    """Run torch on one intra-op thread inside the block (restored when the last user
    leaves). The batched Sinkhorn of a rerank works on tensors of a few hundred entries,
    where thread hand-offs cost more than they save: 3-5x slower with two threads on a
    busy two-core machine."""

    def __enter__(self):
        global _THREADS_USERS, _THREADS_SAVED
        with _THREADS_LOCK:
            if _THREADS_USERS == 0:
                _THREADS_SAVED = torch.get_num_threads()
                torch.set_num_threads(1)
            _THREADS_USERS += 1
        return self

    def __exit__(self, *exc):
        global _THREADS_USERS
        with _THREADS_LOCK:
            _THREADS_USERS -= 1
            if _THREADS_USERS == 0:
                torch.set_num_threads(_THREADS_SAVED)
        return False


def rank(
    queries: EncodedQueries,
    index: DocumentIndex,
    config: ScorerConfig | None = None,
    query_ids: Sequence[str] | None = None,
) -> Ranking:
    """Rank every document of ``index`` for every query.

    ``maxsim`` and ``ot`` need token embeddings on both sides (``encode_queries(...,
    tokens=True)`` and :meth:`DocumentIndex.ensure_tokens`).
    """
    cfg = config or ScorerConfig()
    nq = len(queries.texts)
    ids = list(query_ids) if query_ids is not None else [f"q{i}" for i in range(nq)]
    notes: list[str] = []
    if cfg.scorer == "maxsim":
        scores = maxsim_scores(queries, index).astype(np.float64)
        order = np.argsort(-scores, axis=1, kind="stable")
        return Ranking("maxsim", ids, order, np.take_along_axis(scores, order, 1), notes)
    dense = dense_scores(queries, index).astype(np.float64)
    order = np.argsort(-dense, axis=1, kind="stable")
    sorted_scores = np.take_along_axis(dense, order, 1)
    if cfg.scorer == "dense":
        return Ranking("dense", ids, order, sorted_scores, notes)
    # OT rerank of the dense top k.
    if queries.tokens is None:
        raise ValueError("ot needs query token embeddings (encode_queries(tokens=True))")
    if index.token_vectors is None:
        raise ValueError("ot needs document token embeddings (index.ensure_tokens)")
    k = min(cfg.rerank_depth, index.n_docs)
    final_order = order.copy()
    final_scores = _OT_BELOW + (sorted_scores - 1.0)
    not_converged = 0
    for qi in range(nq):
        cand = order[qi, :k]
        s, res = ot_scores(
            queries.tokens[qi], [index.doc_tokens(int(j))[0] for j in cand],
            cfg.ot,
        )
        not_converged += int((~res.converged).sum())
        new = np.argsort(-s, kind="stable")
        final_order[qi, :k] = cand[new]
        final_scores[qi, :k] = s[new]
    if not_converged:
        notes.append(
            f"Sinkhorn did not reach tol {cfg.ot.tol:g} within {cfg.ot.max_iter} iterations for "
            f"{not_converged} of {nq * k} query–document pairs; raise ε or the budget."
        )
    return Ranking("ot", ids, final_order, final_scores, notes)


def search(
    encoder: Encoder, index: DocumentIndex, text: str, config: ScorerConfig | None = None,
    doc_encoder: Encoder | None = None,
) -> tuple[Ranking, EncodedQueries]:
    """Rank the documents for one query text (encodes what the scorer needs).

    Args:
        encoder: the model that embeds the query.
        index: the documents, embedded by ``doc_encoder``.
        text: the query.
        config: the scorer (default dense).
        doc_encoder: the model that built ``index`` (default: ``encoder``, one model for
            both sides), e.g. a student's frozen teacher. The documents' token vectors,
            when ``maxsim`` or ``ot`` needs them and the index lacks them, are encoded by
            it: the query encoder's vectors would land in the document encoder's cache
            entry.

    Raises:
        ValueError: ``index`` was not built by ``doc_encoder``, or the two encoders give
            vectors of different widths.

    The query is encoded and scored on one torch thread: for a single short text thread
    hand-offs cost more than they save (on a busy two-core machine, 10x more).
    """
    cfg = config or ScorerConfig()
    doc_encoder = encoder if doc_encoder is None else doc_encoder
    check_comparable(encoder, doc_encoder)
    if index.model_key != model_fingerprint(doc_encoder):
        raise ValueError(f"the index was built by {index.model_name}, not by the document "
                         f"encoder {doc_encoder.name}")
    if cfg.needs_tokens:
        index.ensure_tokens(doc_encoder)
    with single_thread():
        q = encode_queries(encoder, [text], tokens=cfg.needs_tokens, sentence=cfg.needs_sentence)
        return rank(q, index, cfg), q

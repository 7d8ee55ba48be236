"""optical_core.retrieval.scorers: dense, MaxSim and OT re-ranking on the demo corpus (24
captions) with the real default MiniLM, checked against brute force and POT."""

from __future__ import annotations

import numpy as np
import pytest

from optical_core.ot.config import OTConfig
from optical_core.ot.costs import cost_matrix
from optical_core.ot.solve import solve
from optical_core.retrieval.index import encode_queries
from optical_core.retrieval.scorers import ScorerConfig, maxsim_scores, rank, search


def test_ot_rerank_matches_pot_per_pair(encoder, demo, demo_index):
    qset = demo.query_set("de")
    cfg = ScorerConfig("ot", rerank_depth=8, ot=OTConfig(epsilon=0.05, tol=1e-9, max_iter=5000))
    q = encode_queries(encoder, qset.texts[:3], tokens=True)
    ot_rank = rank(q, demo_index, cfg, query_ids=qset.ids[:3])
    dense = rank(q, demo_index, ScorerConfig("dense"), query_ids=qset.ids[:3])
    for r in range(3):
        top = dense.order[r, :8]
        assert set(ot_rank.order[r, :8]) == set(top)  # the top k is re-ordered, not replaced
        np.testing.assert_array_equal(ot_rank.order[r, 8:], dense.order[r, 8:])
        assert np.all(np.diff(ot_rank.scores[r, :8]) <= 1e-12)
        assert ot_rank.scores[r, 7] > ot_rank.scores[r, 8]  # below-k scores sit under
        for pos in (0, 5):  # a couple of candidates: POT on the same vectors
            j = int(ot_rank.order[r, pos])
            cost = cost_matrix(q.tokens[r].astype(np.float64),
                               demo_index.doc_tokens(j)[0].astype(np.float64))
            res = solve(cost, config=OTConfig("sinkhorn", epsilon=0.05, tol=1e-10,
                                              max_iter=20000))
            assert ot_rank.scores[r, pos] == pytest.approx(-res.cost, abs=1e-6)


def test_maxsim_matches_brute_force(encoder, demo, demo_index):
    q = encode_queries(encoder, demo.queries["fr"][:4], tokens=True, sentence=False)
    got = maxsim_scores(q, demo_index, chunk_tokens=16)  # several chunks
    for i in range(4):
        for j in range(demo.n_docs):
            d = demo_index.doc_tokens(j)[0]
            want = (q.tokens[i] @ d.T).max(axis=1).mean()
            assert got[i, j] == pytest.approx(want, abs=1e-5)
    # English query = its own document: MaxSim is 1 for it and maximal
    qe = encode_queries(encoder, demo.queries["en"][:3], tokens=True)
    r = rank(qe, demo_index, ScorerConfig("maxsim"))
    assert list(r.order[:, 0]) == [0, 1, 2]
    assert r.scores[0, 0] == pytest.approx(1.0, abs=1e-5)


def test_dense_english_queries_find_themselves(encoder, demo, demo_index):
    ranking, q = search(encoder, demo_index, demo.queries["en"][4])
    assert ranking.order[0, 0] == 4 and ranking.scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert q.tokens is None
    with pytest.raises(ValueError, match="empty"):
        search(encoder, demo_index, "   ")


def test_scorer_config_validation():
    with pytest.raises(ValueError, match="unknown scorer"):
        ScorerConfig("bm25")
    with pytest.raises(ValueError, match="ε must be a finite number > 0"):
        ScorerConfig("ot", ot=OTConfig(epsilon=0))
    with pytest.raises(ValueError, match="balanced Sinkhorn"):
        ScorerConfig("ot", ot=OTConfig("exact"))
    assert ScorerConfig("ot").needs_tokens and ScorerConfig("ot").needs_sentence
    assert not ScorerConfig("maxsim").needs_sentence


def test_search_encodes_missing_document_tokens_with_the_document_encoder(
        tiny, tiny_other, demo, cache_root):
    """A student's query against its teacher's index: the teacher's token vectors are
    built by the teacher (and cached under its entry), never by the student."""
    from optical_core.encoders.registry import load_encoder
    from optical_core.retrieval.index import build_index

    student, teacher = load_encoder(tiny_other), load_encoder(tiny)
    index = build_index(teacher, demo, tokens=False)
    ranking, q = search(student, index, demo.queries["de"][0], ScorerConfig("maxsim"),
                        doc_encoder=teacher)
    own = build_index(teacher, demo, tokens=True, cache=False)  # the teacher's own tokens
    np.testing.assert_allclose(index.token_vectors, own.token_vectors, atol=1e-6)
    np.testing.assert_array_equal(index.token_offsets, own.token_offsets)
    # The cache entry holds the teacher's tokens too: a fresh index of it loads them.
    again = build_index(teacher, demo, tokens=True)
    assert again.from_cache == {"sentence": True, "tokens": True}
    np.testing.assert_allclose(again.token_vectors, own.token_vectors, atol=1e-6)
    # The ranking compares the student's query tokens with the teacher's document tokens.
    by_hand = rank(encode_queries(student, [demo.queries["de"][0]], tokens=True), own,
                   ScorerConfig("maxsim"))
    np.testing.assert_array_equal(ranking.order, by_hand.order)
    # Without doc_encoder the query encoder is taken for both sides, and refused here.
    fresh = build_index(teacher, demo, tokens=False, cache=False)
    with pytest.raises(ValueError, match="the index was built by"):
        search(student, fresh, "ein Hund", ScorerConfig("maxsim"))
    assert fresh.token_vectors is None

"""optical_core.retrieval.explain: which document tokens a noisy query still matches."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst
from hypothesis.extra import numpy as hnp

from optical_core.retrieval.explain import (
    NOT_CONTENT,
    STATUSES,
    ExplainThresholds,
    TokenExplanation,
    explain_match,
    explain_tokens,
    is_content_token,
)


def test_explain_match_follows_document_tokens(encoder):
    ex = explain_match(encoder, "Ein Hund läuft am Strand entlang.",
                         "Ein Hnud läuft am Stxrnd entlang.", "A dog runs along the beach.")
    assert ex.doc_tokens == ["a", "dog", "runs", "along", "the", "beach", "."]
    assert ex.clean.plan.shape[1] == ex.noisy.plan.shape[1] == 7
    assert len(ex.rows) == 7 and {r["status"] for r in ex.rows} <= {*STATUSES, NOT_CONTENT}
    assert ex.rows[-1]["status"] == NOT_CONTENT  # the full stop is no content word
    assert all(-1 <= r["clean_cos"] <= 1 for r in ex.rows)
    assert ex.score_clean == pytest.approx(-(ex.clean.plan * ex.clean.cost).sum())
    same = explain_match(encoder, "A dog.", "A dog.", "A dog runs.")
    assert same.lost == [] and same.score_clean == pytest.approx(same.score_noisy)
    assert "dog" in same.kept
    broken = explain_match(encoder, "A dog runs.", "A xqz runs.", "A dog runs.")
    assert "dog" in broken.lost and "dog" not in broken.kept


def _unit(x):
    import numpy as np

    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_the_document_side_is_embedded_by_the_document_encoder(tiny, tiny_other):
    """A student's query against its teacher's caption: the plans' columns are the
    teacher's token vectors, as in the teacher's index that the rankings use."""
    from optical_core.encoders.registry import load_encoder

    student, teacher = load_encoder(tiny_other), load_encoder(tiny)
    q, noisy, doc = "Ein Hund läuft.", "Ein Hnud läuft.", "A dog runs along the beach."
    ex = explain_match(student, q, noisy, doc, doc_encoder=teacher)
    assert (ex.doc_model, ex.doc_fallback) == (teacher.name, False)
    d = _unit(teacher.token_embeddings([doc])[0].embeddings)
    for plan, text in ((ex.clean, q), (ex.noisy, noisy)):
        want = 1.0 - _unit(student.token_embeddings([text])[0].embeddings) @ d.T
        assert plan.cost == pytest.approx(want, abs=1e-5)
    own = explain_match(student, q, noisy, doc)  # the student's own caption tokens differ
    assert own.doc_model == student.name and not own.doc_fallback
    assert own.clean.cost.shape == ex.clean.cost.shape
    assert not own.clean.cost == pytest.approx(ex.clean.cost, abs=1e-3)


def test_a_document_encoder_of_another_token_width_falls_back_to_the_query_encoder(
        tiny, encoder):
    """No plan holds 32-d query tokens and 384-d caption tokens: the query encoder
    embeds the caption too, and the explanation says so."""
    from optical_core.encoders.registry import load_encoder

    student = load_encoder(tiny)
    ex = explain_match(student, "A dog.", "A dgo.", "A dog runs.", doc_encoder=encoder)
    assert ex.doc_fallback and ex.doc_model == student.name
    own = explain_match(student, "A dog.", "A dgo.", "A dog runs.")
    assert ex.clean.cost == pytest.approx(own.clean.cost)
    assert ex.score_noisy == pytest.approx(own.score_noisy)


# ------------------------------------------------- the text held against its own numbers


def check_text_against_rows(tx: TokenExplanation) -> None:
    """Every sentence agrees with the table: a token named under a status has a row with
    that status, whose numbers satisfy the status's rule with the stated thresholds; no
    punctuation is named; the thresholds are in the text."""
    th = tx.thresholds
    text = " ".join(tx.sentences)
    assert f"{th.margin:.2f}" in text and f"{th.matched:.2f}" in text
    for g in tx.groups:
        assert g.tokens, g
        for tok in g.tokens:
            assert is_content_token(tok), (tok, g.sentence)
            assert f"“{tok}”" in g.sentence
            rows = [r for r in tx.rows if r["doc_token"] == tok and r["status"] == g.status]
            assert rows, (tok, g.status)
            for r in rows:
                assert r["change"] == pytest.approx(r["noisy_cos"] - r["clean_cos"])
                if g.status in ("lost", "weaker"):
                    assert r["change"] <= -th.margin
                else:
                    assert r["change"] > -th.margin
                if g.status == "gained":
                    assert r["change"] >= th.margin
                if g.status in ("kept", "weak"):
                    assert abs(r["change"]) < th.margin
                matched = r["noisy_cos"] >= th.matched
                if g.status in ("weaker", "kept"):
                    assert matched
                if g.status in ("lost", "weak"):
                    assert not matched
    for r in tx.rows:  # every content row is named by its status's sentence
        if r["status"] != NOT_CONTENT:
            assert r["doc_token"] in tx.named(r["status"])
        else:
            assert not is_content_token(r["doc_token"])


WORDS = ["a", "man", "hat", "##s", "orange", ".", ",", "[CLS]", "▁dog", "2", "!", "é"]


@settings(max_examples=200, deadline=None)
@given(
    hst.integers(1, 6), hst.integers(1, 6), hst.integers(1, 8), hst.data(),
    hst.floats(0.01, 0.5), hst.floats(-0.2, 0.9),
)
def test_random_plans_text_matches_rows(n, n2, m, data, margin, matched):
    sc = data.draw(hnp.arrays(np.float64, (n, m), elements=hst.floats(-1, 1)))
    sn = data.draw(hnp.arrays(np.float64, (n2, m), elements=hst.floats(-1, 1)))
    doc = data.draw(hst.lists(hst.sampled_from(WORDS), min_size=m, max_size=m))
    th = ExplainThresholds(margin=margin, matched=matched)
    tx = explain_tokens(doc, [f"q{i}" for i in range(n)], [f"n{i}" for i in range(n2)],
                        sc, sn, th)
    assert len(tx.rows) == m
    for j, r in enumerate(tx.rows):
        assert r["clean_cos"] == pytest.approx(sc[:, j].max())
        assert r["noisy_cos"] == pytest.approx(sn[:, j].max())
    check_text_against_rows(tx)


def test_punctuation_and_special_tokens_are_not_content_words():
    assert [is_content_token(t) for t in ["man", "##s", "▁dog", "2", "é", "Ġhat"]] == [True] * 6
    not_words = [".", ",", "[CLS]", "<s>", "##.", "▁", "--"]
    assert [is_content_token(t) for t in not_words] == [False] * 7


@pytest.mark.slow
def test_real_queries_text_matches_rows(encoder, shared_data):
    """A sweep over real German test_2016 queries with typos at 10 and 20 %: on every one
    the explanation names only what its table shows."""
    from optical_core.retrieval.corpus import load_corpus
    from optical_core.retrieval.noise import perturb_query

    corpus = load_corpus("test_2016_flickr")
    queries = corpus.queries["de"]
    named = set()
    for i in range(0, 120, 8):
        for cer in (0.1, 0.2):
            noisy = perturb_query(queries[i], "typo", cer, i, "de").text
            ex = explain_match(encoder, queries[i], noisy, corpus.doc_texts[i])
            check_text_against_rows(ex.tokens)
            for j, r in enumerate(ex.rows):  # the table's plan column is the heatmap's
                darkest = int(np.argmax(ex.noisy.plan[:, j]))
                assert r["plan_match"] == ex.noisy.src_tokens[darkest]
            named |= {g.status for g in ex.tokens.groups}
    assert {"lost", "kept"} <= named  # the sweep did exercise the sentences

"""optical_core.retrieval.explain: which document tokens a noisy query still matches."""

from __future__ import annotations

import pytest

from optical_core.retrieval.explain import explain_match


def test_explain_match_follows_document_tokens(encoder):
    ex = explain_match(encoder, "Ein Hund läuft am Strand entlang.",
                         "Ein Hnud läuft am Stxrnd entlang.", "A dog runs along the beach.")
    assert ex.doc_tokens == ["a", "dog", "runs", "along", "the", "beach", "."]
    assert ex.clean.plan.shape[1] == ex.noisy.plan.shape[1] == 7
    assert len(ex.rows) == 7 and {r["status"] for r in ex.rows} <= {"lost", "kept", "gained"}
    assert all(-1 <= r["clean_cos"] <= 1 for r in ex.rows)
    assert ex.score_clean == pytest.approx(-(ex.clean.plan * ex.clean.cost).sum())
    same = explain_match(encoder, "A dog.", "A dog.", "A dog runs.")
    assert same.lost == [] and same.score_clean == pytest.approx(same.score_noisy)
    assert "dog" in same.still_matched(0.5)
    broken = explain_match(encoder, "A dog runs.", "A xqz runs.", "A dog runs.")
    assert "dog" in broken.lost and "dog" not in broken.still_matched(0.5)


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

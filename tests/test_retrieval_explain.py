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

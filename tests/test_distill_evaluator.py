"""optical_core.distill.evaluator: the retrieval metrics of the training-time evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from optical_core.distill.evaluator import mrr_and_accuracy


def test_mrr_and_accuracy_by_hand():
    q = np.eye(3, dtype=np.float32)
    d = np.array([[1, 0, 0], [0, 0, 1], [0, 1, 0]], dtype=np.float32)  # 1 and 2 swapped
    m = mrr_and_accuracy(q, d)
    assert m["mrr@10"] == pytest.approx((1 + 0.5 + 0.5) / 3, abs=1e-6)
    assert m["accuracy_x2en"] == pytest.approx(1 / 3)


def test_documents_can_come_from_the_teacher(tiny, tiny_other):
    """OPTICAL's setting: the frozen teacher's index; the student only embeds queries."""
    from optical_core.distill.config import DistillError
    from optical_core.distill.evaluator import RetrievalEvaluator
    from optical_core.encoders.transformer import load_sentence_transformer

    student = load_sentence_transformer(tiny, "cpu")
    teacher = load_sentence_transformer(tiny_other, "cpu")
    en = ["A dog runs.", "Two men play chess.", "A woman rides a bike."]
    xx = ["Ein Hund rennt.", "Zwei Männer spielen Schach.", "Eine Frau fährt Rad."]
    docs = teacher.encode(en, normalize_embeddings=True)
    got = RetrievalEvaluator(xx, en, name="", doc_embeddings=docs)(student)
    q = student.encode(xx, normalize_embeddings=True)
    assert got["mrr@10"] == pytest.approx(mrr_and_accuracy(q, docs)["mrr@10"], abs=1e-6)
    own = RetrievalEvaluator(xx, en, name="")(student)
    assert own["mrr@10"] == pytest.approx(
        mrr_and_accuracy(q, student.encode(en, normalize_embeddings=True))["mrr@10"], abs=1e-6)
    with pytest.raises(DistillError, match="one document embedding per English line"):
        RetrievalEvaluator(xx, en, doc_embeddings=docs[:2])

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

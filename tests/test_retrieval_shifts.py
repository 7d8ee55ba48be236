"""optical_core.retrieval.shifts: rank shifts between a clean and a noisy ranking, change
labels and Kendall's τ over the top k."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _helpers import toy

from optical_core.retrieval.scorers import Ranking
from optical_core.retrieval.shifts import (
    kendall_tau_at_k,
    rank_change_labels,
    rank_shifts,
    relevant_ranks,
)


def test_relevant_ranks_shifts_and_labels():
    corpus, qset, clean = toy()
    noisy_order = np.array([[0, 3, 1, 2, 4], [4, 0, 3, 1, 2], [0, 1, 2, 4, 3]])
    noisy = Ranking("dense", list(qset.ids), noisy_order, clean.scores.copy())
    np.testing.assert_array_equal(relevant_ranks(clean, qset), [2, 1, 5])
    np.testing.assert_array_equal(relevant_ranks(noisy, qset), [1, 4, 5])
    sh = rank_shifts(clean, noisy, qset, k=3)
    np.testing.assert_array_equal(sh.shift, [1, -3, 0])
    assert sh.delta_mrr == pytest.approx(np.mean([1 - 0.5, 0.25 - 1, 0]))
    assert sh.tau[2] == pytest.approx(1.0)  # same order
    # labels of the noisy top 3 of q0 against the clean top 3: d0 ↑1, d3 ↓1, d1 =
    assert rank_change_labels(clean.order[0], noisy_order[0], depth=3) == ["↑1", "↓1", "="]
    assert rank_change_labels(clean.order[1], noisy_order[1], depth=3) == ["↑1", "↑1", "new"]
    rows = sh.rows()
    assert rows[1]["clean_rank"] == 1 and rows[1]["noisy_rank"] == 4


def test_kendall_tau_at_k_definition():
    a = np.arange(20)
    assert kendall_tau_at_k(a, a, 10) == pytest.approx(1.0)
    # the top 10 in reverse, the rest unchanged: the union is the top 10, fully reversed
    b = np.concatenate([a[:10][::-1], a[10:]])
    assert kendall_tau_at_k(a, b, 10) == pytest.approx(-1.0)
    # disjoint top-k lists: each list's top sits low in the other -> negative
    c = np.concatenate([a[10:], a[:10]])
    assert kendall_tau_at_k(a, c, 10) < 0
    assert math.isnan(kendall_tau_at_k(np.array([0]), np.array([0]), 10))

"""optical_core.retrieval.metrics: MRR, recall, MAP and nDCG against hand computation on a
toy ranking, bootstrap intervals and paired p-values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _helpers import toy

from optical_core.retrieval.corpus import Corpus
from optical_core.retrieval.metrics import (
    bootstrap_ci,
    compare_runs,
    evaluate_ranking,
    per_query_metrics,
)
from optical_core.retrieval.scorers import Ranking

# ------------------------------------------------------------------------- toy metrics


def test_toy_relevance():
    # (The qrels handed to ranx are checked through the hand-computed metrics below:
    # q1's MAP and nDCG depend on its second relevant document.)
    _, qset, _ = toy()
    assert qset.relevant == ((0,), (1, 2), (3,))
    assert qset.ids == ("q0", "q1", "q2")


def test_metrics_match_hand_computation():
    corpus, qset, ranking = toy()
    got = per_query_metrics(ranking, qset, corpus)
    lg = math.log2
    hand = {
        # reciprocal rank of the first relevant document
        "mrr@10": [1 / 2, 1 / 1, 1 / 5],
        # share of the relevant documents in the top k
        "recall@1": [0, 1 / 2, 0],
        "recall@5": [1, 1, 1],
        "recall@10": [1, 1, 1],
        # mean of precision at each relevant document
        "map": [1 / 2, (1 / 1 + 2 / 4) / 2, 1 / 5],
        # DCG / ideal DCG with gain 1 and discount log2(rank + 1)
        "ndcg@10": [
            (1 / lg(3)) / 1,
            (1 / lg(2) + 1 / lg(5)) / (1 / lg(2) + 1 / lg(3)),
            (1 / lg(6)) / 1,
        ],
    }
    for m, values in hand.items():
        np.testing.assert_allclose(got[m], values, rtol=1e-9, err_msg=m)
    summary = evaluate_ranking(ranking, qset, corpus, n_boot=200)
    assert summary.mean["mrr@10"] == pytest.approx(np.mean(hand["mrr@10"]))
    assert summary.n_queries == 3


# -------------------------------------------------------------------------- statistics


def test_bootstrap_ci_contains_estimate_and_narrows():
    rng = np.random.default_rng(1)
    small = rng.binomial(1, 0.3, size=100).astype(float)
    large = rng.binomial(1, 0.3, size=2000).astype(float)
    lo_s, hi_s = bootstrap_ci(small, n_boot=1000, seed=0)
    lo_l, hi_l = bootstrap_ci(large, n_boot=1000, seed=0)
    assert lo_s <= small.mean() <= hi_s
    assert lo_l <= large.mean() <= hi_l
    assert (hi_l - lo_l) < 0.5 * (hi_s - lo_s)  # ~ 1/sqrt(n): 20x the queries, 4.5x narrower
    cont = rng.random(100)
    assert bootstrap_ci(cont, seed=0) == bootstrap_ci(cont, seed=0)  # seeded
    assert bootstrap_ci(cont, seed=1) != bootstrap_ci(cont, seed=0)
    assert all(math.isnan(x) for x in bootstrap_ci([]))
    assert bootstrap_ci([0.5] * 10) == (0.5, 0.5)


def test_compare_runs_p_values():
    corpus = Corpus(
        name="toy", doc_ids=tuple(f"d{i}" for i in range(40)), doc_texts=("x",) * 40,
        doc_images=tuple(range(40)), queries={"de": ("y",) * 40},
        image_names=tuple(map(str, range(40))),
    )
    qset = corpus.query_set("de")
    perfect = np.array([[i] + [j for j in range(40) if j != i] for i in range(40)])
    worse = np.array([[j for j in range(40) if j != i][:5] + [i]
                      + [j for j in range(40) if j != i][5:] for i in range(40)])
    s = np.zeros((40, 40))
    a = Ranking("dense", list(qset.ids), perfect, s)
    b = Ranking("dense", list(qset.ids), worse, s)
    p_same = compare_runs(a, a, qset, corpus, ("mrr@10",))
    assert p_same["mrr@10"] == pytest.approx(1.0)
    p_t = compare_runs(a, b, qset, corpus, ("mrr@10", "ndcg@10"))
    assert p_t["mrr@10"] < 1e-6 and p_t["ndcg@10"] < 1e-6
    p_f = compare_runs(a, b, qset, corpus, ("mrr@10",), stat_test="fisher", seed=3)
    assert p_f["mrr@10"] < 0.01
    with pytest.raises(ValueError, match="unknown test"):
        compare_runs(a, b, qset, corpus, stat_test="magic")

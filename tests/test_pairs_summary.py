"""optical_core.pairs.summary: numbers and words about an aligned pair (entropy, diffuseness,
links, held-back mass, plan comparisons, CSV export); no model needed.

The ``sharp`` and ``blurry`` pairs are fixtures in conftest.py.
"""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from _helpers import token_emb

from optical_core import alignment as al
from optical_core.ot.config import OTConfig
from optical_core.pairs.align import align_embeddings
from optical_core.pairs.summary import (
    UNALIGNED_SHARE,
    agreement,
    all_links,
    compare_plans,
    describe,
    diffuseness,
    epsilon_scale,
    gold_cells,
    held_back,
    mass_moved,
    peak_share,
    plan_csv,
    plan_entropy,
    word_plan,
)


def test_entropy_and_peak_extremes():
    one_to_one = np.eye(4) / 4
    assert plan_entropy(one_to_one) == pytest.approx(0.0)
    assert peak_share(one_to_one) == pytest.approx(1.0)
    even = np.full((3, 5), 1 / 15)
    assert plan_entropy(even) == pytest.approx(1.0)
    assert peak_share(even) == pytest.approx(0.2)
    assert plan_entropy(np.zeros((2, 2))) == 0.0
    assert plan_entropy(np.ones((3, 1)) / 3) == 0.0  # one column: nothing to spread over


def test_diffuseness_judges_the_model_not_epsilon(sharp, blurry):
    s = align_embeddings(*sharp, config=OTConfig("sinkhorn", epsilon=1.0))
    d = diffuseness(s)
    assert d.level == "sharp" and not d.diffuse
    assert d.blurred_by_epsilon  # large ε blurs a sharp pair
    b = align_embeddings(*blurry, config=OTConfig("exact"))
    db = diffuseness(b)
    assert db.diffuse  # the exact plan is sparse, but the model cannot tell tokens apart
    assert db.entropy < 0.2 < db.reference_entropy


def test_exact_plan_is_sparse_and_links_are_the_permutation(sharp):
    p = align_embeddings(*sharp, config=OTConfig("exact"))
    assert (p.plan > 1e-12).sum() <= 4 + 4 - 1
    links = all_links(p)
    assert links["ot"] == links["argmax"] == {(0, 1), (1, 0), (2, 3), (3, 2)}
    agree = agreement(links)
    assert set(agree) == {("ot", "argmax"), ("ot", "itermax"), ("argmax", "itermax")}
    assert agree[("ot", "argmax")] == 1.0


def test_partial_transport_held_back_and_describe(blurry):
    p = align_embeddings(*blurry, config=OTConfig("partial", mass=0.6))
    assert p.ot.transported_mass == pytest.approx(0.6, abs=1e-6)
    held = held_back(p)
    assert held and all(h.share >= UNALIGNED_SHARE for h in held)
    assert {h.side for h in held} == {"source", "target"}
    text = " ".join(describe(p, OTConfig("partial", mass=0.6)))
    assert "60%" in text and "unaligned" in text


def test_describe_sinkhorn_and_fallback(sharp):
    cfg = OTConfig("sinkhorn", epsilon=0.05)
    p = align_embeddings(*sharp, config=cfg)
    text = " ".join(describe(p, cfg))
    assert "iterations" in text and "Marginal error" in text and "All mass" in text


def test_describe_does_not_call_a_converged_sinkhorn_exact():
    # One source token: the weights fix the plan and POT reports 0 iterations; the page
    # once said "the sinkhorn solver is exact (a linear program)".
    cfg = OTConfig("sinkhorn", epsilon=0.05)
    p = align_embeddings(token_emb(["hi"], np.eye(4)[:1]), token_emb(list("abc"), np.eye(4)[:3]),
                         config=cfg)
    assert p.ot.iterations == 0
    text = " ".join(describe(p, cfg))
    assert "linear program" not in text and "no iterations" in text


def test_mass_moved():
    a = np.eye(3) / 3
    assert mass_moved(a, a) == 0.0
    assert mass_moved(a, np.roll(a, 1, axis=1)) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        mass_moved(a, np.ones((2, 3)))


def test_compare_plans_pools_different_tokenisations():
    rng = np.random.default_rng(1)
    words = ["Ein", "Hund"]
    s1 = token_emb(["ein", "hund"], rng.normal(size=(2, 8)), [0, 1], words)
    s2 = token_emb(["ein", "hu", "##nd"], rng.normal(size=(3, 8)), [0, 1, 1], words)
    t = token_emb(["a", "dog"], rng.normal(size=(2, 8)), [0, 1], ["a", "dog"])
    p1 = align_embeddings(s1, t)
    p2 = align_embeddings(s2, t)
    cmp = compare_plans(p1, p2)
    assert cmp.forced_word_level and cmp.src_labels == words
    assert cmp.plan2.shape == (2, 2) and cmp.plan2.sum() == pytest.approx(1.0)
    assert 0.0 <= cmp.mass_moved <= 1.0
    same = compare_plans(p1, p1)
    assert not same.forced_word_level and same.mass_moved == 0.0


def test_plan_csv_round_trip_with_awkward_tokens():
    plan = np.array([[0.5, 0.0], [0.1, 0.4]])
    text = plan_csv(plan, ['a,"b"', "."], [" x", "y"])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["source\\target", "0: x", "1:y"]
    assert rows[1][0] == '0:a,"b"' and float(rows[2][2]) == pytest.approx(0.4)
    with pytest.raises(ValueError):
        plan_csv(plan, ["a"], ["x", "y"])


def test_held_back_names_the_word_of_a_subword():
    rng = np.random.default_rng(4)
    s = token_emb(["ent", "##lang", "."], rng.normal(size=(3, 4)), [0, 0, 1], ["entlang", "."])
    t = token_emb(["along", "."], rng.normal(size=(2, 4)), [0, 1], ["along", "."])
    p = align_embeddings(s, t, config=OTConfig("partial", mass=0.3))
    labels = {h.token: h.label for h in held_back(p, min_share=0.0)}
    assert labels["##lang"] == "“##lang” (in “entlang”)" and labels["."] == "“.”"


def test_gold_cells_maps_word_links_to_subwords():
    rng = np.random.default_rng(2)
    s = token_emb(["hu", "##nd", "."], rng.normal(size=(3, 4)), [0, 0, 1], ["Hund", "."])
    t = token_emb(["dog", "."], rng.normal(size=(2, 4)), [0, 1], ["dog", "."])
    p = align_embeddings(s, t)
    sure, maybe = gold_cells(p, {(0, 0)}, {(0, 0), (1, 1)})
    assert sure == {(0, 0), (1, 0)} and maybe == {(2, 1)}


def test_epsilon_scale(sharp):
    assert epsilon_scale(*sharp, metric="cosine") == 1.0
    # orthonormal vectors: squared distances are 0 or 2, so max/2 = 1
    assert epsilon_scale(*sharp, metric="sqeuclidean") == pytest.approx(1.0)
    big = [token_emb(e.tokens, e.embeddings * 10) for e in sharp]
    assert epsilon_scale(*big, metric="sqeuclidean") == pytest.approx(100.0, rel=1e-5)


def test_word_plan_keeps_total_mass():
    rng = np.random.default_rng(3)
    s = token_emb(["hu", "##nd", "."], rng.normal(size=(3, 4)), [0, 0, 1], ["Hund", "."])
    t = token_emb(["dog", "."], rng.normal(size=(2, 4)), [0, 1], ["dog", "."])
    p = align_embeddings(s, t, config=OTConfig("sinkhorn", epsilon=0.1))
    w = word_plan(p)
    assert w.shape == (2, 2) and w.sum() == pytest.approx(p.plan.sum())
    assert np.allclose(w[0], p.plan[0] + p.plan[1])
    assert al.jaccard(set(), set()) == 1.0

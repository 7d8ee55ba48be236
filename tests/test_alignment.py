"""Tests of optical_core.alignment: link extraction, subword→word, AER.

Fast: no models. The gold-set test reads ``../shared/data/gold_alignments`` (or
``$OPTICAL_DATA_DIR/gold_alignments``) and is skipped when it is absent.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

from optical_core import alignment as al
from optical_core.alignment import (
    LINK_METHODS,
    AlignmentScores,
    argmax_links,
    diagonal_links,
    extract_links,
    itermax_links,
    jaccard,
    links_to_matrix,
    pool_to_words,
    score_alignment,
    score_corpus,
    threshold_links,
    word_links,
)
from optical_core.pharaoh import read_pharaoh_file

# A 3×4 hand matrix used by the argmax and itermax tests.
#            t0    t1    t2    t3
HAND = np.array(
    [
        [0.90, 0.80, 0.10, 0.10],  # s0
        [0.65, 0.20, 0.30, 0.60],  # s1
        [0.10, 0.20, 0.80, 0.50],  # s2
    ]
)


# ------------------------------------------------------------------------ scoring


def test_hand_computed_scores():
    sure = {(0, 0), (1, 1)}
    possible = {(1, 2), (2, 2)}  # P = S ∪ these (the function adds S itself)
    pred = {(0, 0), (1, 2), (2, 1)}
    # |A| = 3, |S| = 2, A∩S = {(0,0)} → 1, A∩P = {(0,0), (1,2)} → 2
    # precision = 2/3, recall = 1/2, F1 = 2·(2/3)(1/2)/(2/3 + 1/2) = (2/3)/(7/6) = 4/7
    # AER = 1 − (1 + 2)/(3 + 2) = 2/5
    sc = score_alignment(pred, sure, possible)
    assert sc.precision == pytest.approx(2 / 3)
    assert sc.recall == pytest.approx(1 / 2)
    assert sc.f1 == pytest.approx(4 / 7)
    assert sc.aer == pytest.approx(0.4)
    assert (sc.n_pred, sc.n_sure, sc.n_possible, sc.n_pred_sure, sc.n_pred_possible) == (
        3, 2, 4, 1, 2,
    )
    # P given with or without S is the same
    assert score_alignment(pred, sure, possible | sure) == sc


def test_possible_defaults_to_sure():
    # P = S = {(0,0),(1,1)}, A = {(0,0),(0,1)}: A∩S = A∩P = 1
    # precision 1/2, recall 1/2, AER = 1 − 2/4 = 1/2
    sc = score_alignment({(0, 0), (0, 1)}, {(0, 0), (1, 1)})
    assert (sc.precision, sc.recall, sc.aer) == (0.5, 0.5, 0.5)


def test_possible_only_hits_count_for_precision_not_recall():
    # A = {(0,1)} ⊂ P \ S: A∩P = 1, A∩S = 0 → precision 1, recall 0,
    # AER = 1 − (0 + 1)/(1 + 1) = 1/2
    sc = score_alignment({(0, 1)}, {(0, 0)}, {(0, 1)})
    assert sc.precision == 1.0 and sc.recall == 0.0 and sc.f1 == 0.0
    assert sc.aer == pytest.approx(0.5)


def test_perfect_and_disjoint():
    sure = {(0, 0), (1, 2), (2, 1)}
    perfect = score_alignment(sure, sure, sure | {(3, 3)})
    assert (perfect.precision, perfect.recall, perfect.f1, perfect.aer) == (1.0, 1.0, 1.0, 0.0)
    disjoint = score_alignment({(5, 5), (6, 6)}, sure, sure | {(3, 3)})
    assert (disjoint.precision, disjoint.recall, disjoint.f1, disjoint.aer) == (0.0, 0.0, 0.0, 1.0)


def test_empty_conventions():
    # nothing to find and nothing predicted: perfect, no division by zero
    both = score_alignment(set(), set(), set())
    assert (both.precision, both.recall, both.f1, both.aer) == (1.0, 1.0, 1.0, 0.0)
    # empty prediction: vacuous precision 1, recall 0, AER = 1 − 0/2 = 1
    no_pred = score_alignment(set(), {(0, 0), (1, 1)})
    assert (no_pred.precision, no_pred.recall, no_pred.f1, no_pred.aer) == (1.0, 0.0, 0.0, 1.0)
    # empty sure gold (possible only): recall vacuous 1, AER = 1 − (0 + 1)/(2 + 0) = 1/2
    no_sure = score_alignment({(0, 0), (1, 1)}, set(), {(0, 0)})
    assert no_sure.recall == 1.0 and no_sure.precision == 0.5
    assert no_sure.aer == pytest.approx(0.5) == pytest.approx(1 - no_sure.precision)
    assert all(math.isfinite(v) for v in (no_sure.f1, no_pred.f1, both.f1))


def test_corpus_micro_average_equals_hand_sum():
    # sentence 1 (as in test_hand_computed_scores): |A|=3 |S|=2 A∩S=1 A∩P=2 (AER 0.4)
    g1 = ({(0, 0), (1, 1)}, {(0, 0), (1, 1), (1, 2), (2, 2)})
    a1 = {(0, 0), (1, 2), (2, 1)}
    # sentence 2: S={(0,0)}, P={(0,0),(0,1)}, A={(0,1),(1,1)}: |A|=2 |S|=1 A∩S=0 A∩P=1
    # (AER 1 − 1/3 = 2/3)
    g2 = ({(0, 0)}, {(0, 0), (0, 1)})
    a2 = {(0, 1), (1, 1)}
    # micro: |A|=5 |S|=3 A∩S=1 A∩P=3 → P = 3/5, R = 1/3, AER = 1 − 4/8 = 1/2
    # (the macro mean of sentence AERs would be (0.4 + 2/3)/2 ≈ 0.533)
    sc = score_corpus([a1, a2], [g1, g2])
    assert sc.precision == pytest.approx(3 / 5)
    assert sc.recall == pytest.approx(1 / 3)
    assert sc.aer == pytest.approx(0.5)
    assert sc.f1 == pytest.approx(2 * (3 / 5) * (1 / 3) / (3 / 5 + 1 / 3))
    assert (sc.n_pred, sc.n_sure, sc.n_pred_sure, sc.n_pred_possible, sc.n_sentences) == (
        5, 3, 1, 3, 2,
    )
    one = score_alignment(a1, *g1)
    two = score_alignment(a2, *g2)
    assert sc == AlignmentScores.from_counts(
        one.n_pred + two.n_pred,
        one.n_sure + two.n_sure,
        one.n_possible + two.n_possible,
        one.n_pred_sure + two.n_pred_sure,
        one.n_pred_possible + two.n_pred_possible,
        n_sentences=2,
    )


def test_corpus_accepts_gold_objects_and_checks_lengths():
    class Gold:
        def __init__(self, sure, possible):
            self.sure, self.possible = sure, possible

    golds = [Gold({(0, 0)}, {(0, 0), (1, 1)})]
    assert score_corpus([{(0, 0)}], golds).aer == 0.0
    with pytest.raises(ValueError, match="1 predicted alignments but 2 gold"):
        score_corpus([{(0, 0)}], golds * 2)


def test_jaccard():
    assert jaccard(set(), set()) == 1.0
    assert jaccard({(0, 0)}, set()) == 0.0
    # ∩ = {(0,0)}, ∪ = {(0,0),(1,1),(2,2)} → 1/3
    assert jaccard({(0, 0), (1, 1)}, {(0, 0), (2, 2)}) == pytest.approx(1 / 3)


# ---------------------------------------------------------------- link extraction


def test_argmax_directions_on_hand_matrix():
    # row argmaxes: s0→t0 (.90), s1→t0 (.65), s2→t2 (.80)
    fwd = {(0, 0), (1, 0), (2, 2)}
    # column argmaxes: t0→s0 (.90), t1→s0 (.80), t2→s2 (.80), t3→s1 (.60)
    bwd = {(0, 0), (0, 1), (2, 2), (1, 3)}
    assert argmax_links(HAND, "forward") == fwd
    assert argmax_links(HAND, "backward") == bwd
    assert argmax_links(HAND) == fwd & bwd == {(0, 0), (2, 2)}
    assert argmax_links(HAND, "union") == fwd | bwd
    with pytest.raises(ValueError, match="direction"):
        argmax_links(HAND, "sideways")


def test_itermax_reproduces_simalign_on_hand_matrix():
    # SimAlign iter_max (cisnlp/simalign, simalign/simalign.py), max_count=2, alpha 0.9.
    # Round 1 = argmax intersection {(0,0), (2,2)}: rows s0, s2 and columns t0, t2 aligned.
    # Round 2 weights: 0 where row and column are both aligned, 0.9 where exactly one is,
    # min(1.8, 1) = 1 where neither is:
    #   s0: [0, .9·.80=.72, 0, .9·.10=.09]
    #   s1: [.9·.65=.585, 1·.20=.20, .9·.30=.27, 1·.60=.60]
    #   s2: [0, .9·.20=.18, 0, .9·.50=.45]
    # row argmaxes: s0→t1, s1→t3 (.60 > .585), s2→t3
    # column argmaxes: t0→s1, t1→s0, t2→s1, t3→s1 (.60 > .45)
    # intersection: (0,1) and (1,3), both with a free side → added. (2,3) is not
    # mutual. Round 3 would find every row aligned and stop.
    expected = {(0, 0), (2, 2), (0, 1), (1, 3)}
    assert itermax_links(HAND) == expected
    assert itermax_links(HAND, max_iter=5) == expected
    assert itermax_links(HAND, max_iter=1) == argmax_links(HAND)
    # alpha = 1 removes the discount: s1 now prefers t0 (.65 > .60) and t0's only
    # non-zero weighted entry is s1, so (1,0) is added instead of (1,3).
    assert itermax_links(HAND, alpha=1.0) == {(0, 0), (2, 2), (0, 1), (1, 0)}


def test_itermax_small_side_is_argmax_intersection():
    # SimAlign returns the plain intersection when min(n, m) <= 2
    s = np.array([[0.9, 0.8, 0.7], [0.85, 0.1, 0.2]])
    assert itermax_links(s, max_iter=4) == argmax_links(s) == {(0, 0)}


def test_itermax_grows_monotonically():
    rng = np.random.default_rng(0)
    for _ in range(50):
        s = rng.random(tuple(rng.integers(3, 9, 2)))
        prev = set()
        for k in range(1, 5):
            cur = itermax_links(s, max_iter=k)
            assert prev <= cur
            prev = cur


def test_threshold_on_identity_like_plan():
    from optical_core.ot.config import OTConfig
    from optical_core.ot.solve import solve

    n = 5
    cost = 1.0 - np.eye(n)
    exact = solve(cost, config=OTConfig(solver="exact")).plan  # = I / 5
    assert threshold_links(exact) == {(i, i) for i in range(n)}
    sharp = solve(cost, config=OTConfig(solver="sinkhorn", epsilon=0.05)).plan
    assert threshold_links(sharp) == {(i, i) for i in range(n)}
    # a fully blurred plan scores 1/n = 0.2 everywhere: nothing passes 0.5
    assert threshold_links(np.full((n, n), 1 / n**2)) == set()
    assert threshold_links(np.full((n, n), 1 / n**2), threshold=0.2) == {
        (i, j) for i in range(n) for j in range(n)
    }


def test_threshold_scale_and_relative():
    # 2 sources, 4 targets: each source splits its 1/2 evenly over two targets.
    # Each cell is 1/4, so P · max(2, 4) = 1 for all four links.
    p = np.array([[0.25, 0.25, 0, 0], [0, 0, 0.25, 0.25]])
    links = {(0, 0), (0, 1), (1, 2), (1, 3)}
    assert threshold_links(p) == links
    assert threshold_links(p, scale="none") == set()  # raw 0.25 < 0.5
    # a partial plan that moved 40 % of the mass scores 0.4 per link with scale="max";
    # relative mode compares with the largest entry instead
    assert threshold_links(0.4 * p) == set()
    assert threshold_links(0.4 * p, relative=True) == links
    assert threshold_links(np.zeros((2, 3)), relative=True) == set()


def test_extract_links_dispatch():
    assert LINK_METHODS == ("ot", "argmax", "itermax")
    assert extract_links(HAND, "argmax", direction="forward") == argmax_links(HAND, "forward")
    assert extract_links(HAND, "itermax") == itermax_links(HAND)
    assert extract_links(HAND / HAND.sum(), "ot", threshold=0.3) == threshold_links(
        HAND / HAND.sum(), threshold=0.3
    )
    with pytest.raises(ValueError, match="unknown link method"):
        extract_links(HAND, "mwmf")


def test_link_functions_handle_empty_and_reject_nan():
    empty = np.zeros((0, 3))
    for method in LINK_METHODS:
        assert extract_links(empty, method) == set()
    bad = HAND.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="row 1, column 2"):
        argmax_links(bad)
    with pytest.raises(ValueError, match="2-D"):
        threshold_links(np.ones(3))


def test_diagonal_links():
    assert diagonal_links(3, 3) == {(0, 0), (1, 1), (2, 2)}
    # i·(m−1)/(n−1) = i·4/2: 0, 2, 4 — first↔first, last↔last
    assert diagonal_links(3, 5) == {(0, 0), (1, 2), (2, 4)}
    # i·2/4 = 0, .5, 1, 1.5, 2 → round half to even: 0, 0, 1, 2, 2
    assert diagonal_links(5, 3) == {(0, 0), (1, 0), (2, 1), (3, 2), (4, 2)}
    assert diagonal_links(1, 4) == {(0, 0)}
    assert diagonal_links(0, 4) == set()


def test_links_to_matrix():
    m = links_to_matrix({(0, 1), (2, 0)}, 3, 2)
    assert m.dtype == bool and m.sum() == 2 and m[0, 1] and m[2, 0]
    with pytest.raises(ValueError, match="outside"):
        links_to_matrix({(3, 0)}, 3, 2)


# ----------------------------------------------------------------- subword → word


def test_word_links_mapping():
    src_ids = [0, 0, 1]  # "un ##able go"
    tgt_ids = [0, 1, 1, 2]
    sub = {(0, 0), (1, 1), (1, 2), (2, 3)}
    # (0,0)→(0,0); (1,1)→(0,1); (1,2)→(0,1); (2,3)→(1,2)
    assert word_links(sub, src_ids, tgt_ids) == {(0, 0), (0, 1), (1, 2)}
    # None marks a subword of no word (a special token): its links are dropped
    assert word_links({(0, 0), (1, 1)}, [None, 0], [0, 0]) == {(0, 0)}
    with pytest.raises(ValueError, match="outside"):
        word_links({(3, 0)}, src_ids, tgt_ids)


def test_pool_to_words_sum_preserves_mass_and_marginals():
    rng = np.random.default_rng(1)
    p = rng.random((6, 4))
    p /= p.sum()
    src_ids = [0, 0, 1, 2, 2, 2]
    tgt_ids = [0, 1, 1, 2]
    w = pool_to_words(p, src_ids, tgt_ids, how="sum")
    assert w.shape == (3, 3)
    assert w.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(w.sum(1), [p[:2].sum(), p[2].sum(), p[3:].sum()])
    np.testing.assert_allclose(w.sum(0), [p[:, 0].sum(), p[:, 1:3].sum(), p[:, 3].sum()])


def test_pool_to_words_mean_and_max_by_hand():
    s = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    # source words: {0,1} as one word; target words: {0}, {1,2}
    mean = pool_to_words(s, [0, 0], [0, 1, 1], how="mean")
    # word (0,0): mean(1,4) = 2.5; word (0,1): mean(2,3,5,6) = 4
    np.testing.assert_allclose(mean, [[2.5, 4.0]])
    np.testing.assert_allclose(pool_to_words(s, [0, 0], [0, 1, 1], how="max"), [[4.0, 6.0]])
    np.testing.assert_allclose(pool_to_words(s, [0, 1], [0, 1, 2]), s)  # identity map
    # a None subword is left out
    np.testing.assert_allclose(pool_to_words(s, [None, 0], [0, 1, 1], how="sum"), [[4.0, 11.0]])


def test_pool_to_words_rejects_bad_ids():
    s = np.ones((2, 2))
    with pytest.raises(ValueError, match="3 entries but the matrix has 2 columns"):
        pool_to_words(s, [0, 0], [0, 1, 2])
    with pytest.raises(ValueError, match=r"words \[1\] have no subwords"):
        pool_to_words(s, [0, 2], [0, 1])
    with pytest.raises(ValueError, match="non-negative integers"):
        pool_to_words(s, [0, -1], [0, 1])
    with pytest.raises(ValueError, match="pooling"):
        pool_to_words(s, [0, 1], [0, 1], how="median")


# ------------------------------------------------------------------- gold data


def _gold_dir() -> Path:
    env = os.environ.get("OPTICAL_DATA_DIR")
    base = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    return base / "gold_alignments"


@pytest.mark.skipif(not (_gold_dir() / "enfr.gold").exists(), reason="no gold alignments")
def test_diagonal_baseline_aer_on_enfr():
    gold_dir = _gold_dir()
    pairs = [
        line.split("|||")
        for line in (gold_dir / "enfr.src-tgt").read_text(encoding="utf-8").splitlines()
    ]
    golds = read_pharaoh_file(gold_dir / "enfr.gold", one_indexed=True)
    assert len(pairs) == len(golds) == 200
    lengths = [(len(src.split()), len(tgt.split())) for src, tgt in pairs]
    for (n, m), (_, possible) in zip(lengths, golds):
        assert all(i < n and j < m for i, j in possible)
    preds = [diagonal_links(n, m) for n, m in lengths]
    sc = score_corpus(preds, golds)
    assert sc.n_sentences == 200
    # Measured 52.89 (P 50.7, R 41.3); the design note quotes 52.9. round(i·m/n) would
    # give 54.1. A sane range guards against a scoring bug without pinning the digits.
    assert 0.50 < sc.aer < 0.56
    assert sc.aer == pytest.approx(0.529, abs=0.001)
    # the same links score AER 1 when shifted off by 1000 positions
    far = [{(i + 1000, j) for i, j in p} for p in preds]
    assert score_corpus(far, golds).aer == 1.0
    # and gold against itself is perfect
    assert score_corpus([s for s, _ in golds], golds).aer == 0.0


def test_module_is_streamlit_free():
    src = Path(al.__file__).read_text(encoding="utf-8")
    assert "streamlit" not in src


@pytest.mark.skipif(not (_gold_dir() / "enfr.gold").exists(), reason="no gold alignments")
def test_diagonal_baseline_agrees_with_data_loader():
    from optical_core.gold import load_gold

    pairs = load_gold("enfr", _gold_dir().parent)
    preds = [diagonal_links(len(p.src_tokens), len(p.tgt_tokens)) for p in pairs]
    assert score_corpus(preds, pairs).aer == pytest.approx(0.529, abs=0.001)

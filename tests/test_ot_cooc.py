"""optical_core.ot.cooc: bitext co-occurrence counts as a transport cost (NPMI and Dice,
the [0, 2] range, unknown tokens, batch = pair by pair, and a plan that the cost moves)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from optical_core.ot.batch import sinkhorn_batch
from optical_core.ot.config import OTInputError
from optical_core.ot.cooc import cooccurrence_table

# Four sentence pairs: source token 1 always meets target 10, 2 meets 20, 3 meets 30.
SRC = [[1, 2], [1, 3], [2, 3, 3], [1]]
TGT = [[10, 20], [10, 30], [20, 30], [10, 10]]


def test_counts_npmi_and_dice_by_hand():
    table = cooccurrence_table(SRC, TGT, min_count=1)
    assert table.n_pairs == 4
    assert table.src_df[[1, 2, 3]].tolist() == [3, 2, 2]  # a repeat counts once per pair
    assert table.tgt_df[[10, 20, 30]].tolist() == [3, 2, 2]
    c = table.cost([1, 2], [10, 20, 30])
    # 1 and 10: in the same 3 pairs of 4: NPMI = 1
    assert c[0, 0] == pytest.approx(0.0, abs=1e-6)
    # 1 and 20 share pair 0 only: p(x,e) = 1/4, p(x) = 3/4, p(e) = 2/4
    npmi = math.log(0.25 / (0.75 * 0.5)) / -math.log(0.25)
    assert c[0, 1] == pytest.approx(1 - npmi, rel=1e-6)
    # 2 and 10 share pair 0 only as well
    assert c[1, 0] == pytest.approx(1 - math.log(0.25 / (0.5 * 0.75)) / -math.log(0.25), rel=1e-6)
    dice = cooccurrence_table(SRC, TGT, measure="dice", min_count=1)
    d = dice.cost([1, 2], [10, 20])
    assert d[0, 0] == pytest.approx(0.0, abs=1e-6)  # Dice 2·3 / (3 + 3) = 1
    assert d[0, 1] == pytest.approx(2 * -math.log(2 * 1 / (3 + 2)) / math.log(4), rel=1e-6)


def test_range_never_together_and_unknown_tokens():
    table = cooccurrence_table([[1], [2], [1, 2]], [[10], [20], [10, 20]], min_count=1)
    extra = cooccurrence_table([[1], [2]], [[10], [20]], min_count=1)
    for t in (table, extra, cooccurrence_table([[1], [2]], [[10], [20]], measure="dice",
                                               min_count=1)):
        c = t.cost([1, 2, 7, -1, 10**6], [10, 20, 99, -1])
        assert np.all((c >= 0) & (c <= 2))
        # 7 and 99 were never seen, -1 is padding, 10**6 is past the vocabulary: cost 1
        assert np.all(c[2:] == 1) and np.all(c[:, 2:] == 1)
    c = extra.cost([1], [20])
    assert c[0, 0] == pytest.approx(2.0)  # never in the same pair
    rare = cooccurrence_table(SRC, TGT, min_count=3)  # 2, 3, 20 and 30 were seen twice
    c = rare.cost([1, 2], [10, 20])
    assert c[0, 0] == pytest.approx(0.0, abs=1e-6)
    assert c[0, 1] == 1 and c[1, 0] == 1 and c[1, 1] == 1


def test_batch_equals_pair_by_pair_and_keeps_the_device():
    table = cooccurrence_table(SRC, TGT, min_count=1)
    src = torch.tensor([[1, 2, 3], [3, 1, -1]])
    tgt = torch.tensor([[10, 20], [30, -1]])
    batch = table.cost_batch(src, tgt)
    assert batch.shape == (2, 3, 2) and batch.dtype == torch.float32
    for b in range(2):
        np.testing.assert_allclose(batch[b].numpy(), table.cost(src[b].tolist(), tgt[b].tolist()))
    assert table.cost_batch(src[:, :0], tgt).shape == (2, 0, 2)


def test_the_cooccurrence_cost_moves_the_plan():
    """Embeddings that cannot tell three tokens apart (a constant cost) give a uniform
    plan; mixing in the co-occurrence cost puts the mass on the pairs that co-occur."""
    table = cooccurrence_table(SRC, TGT, min_count=1)
    emb_cost = torch.full((1, 3, 3), 0.5)
    cooc = table.cost_batch(torch.tensor([[1, 2, 3]]), torch.tensor([[10, 20, 30]]))
    plain = sinkhorn_batch(emb_cost, epsilon=0.05, max_iter=2000).plan[0]
    np.testing.assert_allclose(plain.numpy(), 1 / 9, atol=1e-6)
    mixed = sinkhorn_batch(0.5 * emb_cost + 0.5 * cooc, epsilon=0.05, max_iter=2000).plan[0]
    assert torch.all(mixed.diagonal() > 0.3)  # nearly 1/3 each: the one-to-one plan
    assert float(mixed.diagonal().sum()) > 0.95


def test_bad_inputs_are_refused():
    with pytest.raises(OTInputError, match="measure"):
        cooccurrence_table(SRC, TGT, measure="pmi2")
    with pytest.raises(OTInputError, match="min_count"):
        cooccurrence_table(SRC, TGT, min_count=0)
    with pytest.raises(OTInputError, match="one of each"):
        cooccurrence_table(SRC, TGT[:2])
    with pytest.raises(OTInputError, match="at least one"):
        cooccurrence_table([], [])
    with pytest.raises(OTInputError, match="shape"):
        cooccurrence_table(SRC, TGT).cost_batch(torch.tensor([1, 2]), torch.tensor([[10]]))

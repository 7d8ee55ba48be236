"""optical_core.distill.batching: length-grouped batches hold every row once, stay random
in content and order, and pad far less than random batches."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from optical_core.distill.batching import (
    LengthGroupedBatchSampler,
    length_grouped_batches,
    padded_share,
)


@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.integers(1, 60), min_size=0, max_size=300),
       batch_size=st.integers(1, 33), seed=st.integers(0, 10**6), group=st.integers(1, 8),
       drop_last=st.booleans())
def test_every_row_once_in_batches_of_the_right_size(lengths, batch_size, seed, group, drop_last):
    batches = length_grouped_batches(lengths, batch_size, seed=seed, group=group,
                                     drop_last=drop_last)
    seen = [i for b in batches for i in b]
    assert len(seen) == len(set(seen))
    assert all(1 <= len(b) <= batch_size for b in batches)
    if drop_last:
        assert all(len(b) == batch_size for b in batches)
        chunk = group * batch_size
        assert len(seen) >= len(lengths) - chunk * (len(lengths) // chunk + 1)
    else:
        assert sorted(seen) == list(range(len(lengths)))
    assert batches == length_grouped_batches(lengths, batch_size, seed=seed, group=group,
                                             drop_last=drop_last)  # seeded


def caption_lengths(n=2000, seed=0):
    rng = random.Random(seed)
    return [max(3, min(48, int(rng.lognormvariate(2.6, 0.35)))) for _ in range(n)]


def test_grouping_pads_far_less_than_random_batches():
    lengths = caption_lengths()
    rng = random.Random(1)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    random_batches = [order[i:i + 32] for i in range(0, len(order), 32)]
    grouped = length_grouped_batches(lengths, 32, seed=0)
    assert padded_share(lengths, grouped) < 0.1 < 0.25 < padded_share(lengths, random_batches)


def test_epochs_differ_and_batches_are_not_sorted_globally():
    lengths = caption_lengths()
    e0 = length_grouped_batches(lengths, 32, seed=7)
    e1 = length_grouped_batches(lengths, 32, seed=8)
    assert e0 != e1
    longest = [max(lengths[i] for i in b) for b in e0]
    assert longest != sorted(longest) and longest != sorted(longest, reverse=True)


def test_padded_share_on_a_hand_case():
    assert padded_share([1, 3, 2, 2], [[0, 1], [2, 3]]) == 1 - 8 / 10
    assert padded_share([], []) == 0.0


def test_the_sampler_follows_the_trainers_epochs():
    lengths = caption_lengths(300)
    data = list(range(300))
    sampler = LengthGroupedBatchSampler(data, batch_size=32, drop_last=False, seed=3,
                                        lengths=lengths, group=4)
    first = list(sampler)
    assert len(first) == len(sampler)
    assert sorted(i for b in first for i in b) == data
    sampler.set_epoch(1)
    assert list(sampler) != first
    dropped = LengthGroupedBatchSampler(data, batch_size=32, drop_last=True, seed=3,
                                        lengths=lengths, group=4)
    assert len(list(dropped)) == len(dropped)

"""Length-grouped batches: sentences of similar length trained together, so little of a
batch is padding.

A batch is padded to its longest sentence, and a transformer's cost grows with the
padded length, so random batches of short captions spend a large share of every forward
and backward pass on padding. :class:`LengthGroupedBatchSampler` shuffles the whole set
(seeded, anew each epoch), cuts it into *mega-batches* of ``group`` batches, sorts each
mega-batch by length, cuts it into batches and shuffles the order of all batches. Batches
stay random in content and order; only their length spread shrinks. This is what
``transformers``' ``LengthGroupedSampler`` does (mega-batches of 50), as a batch sampler
that ``SentenceTransformerTrainer`` accepts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

#: Batches per mega-batch: large enough to group lengths well, small enough to keep the
#: batches' content random.
DEFAULT_GROUP = 50


def padded_share(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """The share of padded positions when each batch is padded to its longest member."""
    real = padded = 0
    for batch in batches:
        ls = [lengths[i] for i in batch]
        if ls:
            real += sum(ls)
            padded += max(ls) * len(ls)
    return 1.0 - real / padded if padded else 0.0


def length_grouped_batches(lengths: Sequence[int], batch_size: int, seed: int,
                           group: int = DEFAULT_GROUP, drop_last: bool = False) -> list[list[int]]:
    """Indices of ``lengths`` in length-grouped batches (see the module docstring)."""
    gen = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(len(lengths), generator=gen).tolist()
    mega = max(1, group) * batch_size
    batches: list[list[int]] = []
    for start in range(0, len(order), mega):
        chunk = sorted(order[start:start + mega], key=lambda i: lengths[i])
        batches += [chunk[k:k + batch_size] for k in range(0, len(chunk), batch_size)]
    if drop_last:
        batches = [b for b in batches if len(b) == batch_size]
    perm = torch.randperm(len(batches), generator=gen).tolist()
    return [batches[i] for i in perm]


def _base():
    from sentence_transformers.base.sampler import DefaultBatchSampler

    return DefaultBatchSampler


class LengthGroupedBatchSampler(_base()):
    """A ``SentenceTransformerTrainer`` batch sampler of length-grouped batches.

    Pass ``functools.partial(LengthGroupedBatchSampler, lengths=...)`` as the training
    arguments' ``batch_sampler``; the trainer adds the dataset, batch size, ``drop_last``
    and seed. ``lengths[i]`` is the padded cost of row ``i`` (its token count).
    """

    def __init__(self, dataset, batch_size: int, drop_last: bool,
                 valid_label_columns: list[str] | None = None,
                 generator: torch.Generator | None = None, seed: int = 0,
                 lengths: Sequence[int] = (), group: int = DEFAULT_GROUP) -> None:
        super().__init__(dataset, batch_size=batch_size, drop_last=drop_last,
                         valid_label_columns=valid_label_columns, generator=generator, seed=seed)
        if len(lengths) != len(dataset):
            raise ValueError(f"{len(lengths)} lengths for {len(dataset)} rows")
        self.lengths = list(lengths)
        self.group = group

    def __iter__(self) -> Iterator[list[int]]:
        yield from length_grouped_batches(self.lengths, self.batch_size,
                                          seed=self.seed + self.epoch, group=self.group,
                                          drop_last=self.drop_last)

    def __len__(self) -> int:
        n, b = len(self.lengths), self.batch_size
        if not self.drop_last:
            return sum(-(-min(self.group * b, n - s) // b) for s in range(0, n, self.group * b))
        return sum(min(self.group * b, n - s) // b for s in range(0, n, self.group * b))

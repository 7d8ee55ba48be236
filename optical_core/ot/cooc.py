"""A transport cost from bitext co-occurrence: tokens that appear in the same sentence
pairs are cheap to match.

Over a bitext of ``N`` sentence pairs, with token id sequences ``src_docs[k]`` (one
language) and ``tgt_docs[k]`` (the other), count each token once per pair:

* ``df(x)``: pairs whose source side contains source token ``x``;
* ``df(e)``: pairs whose target side contains target token ``e``;
* ``df(x, e)``: pairs that contain both.

Two measures turn the counts into a cost in ``[0, 2]``, the range of the cosine cost
``1 − cos``, so the two can be mixed (``C = (1 − λ)(1 − cos) + λ C_cooc``):

``"npmi"`` (normalised pointwise mutual information, Bouma 2009), with ``p = df / N``::

    NPMI(x, e) = log(p(x, e) / (p(x) p(e))) / −log p(x, e)      in [−1, 1]
    C(x, e)    = 1 − NPMI(x, e)                                  in [0, 2]

    never in the same pair: C = 2;  independent: C = 1;  always together: C = 0
    (p(x, e) = 1, where the ratio is 0 / 0, counts as always together)

``"dice"`` (the Dice coefficient of the two pair sets, as in bitext word alignment)::

    Dice(x, e) = 2 df(x, e) / (df(x) + df(e))                    in [0, 1]
    C(x, e)    = min(2, 2 (−log Dice(x, e)) / log N)             in [0, 2]

    Dice >= 1/N once the two meet at all, so C < 2 exactly when they co-occur; never: 2

A token seen in fewer than ``min_count`` pairs (or unknown: an id the bitext never had, or a
negative padding id) costs 1 against everything. A constant row or column does not move a
balanced plan, so such a token is placed by the other cost alone.

:func:`cooccurrence_table` counts a bitext once; :meth:`CoocTable.cost` gives the
``(n, m)`` cost of one pair (what the Alignment page needs), :meth:`CoocTable.cost_batch`
the ``(B, n, m)`` costs of a padded batch (what the distillation loss needs). The table is
sparse: only the pairs of tokens that ever co-occur are stored.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from optical_core.ot.config import OTInputError

COOC_MEASURES: tuple[str, ...] = ("npmi", "dice")
#: Pairs counted at once while building a table (bounds the memory of the pair keys).
_CHUNK = 2048


@dataclass(frozen=True)
class CoocTable:
    """Sentence-level co-occurrence counts of a bitext (see the module docstring).

    Attributes:
        n_pairs: ``N``, the number of sentence pairs counted.
        src_df: ``(V_s,)`` int64, ``df(x)`` per source token id.
        tgt_df: ``(V_t,)`` int64, ``df(e)`` per target token id.
        keys: ``(K,)`` int64, sorted ``x · V_t + e`` of every pair of tokens that co-occur.
        joint: ``(K,)`` int64, ``df(x, e)`` of ``keys``.
        measure: ``"npmi"`` or ``"dice"``.
        min_count: tokens with ``df < min_count`` cost 1 against everything.
    """

    n_pairs: int
    src_df: np.ndarray
    tgt_df: np.ndarray
    keys: np.ndarray
    joint: np.ndarray
    measure: str = "npmi"
    min_count: int = 2

    @property
    def src_vocab(self) -> int:
        return int(self.src_df.shape[0])

    @property
    def tgt_vocab(self) -> int:
        return int(self.tgt_df.shape[0])

    def cost_batch(self, src_ids: torch.Tensor, tgt_ids: torch.Tensor) -> torch.Tensor:
        """Co-occurrence costs of a padded batch.

        Args:
            src_ids: ``(B, n)`` integer source token ids (any id < 0 or >= ``V_s``, e.g.
                padding, costs 1).
            tgt_ids: ``(B, m)`` integer target token ids, likewise.

        Returns:
            ``(B, n, m)`` float32 costs in ``[0, 2]`` on ``src_ids``' device.
        """
        if src_ids.dim() != 2 or tgt_ids.dim() != 2 or src_ids.shape[0] != tgt_ids.shape[0]:
            raise OTInputError(f"token ids of shape (B, n) and (B, m) expected, got "
                               f"{tuple(src_ids.shape)} and {tuple(tgt_ids.shape)}")
        device = src_ids.device
        s = src_ids.detach().to("cpu", torch.long)
        t = tgt_ids.detach().to("cpu", torch.long)
        s_ok = (s >= 0) & (s < self.src_vocab)
        t_ok = (t >= 0) & (t < self.tgt_vocab)
        s_safe, t_safe = torch.where(s_ok, s, 0), torch.where(t_ok, t, 0)
        df_s = torch.from_numpy(self.src_df)[s_safe] * s_ok  # (B, n)
        df_t = torch.from_numpy(self.tgt_df)[t_safe] * t_ok  # (B, m)
        keys = torch.from_numpy(self.keys)
        query = s_safe.unsqueeze(2) * self.tgt_vocab + t_safe.unsqueeze(1)  # (B, n, m)
        if keys.numel():
            pos = torch.searchsorted(keys, query.reshape(-1)).clamp_max(keys.numel() - 1)
            hit = keys[pos] == query.reshape(-1)
            joint = torch.where(hit, torch.from_numpy(self.joint)[pos], 0).reshape(query.shape)
        else:
            joint = torch.zeros_like(query)
        cost = _cost_from_counts(joint.double(), df_s.double().unsqueeze(2),
                                 df_t.double().unsqueeze(1), self.n_pairs, self.measure)
        known = (df_s >= self.min_count).unsqueeze(2) & (df_t >= self.min_count).unsqueeze(1)
        cost = torch.where(known, cost, torch.ones_like(cost))
        return cost.float().to(device)

    def cost(self, src_ids: Sequence[int], tgt_ids: Sequence[int]) -> np.ndarray:
        """The ``(n, m)`` float32 co-occurrence cost between one source and one target
        token id sequence (see :meth:`cost_batch`)."""
        s = torch.as_tensor(np.asarray(src_ids, dtype=np.int64)).reshape(1, -1)
        t = torch.as_tensor(np.asarray(tgt_ids, dtype=np.int64)).reshape(1, -1)
        return self.cost_batch(s, t)[0].numpy()


def _cost_from_counts(joint: torch.Tensor, df_s: torch.Tensor, df_t: torch.Tensor,
                      n: int, measure: str) -> torch.Tensor:
    """The cost of :data:`COOC_MEASURES` from broadcastable float64 counts."""
    if measure == "dice":
        dice = 2 * joint / (df_s + df_t).clamp_min(1)
        neg_log = -torch.log(dice)  # inf where the two never meet
        return (2 * neg_log / math.log(max(n, 2))).clamp(0, 2)
    p_xy, p_x, p_y = joint / n, df_s / n, df_t / n
    pmi = torch.log(p_xy) - torch.log(p_x) - torch.log(p_y)  # nan / -inf where a count is 0
    denom = -torch.log(p_xy)
    npmi = torch.where(denom > 0, pmi / denom.clamp_min(1e-300), torch.ones_like(pmi))
    npmi = torch.where(joint > 0, npmi, -torch.ones_like(npmi))
    return (1 - npmi.clamp(-1, 1)).clamp(0, 2)


def cooccurrence_table(
    src_docs: Iterable[Sequence[int]],
    tgt_docs: Iterable[Sequence[int]],
    measure: str = "npmi",
    min_count: int = 2,
    src_vocab: int | None = None,
    tgt_vocab: int | None = None,
) -> CoocTable:
    """Count a bitext's sentence-level token co-occurrences (see the module docstring).

    Args:
        src_docs: one token id sequence per sentence pair (source side); repeats within a
            sentence count once, negative ids (padding) are skipped.
        tgt_docs: the target side, same length as ``src_docs``.
        measure: ``"npmi"`` (``C = 1 − NPMI``) or ``"dice"`` (``C = 2 (−log Dice) / log N``).
        min_count: a token seen in fewer pairs costs 1 against everything (>= 1).
        src_vocab, tgt_vocab: vocabulary sizes ``V_s``, ``V_t`` (default: the largest id
            seen + 1; ids at or above them cost 1 later).

    Returns:
        :class:`CoocTable`.

    Raises:
        OTInputError: sides of different lengths, no pairs, an unknown measure or
            ``min_count < 1``.
    """
    if measure not in COOC_MEASURES:
        raise OTInputError(
            f"unknown co-occurrence measure {measure!r}; choose one of {COOC_MEASURES}")
    if int(min_count) < 1:
        raise OTInputError("min_count must be at least 1")
    src = [_unique_ids(d) for d in src_docs]
    tgt = [_unique_ids(d) for d in tgt_docs]
    if len(src) != len(tgt):
        raise OTInputError(f"{len(src)} source and {len(tgt)} target sentences: a bitext "
                           "needs one of each per pair")
    if not src:
        raise OTInputError("a co-occurrence table needs at least one sentence pair")
    top_s = max((int(d[-1]) for d in src if d.size), default=-1) + 1
    top_t = max((int(d[-1]) for d in tgt if d.size), default=-1) + 1
    vs = max(int(src_vocab or 0), top_s, 1)
    vt = max(int(tgt_vocab or 0), top_t, 1)
    src_df = np.bincount(np.concatenate(src), minlength=vs).astype(np.int64)[:vs]
    tgt_df = np.bincount(np.concatenate(tgt), minlength=vt).astype(np.int64)[:vt]
    parts_k: list[np.ndarray] = []
    parts_c: list[np.ndarray] = []
    for start in range(0, len(src), _CHUNK):
        keys = [(s[:, None] * vt + t[None, :]).ravel()
                for s, t in zip(src[start:start + _CHUNK], tgt[start:start + _CHUNK], strict=True)]
        flat = np.concatenate(keys) if keys else np.empty(0, np.int64)
        k, c = np.unique(flat, return_counts=True)
        parts_k.append(k)
        parts_c.append(c)
    all_k = np.concatenate(parts_k)
    keys, inverse = np.unique(all_k, return_inverse=True)
    joint = np.bincount(inverse, weights=np.concatenate(parts_c), minlength=keys.size)
    return CoocTable(len(src), src_df, tgt_df, keys.astype(np.int64), joint.astype(np.int64),
                     measure, int(min_count))


def _unique_ids(ids: Sequence[int]) -> np.ndarray:
    arr = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64).ravel()
    return np.unique(arr[arr >= 0])

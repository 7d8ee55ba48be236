"""The training bitext's co-occurrence cost for the OT loss (``cooc_weight``).

:func:`bitext_cooc` tokenizes the bitext once, the foreign side with the student's
tokenizer and the English side with the teacher's, keeps the tokens that carry mass in the
loss (:func:`~optical_core.distill.teacher_cache.content_mask`) and counts them with
:func:`optical_core.ot.cooc.cooccurrence_table`. The loss mixes the resulting cost into
the plan's cost (see :class:`~optical_core.distill.loss.OpticalLoss`). It also keeps each
row's English token ids, in the order of the teacher cache's rows, so the loss can look up
the cost when it reads the teacher from the cache and never sees the English tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from optical_core.distill.config import DistillConfig
from optical_core.distill.teacher_cache import content_mask, ragged_rows, special_ids, tokenize
from optical_core.ot.cooc import CoocTable, cooccurrence_table

#: Tokens seen in fewer training pairs cost 1 against everything (no evidence either way).
MIN_COUNT = 2


def content_ids(model, texts: Sequence[str], batch_size: int = 256) -> list[list[int]]:
    """The ids of the tokens of each text that carry mass in the OT loss (special tokens
    and padding left out), as ``model`` (a ``SentenceTransformer``) tokenizes them."""
    specials = special_ids(model.tokenizer)
    out: list[list[int]] = []
    for start in range(0, len(texts), batch_size):
        feats = tokenize(model, list(texts[start:start + batch_size]))
        mask = content_mask(feats["input_ids"], feats["attention_mask"], specials)
        out += [row[m].tolist() for row, m in zip(feats["input_ids"], mask, strict=True)]
    return out


@dataclass
class BitextCooc:
    """A bitext's co-occurrence table and its English side's token ids per row.

    Attributes:
        table: the counts (:class:`~optical_core.ot.cooc.CoocTable`): source = the
            student's foreign tokens, target = the teacher's English tokens.
        en_ids: ``(T,)`` int64, the English content-token ids of every row, one row after
            the other (the layout of the teacher cache's ``tokens``).
        offsets: ``(N + 1,)`` int64, row ``i`` owns ``en_ids[offsets[i]:offsets[i + 1]]``.
    """

    table: CoocTable
    en_ids: torch.Tensor
    offsets: torch.Tensor

    def english_ids(self, rows: torch.Tensor) -> torch.Tensor:
        """``(B, m)`` English token ids of ``rows`` (``(B,)``), padded with -1 to the
        longest, aligned with :meth:`TeacherEmbeddings.batch`'s tokens."""
        _, at, mask = ragged_rows(self.offsets, rows, self.en_ids.numel())
        ids = self.en_ids[at] if self.en_ids.numel() else torch.zeros_like(at)
        return torch.where(mask, ids, torch.full_like(ids, -1))


def bitext_cooc(cfg: DistillConfig, student, teacher,
                pairs: Sequence[tuple[str, str]]) -> BitextCooc:
    """Count the ``(english, foreign)`` training pairs (see the module docstring)."""
    foreign = content_ids(student, [x for _, x in pairs])
    english = content_ids(teacher, [en for en, _ in pairs])
    table = cooccurrence_table(foreign, english, measure=cfg.cooc_measure, min_count=MIN_COUNT,
                               src_vocab=len(student.tokenizer), tgt_vocab=len(teacher.tokenizer))
    lengths = torch.tensor([len(e) for e in english], dtype=torch.long)
    offsets = torch.zeros(len(english) + 1, dtype=torch.long)
    offsets[1:] = torch.cumsum(lengths, 0)
    flat = torch.tensor([i for e in english for i in e], dtype=torch.long)
    return BitextCooc(table, flat, offsets)

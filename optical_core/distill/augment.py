"""Augment the student's foreign input during training: seeded noise and WordPiece dropout.

The teacher reads the clean English side; the student reads the foreign side, and these
options change what it reads (whatever the loss, so MSE-KD gets the same augmentation as
OT-KD):

* **noise** (``noise_p``, ``noise_max_cer``, ``noise_kind``): a share ``noise_p`` of the
  sentences is perturbed with the seeded noise of :mod:`optical_core.perturb`, one kind
  drawn per sentence from ``noise_kind``, at a target CER drawn uniformly from
  ``[0, noise_max_cer]`` (:func:`noisy_text`);
* **WordPiece dropout** (``subword_dropout``): the tokenized sentence is re-segmented into
  smaller in-vocabulary pieces (:class:`WordPieceDropout`).

Every draw is seeded by ``(seed, epoch, row, purpose)`` (:func:`augment_seed`): a sentence
is read once per epoch, so each reading draws anew, and the draw depends neither on the
batch it lands in nor on the number of processes nor on a resume.

:class:`AugmentingCollator` wraps the trainer's data collator: it perturbs the
``non_english`` column of each batch and, when the loss compares the two
(:meth:`~optical_core.distill.config.DistillConfig.needs_clean`), adds the clean sentence
as a third column ``clean``. The dataset carries each row's index in a ``row`` column
(:func:`~optical_core.distill.models.build_dataset`); :func:`epoch_callback` tells the
collator the epoch.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from typing import Any

import torch

from optical_core.distill.config import DistillConfig, DistillError

#: The dataset column holding each row's index (read and removed by the collator).
ROW_COLUMN = "row"
#: The column of the clean foreign sentence that the collator adds.
CLEAN_COLUMN = "clean"


def augment_seed(seed: int, epoch: int, row: int, purpose: str) -> int:
    """A stable 63-bit seed for one draw (independent of ``PYTHONHASHSEED`` and platform)."""
    h = hashlib.blake2b(f"optical-augment:{purpose}:{int(seed)}:{int(epoch)}:{int(row)}".encode(),
                        digest_size=8)
    return int.from_bytes(h.digest(), "big") >> 1


def noisy_text(text: str, row: int, epoch: int, seed: int, kinds: Sequence[str], p: float,
               max_cer: float, lang: str | None = None) -> str:
    """The foreign sentence as the student reads it: with probability ``p`` perturbed by
    one kind of ``kinds`` (drawn uniformly) at a CER drawn from ``[0, max_cer]``; else
    ``text`` unchanged. Deterministic given ``(seed, epoch, row)``."""
    from optical_core.perturb.noise import perturb

    if p <= 0 or not text.strip():
        return text
    rng = random.Random(augment_seed(seed, epoch, row, "noise"))
    if rng.random() >= p:
        return text
    kind = kinds[rng.randrange(len(kinds))]
    cer = rng.uniform(0.0, max_cer)
    return perturb(text, kind, cer, seed=rng.getrandbits(63), lang=lang).text


# ========================================================================= subwords


class WordPieceDropout:
    """Stochastic re-segmentation of WordPiece tokens into smaller vocabulary pieces.

    WordPiece segments a word greedily, longest in-vocabulary match first, so it has no
    dropout of its own (BPE-dropout, Provilkov et al. 2020, drops merges). Here each token
    of a tokenized sentence is segmented again by the same greedy rule, except that at every
    step, with probability ``p``, the longest match is replaced by a shorter one drawn
    uniformly among the matches whose remainder can still be segmented. The result is a
    valid WordPiece segmentation of the same surface: the first piece keeps the token's
    ``##`` status and every later piece is a ``##`` continuation, all in the vocabulary.
    ``p = 0`` returns the tokens unchanged; a token of one character stays whole.

    Args:
        tokenizer: a WordPiece tokenizer (BERT's ``##`` continuation pieces).

    Raises:
        DistillError: a tokenizer without ``##`` continuation pieces (SentencePiece, BPE).
    """

    def __init__(self, tokenizer) -> None:
        vocab = tokenizer.get_vocab()
        model = getattr(getattr(tokenizer, "backend_tokenizer", None), "model", None)
        self.prefix = getattr(model, "continuing_subword_prefix", None) or "##"
        if sum(1 for t in vocab if t.startswith(self.prefix)) < 50:
            raise DistillError("subword_dropout needs a WordPiece tokenizer (BERT's '##' "
                               "continuation pieces); this student's tokenizer has none")
        self.vocab: dict[str, int] = dict(vocab)
        self.inverse: dict[int, str] = {i: t for t, i in vocab.items()}
        self.special = {int(i) for i in (tokenizer.all_special_ids or []) if i is not None}
        self._options: dict[int, list[list[int]] | None] = {}

    def _piece(self, surface: str, start: int, end: int, first_cont: bool) -> str:
        return (self.prefix if (start > 0 or first_cont) else "") + surface[start:end]

    def _ends(self, token_id: int) -> list[list[int]] | None:
        """For each start position of the token's surface, the ends of in-vocabulary
        pieces whose remainder can be segmented, longest first (``None``: not splittable)."""
        if token_id in self._options:
            return self._options[token_id]
        token = self.inverse.get(token_id)
        opts = None
        if token is not None and token_id not in self.special:
            cont = token.startswith(self.prefix)
            s = token[len(self.prefix):] if cont else token
            if len(s) >= 2:
                n = len(s)
                ok = [False] * (n + 1)
                ok[n] = True
                ends: list[list[int]] = [[] for _ in range(n)]
                for i in range(n - 1, -1, -1):
                    ends[i] = [j for j in range(n, i, -1)
                               if ok[j] and self._piece(s, i, j, cont) in self.vocab]
                    ok[i] = bool(ends[i])
                opts = ends if ok[0] and len(ends[0]) > 1 else None
            self._options[token_id] = opts
        return opts

    def resegment(self, ids: Sequence[int], p: float, rng: random.Random) -> list[int]:
        """``ids`` with each token re-segmented (see the class docstring)."""
        out: list[int] = []
        for tid in ids:
            opts = self._ends(int(tid)) if p > 0 else None
            if opts is None:
                out.append(int(tid))
                continue
            token = self.inverse[int(tid)]
            cont = token.startswith(self.prefix)
            s = token[len(self.prefix):] if cont else token
            start = 0
            while start < len(s):
                cands = opts[start]
                end = cands[0]
                if len(cands) > 1 and rng.random() < p:
                    end = cands[1 + rng.randrange(len(cands) - 1)]
                out.append(self.vocab[self._piece(s, start, end, cont)])
                start = end
        return out

    def apply(self, features: dict[str, Any], prefix: str, rngs: Sequence[random.Random],
              p: float, max_length: int, pad_id: int) -> None:
        """Re-segment the rows of ``features[prefix + "input_ids"]`` in place (one ``rng``
        per row), keep the leading and trailing special tokens, truncate the content so a
        row stays within ``max_length`` tokens, and rebuild the padding, the attention
        mask and the token type ids."""
        ids, mask = features[prefix + "input_ids"], features[prefix + "attention_mask"]
        rows: list[list[int]] = []
        for b, rng in enumerate(rngs):
            real = ids[b][mask[b].bool()].tolist()
            lead = 0
            while lead < len(real) and real[lead] in self.special:
                lead += 1
            trail = len(real)
            while trail > lead and real[trail - 1] in self.special:
                trail -= 1
            content = self.resegment(real[lead:trail], p, rng)
            room = max(max_length - lead - (len(real) - trail), 0)
            rows.append(real[:lead] + content[:room] + real[trail:])
        width = max((len(r) for r in rows), default=0)
        new_ids = torch.full((len(rows), width), pad_id, dtype=ids.dtype)
        new_mask = torch.zeros((len(rows), width), dtype=mask.dtype)
        for b, r in enumerate(rows):
            new_ids[b, :len(r)] = torch.tensor(r, dtype=ids.dtype)
            new_mask[b, :len(r)] = 1
        features[prefix + "input_ids"] = new_ids
        features[prefix + "attention_mask"] = new_mask
        if prefix + "token_type_ids" in features:
            features[prefix + "token_type_ids"] = torch.zeros_like(new_ids)


# ========================================================================= collator


class AugmentingCollator:
    """Wraps the trainer's data collator: augments the foreign side of each batch.

    Each row of the batch (a dict with ``english``, ``non_english``, the label if any and
    :data:`ROW_COLUMN`) gets its ``non_english`` perturbed (:func:`noisy_text`); the
    wrapped collator tokenizes; then the ``non_english`` tokens get WordPiece dropout.
    When ``cfg.needs_clean()``, the clean sentence follows as :data:`CLEAN_COLUMN`, so the
    loss receives ``(english, non_english, clean)``.

    Args:
        base: the trainer's collator (``SentenceTransformerDataCollator``).
        cfg: the run's config (seed, language, the augmentation options).
        student: the student ``SentenceTransformer`` (its tokenizer and max length).
    """

    def __init__(self, base, cfg: DistillConfig, student) -> None:
        self.base = base
        self.seed = int(cfg.seed)
        self.lang = cfg.lang
        self.p = float(cfg.noise_p)
        self.max_cer = float(cfg.noise_max_cer)
        self.kinds = cfg.noise_kinds() if self.p > 0 else ()
        self.dropout_p = float(cfg.subword_dropout)
        self.keep_clean = cfg.needs_clean()
        self.dropout = WordPieceDropout(student.tokenizer) if self.dropout_p > 0 else None
        self.max_length = int(student.max_seq_length or cfg.max_tokens)
        self.pad_id = int(student.tokenizer.pad_token_id or 0)
        #: set by :func:`epoch_callback` at the start of each epoch
        self.epoch = 0

    def __getattr__(self, name: str):  # valid_label_columns and the like
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        rows = [int(f[ROW_COLUMN]) for f in features]
        out_rows = []
        for f, row in zip(features, rows, strict=True):
            clean = f["non_english"]
            new = {"english": f["english"],
                   "non_english": noisy_text(clean, row, self.epoch, self.seed, self.kinds,
                                             self.p, self.max_cer, self.lang)}
            if self.keep_clean:
                new[CLEAN_COLUMN] = clean
            new.update({k: v for k, v in f.items()
                        if k not in ("english", "non_english", ROW_COLUMN)})
            out_rows.append(new)
        batch = self.base(out_rows)
        if self.dropout is not None:
            rngs = [random.Random(augment_seed(self.seed, self.epoch, r, "subword")) for r in rows]
            self.dropout.apply(batch, "non_english_", rngs, self.dropout_p, self.max_length,
                               self.pad_id)
        return batch


def epoch_callback(collator: AugmentingCollator):
    """A ``TrainerCallback`` that tells ``collator`` the epoch at the start of each one
    (the trainer builds the epoch's batches after ``on_epoch_begin``)."""
    from transformers import TrainerCallback

    class _EpochCallback(TrainerCallback):
        def on_epoch_begin(self, args, state, control, **kw):
            collator.epoch = int(math.floor(float(state.epoch or 0.0) + 1e-6))
            return control

    return _EpochCallback()

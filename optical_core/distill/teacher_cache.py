"""The frozen teacher's view of a bitext's English side, computed once and reused.

The teacher never changes during distillation, so its token and sentence embeddings of
the English sentences are the same at every epoch, for every seed, method and learning
rate. :func:`teacher_cache` computes them once (no grad, batches sorted by length, so
hardly any padding) and stores them under ``$OPTICAL_CACHE_DIR/teacher/<key>/``:

* ``embeddings.safetensors``: ``tokens`` ``(T, d)`` float16, the teacher's *content*
  tokens of every sentence one after the other (the tokens :class:`OpticalLoss` gives
  mass: special tokens and padding are left out); ``offsets`` ``(N + 1,)`` int64, sentence
  ``i`` owns ``tokens[offsets[i]:offsets[i + 1]]``; ``sentence`` ``(N, d)`` float32, the
  pooled sentence embeddings (the MSE target).
* ``meta.json``: the key, the shapes and a checksum of the three arrays
  (:func:`~optical_core.fingerprint.content_checksum`), checked on every read.

The key hashes the teacher (weights, tokenizer, module configuration), its maximum length
and the English texts in order, so a changed teacher, token limit or bitext gets a new
entry. An entry is written to a temporary folder and renamed into place: a reader sees a
whole entry or none. An entry that fails its checks (a crash in the middle of a copy, a
truncated file, a changed format, vectors overwritten with other values while the shapes
stayed intact) is discarded and rebuilt, never half-read; a checksum mismatch says so with
a :class:`~optical_core.fingerprint.CacheRebuiltWarning`. Entries written before the
checksum existed have none and are checked by their shapes and values only (a zero
sentence embedding or a zero content token, which a real teacher never gives, fails).

Under ``torchrun`` rank 0 builds the entry and the other ranks wait for it, then every
rank reads the rows of the batches it is given.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from optical_core.caches import cache_root
from optical_core.distill.config import DistillError
from optical_core.fingerprint import (
    CacheRebuiltWarning,
    content_checksum,
    corpus_fingerprint,
    discard_entry,
    weights_fingerprint,
)
from optical_core.safe_write import remove_stale, temp_tag

CACHE_FORMAT = 1
EMBEDDINGS_FILE = "embeddings.safetensors"
META_FILE = "meta.json"
#: How long a non-zero rank waits for rank 0 to write the entry.
WAIT_FOR_BUILD_S = 3600.0


def teacher_cache_dir() -> Path:
    """``$OPTICAL_CACHE_DIR/teacher`` or ``~/.cache/optical-explorer/teacher``."""
    return cache_root() / "teacher"


def content_mask(input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 special_ids: torch.Tensor) -> torch.Tensor:
    """``(B, L)`` bool: real, non-special tokens; a row without any keeps all its real
    tokens (a sentence of special tokens only still needs some mass)."""
    attn = attention_mask.bool()
    mask = attn & ~torch.isin(input_ids, special_ids.to(input_ids.device))
    empty = mask.sum(1) == 0
    if empty.any():
        mask[empty] = attn[empty]
    return mask


def tokenize(model, texts: list[str]) -> dict:
    """A ``SentenceTransformer``'s model inputs for ``texts`` (``preprocess`` in
    sentence-transformers 6, ``tokenize`` before it)."""
    return (getattr(model, "preprocess", None) or model.tokenize)(texts)


def special_ids(tokenizer) -> torch.Tensor:
    """The ids of a tokenizer's special tokens (``[-1]`` when it has none)."""
    ids = sorted({int(i) for i in (tokenizer.all_special_ids or []) if i is not None})
    return torch.tensor(ids or [-1], dtype=torch.long)


@dataclass
class TeacherEmbeddings:
    """The teacher's embeddings of ``N`` sentences (see the module docstring).

    Attributes:
        tokens: ``(T, d)`` float16 content-token vectors, sentence after sentence.
        offsets: ``(N + 1,)`` int64 start of each sentence's tokens in ``tokens``.
        sentence: ``(N, d)`` float32 pooled sentence embeddings.
        path: the cache entry (``None`` when not stored).
        reused: whether the entry was read from disk rather than built.
    """

    tokens: torch.Tensor
    offsets: torch.Tensor
    sentence: torch.Tensor
    path: Path | None = None
    reused: bool = False

    def __len__(self) -> int:
        return int(self.offsets.numel()) - 1

    def batch(
        self, index: torch.Tensor, dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The rows ``index`` (``(B,)`` int) padded to their longest.

        Returns:
            ``tokens`` ``(B, m, d)`` in ``dtype``, ``mask`` ``(B, m)`` bool (True on real
            content tokens) and ``sentence`` ``(B, d)`` float32.
        """
        idx, rows, mask = ragged_rows(self.offsets, index, self.tokens.shape[0])
        tok = self.tokens[rows].to(dtype) * mask.unsqueeze(-1)
        return tok.to(device), mask.to(device), self.sentence[idx].to(device)


def ragged_rows(offsets: torch.Tensor, index: torch.Tensor,
                total: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gather positions of rows ``index`` of a ragged array stored flat, padded to the
    longest: row ``i`` owns flat positions ``offsets[i]:offsets[i + 1]`` of ``total``.

    Returns:
        ``idx`` ``(B,)`` the rows as CPU int64, ``at`` ``(B, m)`` flat positions (padding
        points at a valid position, to be masked), ``mask`` ``(B, m)`` True on real ones.
    """
    idx = index.detach().to("cpu", torch.long).reshape(-1)
    starts, ends = offsets[idx], offsets[idx + 1]
    lengths = ends - starts
    m = int(lengths.max()) if len(idx) else 0
    pos = torch.arange(m)
    mask = pos.unsqueeze(0) < lengths.unsqueeze(1)
    at = (starts.unsqueeze(1) + pos.unsqueeze(0)).clamp_max(max(total - 1, 0))
    return idx, at, mask


def cache_key(teacher, texts: Sequence[str], tokens: bool = True) -> str:
    """The entry name of ``teacher``'s embeddings of ``texts`` (see the module docstring)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"teacher-cache-v{CACHE_FORMAT}\0tokens={tokens}\0".encode())
    h.update(weights_fingerprint(teacher, int(teacher.max_seq_length or 0), teacher.tokenizer)
             .encode())
    h.update(corpus_fingerprint(list(texts)).encode())
    return h.hexdigest()


@torch.no_grad()
def encode_teacher(teacher, texts: Sequence[str], batch_size: int = 128,
                   tokens: bool = True) -> TeacherEmbeddings:
    """Run ``teacher`` (a ``SentenceTransformer``) over ``texts`` in length-sorted batches.

    With ``tokens=False`` only the sentence embeddings are kept (``tokens`` is empty and
    every offset 0): what MSE-KD needs, and all a CLIP teacher has.
    """
    if not tokens:
        sentence = teacher.encode(list(texts), batch_size=batch_size, convert_to_tensor=True,
                                  show_progress_bar=False).float().cpu()
        return TeacherEmbeddings(torch.empty((0, sentence.shape[1]), dtype=torch.float16),
                                 torch.zeros(len(texts) + 1, dtype=torch.long), sentence)
    specials = special_ids(teacher.tokenizer)
    was_training = teacher.training
    teacher.eval()
    device = next(teacher.parameters()).device
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    per_text: list[torch.Tensor | None] = [None] * len(texts)
    sentence = torch.empty((len(texts), teacher.get_embedding_dimension() or 0))
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            feats = tokenize(teacher, [texts[i] for i in chunk])
            feats = {k: v.to(device) for k, v in feats.items() if isinstance(v, torch.Tensor)}
            out = teacher(dict(feats))
            mask = content_mask(feats["input_ids"], feats["attention_mask"], specials)
            tok = out["token_embeddings"].float().cpu()
            sent = out["sentence_embedding"].float().cpu()
            if sentence.shape[1] != sent.shape[1]:
                sentence = torch.empty((len(texts), sent.shape[1]))
            for row, i in enumerate(chunk):
                per_text[i] = tok[row][mask[row].cpu()]
                sentence[i] = sent[row]
    finally:
        teacher.train(was_training)
    lengths = torch.tensor([t.shape[0] for t in per_text], dtype=torch.long)
    offsets = torch.zeros(len(texts) + 1, dtype=torch.long)
    offsets[1:] = torch.cumsum(lengths, 0)
    dim = sentence.shape[1]
    tokens = (torch.cat(per_text).to(torch.float16) if texts
              else torch.empty((0, dim), dtype=torch.float16))
    return TeacherEmbeddings(tokens, offsets, sentence)


def _valid(meta: dict, key: str, n: int, tokens, offsets, sentence) -> bool:
    """The shapes, dtypes and values an entry of ``n`` sentences must have."""
    if (
        meta.get("format") != CACHE_FORMAT or meta.get("key") != key or meta.get("n") != n
        or tokens is None or offsets is None or sentence is None
        or tokens.ndim != 2 or tokens.dtype != torch.float16
        or offsets.shape != (n + 1,) or offsets.dtype != torch.int64
        or int(offsets[0]) != 0 or int(offsets[-1]) != tokens.shape[0]
        or bool((offsets[1:] < offsets[:-1]).any())
        or sentence.shape != (n, tokens.shape[1]) or meta.get("tokens") != tokens.shape[0]
        or not bool(torch.isfinite(sentence).all())
        or not bool(torch.isfinite(tokens).all())
    ):
        return False
    # A real embedding is never exactly zero: an all-zero row means damaged bytes.
    zero_rows = (sentence == 0).all(1).any() or (tokens.shape[0] and (tokens == 0).all(1).any())
    return not bool(zero_rows)


def _read(folder: Path, key: str, n: int) -> TeacherEmbeddings | None:
    """The entry in ``folder``, or ``None`` when it is missing or fails a check."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        arrays = load_file(folder / EMBEDDINGS_FILE)
    except (OSError, ValueError, json.JSONDecodeError, SafetensorError):
        return None
    if not isinstance(meta, dict):
        return None
    if "checksum" in meta and meta["checksum"] != content_checksum(arrays):
        warnings.warn(f"the teacher cache entry {folder} does not match its checksum; "
                      "rebuilding it", CacheRebuiltWarning, stacklevel=3)
        return None
    tokens, offsets, sentence = (arrays.get(k) for k in ("tokens", "offsets", "sentence"))
    if not _valid(meta, key, n, tokens, offsets, sentence):
        return None
    return TeacherEmbeddings(tokens, offsets, sentence, path=folder, reused=True)


def _write(folder: Path, key: str, emb: TeacherEmbeddings, teacher_name: str) -> None:
    from safetensors.torch import save_file

    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(folder.parent, f".tmp-{folder.name[:16]}-")  # what a killed writer left
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{folder.name[:16]}-{temp_tag()}",
                                dir=folder.parent))
    try:
        arrays = {"tokens": emb.tokens.contiguous(), "offsets": emb.offsets.contiguous(),
                  "sentence": emb.sentence.contiguous()}
        save_file(arrays, tmp / EMBEDDINGS_FILE)
        meta = {"format": CACHE_FORMAT, "key": key, "n": len(emb), "tokens": emb.tokens.shape[0],
                "dim": emb.tokens.shape[1], "teacher": teacher_name,
                "checksum": content_checksum(arrays),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        discard_entry(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def teacher_cache(teacher, texts: Sequence[str], root: str | os.PathLike[str] | None = None,
                  teacher_name: str = "", rank: int = 0, batch_size: int = 128,
                  tokens: bool = True) -> TeacherEmbeddings:
    """The teacher's embeddings of ``texts``, read from the cache or built and stored.

    Args:
        teacher: the frozen teacher ``SentenceTransformer`` (its ``max_seq_length`` set).
        texts: the English sentences, in dataset order.
        root: the cache folder (default :func:`teacher_cache_dir`).
        teacher_name: recorded in ``meta.json`` for people reading the folder.
        rank: the process's rank under ``torchrun``; only rank 0 builds and writes.
        batch_size: sentences per teacher forward pass while building.
        tokens: keep the token embeddings (the OT losses), or the sentence embeddings only
            (MSE-KD; a CLIP teacher has no token states in its joint space).

    Raises:
        DistillError: a non-zero rank waited :data:`WAIT_FOR_BUILD_S` for rank 0.
    """
    key = cache_key(teacher, texts, tokens)
    folder = Path(root).expanduser() if root is not None else teacher_cache_dir()
    folder = folder / key
    found = _read(folder, key, len(texts))
    if found is not None:
        return found
    if rank != 0:
        deadline = time.monotonic() + WAIT_FOR_BUILD_S
        while time.monotonic() < deadline:
            time.sleep(0.5)
            found = _read(folder, key, len(texts))
            if found is not None:
                return found
        raise DistillError(f"rank {rank} waited {WAIT_FOR_BUILD_S:.0f} s for rank 0 to build "
                           f"the teacher cache {folder}")
    emb = encode_teacher(teacher, texts, batch_size=batch_size, tokens=tokens)
    try:
        _write(folder, key, emb, teacher_name)
        emb.path = folder
    except OSError:  # a full or read-only disk costs the reuse, not the run
        emb.path = None
    return emb

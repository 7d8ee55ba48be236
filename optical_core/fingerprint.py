"""Hashes that name and check the project's caches: a model's fingerprint, a text list's
fingerprint, and a checksum of the arrays an entry stores.

The retrieval embedding cache (:mod:`optical_core.retrieval.cache`) and the teacher cache
(:mod:`optical_core.distill.teacher_cache`) both key their entries with
:func:`weights_fingerprint` and :func:`corpus_fingerprint`, and store
:func:`content_checksum` of their arrays to find an entry whose bytes changed while its
shapes stayed intact. The hashes are BLAKE2b, 16-byte digests, as hex.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: Fed first into :func:`weights_fingerprint`. It is part of every existing cache key (of
#: both caches), so it stays as it was when the retrieval cache introduced it.
WEIGHTS_TAG = "optical-retrieval-cache-v1"


class CacheRebuiltWarning(UserWarning):
    """A cache entry failed its checksum and is being rebuilt."""


def weights_fingerprint(model: torch.nn.Module, max_length: int, tokenizer: Any) -> str:
    """A hash of a torch model's module configuration (``repr``), weights, maximum length
    and tokenizer vocabulary: what decides the vectors it gives for a text."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{WEIGHTS_TAG}\0".encode())
    h.update(repr(model).encode("utf-8", "replace"))
    h.update(f"\0max_length={max_length}\0".encode())
    h.update(type(tokenizer).__name__.encode())
    try:
        vocab = sorted(tokenizer.get_vocab().items())
        h.update(json.dumps(vocab, ensure_ascii=False).encode("utf-8"))
    except Exception:  # pragma: no cover - tokenizers without a vocabulary
        h.update(str(len(tokenizer)).encode())
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            t = tensor.detach().cpu().contiguous().reshape(-1)
            h.update(f"\0{name}:{t.dtype}:{tuple(tensor.shape)}\0".encode())
            h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def corpus_fingerprint(texts: Sequence[str]) -> str:
    """A hash of the texts, in order (each prefixed by its UTF-8 length, so no two lists
    of texts share one stream)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"docs:{len(texts)}\0".encode())
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def _as_bytes(arr: np.ndarray | torch.Tensor) -> tuple[str, tuple[int, ...], np.ndarray]:
    """dtype, shape and a flat uint8 view of the data (no copy of a contiguous array: a
    teacher cache holds hundreds of MB)."""
    if isinstance(arr, torch.Tensor):
        t = arr.detach().cpu().contiguous()
        return str(t.dtype), tuple(t.shape), t.reshape(-1).view(torch.uint8).numpy()
    a = np.ascontiguousarray(arr)
    return str(a.dtype), a.shape, a.reshape(-1).view(np.uint8)


def content_checksum(arrays: Mapping[str, np.ndarray | torch.Tensor]) -> str:
    """A hash of named arrays: each name, dtype, shape and bytes, in name order.

    Args:
        arrays: numpy arrays or torch tensors (any device; copied to the CPU).
    """
    h = hashlib.blake2b(digest_size=16)
    for name in sorted(arrays):
        dtype, shape, data = _as_bytes(arrays[name])
        h.update(f"\0{name}:{dtype}:{shape}\0".encode())
        h.update(data)
    return h.hexdigest()


def discard_entry(path: Path) -> None:
    """Move a bad cache folder aside and delete it (a reader never sees it half-deleted)."""
    if not path.exists():
        return
    trash = path.with_name(f".trash-{path.name}-{os.getpid()}-{time.monotonic_ns()}")
    try:
        os.rename(path, trash)
    except OSError:
        return
    shutil.rmtree(trash, ignore_errors=True)


__all__ = [
    "WEIGHTS_TAG",
    "CacheRebuiltWarning",
    "content_checksum",
    "corpus_fingerprint",
    "discard_entry",
    "weights_fingerprint",
]

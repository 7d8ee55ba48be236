"""Page setup shared by every page (wide layout, sidebar navigation, the shared model
picker), the language names and which optional data sets are present.

The other helpers live in :mod:`ui.models`, :mod:`ui.errors` and :mod:`ui.state`; the tests
still import a few of them from here (``__all__`` lists them). Nothing here imports torch:
the home page opens at once.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from optical_core import data
from optical_core.data import LANG_NAMES
from optical_core.encoders.base import DEFAULT_MODEL, is_default_model
from ui.errors import error_message
from ui.models import MODEL_KEY, _load, list_runs, model_picker

__all__ = [
    "APP_NAME", "DATA_HINT", "DEFAULT_MODEL", "LANG_NAMES", "MODEL_KEY", "ROOT", "_load",
    "app_pages", "data_sources", "error_message", "is_default_model", "list_runs",
    "navigation", "page_link", "page_setup",
]

APP_NAME = "OPTICAL Explorer"
ROOT = Path(__file__).resolve().parents[1]

#: How to make the optional data sets appear.
DATA_HINT = (
    "Multi30k and the gold word alignments are optional. To use them, set the environment "
    "variable `OPTICAL_DATA_DIR` to a folder holding `multi30k/task1/raw/…` and "
    "`gold_alignments/…` (or place it at `../shared/data`), then restart the app; "
    "`optical download` fetches Multi30k on a machine with internet."
)

_PAGE_ICONS = {
    "Home": ":material/home:", "Alignment": ":material/grid_on:",
    "Distillation": ":material/school:", "Retrieval": ":material/search:",
    "Results": ":material/table_chart:",
}


def page_setup(title: str, icon: str | None = None, model: bool = True) -> str | None:
    """Set the page config and draw the shared sidebar; returns the sidebar model id.

    Call it first on every page.

    Args:
        title: shown in the browser tab as ``"{title} · OPTICAL Explorer"``.
        icon: page icon (emoji or material icon), optional.
        model: draw the shared model picker in the sidebar and return its choice
            (``None`` when ``False``).
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


def navigation() -> None:
    """Links to every page that exists (drawn in the sidebar by :func:`page_setup`)."""
    for path, label in app_pages():
        try:
            st.page_link(path, label=label, icon=_PAGE_ICONS.get(label))
        except Exception:  # a page run on its own (tests) has no page registry
            st.markdown(f"- {label}")
    st.divider()


def page_link(label: str, text: str, icon: str | None = None) -> None:
    """A link to the page called ``label``, where that page exists and the app runs with
    its page registry (a page run on its own, as in tests, draws nothing)."""
    path = next((p for p, name in app_pages() if name == label), None)
    if path:
        try:
            st.page_link(path, label=text, icon=icon)
        except Exception:  # the page run on its own (tests) has no page registry
            pass


@st.cache_data(ttl=60, show_spinner=False)
def data_sources() -> dict[str, bool]:
    """Which optional data sets are present: ``multi30k``, ``gold_enfr``, ``gold_roen``
    (the packaged ``demo`` set is always there). Re-checked every minute."""
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

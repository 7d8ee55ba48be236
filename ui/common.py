"""Page setup shared by every page (wide layout, sidebar navigation, the shared model
picker, the quick student's progress), the language names and which optional data sets are
present.

The other helpers live in :mod:`ui.models`, :mod:`ui.errors` and :mod:`ui.state`; the tests
still import a few of them from here (``__all__`` lists them). Nothing here imports torch:
the home page opens at once.
"""

from __future__ import annotations

import streamlit as st

from optical_core import data
from optical_core.data import LANG_NAMES
from optical_core.encoders.base import DEFAULT_MODEL, is_default_model
from ui.errors import error_message
from ui.models import MODEL_KEY, cached_encoder, list_runs, model_picker
from ui.nav import navigation
from ui.quick import sidebar_tracker
from ui.state import note_page

__all__ = [
    "APP_NAME", "DATA_HINT", "DEFAULT_MODEL", "LANG_NAMES", "MODEL_KEY", "cached_encoder",
    "data_sources", "error_message", "is_default_model", "list_runs", "page_setup",
]

APP_NAME = "OPTICAL Explorer"

#: How to make the optional data sets appear.
DATA_HINT = (
    "Multi30k and the gold word alignments are optional. To use them, set the environment "
    "variable `OPTICAL_DATA_DIR` to a folder holding `multi30k/task1/raw/…` and "
    "`gold_alignments/…` (or place it at `../shared/data`), then restart the app; "
    "`optical download` fetches Multi30k on a machine with internet."
)


def page_setup(title: str, icon: str | None = None, model: bool = True,
               quick_tracker: bool = True) -> str | None:
    """Set the page config and draw the shared sidebar; returns the sidebar model id.

    Call it first on every page.

    Args:
        title: shown in the browser tab as ``"{title} · OPTICAL Explorer"``.
        icon: page icon (emoji or material icon), optional.
        model: draw the shared model picker in the sidebar and return its choice
            (``None`` when ``False``).
        quick_tracker: draw :func:`ui.quick.sidebar_tracker`, which keeps this tab's quick
            student alive and visible on whatever page the tab is on. ``False`` only on
            the pages that watch the job in their own panel (Home, Distillation): two
            pollers of one job would only duplicate its progress.
    """
    st.set_page_config(
        page_title=f"{title} · {APP_NAME}", page_icon=icon, layout="wide",
        initial_sidebar_state="expanded",
    )
    note_page(title)
    with st.sidebar:
        navigation()
        model_id = model_picker(
            "model", "Model",
            help=(
                "The encoder that turns each token into a vector. The default "
                f"{DEFAULT_MODEL} was trained on English only. Pick a student distilled on "
                "the Distillation page, or type any sentence-transformers model id or a local "
                "model folder. The choice is shared by every page."
            ),
        ) if model else None
    if quick_tracker:
        sidebar_tracker()
    return model_id


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

"""The app's pages and links between them: the sidebar navigation and in-page links.

Apart from :mod:`ui.common` so that helpers which link to a page (:mod:`ui.quick`,
:mod:`ui.alignment`) need not import the page setup, which itself draws the quick
student's sidebar tracker: no import cycle.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]

#: The sidebar icon of each page; a page without one would sit out of line with the rest.
PAGE_ICONS = {
    "Home": ":material/home:", "Alignment": ":material/grid_on:",
    "Distillation": ":material/school:", "Retrieval": ":material/search:",
    "Results": ":material/table_chart:", "Corpus": ":material/fact_check:",
}


def app_pages() -> list[tuple[str, str]]:
    """``(path, label)`` of the home page and of every ``pages/*.py`` that exists, in order
    (``pages/2_Distillation.py`` → ``"Distillation"``)."""
    out = [("app.py", "Home")]
    folder = ROOT / "pages"
    if folder.is_dir():
        for f in sorted(folder.glob("*.py")):
            number, _, rest = f.stem.partition("_")
            name = rest if rest and number.isdigit() else f.stem  # 2_Distillation → Distillation
            out.append((f"pages/{f.name}", name.replace("_", " ")))
    return out


def navigation() -> None:
    """Links to every page that exists (drawn in the sidebar by ``ui.common.page_setup``)."""
    for path, label in app_pages():
        try:
            st.page_link(path, label=label, icon=PAGE_ICONS.get(label))
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

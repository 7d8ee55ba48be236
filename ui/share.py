"""Shareable views in Streamlit: a page's view kept in the URL's query parameters, restored
when a link opens the page, and a box with the link to copy.

The parsing and checking is :mod:`ui.links` (no Streamlit). A page calls
:func:`restore_view` before its first widget and :func:`publish_view` after its last one;
:func:`share_box` draws the link.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlencode

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from ui.links import Param, parse_params, view_params
from ui.models import MODEL_PARAM, model_param
from ui.state import arrived, mark_link_applied

_WRITTEN = "_optical_view_written__"


def _url_params() -> dict[str, str]:
    try:
        return st.query_params.to_dict()
    except Exception:  # no session (bare mode)
        return {}


def restore_view(page: str, spec: Sequence[Param]) -> None:
    """Set the widgets of ``spec`` to what the URL asks for, with a warning per value that
    cannot be used. Call it before the first of those widgets is drawn.

    Only parameters that differ from what this session last wrote into the URL count
    (:func:`publish_view`): a link that was opened, a back-button step, a hand-edited URL.
    A rerun of the page in which one of the view's widgets changed since that write (not
    the first run after another page) restores nothing: the user acted on the page, and
    its URL may still be the one from before the last write (two edits in quick
    succession; the browser sends the URL it has with each rerun), so restoring it would
    undo the first edit. The ``model`` parameter is the shared model picker's
    (:mod:`ui.models`).
    """
    written = st.session_state.get(_WRITTEN + page)
    fresh = {k: v for k, v in _url_params().items() if (written or {}).get(k) != v}
    if not fresh:
        return
    if written is not None and not arrived(page) and view_params(st.session_state, spec)[0] != {
            k: v for k, v in written.items() if k != MODEL_PARAM}:
        return  # edited on the page: the URL may be stale
    restored = parse_params(fresh, spec, ignore=(MODEL_PARAM,))
    for key, value in restored.values.items():
        st.session_state[key] = value
    for note in restored.notes:
        st.warning(note, icon=":material/link_off:")


def publish_view(page: str, spec: Sequence[Param], model_id: str | None = None
                 ) -> tuple[str, list[str]]:
    """Write the current view (and the shared model, if given) into the URL.

    Returns:
        The link to this view (absolute when the browser has told its address) and a note
        for each part of the view that a link cannot carry.
    """
    params, notes = view_params(st.session_state, spec)
    if model_id is not None:
        named = model_param(model_id)
        if named is None:
            notes.append("The model is not one a link can name (a run, a folder the app "
                         "may load, a hub id or the default): the link leaves it out.")
        else:
            params = {MODEL_PARAM: named, **params}
    if _url_params() != params:
        st.query_params.from_dict(params)
    st.session_state[_WRITTEN + page] = params
    if MODEL_PARAM in params:  # the picker must not re-apply the model it already shows
        mark_link_applied(MODEL_PARAM, params[MODEL_PARAM])
    try:
        base = st.context.url
    except Exception:  # no session (bare mode)
        base = None
    query = urlencode(params)
    return f"{base or page}{'?' + query if query else ''}", notes


def share_box(link: str, notes: list[str], box: DeltaGenerator | None = None) -> None:
    """The link to this view, with a copy button (top right of the box)."""
    box = box if box is not None else st
    box.markdown("**Link to this view**", help="Opens this page with the same pair, model "
                 "and settings. Copy it with the button at the top right of the box.")
    box.code(link, language=None, wrap_lines=True)
    for note in notes:
        box.caption(note)

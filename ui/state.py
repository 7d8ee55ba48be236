"""Session-state helpers: widget values that survive a page switch or an early stop, widgets
that follow their context, and query parameters that act once per link."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any, NoReturn

import streamlit as st

_KEPT = "_optical_kept__"
_CONTEXT = "_optical_context__"
_PAGES = "_optical_pages__"  # (the page of the last full run, the page of this one)


def init_state(defaults: dict[str, Any]) -> None:
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


def keep_state(keys: Iterable[str]) -> None:
    """Remember the current values of widget ``keys`` for :func:`init_state`."""
    for key in keys:
        if key in st.session_state:
            st.session_state[_KEPT + key] = st.session_state[key]


def stop(forget: Iterable[str] = ()) -> NoReturn:
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


def follow_context(key: str, context: Hashable, value: Any) -> None:
    """Set the widget ``key`` to ``value`` when ``context`` is not the one it was last set for.

    Call it before the widget is drawn. Setting the key (even to the value it already has)
    is what makes the browser redraw the widget: one whose options are merely relabelled,
    or whose choice belongs to another query or data set, otherwise keeps showing what it
    showed for the old context.
    """
    marker = _CONTEXT + key
    if st.session_state.get(marker) != context:
        st.session_state[key] = value
        st.session_state[marker] = context


def link_once(param: str) -> str | None:
    """The value of the query parameter ``param`` the first time this session sees it.

    A link preselects once: while the URL still carries the same value, the user's later
    choice is not overridden; following the link again (after the parameter was gone)
    applies it again.
    """
    applied = f"_optical_link_applied__{param}"
    asked = st.query_params.get(param)
    if not asked:
        st.session_state.pop(applied, None)
        return None
    if st.session_state.get(applied) == asked:
        return None
    st.session_state[applied] = asked
    return asked


def mark_link_applied(param: str, value: str) -> None:
    """Tell :func:`link_once` that ``param=value`` in the URL is already applied (the page
    wrote it there itself, see :func:`ui.share.publish_view`)."""
    st.session_state[f"_optical_link_applied__{param}"] = value


def note_page(page: str) -> None:
    """Record that this full run draws ``page`` (:func:`ui.common.page_setup` calls it)."""
    st.session_state[_PAGES] = (st.session_state.get(_PAGES, (None, None))[1], page)


def arrived(page: str) -> bool:
    """Whether this run of ``page`` follows a run of another page (or none): the user came
    here by the navigation or a link, not by a widget on the page."""
    return st.session_state.get(_PAGES, (None, None))[0] != page

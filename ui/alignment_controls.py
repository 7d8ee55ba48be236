"""The Alignment page's controls: the transport problem in the sidebar and the link
controls above the plan. Every control has a one-line explanation (its ``help``)."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from optical_core import alignment as al
from optical_core.ot.config import SOLVERS
from optical_core.ot.costs import METRICS
from optical_core.pairs.align import LEVELS, WEIGHTINGS
from optical_core.pairs.summary import LINK_METHOD_NAMES
from ui.glossary import help_for
from ui.pair_summary import (
    EPS_OPTIONS,
    SOLVER_NAMES,
    TAU_OPTIONS,
    PairInput,
    Transport,
    epsilon_note,
)


@dataclass(frozen=True)
class LinkChoice:
    """The link controls' choice: the method, its threshold, the method it is compared
    with (``"none"``) and whether the gold links are drawn."""

    method: str
    threshold: float
    other: str
    show_gold: bool


def transport_controls() -> Transport:
    """The sidebar's transport problem: cost, solver, ε, τ, mass, token weights and level."""
    with st.sidebar:
        st.subheader("Transport")
        metric = st.radio(
            "Cost", METRICS, key="al_metric", horizontal=True,
            help="How far apart two token vectors are. cosine: 1 − cos, between 0 (same "
            "direction) and 2; ignores vector length. sqeuclidean: squared distance of the raw "
            "vectors, so long (frequent-word) vectors cost more.",
        )
        solver = st.selectbox(
            "Solver", SOLVERS, key="al_solver", format_func=SOLVER_NAMES.get,
            help="exact: the cheapest plan, sparse (about one partner per token). Sinkhorn: "
            "adds entropic blur ε, smooth and fast. unbalanced: token weights may be missed at "
            "a price τ. partial: moves only part of the mass, so tokens without a partner stay "
            "unaligned.",
        )
        eps = st.select_slider(
            "ε — entropic blur", EPS_OPTIONS, key="al_eps",
            disabled=solver not in ("sinkhorn", "unbalanced"),
            help="Small ε → each token sends its mass to its single best match (nearly "
            "one-to-one). Large ε → mass spreads over all tokens (a blur). Relative to the cost "
            "range: for cosine costs in [0, 2] it is used as is. Only for Sinkhorn and "
            "unbalanced.",
        )
        if solver in ("sinkhorn", "unbalanced"):  # said beside the slider, for a projected class
            st.caption(epsilon_note(eps))
        tau = st.select_slider(
            "τ — marginal relaxation", TAU_OPTIONS, key="al_tau", disabled=solver != "unbalanced",
            help="How dearly the unbalanced solver pays for not moving a token's full weight. "
            "Large τ → (almost) balanced: every token sends and receives its weight. Small τ → "
            "tokens with no cheap partner keep their mass (null alignment).",
        )
        mass = st.slider(
            "Transported mass", 0.1, 1.0, step=0.05, key="al_mass", disabled=solver != "partial",
            help="Partial transport moves only this share of the total mass and leaves the most "
            "expensive rest behind: the tokens with no good partner stay unaligned.",
        )
        weighting = st.radio(
            "Token weights", WEIGHTINGS, key="al_weighting", horizontal=True,
            help="How much mass each token starts with (the marginals a and b). uniform: every "
            "token the same. norm: proportional to the length of its vector, which is often "
            "larger for content words than for function words.",
        )
        level = st.radio(
            "Tokens", LEVELS, key="al_level", horizontal=True,
            help="subword: the model's own pieces (“run”, “##ning”). word: the vectors of a "
            "word's pieces are averaged first, so each word is one row or column.",
        )
    return Transport(metric, solver, eps, tau, mass, weighting, level)


def link_controls(pin: PairInput) -> LinkChoice:
    """The link method, its threshold, the second method and the gold overlay."""
    st.markdown("##### Links")
    lc1, lc2, lc3, lc4 = st.columns([1.2, 1.2, 1.2, 1])
    method = lc1.selectbox(
        "Link method", al.LINK_METHODS, key="al_link", format_func=LINK_METHOD_NAMES.get,
        help="How hard word links are read off. "
        + " ".join(f"{LINK_METHOD_NAMES[m]}: {help_for(LINK_METHOD_NAMES[m])}"
                   for m in al.LINK_METHODS),
    )
    threshold = lc2.slider(
        "OT threshold", 0.05, 1.0, step=0.05, key="al_threshold", disabled=method != "ot",
        help=help_for("OT threshold") + " 1 = the token sends all its mass there "
        "(one-to-one); 0.5 also keeps an even split between two partners.",
    )
    others = ["none"] + [m for m in al.LINK_METHODS if m != method]
    if st.session_state.get("al_other") not in others:
        st.session_state["al_other"] = others[1]
    other = lc3.selectbox(
        "Show where it disagrees with", others, key="al_other",
        format_func=lambda m: "nothing" if m == "none" else LINK_METHOD_NAMES[m],
        help="Draws a second method's links as red crosses: an orange square without a cross, "
        "or a cross without a square, is a link only one method makes.",
    )
    show_gold = lc4.toggle(
        "Gold overlay", key="al_gold", disabled=pin.sure is None,
        help="Human links: filled green dots are sure, open circles possible links. Only pairs "
        "from a gold set or a ★ demo pair have them.",
    )
    return LinkChoice(method, threshold, other, show_gold)

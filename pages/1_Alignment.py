"""Alignment page: the transport plan of one sentence pair.

Thin by design: widgets → ``optical_core`` (``pairs.align_embeddings`` for the pair,
``pairs.summary`` and ``pairs.figures`` for summaries and plots) → Streamlit. Token
embeddings are cached by ``(model, text, words)`` (``ui.models.embed``), so moving a solver
control re-solves from the cached vectors without re-encoding.
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from optical_core.pairs.align import PairAlignment, score_pair
from optical_core.pairs.figures import cost_figure, diff_figure, plan_figure
from optical_core.pairs.summary import (
    LINK_METHOD_NAMES,
    Diffuseness,
    all_links,
    compare_plans,
    diffuseness,
    gold_cells,
)
from ui.alignment import (
    PLOT_CONFIG,
    align_with,
    compare_metrics,
    demo_ids,
    encode_pair,
    export_panel,
    gold_metrics,
    input_notes,
    pick_pair,
    sharpness_note,
)
from ui.alignment_controls import LinkChoice, link_controls, transport_controls
from ui.alignment_steps import step_through
from ui.common import page_setup
from ui.errors import show_error
from ui.glossary import help_for
from ui.links import alignment_view
from ui.live_chart import live_plotly_chart
from ui.models import model_label, model_picker, start_model
from ui.pair_summary import (
    JACCARD,
    Links,
    PairInput,
    Transport,
    cells_text,
    link_rows,
    solver_lines,
)
from ui.quick import land_lesson
from ui.share import publish_view, restore_view, share_box
from ui.state import init_state, keep_state, stop

MAX_CHARS = 100_000
DEFAULTS = {
    "al_source": "free", "al_src": "A dog runs along the beach.",
    "al_tgt": "A puppy is running on the sand.", "al_metric": "cosine",
    "al_solver": "sinkhorn", "al_eps": 0.05, "al_tau": 1.0, "al_mass": 0.8,
    "al_weighting": "uniform", "al_level": "subword", "al_link": "ot", "al_threshold": 0.5,
    "al_other": "argmax", "al_gold": True, "al_compare": False, "al_before": False,
    "al_steps": False,
}
#: Widgets without a fixed default whose value is also remembered across page switches.
PAIR_KEYS = ["al_demo", "al_m_split", "al_m_lang", "al_m_line", "al_g_pair", "al_g_line"]
#: Widgets drawn below the point where bad input stops the page (see ui.state.stop).
LATE_KEYS = ["al_link", "al_threshold", "al_other", "al_gold", "al_compare",
             "_w_optical_model_id__compare_choice", "_w_optical_model_id__compare_text",
             "al_before", "al_steps", "al_step"]


def plan_panel(fig: go.Figure, pair: PairAlignment, before: go.Figure | None = None) -> None:
    """The plan beside its cost matrix, or beside ``before``: the plan of the model a
    distilled run started from."""
    c_left, c_plan = st.columns(2) if before is not None else (None, None)
    if before is not None:  # both live, so the two plans look alike and redraw in place
        with c_left:
            live_plotly_chart(before, key="al_before_chart", config=PLOT_CONFIG)
        with c_plan:
            live_plotly_chart(fig, key="al_plan_chart", config=PLOT_CONFIG)
        return
    c_plan, c_cost = st.columns([3, 2])
    with c_plan:
        live_plotly_chart(fig, key="al_plan_chart", config=PLOT_CONFIG)
    with c_cost:
        st.plotly_chart(cost_figure(pair), key="al_cost_chart", config=PLOT_CONFIG)
        st.caption(
            "Cost matrix: dark = cheap = similar tokens. The plan moves mass where the cost is "
            "low; the bars above and beside the plan are the token weights (outline) and the "
            "mass actually sent or received (filled)."
        )


def before_toggle(model_id: str) -> str | None:
    """For a distilled run: the toggle that adds the plan of the model it started from;
    that model's id when it is on."""
    start = start_model(model_id)
    if start is None:
        return None
    on = st.toggle(
        f"Before distillation: show the plan of {model_label(start)}, the model "
        f"{model_label(model_id)} started from, beside it", key="al_before",
        help="The run's record (run.json) names the model its student was initialised from. "
        "Both plans use the same pair and settings, so the difference is what distillation "
        "changed: a diffuse plan before, mass on the translations after.")
    keep_state(["al_before"])
    return start if on else None


def links_panel(pair: PairAlignment, links: dict[str, Links], choice: LinkChoice,
                gold: PairInput | None, level: str) -> None:
    st.markdown("##### Links and agreement")
    jaccard = (f"Agreement with {LINK_METHOD_NAMES[choice.method]}, the link method above: "
               + help_for("Jaccard"))
    st.dataframe(link_rows(pair, links, choice.method, level, gold), hide_index=True,
                 key="al_agree_table", column_config={
                     JACCARD: st.column_config.NumberColumn(help=jaccard),
                     "AER": st.column_config.NumberColumn(help=help_for("AER"))})
    if choice.other != "none":
        mine, theirs = links[choice.method], links[choice.other]
        st.markdown(
            f"Only **{LINK_METHOD_NAMES[choice.method]}**: "
            f"{cells_text(pair, sorted(mine - theirs))}  \n"
            f"Only **{LINK_METHOD_NAMES[choice.other]}**: {cells_text(pair, sorted(theirs - mine))}"
        )
    if gold is not None:
        st.markdown(f"**Against the gold links** ({LINK_METHOD_NAMES[choice.method]}, word level)")
        gold_metrics(score_pair(pair, gold.sure, gold.possible))
    else:
        st.caption("No gold links for this pair: pick a ★ demo pair or a gold set for AER.")


def compare_panel(model_id: str, pin: PairInput, pair: PairAlignment, diff: Diffuseness,
                  transport: Transport, choice: LinkChoice, has_gold: bool) -> None:
    """The same pair aligned by a second model with the same settings, and what changed."""
    model2 = model_picker("compare", "Second model",
                          help="E.g. the base model in the sidebar and a fresh checkpoint here.")
    pair2 = align_with(model2, pin, transport, choice)
    if pair2 is None:
        return
    cmp = compare_plans(pair, pair2)
    compare_metrics(pair, diff, pair2, cmp, pin if has_gold else None)
    if cmp.forced_word_level:
        st.caption("The two models cut the words into different subwords, so both "
                   "plans are summed per word for the comparison.")
    # Two plans a row: three in a row squeeze a Multi30k pair into unreadable strips.
    f1c, f2c = st.columns(2)
    f1c.plotly_chart(plan_figure(pair, marginals=False, title=f"1 · {model_label(model_id)}"),
                     key="al_cmp1", config=PLOT_CONFIG)
    f2c.plotly_chart(plan_figure(pair2, marginals=False, title=f"2 · {model_label(model2)}"),
                     key="al_cmp2", config=PLOT_CONFIG)
    f3c, _ = st.columns(2)
    f3c.plotly_chart(
        diff_figure(cmp.plan1, cmp.plan2, cmp.src_labels, cmp.tgt_labels,
                    title="2 − 1: red = more mass in model 2"),
        key="al_cmp_diff", config=PLOT_CONFIG,
    )


def plans(model_id: str, pin: PairInput, has_gold: bool, pair: PairAlignment,
          transport: Transport, choice: LinkChoice, figure) -> go.Figure:
    """The plan (and, for a distilled run with *Before distillation* on, the plan of the
    model it started from beside it, with what changed); the plan's figure. ``figure``
    draws a pair's plan with the page's overlays and a title."""
    start = before_toggle(model_id)
    pair0 = None if start is None else align_with(start, pin, transport, choice)
    fig = figure(pair, transport.title(model_label(model_id),
                                       None if pair0 is None else "after"))
    plan_panel(fig, pair, None if pair0 is None else figure(
        pair0, transport.title(model_label(start), "before")))
    if pair0 is not None:
        compare_metrics(pair0, diffuseness(pair0), pair, compare_plans(pair0, pair),
                        pin if has_gold else None, names=("before", "after"))
    return fig


@st.fragment
def solver_view(model_id: str, pin: PairInput | None, embedded: tuple | None) -> None:
    """The transport controls and all they change: plan, links, notes, the second model,
    export and the link to this view. A fragment: moving one of its controls (ε, …)
    reruns only this, not the model and pair pickers above it."""
    transport = transport_controls()
    share = st.sidebar.container()
    if embedded is None:
        stop(LATE_KEYS)
    S, T = embedded
    try:
        config, eps_scale = transport.config(S, T)
    except ValueError as exc:
        show_error(exc)
        stop(LATE_KEYS)
    choice = link_controls(pin)
    keep_state(DEFAULTS)
    with share:
        share_box(*publish_view("Alignment", VIEW, model_id))
    try:
        pair = transport.align(S, T, config, choice.method, choice.threshold)
    except ValueError as exc:
        show_error(exc, "Solving the transport problem")
        stop(["al_compare", *LATE_KEYS[5:]])

    # Notes come and go with ε; in a container of their own they do not move the plan below
    # them to another place on the page, which would remount its chart.
    notes = st.container()
    links = all_links(pair, choice.threshold)
    diff = diffuseness(pair)
    has_gold = pin.sure is not None
    if has_gold and (len(S.words) != len(pin.src_words) or len(T.words) != len(pin.tgt_words)):
        notes.warning("Some gold words got no token from this model (cut or unknown "
                      "characters), so the gold links cannot be placed and AER is not shown.",
                      icon=":material/help:")
        has_gold = False
    g_sure, g_poss = gold_cells(pair, pin.sure, pin.possible) if has_gold else (set(), set())
    with notes:
        input_notes(pin.notes + pair.notes, (S, T))
        sharpness_note(diff, model_id, pin.langs, transport.eps)

    def figure(p: PairAlignment, title: str) -> go.Figure:
        lk = links if p is pair else all_links(p, choice.threshold)
        sure, poss = (g_sure, g_poss) if p is pair or not has_gold else gold_cells(
            p, pin.sure, pin.possible)
        return plan_figure(
            p, links=lk[choice.method], links_name=f"{LINK_METHOD_NAMES[choice.method]} links",
            other_links=None if choice.other == "none" else lk[choice.other],
            other_name=f"{LINK_METHOD_NAMES.get(choice.other, '')} links",
            gold_sure=sure if choice.show_gold else None,
            gold_possible=poss if choice.show_gold else None, title=title)

    fig = plans(model_id, pin, has_gold, pair, transport, choice, figure)
    step_through(pair, config, PLOT_CONFIG)
    keep_state(["al_steps", "al_step"])
    c_diag, c_links = st.columns(2)
    with c_diag:
        st.markdown("##### What the solver did")
        st.markdown("\n".join(f"- {x}" for x in solver_lines(pair, config, transport, eps_scale,
                                                              diff)))
    with c_links:
        links_panel(pair, links, choice, pin if has_gold else None, transport.level)

    st.divider()
    st.markdown("##### Compare with a second model")
    compare = st.toggle(
        "Compare two models on this pair", key="al_compare",
        help="Align the same pair with a second model or a Distillation checkpoint, with the "
        "same solver settings, and see where the mass moves.",
    )
    keep_state(["al_compare"])
    if compare:
        compare_panel(model_id, pin, pair, diff, transport, choice, has_gold)
    export_panel(pair, fig)


model_id = page_setup("Alignment", icon=":material/grid_on:")
init_state(DEFAULTS)
init_state(dict.fromkeys(PAIR_KEYS))  # None: restore only what the user chose before
init_state({"al_step": None})
land_lesson(model_id, demo_ids())  # a quick student that just finished: its lesson pair
VIEW = alignment_view(DEFAULTS, demo_ids())

st.title("Token alignment as transport")
st.caption(
    "Rows are the source tokens, columns the target tokens; each cell is the mass the "
    "transport plan moves between them. Hover a cell for both tokens, mass and cost."
)
restore_view("Alignment", VIEW)
with st.container(border=True):
    pin = pick_pair()
keep_state(PAIR_KEYS)
keep_state(DEFAULTS)
solver_view(model_id, pin, None if pin is None else encode_pair(model_id, pin, MAX_CHARS))

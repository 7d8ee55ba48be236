"""The Alignment page's Sinkhorn step-through: the entropic solver on the pair on screen,
one row/column scaling at a time (:func:`optical_core.ot.steps.sinkhorn_steps`), from the
Gibbs kernel to the converged plan."""

from __future__ import annotations

import dataclasses

import plotly.graph_objects as go
import streamlit as st

from optical_core.ot.config import OTConfig
from optical_core.ot.steps import SinkhornStep, sinkhorn_steps
from optical_core.pairs.align import PairAlignment
from optical_core.pairs.figures import plan_figure
from ui.glossary import help_for
from ui.live_chart import live_plotly_chart

#: Single steps the slider offers before its last stop, the converged plan.
STEPS = 12
KEY = "al_step"


def step_label(step: SinkhornStep, last: bool) -> str:
    """A slider stop: ``0 · kernel``, ``3``, ``57 · converged`` (or ``· stopped``)."""
    if step.iteration == 0:
        return "0 · kernel"
    if last:
        return f"{step.iteration} · {'converged' if step.converged else 'stopped'}"
    return str(step.iteration)


def step_figure(pair: PairAlignment, step: SinkhornStep, epsilon: float) -> go.Figure:
    """The plan of ``pair`` at ``step`` (its marginal bars show how far the columns are
    off), titled with the step and its marginal error."""
    at_step = dataclasses.replace(pair, ot=dataclasses.replace(pair.ot, plan=step.plan))
    what = ("Gibbs kernel exp(−C/ε), scaled to mass 1" if step.iteration == 0
            else f"after {step.iteration} row/column scaling{'s' if step.iteration > 1 else ''}")
    fig = plan_figure(at_step, title=f"Sinkhorn step {step.iteration}<br><sup>{what} · "
                      f"marginal error {step.marginal_error:.2e} · ε = {epsilon:.3g}</sup>")
    fig.layout.meta = {"kind": "sinkhorn_step", "iteration": step.iteration,
                           "marginal_error": step.marginal_error}
    return fig


def iterations_note(pair: PairAlignment, last: SinkhornStep) -> str | None:
    """Why the converged step and "What the solver did" may name different iteration
    counts (``108`` here, ``110`` there), or ``None`` when they agree or the page's plan
    is not POT's Sinkhorn: POT tests the marginal error only every 10th iteration, so
    it stops up to 9 iterations after the plan first met the tolerance."""
    if pair.ot.solver != "sinkhorn" or pair.ot.iterations == last.iteration:
        return None
    return (f"“What the solver did” below counts {pair.ot.iterations} iterations: the solver "
            "behind the page's plan checks the marginal error only every 10th iteration, so "
            f"it stops a few scalings after step {last.iteration}, with the same plan to "
            "within the tolerance.")


def step_through(pair: PairAlignment, config: OTConfig, plot_config: dict) -> None:
    """A toggle that opens the step-through: a slider over the Sinkhorn steps of ``pair``'s
    cost and marginals at ``config.epsilon`` (cost units), the plan of the chosen step and its
    marginal error. For a non-entropic solver it steps the Sinkhorn that the ε slider gives."""
    epsilon = config.epsilon
    on = st.toggle(
        "Step through Sinkhorn", key="al_steps",
        help="Watch the entropic solver work on this pair: it starts from the "
        + help_for("Gibbs kernel")[0].lower() + help_for("Gibbs kernel")[1:]
        + " Each step rescales the rows, then the columns.")
    if not on:
        return
    steps = sinkhorn_steps(pair.cost, pair.a, pair.b, epsilon=epsilon, n=STEPS,
                           tol=config.tol, max_iter=config.max_iter)
    stops = list(range(len(steps)))
    if st.session_state.get(KEY) not in stops:  # a new pair or ε has fewer steps
        st.session_state[KEY] = 0
    k = st.select_slider(
        "Sinkhorn step", stops, key=KEY,
        format_func=lambda i: step_label(steps[i], i == len(steps) - 1),
        help="0 is the kernel; each stop one more row and column scaling; the last stop is "
        "where Sinkhorn stops (marginal error below the tolerance "
        f"{config.tol:g}). Marginal error: " + help_for("marginal error"))
    step = steps[k]
    # A third of the width: a quarter clips the number ("1.27e-…") on a 1,000 px screen.
    c1, c2 = st.columns([2, 1])
    with c1:
        live_plotly_chart(step_figure(pair, step, epsilon), key="al_step_chart",
                          config=plot_config)
    with c2:
        st.metric("Marginal error", f"{step.marginal_error:.1e}",
                  help=help_for("marginal error"))
        st.caption(
            f"Step {step.iteration} of {steps[-1].iteration}. The row bars (sent) already "
            "match the token weights after each step; the column bars (received) are what "
            "is still off." if step.iteration else
            "The kernel alone: mass by cost, no token weight respected yet.")
        note = iterations_note(pair, steps[-1])
        if note and k == len(steps) - 1:
            st.caption(note)
        if config.solver != "sinkhorn":
            st.caption(f"The page's solver is {config.solver}; this steps the balanced "
                       "Sinkhorn at the sidebar's ε.")

"""Distillation: train a student for a language, watch it learn, cancel, resume.

The page is thin: the job queue lives in :mod:`optical_core.distill.jobs` (one per server,
held in ``st.cache_resource`` by :mod:`ui.distill`), training in :mod:`optical_core.distill`,
run folders in :mod:`optical_core.runs`. Each browser tab has a session id and sees its own
job; one job trains at a time per server, others wait in the queue and are told so. The polling
fragment doubles as the tab's heartbeat: a job whose tab has been closed for longer than
``OPTICAL_JOB_ORPHAN_S`` seconds (default 120) is cancelled with a checkpoint, so an
abandoned tab does not block a shared server; any tab can resume it from the runs list.

For tests and demos, ``OPTICAL_DISTILL_DEFAULTS`` (a JSON object of
:class:`~optical_core.distill.config.DistillConfig` fields, e.g. a tiny teacher and
``"data": "demo"``) overrides the form's starting values.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from optical_core import runs
from optical_core.data import gold_available, multi30k_available
from optical_core.distill.config import (
    LOSSES,
    OT_SOLVERS,
    PROBES,
    DistillConfig,
    DistillError,
)
from ui.common import LANG_NAMES, page_setup
from ui.distill import (
    form_defaults,
    label,
    schedule_options,
    session_id,
    show_job,
    show_run_error,
    tip,
)
from ui.distill import manager as job_queue
from ui.distill_robust import config_problem, robustness_options
from ui.quick import quick_box
from ui.run_summary import runs_table

POLL_S = 1.0
LR_OPTIONS = (2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3)
EPS_OPTIONS = (0.005, 0.01, 0.02, 0.05, 0.1)


def advanced_options(base: DistillConfig, loss: str) -> dict[str, Any]:
    """The OT solver, its τ, whether to track AER (with a note when the gold set is missing),
    the learning-rate schedule, and the robustness recipe and options."""
    st.markdown("**Advanced options**")
    a1, a2, a3 = st.columns(3)
    solvers = list(OT_SOLVERS)
    solver = a1.selectbox(
        label("ot_solver"), solvers, index=solvers.index(base.ot.solver),
        disabled=loss == "mse",
        format_func={"sinkhorn": "balanced Sinkhorn",
                     "unbalanced": "unbalanced Sinkhorn (τ)", "exact": "exact (slow)"}.get,
        help="Balanced: every token's mass must go somewhere. Unbalanced: the marginals are "
        "relaxed (KL, strength τ), so a token with no English counterpart keeps part of its "
        "mass instead of being pulled onto a wrong word. Exact: POT's network simplex, pair "
        "by pair — slow, for checks.")
    tau = a2.number_input(
        label("ot_tau"), 0.01, 100.0, min(max(float(base.ot.tau), 0.01), 100.0),
        step=0.1,
        disabled=loss == "mse" or solver != "unbalanced",
        help="Marginal relaxation in cosine-cost units (costs span 0–2). Small τ leaves more "
        "mass untransported; large τ approaches balanced Sinkhorn and needs more "
        "iterations to converge.")
    track_aer = a3.checkbox(
        label("track_aer"), value=base.track_aer,
        help="At every evaluation, align the en–fr gold sentences (Hansards) with the "
        "student and record the alignment error rate (lower is better): it shows whether "
        "the loss keeps word alignment intact while retrieval improves. Each evaluation "
        "then also aligns the 200 gold sentences.")
    if track_aer and not gold_available("enfr", base.data_dir):
        st.info("The en–fr gold alignments (`gold_alignments/enfr.src-tgt` and "
                "`enfr.gold`) were not found in the data folder, so the job will train "
                "without AER. Set `OPTICAL_DATA_DIR` to a folder that has them to track it.")
    return {"ot_solver": solver, "ot_tau": float(tau), "track_aer": bool(track_aer),
            **schedule_options(base), **robustness_options(base)}


def configure(base: DistillConfig) -> tuple[dict[str, Any], str, bool]:
    """The job form: the config fields it sets, the run name, and whether Start was pressed."""
    have_multi30k = base.data == "multi30k" and multi30k_available(splits=("train", "val"),
                                                                   image_splits=False)
    with st.expander("Configure a job", expanded=True):
        c1, c2, c3 = st.columns(3)
        langs = list(PROBES)
        lang = c1.selectbox(label("lang"), langs, index=langs.index(base.lang),
                            format_func=LANG_NAMES.get,
                            help="The foreign side of the Multi30k pairs (English is the other "
                            "side).")
        pairs = c2.number_input(label("pairs"), 1, 29000, int(base.pairs), step=500,
                                help="How many Multi30k train pairs: small numbers simulate a "
                                "low-resource language. ~1 minute per 1,000 pairs on 2 CPU "
                                "cores.")
        loss = c3.radio(label("loss"), LOSSES, index=LOSSES.index(base.loss), horizontal=True,
                        help="ot: token-level optimal transport (OPTICAL). mse: sentence "
                        "embeddings regress onto the teacher's (Reimers & Gurevych 2020). "
                        "ot+mse: both.")
        c4, c5, c6, c7 = st.columns(4)
        epochs = c4.number_input(label("epochs"), 0.1, 20.0, float(base.epochs), step=0.5,
                                 help=tip("epochs"))
        lr = c5.select_slider(label("lr"), LR_OPTIONS,
                              value=base.lr if base.lr in LR_OPTIONS else 5e-4,
                              format_func=lambda v: f"{v:g}",
                              help="It matters more than the method: 5e-4 worked best for "
                              "both on 5k pairs.")
        batch = c6.number_input(label("batch_size"), 1, 256, int(base.batch_size),
                                help=tip("batch_size"))
        max_tokens = c7.number_input(label("max_tokens"), 8, 512, int(base.max_tokens),
                                     help=tip("max_tokens"))
        c8, c9, c10, c11 = st.columns(4)
        eps = c8.select_slider(label("epsilon"), EPS_OPTIONS,
                               value=base.ot.epsilon if base.ot.epsilon in EPS_OPTIONS else 0.01,
                               disabled=loss == "mse",
                               help="Entropic regularisation of the plan, in cosine-cost units "
                               "(costs span 0–2). 0.01 keeps it nearly one-to-one; at 0.05 "
                               "the plan blurs and pulls each token toward a blend of English "
                               "tokens.")
        iters = c9.number_input(label("sinkhorn_iters"), 10, 5000,
                                int(base.ot.max_iter), disabled=loss == "mse",
                                help=tip("sinkhorn_iters"))
        seed = c10.number_input(label("seed"), 0, 2**31 - 1, int(base.seed), help=tip("seed"))
        eval_limit = c11.number_input(label("eval_limit"), 0, 1014, int(base.eval_limit),
                                      help="Lines of the val split used for MRR@10 after "
                                      "each epoch.")
        align_en = st.checkbox(label("align_english"), value=base.align_english,
                               disabled=loss == "mse")
        advanced = advanced_options(base, loss)
        if (st.session_state.pop("distill_new_name", False)
                or "distill_run_name" not in st.session_state):
            st.session_state["distill_run_name"] = runs.suggest_name(
                f"{lang}-{loss.replace('+', '-')}")
        name = st.text_input("Run name", key="distill_run_name",
                             help="Letters, digits, '.', '_' and '-'. The run is saved under "
                             f"{runs.runs_dir()} and appears in every model picker when done.")
        if base.data == "multi30k" and not have_multi30k:
            st.info("Multi30k was not found, so the job trains on the packaged demo pairs "
                    "(a few dozen captions). Set `OPTICAL_DATA_DIR` to use Multi30k.")
        fields = {
            "lang": lang, "pairs": int(pairs), "loss": loss, "epochs": float(epochs),
            "lr": float(lr), "batch_size": int(batch), "max_tokens": int(max_tokens),
            "epsilon": float(eps), "sinkhorn_iters": int(iters), "seed": int(seed),
            "eval_limit": int(eval_limit), "align_english": bool(align_en), **advanced,
            "data": base.data if (base.data == "demo" or have_multi30k) else "demo",
        }
        # Say why before Start, not after: submit() would refuse the same config anyway.
        problem = config_problem(base, fields)
        if problem:
            st.warning(f"This job cannot start: {problem}.", icon=":material/block:")
        start = st.button("Start training", type="primary", disabled=problem is not None)
    return fields, name, start


def submit(base: DistillConfig, fields: dict[str, Any], name: str) -> None:
    """Queue a new job under the run ``name``, or say why not."""
    try:
        cfg = DistillConfig.from_dict({**base.to_dict(), **fields}).validate()
        path = runs.run_path(name.strip())
        if path.exists():
            raise runs.RunError(f"a run named {name!r} already exists; pick another name "
                                "(or resume it from the list below)")
        manager.submit(sid, cfg, path, name=name.strip())
        st.session_state["distill_new_name"] = True
    except (DistillError, runs.RunError, RuntimeError) as exc:
        show_run_error(exc)


def live() -> None:
    manager.heartbeat(sid)  # this tab is open: its job is not abandoned
    job = manager.latest_for(sid)
    if job is None:
        busy = manager.busy()
        if busy is not None:
            st.caption(f"The server is busy with another tab's job ({busy.name}, step "
                       f"{busy.step}/{busy.max_steps or '?'}); a job you start now is queued.")
        return
    st.subheader("Your job")
    show_job(manager, job)
    was_active = st.session_state.get("distill_was_active")
    st.session_state["distill_was_active"] = job.active
    if was_active and not job.active:
        st.rerun(scope="app")  # stop polling, refresh the list of runs


def runs_panel() -> None:
    """Every run in the runs folder, and Resume for those that stopped early."""
    st.subheader("Runs")
    all_runs = runs.list_runs()
    if not all_runs:
        st.caption(f"No runs yet in {runs.runs_dir()}.")
        return
    st.dataframe(runs_table(all_runs), hide_index=True)
    resumable = [r for r in all_runs if r.status in ("cancelled", "interrupted", "failed")]
    if resumable:
        c1, c2 = st.columns([3, 1])
        pick = c1.selectbox("Resume a run", [r.name for r in resumable], key="resume-pick")
        if c2.button("Resume", key="resume-btn"):
            try:
                info = next(r for r in resumable if r.name == pick)
                manager.submit(sid, DistillConfig.from_dict(info.config), info.path, resume=True,
                               name=info.name)
                st.rerun()
            except (DistillError, runs.RunError, RuntimeError, StopIteration) as exc:
                show_run_error(exc)


# No sidebar tracker: the job panel below watches this tab's quick student itself.
page_setup("Distillation", ":material/school:", model=False, quick_tracker=False)
st.title("Distillation")
st.markdown(
    "Teach the English-only model a new language. A frozen **teacher** encodes the English "
    "caption; the **student** (a copy of it) encodes the translation. With the **OT** loss "
    "each foreign token is pulled towards the English tokens it is transported to (the "
    "plan of a Sinkhorn problem, ε small so the plan stays nearly one-to-one); with **MSE** "
    "only the sentence vectors are matched. Watch the probe pair's plan sharpen as the "
    "student learns."
)
manager = job_queue()
sid = session_id()
quick_box(manager, sid, where="distillation")
base = form_defaults()
fields, name, start = configure(base)
if start:
    submit(base, fields, name)
# Poll only while this tab's job is active: an idle page must not rerun every second.
job_now = manager.latest_for(sid)
st.fragment(live, run_every=POLL_S if job_now is not None and job_now.active else None)()
runs_panel()

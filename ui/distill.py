"""What the Distillation page keeps per server and per tab (the job queue, the tab's session
id, the form's starting values), the form's learning-rate schedule options, and how it
draws a job: status with Cancel, the live loss,
the probe pair's plan and the evaluation curves. The home page's quick student
(:mod:`ui.quick`) goes through the same queue and draws its job with the same panel.

Nothing here imports torch (the queue imports the trainer when a job starts)."""

from __future__ import annotations

import json
import math
import os
import uuid
from typing import Any

import streamlit as st

from optical_core.distill.config import LR_SCHEDULES, DistillConfig, DistillError, option_named
from optical_core.distill.jobs import DEFAULT_ORPHAN_S, JobManager, JobState, orphan_grace_s
from optical_core.distill.option_words import label_words
from optical_core.runs import primary_mrr_key
from ui.errors import show_error
from ui.run_summary import eval_series, options_summary, probe_plan_figure, robust_summary

#: A JSON object of DistillConfig fields that overrides the form's starting values.
ENV_DEFAULTS = "OPTICAL_DISTILL_DEFAULTS"


@st.cache_resource(show_spinner=False)
def job_manager(orphan_s: float | None) -> JobManager:
    """One job queue per server process, shared by every tab (the grace period is part
    of the key only so that tests can set it through the environment)."""
    return JobManager(orphan_s=orphan_s)


def manager() -> JobManager:
    """The server's job queue, with the grace period of ``$OPTICAL_JOB_ORPHAN_S`` (a note
    and the default when the variable is bad). Every page that submits or shows a job
    takes the queue from here, so all of them share one."""
    try:
        grace = orphan_grace_s()
    except ValueError as exc:
        show_error(exc)
        grace = DEFAULT_ORPHAN_S
    return job_manager(grace)


def show_run_error(exc: BaseException) -> None:
    """Why a job cannot start, in the form's words: a ``DistillError`` (the user's options,
    not a bug) with each option named by its field's label (``'Noisy share'``), else
    :func:`ui.errors.show_error`."""
    if isinstance(exc, DistillError):
        st.error(label_words(str(exc)), icon=":material/error:")
    else:
        show_error(exc)


def label(name: str) -> str:
    """The widget label of the option ``name`` (its field's ``label``, see
    :func:`optical_core.distill.config.option`)."""
    return option_named(name).label


def tip(name: str) -> str:
    """The tooltip of the option ``name``: its field's ``help``, as ``optical distill
    --help`` prints it."""
    return option_named(name).help


def session_id() -> str:
    """This tab's id: the owner of the jobs it starts."""
    if "distill_session_id" not in st.session_state:
        st.session_state["distill_session_id"] = uuid.uuid4().hex
    return st.session_state["distill_session_id"]


def form_defaults() -> DistillConfig:
    """The default config with ``$OPTICAL_DISTILL_DEFAULTS`` applied (a warning if invalid)."""
    cfg = DistillConfig()
    raw = os.environ.get(ENV_DEFAULTS)
    if raw:
        try:
            cfg = DistillConfig.from_dict({**cfg.to_dict(), **json.loads(raw)})
        except (ValueError, TypeError, DistillError) as exc:
            st.warning(f"{ENV_DEFAULTS} is not a valid JSON config ({exc}); using the defaults.")
    return cfg


# ------------------------------------------------------------------ the lr schedule

#: The learning-rate schedule fields of ``DistillConfig`` (the CLI's ``--lr-schedule``,
#: ``--warmup-ratio``, ``--max-grad-norm``, ``--weight-decay``), with their widget's label.
SCHEDULE_LABELS: dict[str, str] = {
    f: option_named(f).label
    for f in ("lr_schedule", "warmup_ratio", "max_grad_norm", "weight_decay")
}
#: (min, max, step) of the numeric schedule widgets: within DistillConfig's valid range,
#: narrower where more makes no sense (a warm-up past half the run leaves little training
#: at the full lr; AdamW's decay is usually 0–0.1).
SCHEDULE_BOUNDS: dict[str, tuple[float, float, float]] = {
    "warmup_ratio": (0.0, 0.5, 0.05),
    "max_grad_norm": (0.0, 100.0, 0.5),
    "weight_decay": (0.0, 0.5, 0.01),
}


def schedule_key(field: str) -> str:
    """The session-state key of a schedule field's widget."""
    return f"distill_sched_{field}"


def widget_range(bounds: tuple[float, float, float]) -> dict[str, float]:
    """``(min, max, step)`` as a numeric widget's keywords (a slider's third positional
    argument is its value, not its step)."""
    lo, hi, step = bounds
    return {"min_value": lo, "max_value": hi, "step": step}


def clamp_to(bounds: tuple[float, float, float], value: Any) -> float:
    """``value`` clamped into a widget's ``(min, max, step)`` range (a widget refuses a value
    outside it, and ``$OPTICAL_DISTILL_DEFAULTS`` may hold one); not a finite number: min."""
    lo, hi, _ = bounds
    v = float(value) if isinstance(value, (int, float)) else lo
    return min(max(v, lo), hi) if math.isfinite(v) else lo


def schedule_options(base: DistillConfig) -> dict[str, Any]:
    """The Learning-rate schedule expander (open when an option is not the default); the
    schedule fields it sets."""
    ss, default = st.session_state, DistillConfig()
    changed = any(ss.get(schedule_key(f), getattr(base, f)) != getattr(default, f)
                  for f in SCHEDULE_LABELS)
    schedules = list(LR_SCHEDULES)
    with st.expander("Learning-rate schedule", expanded=changed):
        st.caption("The defaults are a plain AdamW loop: constant lr, no warm-up, no "
                   "clipping. On 5k pairs (157 steps) they beat the usual recipe (10 % "
                   "warm-up, linear decay, clipping at 1.0) by 6.5 MRR@10 points for OT-KD "
                   "and 14.4 for MSE-KD (docs/RESULTS.md).")
        s1, s2, s3, s4 = st.columns(4)
        schedule = s1.radio(
            SCHEDULE_LABELS["lr_schedule"], schedules, key=schedule_key("lr_schedule"),
            index=schedules.index(base.lr_schedule) if base.lr_schedule in schedules else 0,
            help="The lr after warm-up. constant: stays put; linear: decays to 0 at the last "
            "step; cosine: half a cosine down to 0. In the project's tuning (docs/RESULTS.md, "
            "\"Learning rate and schedule\") constant beat linear decay for every method and "
            "lr: a short run (157 steps) spends most of its steps at a small lr when it "
            "decays.")
        warmup = s2.slider(
            SCHEDULE_LABELS["warmup_ratio"], **widget_range(SCHEDULE_BOUNDS["warmup_ratio"]),
            value=clamp_to(SCHEDULE_BOUNDS["warmup_ratio"], base.warmup_ratio),
            key=schedule_key("warmup_ratio"),
            help="Share of the steps over which the lr rises linearly from 0 (0 = none). It "
            "shields a fresh optimizer from a large lr in a long run; in a short run it "
            "costs steps at a small lr.")
        clip = s3.number_input(
            SCHEDULE_LABELS["max_grad_norm"], **widget_range(SCHEDULE_BOUNDS["max_grad_norm"]),
            value=clamp_to(SCHEDULE_BOUNDS["max_grad_norm"], base.max_grad_norm),
            key=schedule_key("max_grad_norm"),
            help="Clip the gradient's global norm to this before each step (0 = off). A "
            "guard against a rare huge gradient, e.g. at a large lr; the defaults train "
            "without it.")
        decay = s4.number_input(
            SCHEDULE_LABELS["weight_decay"], **widget_range(SCHEDULE_BOUNDS["weight_decay"]),
            value=clamp_to(SCHEDULE_BOUNDS["weight_decay"], base.weight_decay),
            key=schedule_key("weight_decay"),
            help="AdamW's decoupled weight decay: every step shrinks each weight by "
            "lr × this (0 = off). 0.01 is AdamW's usual value and that of the project's runs.")
    return {"lr_schedule": schedule, "warmup_ratio": float(warmup),
            "max_grad_norm": float(clip), "weight_decay": float(decay)}


# ------------------------------------------------------------------ drawing a job


def show_eval_curves(job: JobState) -> None:
    """MRR@10 per evaluation and, when tracked, the en–fr AER beside it (both in %)."""
    steps, mrr = eval_series(job.evals, primary_mrr_key(job.evals[-1]["metrics"]))
    aer_steps, aer = eval_series(job.evals, "aer_enfr")
    mrr_col, aer_col = st.columns(2)
    if len(steps) > 1:
        mrr_col.markdown("**MRR@10 per evaluation**")
        mrr_col.line_chart({"step": steps, "MRR@10 (%)": [100 * v for v in mrr]},
                           x="step", height=200)
    if aer_steps:
        aer_col.markdown("**Word-alignment AER (en–fr gold)**")
        aer_col.line_chart({"step": aer_steps, "AER (%)": aer}, x="step", height=200,
                           color="#d62728")
        aer_col.caption(f"AER {aer[-1]:.1f} at step {aer_steps[-1]} "
                        f"(step 0: {aer[0]:.1f}); lower is better.")
    elif job.config.track_aer:
        aer_col.caption("AER is not tracked: the en–fr gold alignments were not found in the "
                        "data folder (`gold_alignments/enfr.*`).")


def show_status(queue: JobManager, job: JobState) -> None:
    """Where the job stands (queued, running, finished, cancelled, failed), with Cancel."""
    if job.status == "queued":
        pos, busy = queue.queue_position(job.id), queue.busy()
        ahead = f"{pos} job(s) ahead" if pos else "waiting"
        who = (f" — {busy.name} is training (step {busy.step}/{busy.max_steps or '?'})"
               if busy else "")
        st.warning(f"**Queued ({ahead}).** The server trains one job at a time{who}. "
                   "Yours starts when it ends; you can cancel it meanwhile.",
                   icon=":material/schedule:")
    elif job.status == "running":
        eta = f", about {job.eta_s / 60:.1f} min left" if job.eta_s else ""
        st.progress(job.fraction,
                    text=f"**{job.name}**: step {job.step}/{job.max_steps or '?'}{eta}")
    elif job.status == "finished":
        st.success(f"**{job.name}** finished after {job.step} steps. It is now offered in every "
                   "model picker.", icon=":material/check_circle:")
    elif job.status == "cancelled":
        why = f" ({job.note})" if job.note else ""
        st.info(f"**{job.name}** was cancelled at step {job.step}{why}. A checkpoint was saved: "
                "resume it from the runs list of the Distillation page.",
                icon=":material/pause_circle:")
    elif job.status == "failed":
        st.error(f"**{job.name}** failed: {job.error}", icon=":material/error:")
    if job.active and st.button("Cancel", key=f"cancel-{job.id}"):
        queue.cancel(job.id)
        st.toast("Cancelling after the current step…")


def _probe_step(job_id: str, steps: list[int]) -> int:
    """The probe snapshot to draw: a slider over ``steps`` that follows the newest snapshot
    while the job trains, unless the user has moved it to an older one."""
    if len(steps) == 1:
        return steps[0]
    key, newest = f"probe-step-{job_id}", f"probe-step-{job_id}-newest"
    if st.session_state.get(key) in (None, st.session_state.get(newest)):
        st.session_state[key] = steps[-1]  # it showed the newest: keep showing the newest
    st.session_state[newest] = steps[-1]
    return st.select_slider("Probe plan at step", steps, key=key)


def show_job(queue: JobManager, job: JobState) -> None:
    """The job's status, its non-default schedule and robustness options, live loss,
    MRR@10, the probe plan at a chosen step and the evaluation curves."""
    show_status(queue, job)
    config = job.config.to_dict()
    schedule = options_summary(config, SCHEDULE_LABELS)
    if schedule:  # the job's lr is not what the form's defaults would give
        st.caption(f"Schedule options: {schedule}")
    robust = robust_summary(config)
    if robust:  # the runs table shows them too, but this panel is what the tab watches
        st.caption(f"Robustness options: {robust}")
    left, right = st.columns(2)
    with left:
        if job.losses:
            steps, vals = zip(*job.losses)
            st.markdown("**Training loss**")
            st.line_chart({"loss": list(vals)}, x_label="step", y_label="loss", height=260)
            st.caption(f"last loss {vals[-1]:.4f} at step {steps[-1]}"
                       + ("".join(f" · {k} {v:.4f}" for k, v in job.components.items())
                          if len(job.components) > 1 else ""))
        if job.evals:
            first, last = job.evals[0]["metrics"], job.evals[-1]["metrics"]
            key = primary_mrr_key(last)
            if key:
                gain = 100 * (last[key] - first.get(key, last[key]))
                st.metric("x→en MRR@10 (val)", f"{100 * last[key]:.1f}",
                          delta=f"{gain:+.1f} since step 0")
    with right:
        if job.probes and job.probe_tokens:
            steps = [p["step"] for p in job.probes]
            chosen = _probe_step(job.id, steps)
            snap = next(p for p in job.probes if p["step"] == chosen)
            st.plotly_chart(probe_plan_figure(snap["plan"], *job.probe_tokens, chosen),
                            key=f"probe-plan-{job.id}")
            st.caption(f"{job.config.lang} probe → English; transport cost "
                       f"{snap['ot_cost']:.3f}. A sharp, near-diagonal plan means the student "
                       "maps each word onto its English counterpart.")
    if job.evals:
        show_eval_curves(job)

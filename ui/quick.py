"""The quick student: one click trains :func:`optical_core.distill.recipes.quick_student`
(OT-KD with the cooc recipe on 2,000 pairs, about a minute) through the Distillation
page's job queue, and the sidebar model switches to it when it has finished
(:func:`ui.models.follow_run`).

The home page and the Distillation page both draw :func:`quick_box`. On the home page it
also watches the job (status with Cancel, live loss, probe plan: :func:`ui.distill.show_job`)
and keeps it alive with the tab's heartbeat; on the Distillation page the page's own job
panel does that, and on every other page :func:`sidebar_tracker` (a progress line, drawn by
:func:`ui.common.page_setup`). The job belongs to the tab like any other: one active job per
tab, one training job per server, the rest queued.

For tests and demos, ``OPTICAL_QUICK_STUDENT`` (a JSON object of
:class:`~optical_core.distill.config.DistillConfig` fields, e.g. a tiny teacher and
``"data": "demo"``) overrides the preset; without it the preset is used as it is.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import streamlit as st

from optical_core import runs
from optical_core.data import LANG_NAMES, multi30k_available
from optical_core.distill.config import DistillConfig, DistillError
from optical_core.distill.jobs import JobManager, JobState
from optical_core.distill.recipes import QUICK_PAIRS, quick_student
from ui.distill import manager, session_id, show_job
from ui.errors import show_error
from ui.models import follow_run
from ui.nav import page_link
from ui.state import init_state, keep_state

#: A JSON object of DistillConfig fields that overrides the quick student's preset.
ENV_QUICK = "OPTICAL_QUICK_STUDENT"
#: Session-state key of this tab's quick student: job id, run folder, name, language, note.
STATE = "quick_student"
LANGS = ("de", "fr", "cs")
POLL_S = 1.0
BUTTON = "Train a quick student"


def quick_config(lang: str) -> tuple[DistillConfig, str | None]:
    """The quick student's config for ``lang`` and a note when it cannot be the real thing
    (no Multi30k: the packaged demo pairs instead).

    Raises:
        DistillError: ``$OPTICAL_QUICK_STUDENT`` is not a JSON object of config fields, or
            the language is unknown.
    """
    overrides: dict[str, Any] = {}
    raw = os.environ.get(ENV_QUICK)
    if raw:
        try:
            overrides = json.loads(raw)
        except ValueError as exc:
            raise DistillError(f"{ENV_QUICK} is not valid JSON ({exc})") from None
        if not isinstance(overrides, dict):
            raise DistillError(f"{ENV_QUICK} must be a JSON object of config fields")
    data = overrides.pop("data", None)
    note = None
    if data is None:
        found = multi30k_available(overrides.get("data_dir"), splits=("train", "val"),
                                   langs=("en", lang) if lang in LANGS else ("en",),
                                   image_splits=False)
        data = "multi30k" if found else "demo"
        if not found:
            note = ("Multi30k was not found, so the quick student trains on the packaged demo "
                    "pairs (a few dozen captions, repeated): the probe pair's plan still "
                    "sharpens, but retrieval barely changes. Set `OPTICAL_DATA_DIR` to a "
                    "Multi30k copy for the real thing.")
    return quick_student(lang, data=data, **overrides), note


def start(queue: JobManager, sid: str, lang: str) -> JobState | None:
    """Queue the quick student for this tab, and have the sidebar follow its run; ``None``
    after an error box (e.g. this tab already has a job)."""
    try:
        cfg, note = quick_config(lang)
        name = runs.suggest_name(f"{lang}-quick")
        job = queue.submit(sid, cfg, runs.run_path(name), name=name)
    except runs.RunError as exc:
        show_error(exc, "Starting the quick student")
        return None
    except (DistillError, RuntimeError, OSError) as exc:  # e.g. this tab already has a job
        st.error(f"The quick student could not start: {str(exc).rstrip('.')}.",
                 icon=":material/error:")
        return None
    st.session_state[STATE] = {"job": job.id, "run": str(job.run_dir), "name": name,
                               "lang": lang, "note": note}
    follow_run(job.run_dir, f"The sidebar model is now the quick student **{name}** "
               f"({LANG_NAMES.get(lang, lang)}), which finished training just now. Pick the "
               "default model above to go back.")
    return job


def current(queue: JobManager) -> tuple[dict[str, Any], JobState] | None:
    """This tab's quick student and its job, if it started one on this server."""
    info = st.session_state.get(STATE)
    job = queue.snapshot(info["job"]) if info else None
    if job is None or str(job.run_dir) != info["run"]:
        return None
    return info, job


def quick_box(queue: JobManager, sid: str, where: str = "home") -> None:
    """The language select and the button; on the home page (``where="home"``) also the
    job's live panel, polled every second while it trains."""
    with st.container(border=True):
        st.markdown(
            f"**Quick student** · one click distils the English-only default model into a "
            f"student for one more language: the OT loss on {QUICK_PAIRS:,} caption pairs, "
            "with the cost mixed with how often the two words occur together in the captions "
            "(the cooc recipe), one epoch, about a minute on two CPU cores. Watch the loss "
            "fall and the probe "
            "pair's plan sharpen; when it is done the sidebar switches to the student.")
        init_state({"quick_lang": "de"})
        c1, c2 = st.columns([1, 2], vertical_alignment="bottom")
        lang = c1.selectbox("Quick student language", LANGS, key="quick_lang",
                            format_func=LANG_NAMES.get,
                            help="The foreign side of the Multi30k caption pairs; the probe "
                            "pair is “A dog runs along the beach.” in that language.")
        keep_state(["quick_lang"])
        if c2.button(BUTTON, key=f"quick_start_{where}", type="primary",
                     icon=":material/bolt:"):
            start(queue, sid, lang)
        mine = current(queue)
        if mine is None:
            return
        info, job = mine
        if info.get("note"):
            st.info(info["note"], icon=":material/info:")
        if where == "home":
            st.fragment(_watch, run_every=POLL_S if job.active else None)(queue, sid)
        elif job.status == "finished":
            _finished_note(info)


def _watch(queue: JobManager, sid: str) -> None:
    """The quick job's panel on the home page; a full rerun when it stops, so the sidebar
    picker switches to the new run."""
    queue.heartbeat(sid)  # this tab is open: its job is not abandoned
    mine = current(queue)
    if mine is None:
        return
    info, job = mine
    show_job(queue, job)
    if job.status == "finished":
        _finished_note(info)
    elif job.active:
        page_link("Distillation", "Watch it on the Distillation page (MRR@10, runs list)",
                  ":material/school:")
    if not job.active and st.session_state.get("quick_rerun_for") != job.id:
        # Once per job: stop polling, and let the sidebar picker switch to the run.
        st.session_state["quick_rerun_for"] = job.id
        st.rerun(scope="app")


def _finished_note(info: dict[str, Any]) -> None:
    st.success(
        f"The quick student **{info['name']}** is the sidebar model of every page now. "
        "The Alignment page opens on a "
        f"{LANG_NAMES.get(info['lang'])} demo pair with its plan beside the plan of the "
        "model it started from (*Before distillation*).",
        icon=":material/swap_horiz:")
    c1, c2 = st.columns(2)
    with c1:
        page_link("Alignment", "Before and after on the Alignment page", ":material/grid_on:")
    with c2:
        page_link("Retrieval", "Retrieval with the student", ":material/search:")


#: Session-state key: the job whose lesson the Alignment page has opened (once per student).
LESSON = "quick_lesson_for"


def lesson_pair(lang: str, demo_ids: Sequence[str]) -> int:
    """Index in ``demo_ids`` of the first demo pair in ``lang`` (``de`` → ``de-01``): the
    pair on which the before/after toggle shows what distillation changed; 0 when the
    demo set has none in that language."""
    return next((k for k, i in enumerate(demo_ids) if i.startswith(f"{lang}-")), 0)


def land_lesson(model_id: str, demo_ids: Sequence[str]) -> bool:
    """The first time the Alignment page draws this tab's finished quick student: set its
    widgets to the lesson, a demo pair in the student's language with *Before
    distillation* on (the English paraphrase pair a page may still show says nothing
    about a German student). Call it before the page's widgets; a link's view, restored
    after it, still wins. Whether it set them."""
    info = st.session_state.get(STATE)
    if not info or st.session_state.get(LESSON) == info["job"]:
        return False
    # Not resolve(): a run's model/ may be a link to the model it was saved from.
    run, model = (Path(os.path.abspath(p)) for p in (info["run"], model_id))
    if run not in (model, model.parent):
        return False
    st.session_state[LESSON] = info["job"]
    st.session_state.update(al_source="demo", al_demo=lesson_pair(info["lang"], demo_ids),
                            al_before=True)
    return True


def sidebar_tracker() -> None:
    """While this tab's quick student trains: a progress line in the sidebar, polled every
    two seconds, that keeps the job alive (the tab's heartbeat) and reruns the page when
    the job ends, so that the sidebar switches to the student at once. Draws nothing
    otherwise (and creates no job queue)."""
    info = st.session_state.get(STATE)
    if not info or st.session_state.get("quick_rerun_for") == info["job"]:
        return
    queue = manager()
    mine = current(queue)
    if mine is None or not mine[1].active:
        return
    with st.sidebar:
        st.fragment(_sidebar_watch, run_every=2.0)(queue, session_id())


def _sidebar_watch(queue: JobManager, sid: str) -> None:
    queue.heartbeat(sid)
    mine = current(queue)
    if mine is None:
        return
    info, job = mine
    if job.active:
        st.progress(job.fraction, text=f"Quick student {info['name']}: "
                    + (f"step {job.step}/{job.max_steps or '?'}" if job.status == "running"
                       else "queued"))
    elif st.session_state.get("quick_rerun_for") != job.id:
        st.session_state["quick_rerun_for"] = job.id
        st.rerun(scope="app")  # the sidebar picker switches to the run

"""AppTest of pages/2_Distillation.py: start a job, see progress, cancel it, resume it.

The page's form starts from ``OPTICAL_DISTILL_DEFAULTS`` (a tiny random teacher, the demo
pairs, many steps) so a job trains in a background thread within seconds; runs go to a
temporary ``OPTICAL_RUNS_DIR``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from _distill_models import make_tiny_model, write_gold_subset
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]

PAGE = str(ROOT / "pages" / "2_Distillation.py")
TIMEOUT = 600  # per script run and per wait: generous, for a machine busy with other work


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    return make_tiny_model(tmp_path_factory.mktemp("app-models") / "tiny", seed=0)


@pytest.fixture
def env(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("OPTICAL_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("OPTICAL_DISTILL_DEFAULTS", json.dumps({
        "teacher": tiny, "data": "demo", "pairs": 24, "batch_size": 4, "max_tokens": 32,
        "max_steps": 400, "probe_every": 2, "eval_limit": 8, "lr": 1e-3,
    }))
    return tmp_path / "runs"


def _until(at: AppTest, cond, timeout: float = TIMEOUT):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        at.run()
        if cond(at):
            return at
        time.sleep(0.3)
    raise AssertionError("condition not met; page shows: "
                         + " | ".join(str(e.value)[:120] for e in at.markdown))


def _texts(at: AppTest) -> str:
    parts = [str(e.value) for kind in ("markdown", "success", "info", "warning", "error", "caption")
             for e in getattr(at, kind)]
    parts += [str(p.proto.text) for p in at.get("progress")]
    return "\n".join(parts)


def test_start_progress_cancel_and_resume(env):
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    at.text_input[0].set_value("app-run")
    start = next(b for b in at.button if b.label == "Start training")
    start.click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    _until(at, lambda a: "step" in _texts(a) and any(p.proto.value > 0 for p in a.get("progress")))
    assert "Training loss" in _texts(at)
    next(b for b in at.button if b.label == "Cancel").click().run()
    _until(at, lambda a: "was cancelled" in _texts(a))
    rec = json.loads((env / "app-run" / "run.json").read_text())
    assert rec["status"] == "cancelled"
    assert (env / "app-run" / "model" / "model.safetensors").is_file()
    # the run is listed and can be resumed
    assert at.dataframe and "app-run" in at.dataframe[0].value["run"].tolist()
    next(b for b in at.button if b.label == "Resume").click().run()
    _until(at, lambda a: "step" in _texts(a) and a.get("progress"))
    next(b for b in at.button if b.label == "Cancel").click().run()
    _until(at, lambda a: "was cancelled" in _texts(a))
    rec = json.loads((env / "app-run" / "run.json").read_text())
    assert rec["resumed_from"] and rec["status"] == "cancelled"


def test_a_second_session_is_queued_while_one_trains(env):
    first = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    first.run()
    first.text_input[0].set_value("busy-a")
    next(b for b in first.button if b.label == "Start training").click().run()
    _until(first, lambda a: a.get("progress"))
    second = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    second.run()
    assert "busy with another tab" in _texts(second)
    second.text_input[0].set_value("busy-b")
    next(b for b in second.button if b.label == "Start training").click().run()
    assert "Queued" in _texts(second)
    next(b for b in second.button if b.label == "Cancel").click().run()
    _until(second, lambda a: "was cancelled" in _texts(a))
    next(b for b in first.button if b.label == "Cancel").click().run()
    _until(first, lambda a: "was cancelled" in _texts(a))


def test_bad_run_name_is_a_clear_error(env):
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.run()
    at.text_input[0].set_value("../escape")
    next(b for b in at.button if b.label == "Start training").click().run()
    assert at.error and "invalid run name" in str(at.error[0].value).lower()


def _widget(items, label):
    return next(w for w in items if w.label == label)


def _set_defaults(monkeypatch, **extra):
    import os

    defaults = json.loads(os.environ["OPTICAL_DISTILL_DEFAULTS"])
    monkeypatch.setenv("OPTICAL_DISTILL_DEFAULTS", json.dumps({**defaults, **extra}))


def test_unbalanced_solver_and_aer_curve(env, tmp_path, monkeypatch):
    gold = write_gold_subset(tmp_path / "gold-data")
    if gold is None:
        pytest.skip("the en-fr gold alignments are not in the data folder")
    _set_defaults(monkeypatch, data_dir=str(gold))
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.run()
    assert _widget(at.number_input, "τ (unbalanced)").disabled  # only for the unbalanced solver
    _widget(at.selectbox, "OT solver").set_value("unbalanced").run()
    _widget(at.number_input, "τ (unbalanced)").set_value(0.5)
    _widget(at.checkbox, "Track word-alignment AER (en–fr gold)").check()
    at.text_input[0].set_value("aer-run")
    _widget(at.button, "Start training").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    # step 0 and two epoch ends evaluated: the MRR and AER curves are drawn
    _until(at, lambda a: "MRR@10 per evaluation" in _texts(a)
           and "Word-alignment AER" in _texts(a), timeout=300)
    assert "lower is better" in _texts(at)
    _widget(at.button, "Cancel").click().run()
    _until(at, lambda a: "was cancelled" in _texts(a))
    rec = json.loads((env / "aer-run" / "run.json").read_text())
    assert rec["config"]["ot_solver"] == "unbalanced" and rec["config"]["ot_tau"] == 0.5
    assert all("aer_enfr" in e["metrics"] for e in rec["evals"]) and len(rec["evals"]) >= 2


def test_aer_without_gold_is_a_note_not_a_crash(env, tmp_path, monkeypatch):
    empty = tmp_path / "no-gold"
    empty.mkdir()
    _set_defaults(monkeypatch, data_dir=str(empty), track_aer=True)
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.run()
    assert "were not found in the data folder" in _texts(at)
    at.text_input[0].set_value("no-gold-run")
    _widget(at.button, "Start training").click().run()
    _until(at, lambda a: "AER is not tracked" in _texts(a), timeout=300)
    assert not at.exception and not at.error
    _widget(at.button, "Cancel").click().run()
    _until(at, lambda a: "was cancelled" in _texts(a))


def test_closing_the_tab_cancels_its_job_and_a_new_tab_resumes_it(env, monkeypatch):
    # A page run takes seconds on a loaded machine: the grace period must outlast that.
    monkeypatch.setenv("OPTICAL_JOB_ORPHAN_S", "20")
    # The job must outlive the test's waits on a fast machine, so it never finishes on its own.
    defaults = json.loads(os.environ["OPTICAL_DISTILL_DEFAULTS"])
    monkeypatch.setenv("OPTICAL_DISTILL_DEFAULTS", json.dumps({**defaults, "max_steps": 10**6}))
    tab = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    tab.run()
    tab.text_input[0].set_value("closed-tab")
    _widget(tab.button, "Start training").click().run()
    run_json = env / "closed-tab" / "run.json"
    _until(tab, lambda a: a.get("progress") and run_json.is_file()
           and (json.loads(run_json.read_text()).get("step") or 0) > 0)
    # While the tab polls (every run is a heartbeat) the job keeps training past the grace.
    end = time.monotonic() + 30
    while time.monotonic() < end:
        tab.run()
        time.sleep(1)
    assert json.loads(run_json.read_text())["status"] == "running"
    # The tab is closed: it never runs again.
    end = time.monotonic() + 300
    while json.loads(run_json.read_text())["status"] == "running" and time.monotonic() < end:
        time.sleep(0.5)
    rec = json.loads(run_json.read_text())
    assert rec["status"] == "cancelled"
    assert rec["note"] == "cancelled: the browser tab that started it was closed"
    assert (env / "closed-tab" / "model" / "model.safetensors").is_file()
    # A reopened tab sees why in the runs list and resumes the run.
    again = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    again.run()
    table = again.dataframe[0].value
    row = table[table["run"] == "closed-tab"].iloc[0]
    assert row["status"] == "cancelled" and "browser tab" in row["note"]
    _widget(again.button, "Resume").click().run()
    _until(again, lambda a: a.get("progress"))
    _widget(again.button, "Cancel").click().run()
    _until(again, lambda a: "was cancelled" in _texts(a))
    rec = json.loads(run_json.read_text())
    assert rec["resumed_from"] and rec["note"] is None


def _quick_env(monkeypatch, tiny, **extra):
    monkeypatch.setenv("OPTICAL_QUICK_STUDENT", json.dumps({
        "teacher": tiny, "data": "demo", "pairs": 24, "batch_size": 4, "max_tokens": 32,
        "max_steps": 16, "probe_every": 2, "eval_limit": 8, "lr": 1e-3, **extra,
    }))


def test_quick_student_runs_in_the_pages_job_panel(env, tiny, monkeypatch):
    from ui.models import FOLLOW_KEY

    _quick_env(monkeypatch, tiny)
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.run()
    assert at.selectbox(key="quick_lang").value == "de"
    _widget(at.button, "Train a quick student").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    # The same queue and job panel as a job of the form: status, loss, probe plan.
    _until(at, lambda a: "de-quick-" in _texts(a))
    _until(at, lambda a: "finished after" in _texts(a))
    assert [s.value for s in at.subheader] == ["Your job", "Runs"]
    probe = next(s for s in at.select_slider if s.label == "Probe plan at step")
    assert str(probe.value) == probe.options[-1]  # it followed the newest snapshot
    assert "is the sidebar model of every page now" in _texts(at)
    run = next(env.glob("de-quick-*"))
    rec = json.loads((run / "run.json").read_text())
    assert rec["status"] == "finished" and rec["config"]["pairs"] == 24
    assert rec["config"]["loss"] == "ot" and (run / "probe.json").is_file()
    assert "de-quick-" in " ".join(at.dataframe[0].value["run"].tolist())
    # This page has no model picker: the switch waits for the next page that has one.
    assert at.session_state[FOLLOW_KEY]["run"] == str(run.resolve())


def test_quick_student_shares_the_one_job_per_tab_rule(env, tiny, monkeypatch):
    _quick_env(monkeypatch, tiny, max_steps=10**6)
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.run()
    at.text_input[0].set_value("form-job")
    _widget(at.button, "Start training").click().run()
    _until(at, lambda a: a.get("progress"))
    _widget(at.button, "Train a quick student").click().run()
    assert at.error and "already has a" in str(at.error[0].value)
    # Another tab's quick student waits in the queue behind this tab's job.
    other = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    other.run()
    _widget(other.button, "Train a quick student").click().run()
    _until(other, lambda a: "Queued" in _texts(a))
    _widget(other.button, "Cancel").click().run()
    _until(other, lambda a: "was cancelled" in _texts(a))
    _widget(at.button, "Cancel").click().run()
    _until(at, lambda a: "was cancelled" in _texts(a))

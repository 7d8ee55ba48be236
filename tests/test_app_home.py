"""AppTest of the home page's quick student: one click queues
:func:`optical_core.distill.recipes.quick_student` on the Distillation page's job queue, the
home page shows the live job, and the sidebar model switches to the run when it finishes.

``OPTICAL_QUICK_STUDENT`` points the preset at a tiny random teacher and the demo pairs, so
the job trains within seconds; runs go to a temporary ``OPTICAL_RUNS_DIR``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from _distill_models import make_tiny_model
from figure_support import figure_specs
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]

HOME = str(ROOT / "app.py")
TIMEOUT = 300  # a loaded machine: the first run of a page may take long


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    return make_tiny_model(tmp_path_factory.mktemp("home-models") / "tiny", seed=0)


@pytest.fixture
def runs_dir(tiny, tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("OPTICAL_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("OPTICAL_MODELS_DIR", str(Path(tiny).parent))  # the teacher, for Alignment
    monkeypatch.setenv("OPTICAL_QUICK_STUDENT", json.dumps({
        "teacher": tiny, "data": "demo", "pairs": 24, "batch_size": 4, "max_tokens": 32,
        "max_steps": 16, "probe_every": 2, "eval_limit": 8, "lr": 1e-3,
    }))
    return tmp_path / "runs"


def _texts(at: AppTest) -> str:
    parts = [str(e.value) for kind in ("markdown", "success", "info", "warning", "error", "caption")
             for e in getattr(at, kind)]
    parts += [str(p.proto.text) for p in at.get("progress")]
    return "\n".join(parts)


def _until(at: AppTest, cond, timeout: float = 1500.0) -> AppTest:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        if cond(at):
            return at
        time.sleep(2)  # leave the CPU to the training thread on a loaded machine
    raise AssertionError("condition not met; page shows: " + _texts(at)[-2000:])


def test_quick_student_trains_and_the_sidebar_switches_to_it(runs_dir, tiny):
    at = AppTest.from_file(HOME, default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["optical_model_id"] == "all-MiniLM-L6-v2"
    lang = at.selectbox(key="quick_lang")
    assert lang.value == "de" and lang.options == ["German", "French", "Czech"]
    lang.set_value("fr")
    next(b for b in at.button if b.label == "Train a quick student").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    # The job is this tab's job in the server's queue; the page shows it live.
    _until(at, lambda a: "Training loss" in _texts(a) or "finished after" in _texts(a))
    _until(at, lambda a: a.session_state["optical_model_id"].endswith("model"))
    model = Path(at.session_state["optical_model_id"])
    run = model.parent
    assert run.parent == runs_dir.resolve() and run.name.startswith("fr-quick-")
    rec = json.loads((run / "run.json").read_text())
    assert rec["status"] == "finished" and rec["config"]["loss"] == "ot"
    assert rec["config"]["lang"] == "fr" and rec["config"]["teacher"] == tiny
    # The sidebar's picker shows the run, with a note saying why.
    picker = at.sidebar.selectbox[0]
    assert picker.format_func(picker.value).startswith(f"Run: {run.name}")
    assert any("quick student" in str(s.value) for s in at.sidebar.success)
    assert "is the sidebar model of every page now" in _texts(at)
    assert f"**{run.name}**" in "\n".join(str(m.value) for m in at.markdown)  # This session
    # The model stays when the class moves on to the Alignment page, which draws the plan
    # of the model the run started from (its teacher: the tiny model here) beside its own.
    at.switch_page("pages/1_Alignment.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["optical_model_id"] == str(model)
    toggle = at.toggle(key="al_before")
    assert "plan of tiny" in toggle.label
    toggle.set_value(True).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    titles = [s["layout"].get("title", {}).get("text", "") for s in figure_specs(at)]
    assert any("before: tiny" in t for t in titles) and any(f"after: {run.name}" in t
                                                           for t in titles), titles
    # Back on the home page, picking another model drops the note; the switch was once only.
    at.switch_page("app.py").run()
    assert at.session_state["optical_model_id"] == str(model)
    at.sidebar.selectbox[0].set_value("__default__").run()
    assert at.session_state["optical_model_id"] == "all-MiniLM-L6-v2"
    assert not at.sidebar.success
    at.run()
    assert at.session_state["optical_model_id"] == "all-MiniLM-L6-v2"


def test_a_training_quick_student_shows_in_the_sidebar_of_other_pages(runs_dir, tiny,
                                                                      monkeypatch):
    """``page_setup`` draws the tracker, so a quick student started on Home stays visible
    (and alive: the tracker is the tab's heartbeat) on the Retrieval page too."""
    quick = json.loads(os.environ["OPTICAL_QUICK_STUDENT"])  # set by runs_dir
    monkeypatch.setenv("OPTICAL_QUICK_STUDENT", json.dumps({**quick, "max_steps": 10**6}))
    at = AppTest.from_file(HOME, default_timeout=TIMEOUT).run()
    next(b for b in at.button if b.label == "Train a quick student").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    _until(at, lambda a: "Training loss" in _texts(a))
    at.switch_page("pages/3_Retrieval.py").run()
    assert not at.exception, [e.value for e in at.exception]
    line = [str(p.proto.text) for p in at.sidebar.get("progress")]
    assert len(line) == 1 and line[0].startswith("Quick student de-quick-"), line
    assert "step " in line[0]
    assert at.session_state["optical_model_id"] == "all-MiniLM-L6-v2"  # not finished yet
    # Back home, cancel it: the tracker draws nothing for a job that has stopped.
    at.switch_page("app.py").run()
    next(b for b in at.button if b.label == "Cancel").click().run()
    _until(at, lambda a: "was cancelled" in _texts(a))
    at.switch_page("pages/3_Retrieval.py").run()
    assert not at.exception and not at.sidebar.get("progress")


def test_the_preset_is_used_as_it_is_without_the_test_hook(monkeypatch):
    from optical_core.distill.recipes import QUICK_PAIRS
    from ui.quick import quick_config

    monkeypatch.delenv("OPTICAL_QUICK_STUDENT", raising=False)
    cfg, note = quick_config("cs")
    assert (cfg.lang, cfg.loss, cfg.pairs, cfg.epochs, cfg.teacher) == ("cs", "ot", QUICK_PAIRS,
                                                                       1.0, None)
    assert (cfg.data == "demo") == (note is not None)  # demo pairs only without Multi30k
    monkeypatch.setenv("OPTICAL_QUICK_STUDENT", '{"no_such_field": 1}')
    from optical_core.distill.config import DistillError

    with pytest.raises(DistillError, match="no_such_field"):
        quick_config("de")

"""AppTest of pages/2_Distillation.py: start a job, see progress, cancel it, resume it.

The page's form starts from ``OPTICAL_DISTILL_DEFAULTS`` (a tiny random teacher, the demo
pairs, many steps) so a job trains in a background thread within seconds; runs go to a
temporary ``OPTICAL_RUNS_DIR``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from _distill_models import make_tiny_model

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "2_Distillation.py")


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


def _until(at: AppTest, cond, timeout: float = 60.0):
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
    at = AppTest.from_file(PAGE, default_timeout=90)
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
    first = AppTest.from_file(PAGE, default_timeout=90)
    first.run()
    first.text_input[0].set_value("busy-a")
    next(b for b in first.button if b.label == "Start training").click().run()
    _until(first, lambda a: a.get("progress"))
    second = AppTest.from_file(PAGE, default_timeout=90)
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
    at = AppTest.from_file(PAGE, default_timeout=90)
    at.run()
    at.text_input[0].set_value("../escape")
    next(b for b in at.button if b.label == "Start training").click().run()
    assert at.error and "invalid run name" in str(at.error[0].value).lower()

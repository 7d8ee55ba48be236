"""AppTest of the Alignment page's lesson and step-through: a finished quick student opens
the page on a demo pair in its language with *Before distillation* on, the link keeps the
toggle, and the Sinkhorn step-through walks from the Gibbs kernel to the page's plan."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from _helpers import ok
from figure_support import figure_spec, figure_specs
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]

PAGE = str(ROOT / "pages" / "1_Alignment.py")
TIMEOUT = 900


@pytest.fixture
def quick_run(tmp_path, monkeypatch) -> Path:
    """A finished German quick student whose model/ is the default MiniLM (a symlink) and
    which started from it."""
    from optical_core.encoders.base import default_model_path

    root = tmp_path / "runs"
    run = root / "de-quick-test"
    run.mkdir(parents=True)
    (run / "model").symlink_to(default_model_path(), target_is_directory=True)
    (run / "run.json").write_text(json.dumps({
        "status": "finished", "config": {"lang": "de", "loss": "ot"}, "evals": [],
        "teacher": "default", "updated_ts": time.time(),
    }))
    monkeypatch.setenv("OPTICAL_RUNS_DIR", str(root))
    return run


def _z(spec: dict) -> np.ndarray:
    from test_app_alignment import _arr

    return _arr(spec["data"][0]["z"])


def _quick_page(run: Path, lang: str = "de", **state) -> AppTest:
    """The Alignment page of a tab whose quick student (``ui.quick.start``'s record) has
    finished and is the sidebar model."""
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.session_state["quick_student"] = {"job": "job-1", "run": str(run), "name": run.name,
                                         "lang": lang, "note": None}
    at.session_state["optical_model_id"] = str(run / "model")
    for k, v in state.items():
        at.session_state[k] = v
    return ok(at.run())


def test_a_finished_quick_student_opens_on_its_language_with_before_on(quick_run):
    at = _quick_page(quick_run, al_source="demo", al_demo=0)  # the class left en-para-01
    assert at.radio(key="al_source").value == "demo"
    demo = at.selectbox(key="al_demo")
    assert demo.format_func(demo.value).startswith("de-01 ★")
    assert at.toggle(key="al_before").value is True
    titles = [s["layout"]["title"]["text"] for s in figure_specs(at)
              if s["layout"].get("meta", {}).get("kind") == "plan"]
    assert any("before: all-MiniLM-L6-v2" in t for t in titles), titles
    assert any("after: de-quick-test" in t for t in titles), titles
    assert "AER (after)" in {m.label for m in at.metric}
    # The link keeps the toggle (and the pair).
    assert at.query_params["before"] == "true" and at.query_params["demo"] == "de-01"
    # Once per student: the class may move on to another pair and switch it off.
    at.toggle(key="al_before").set_value(False).run()
    at.selectbox(key="al_demo").set_value(0).run()
    ok(at)
    assert at.toggle(key="al_before").value is False and at.selectbox(key="al_demo").value == 0
    assert "before" not in at.query_params


def test_the_lesson_follows_the_students_language(quick_run):
    at = _quick_page(quick_run, lang="cs")
    demo = at.selectbox(key="al_demo")
    assert demo.format_func(demo.value).startswith("cs-01")


def test_another_model_gets_no_lesson(quick_run):
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.session_state["quick_student"] = {"job": "job-1", "run": str(quick_run),
                                         "name": quick_run.name, "lang": "de", "note": None}
    ok(at.run())  # the sidebar model is still the default
    assert at.radio(key="al_source").value == "free"


def test_a_link_with_before_turns_the_toggle_on(quick_run):
    from ui.models import model_param

    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.query_params.update(model=model_param(str(quick_run / "model")), pair="demo",
                           demo="fr-01", before="true")
    ok(at.run())
    assert at.toggle(key="al_before").value is True
    assert not [w for w in at.warning if "link" in str(w.value)], [w.value for w in at.warning]


def test_plan_titles_fit_half_the_page():
    from ui.pair_summary import TITLE_CHARS, Transport

    t = Transport("cosine", "unbalanced", 0.05, 3.0, 0.8, "uniform", "subword")
    first, second = t.title("x" * 80, "after").split("<br>")
    assert len(first) == TITLE_CHARS and first.startswith("after: x") and first.endswith("…")
    assert "ε = 0.05" in second and "τ = 3" in second
    assert t.title("de-quick-20261208-001552", "after").startswith(
        "after: de-quick-20261208-001552<br>")  # a quick student's whole name
    assert t.title("all-MiniLM-L6-v2").startswith("Plan · all-MiniLM-L6-v2<br>")


# ------------------------------------------------------------------ step-through


def test_step_through_goes_from_the_kernel_to_the_pages_plan():
    at = ok(AppTest.from_file(PAGE, default_timeout=TIMEOUT).run())
    assert not [s for s in figure_specs(at)
                if s["layout"].get("meta", {}).get("kind") == "sinkhorn_step"]
    at.toggle(key="al_steps").set_value(True).run()
    slider = ok(at).select_slider(key="al_step")
    assert slider.options[0] == "0 · kernel" and slider.options[-1].endswith("converged")
    kernel = figure_spec(at, "sinkhorn_step")
    assert kernel["layout"]["meta"]["iteration"] == 0
    plan = _z(figure_spec(at, "plan"))
    cost = _z(figure_spec(at, "cost"))
    k0 = np.exp(-cost / 0.05)
    np.testing.assert_allclose(_z(kernel), k0 / k0.sum(), rtol=1e-5, atol=1e-9)
    errors = []
    for k in (1, 2, len(slider.options) - 1):
        at.select_slider(key="al_step").set_value(k).run()
        step = figure_spec(ok(at), "sinkhorn_step")
        errors.append(step["layout"]["meta"]["marginal_error"])
        assert f"{errors[-1]:.1e}" in {m.value for m in at.metric}
    assert errors[0] > errors[1] > errors[2] and errors[2] <= 1e-6
    # The number fits its column on a 1,000 px screen (a quarter of the width clipped it).
    assert max(len(m.value) for m in at.metric if m.label == "Marginal error") <= 7
    # The last stop and "What the solver did" count iterations differently (POT tests every
    # 10th): the page says so rather than showing two numbers that seem to disagree.
    last = int(slider.options[-1].split()[0])
    ran = int(re.search(r"solver ran (\d+) iterations",
                        "".join(m.value for m in at.markdown)).group(1))
    assert ran != last and ran - last < 10
    assert any(f"counts {ran} iterations" in c.value and f"step {last}" in c.value
               for c in at.caption)
    np.testing.assert_allclose(_z(step), plan, atol=1e-5)  # the end is the page's plan
    # A new ε has another number of steps: the slider keeps a valid stop.
    at.select_slider(key="al_eps").set_value(0.2).run()
    assert ok(at).select_slider(key="al_step").value in range(
        len(at.select_slider(key="al_step").options))

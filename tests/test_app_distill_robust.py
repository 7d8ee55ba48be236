"""AppTest of the Distillation form's advanced options: the robustness options
(ui/distill_robust.py: the recipe fills the Robustness expander, a job carries the options
into its config and run.json, options that do not go together give a note instead of a
job) and the learning-rate schedule (ui/distill.py's schedule_options).

The form starts from ``OPTICAL_DISTILL_DEFAULTS`` (the tiny random teacher of conftest, the
demo pairs), as in tests/test_app_distillation.py; runs go to a temporary ``OPTICAL_RUNS_DIR``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from optical_core.distill.config import DistillConfig
from optical_core.distill.recipes import RECIPES, ROBUST_FIELDS, robust_recipe
from ui.distill import SCHEDULE_LABELS, schedule_key
from ui.distill_robust import LABELS, key, recipe_caption
from ui.run_summary import robust_summary

ROOT = Path(__file__).resolve().parents[1]

PAGE = str(ROOT / "pages" / "2_Distillation.py")
TIMEOUT = 600  # per script run and per wait: generous, for a machine busy with other work


@pytest.fixture
def env(tiny, tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("OPTICAL_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("OPTICAL_DISTILL_DEFAULTS", json.dumps({
        "teacher": tiny, "data": "demo", "pairs": 24, "batch_size": 4, "max_tokens": 32,
        "max_steps": 6, "probe_every": 2, "eval_limit": 8, "lr": 1e-3,
    }))
    return tmp_path / "runs"


def _page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    return at


def _texts(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "success", "info", "warning",
                                               "error", "caption") for e in getattr(at, kind))


def _values(at: AppTest) -> dict:
    """The robustness widgets' values, as the fields the form submits."""
    out = {f: at.session_state[key(f)] for f in ROBUST_FIELDS}
    out["noise_kind"] = ",".join(out["noise_kind"])
    return out


def _start(at: AppTest):
    return next(b for b in at.button if b.label == "Start training")


def _until(at: AppTest, cond, timeout: float = TIMEOUT) -> AppTest:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        at.run()
        if cond(at):
            return at
        time.sleep(0.3)
    raise AssertionError("condition not met; page shows: " + _texts(at)[:2000])


def test_the_form_has_a_widget_for_every_robustness_field():
    assert set(LABELS) == set(ROBUST_FIELDS)
    assert recipe_caption("robust").startswith("**robust** sets Co-occurrence λ 0.3")
    assert robust_summary(DistillConfig().to_dict()) == ""
    assert robust_summary({**DistillConfig().to_dict(), "noise_p": 0.5,
                           "noise_kind": "random_char,keyboard"}) == \
        "noise_p=0.5, noise_kind=random_char+keyboard"


def test_the_robust_recipe_fills_the_expander_and_none_undoes_it(env):
    at = _page()
    defaults = {f: getattr(DistillConfig(), f) for f in ROBUST_FIELDS}
    assert _values(at) == defaults
    recipe = at.selectbox(key="distill_recipe")
    assert recipe.options == ["none", *sorted(RECIPES)]
    recipe.set_value("robust").run()
    assert not at.exception, at.exception
    assert _values(at) == {**defaults, **robust_recipe()}
    # the widgets show them, and the caption is generated from the recipe's values
    cooc = at.slider(key=key("cooc_weight"))
    assert cooc.value == 0.3 and (cooc.min, cooc.max) == (0, 1)
    assert at.radio(key=key("cooc_measure")).value == "npmi"
    noise_p = at.slider(key=key("noise_p"))
    assert noise_p.value == 0.5 and (noise_p.min, noise_p.max, noise_p.step) == (0, 1, 0.05)
    assert recipe_caption("robust") in _texts(at)
    # the user may still change them; the recipe does not override that on the next run
    at.slider(key=key("noise_p")).set_value(0.3).run()
    assert _values(at)["noise_p"] == 0.3 and _values(at)["cooc_weight"] == 0.3
    recipe.set_value("none").run()
    assert _values(at) == defaults


def test_a_started_job_carries_the_robustness_options(env):
    at = _page()
    at.selectbox(key="distill_recipe").set_value("robust").run()
    at.slider(key=key("noise_p")).set_value(0.5).run()  # enables the noise kinds
    at.number_input(key=key("self_teach_weight")).set_value(0.2)
    at.slider(key=key("cooc_weight")).set_value(0.25)
    at.radio(key=key("cooc_measure")).set_value("dice")
    at.text_input(key="distill_run_name").set_value("robust-run")
    at.run()
    assert "cannot start" not in _texts(at)
    _start(at).click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    _until(at, lambda a: "finished after" in _texts(a) or a.error)
    assert not at.error, [e.value for e in at.error]
    want = {**robust_recipe(), "noise_p": 0.5, "self_teach_weight": 0.2, "cooc_weight": 0.25,
            "cooc_measure": "dice"}
    rec = json.loads((env / "robust-run" / "run.json").read_text())
    assert rec["status"] == "finished"
    assert {k: rec["config"][k] for k in want} == want
    # the job panel and the runs table say which robustness options the run had
    summary = robust_summary(rec["config"])
    assert "noise_p=0.5" in summary and "cooc_measure=dice" in summary
    assert f"Robustness options: {summary}" in _texts(at)
    table = at.dataframe[0].value
    assert table[table["run"] == "robust-run"].iloc[0]["robustness"] == summary


@pytest.mark.parametrize("change, message", [
    # the page names the fields by their labels, not by DistillConfig's field names
    ({key("consistency_weight"): 0.5}, "they need 'Noisy share' > 0 or 'Subword dropout' > 0"),
    ({"loss": "mse", key("cooc_weight"): 0.3}, "it needs loss 'ot' or 'ot+mse'"),
    ({key("noise_p"): 0.5, key("noise_kind"): []}, "'Noise kinds' names no noise kind"),
])
def test_options_that_do_not_go_together_are_a_note_and_start_nothing(env, change, message):
    at = _page()
    for k, v in change.items():  # one run each: a noise kind is disabled while noise_p is 0
        if k == "loss":
            next(r for r in at.radio if r.label == "Loss").set_value(v)
        elif k == key("noise_kind"):
            at.multiselect(key=k).set_value(v)
        elif k == key("consistency_weight"):
            at.number_input(key=k).set_value(v)
        else:
            at.slider(key=k).set_value(v)
        at.run()
    at.text_input(key="distill_run_name").set_value("bad-run").run()
    assert not at.exception and not at.error, at.exception or [e.value for e in at.error]
    note = next(w.value for w in at.warning if "cannot start" in w.value)
    assert message in note
    assert _start(at).disabled  # AppTest, like a browser, cannot click it
    assert not (env / "bad-run").exists()
    assert "Your job" not in [s.value for s in at.subheader]


def test_a_started_job_carries_the_lr_schedule_options(env):
    at = _page()
    default = DistillConfig()
    assert {f: at.session_state[schedule_key(f)] for f in SCHEDULE_LABELS} == \
        {f: getattr(default, f) for f in SCHEDULE_LABELS}
    assert at.radio(key=schedule_key("lr_schedule")).options == ["constant", "linear", "cosine"]
    at.radio(key=schedule_key("lr_schedule")).set_value("linear")
    at.slider(key=schedule_key("warmup_ratio")).set_value(0.1)
    at.number_input(key=schedule_key("max_grad_norm")).set_value(1.0)
    at.text_input(key="distill_run_name").set_value("schedule-run")
    at.run()
    assert not at.exception and "cannot start" not in _texts(at)
    _start(at).click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    _until(at, lambda a: "finished after" in _texts(a) or a.error)
    assert not at.error, [e.value for e in at.error]
    rec = json.loads((env / "schedule-run" / "run.json").read_text())
    assert rec["status"] == "finished"
    want = {"lr_schedule": "linear", "warmup_ratio": 0.1, "max_grad_norm": 1.0,
            "weight_decay": default.weight_decay}
    assert {k: rec["config"][k] for k in want} == want
    # the job panel names the options that are not the defaults, and only those
    assert "Schedule options: lr_schedule=linear, warmup_ratio=0.1, max_grad_norm=1" \
        in _texts(at).splitlines()

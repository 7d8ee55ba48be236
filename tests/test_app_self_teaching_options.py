"""AppTest of the Distillation form's Self-Teaching place and temperature: widgets labelled
from the options' metadata, off until Self-Teaching has a weight, and a bad pair of values
gets the config's one-line note instead of a job."""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from optical_core.distill.config import SELF_TEACH_ON, option_named
from ui.distill_robust import key

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "2_Distillation.py")


def test_the_place_and_temperature_widgets_follow_the_weight(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("OPTICAL_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("OPTICAL_DISTILL_DEFAULTS", json.dumps({
        "teacher": tiny, "data": "demo", "pairs": 24, "batch_size": 4, "max_tokens": 32,
        "max_steps": 6, "eval_limit": 8}))
    at = AppTest.from_file(PAGE, default_timeout=600)
    at.run()
    assert not at.exception, at.exception
    place = at.radio(key=key("self_teach_on"))
    temp = at.number_input(key=key("self_teach_temperature"))
    assert place.label == option_named("self_teach_on").label and place.options == list(
        SELF_TEACH_ON)
    assert temp.label == option_named("self_teach_temperature").label and temp.value == 0.05
    assert place.disabled and temp.disabled  # no Self-Teaching weight: nothing to place
    at.slider(key=key("noise_p")).set_value(0.5)
    at.number_input(key=key("self_teach_weight")).set_value(0.1).run()
    assert not at.radio(key=key("self_teach_on")).disabled
    at.radio(key=key("self_teach_on")).set_value("tokens").run()
    assert at.session_state[key("self_teach_on")] == "tokens"
    at.number_input(key=key("self_teach_weight")).set_value(0.0).run()
    notes = " ".join(str(e.value) for e in at.warning) + " ".join(str(e.value) for e in at.error)
    assert "give 'Self-Teaching weight' > 0" in notes, notes

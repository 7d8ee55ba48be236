"""Streamlit AppTest of the home page and every control of the Alignment page.

Runs the real scripts in-process with the real default MiniLM (embedded in a PyPI package,
no network). The first run pays the torch/model import (~15 s); later runs reuse the
process-wide caches and take about a second each.
"""

from __future__ import annotations

import base64
import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _helpers import ok
from figure_support import figure_kinds, figure_spec, figure_specs
from streamlit.testing.v1 import AppTest

from optical_core.encoders.base import (
    ModelLoadError,
)

ROOT = Path(__file__).resolve().parents[1]

HOME = str(ROOT / "app.py")
PAGE = str(ROOT / "pages" / "1_Alignment.py")
SHARED = ROOT.parent / "shared" / "data"
TIMEOUT = 900  # per script run: generous, for a machine busy with other work


@pytest.fixture(autouse=True)
def _isolated_runs(tmp_path, monkeypatch):
    """No test reads the developer's ./runs folder."""
    monkeypatch.setenv("OPTICAL_RUNS_DIR", str(tmp_path / "runs"))


def page(**state) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    for k, v in state.items():
        at.session_state[k] = v
    return at.run()


def _arr(v) -> np.ndarray:
    if isinstance(v, dict) and "bdata" in v:  # plotly's typed-array JSON
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])
        shape = v.get("shape")
        return a.reshape([int(x) for x in str(shape).split(",")]) if shape else a
    return np.asarray(v, dtype=float)


def chart(at: AppTest, kind: str = "plan") -> dict:
    return figure_spec(at, kind)


def plan(at: AppTest) -> np.ndarray:
    return _arr(chart(at)["data"][0]["z"])


def texts(at: AppTest, kind: str) -> str:
    return "\n".join(str(e.value) for e in getattr(at, kind))


# ------------------------------------------------------------------------ home


def test_home_page_explains_and_links():
    at = ok(AppTest.from_file(HOME, default_timeout=TIMEOUT).run())
    assert at.title[0].value == "OPTICAL Explorer"
    assert "Alignment as transport" in texts(at, "markdown")
    spec = chart(at, "transport")
    assert any(t.get("mode") == "lines" for t in spec["data"])
    # the shared model picker sits in the sidebar, default MiniLM
    picker = at.sidebar.selectbox[0]
    assert picker.label == "Model" and "all-MiniLM-L6-v2" in picker.format_func(picker.value)
    assert at.session_state["optical_model_id"] == "all-MiniLM-L6-v2"


# ------------------------------------------------------------------- alignment


def test_default_pair_shows_sharp_plan():
    at = ok(page())
    P = plan(at)
    assert P.shape == (7, 8)  # a dog runs along the beach . × a puppy is running on the sand .
    assert P.sum() == pytest.approx(1.0, abs=1e-4)
    assert P[1].argmax() == 1 and P[5].argmax() == 6  # dog→puppy, beach→sand
    assert "diffuse" not in texts(at, "warning")
    assert chart(at, "cost")["data"][0]["type"] == "heatmap"
    hover = chart(at)["data"][0]["hovertemplate"]
    assert "mass" in hover and "cost" in hover


def test_epsilon_changes_the_figure_without_re_encoding(monkeypatch):
    from optical_core.encoders.transformer import Encoder

    calls = []
    real = Encoder.token_embeddings

    def counting(self, texts_, *a, **k):
        calls.append(list(texts_))
        return real(self, texts_, *a, **k)

    monkeypatch.setattr(Encoder, "token_embeddings", counting)
    at = ok(page(al_src="A cat sleeps on a warm windowsill.",
                 al_tgt="A kitten naps by the window."))
    n_calls = len(calls)
    assert n_calls >= 1
    before = plan(at)
    at.select_slider(key="al_eps").set_value(0.5).run()
    ok(at)
    after = plan(at)
    assert not np.allclose(before, after)
    from optical_core.pairs.summary import plan_entropy

    assert plan_entropy(after) > plan_entropy(before)  # larger ε blurs
    assert len(calls) == n_calls  # re-solved from cached embeddings
    for key, value in (("al_eps", 0.01), ("al_weighting", "norm"), ("al_metric", "sqeuclidean")):
        widget = at.select_slider(key=key) if key == "al_eps" else at.radio(key=key)
        widget.set_value(value).run()
        ok(at)
    assert len(calls) == n_calls


def test_exact_solver_gives_sparse_plan_and_disables_epsilon():
    at = ok(page(al_solver="exact"))
    P = plan(at)
    n, m = P.shape
    assert (P > 1e-12).sum() <= n + m - 1
    assert at.select_slider(key="al_eps").disabled
    assert "exact (a linear program)" in texts(at, "markdown")


def test_partial_mass_leaves_mass_unaligned():
    at = ok(page(al_solver="partial", al_mass=0.6))
    P = plan(at)
    assert P.sum() == pytest.approx(0.6, abs=1e-6)
    md = texts(at, "markdown")
    assert "60% of the mass was transported; 40% stays unaligned" in md
    assert "Tokens that kept mass back" in md
    assert not at.slider(key="al_mass").disabled
    at.slider(key="al_mass").set_value(1.0).run()
    assert plan(ok(at)).sum() == pytest.approx(1.0, abs=1e-6)


def test_unbalanced_tau_changes_the_plan():
    at = ok(page(al_solver="unbalanced", al_tau=0.1))
    small = plan(at)
    assert small.sum() < 0.999  # small τ: mass may stay behind
    at.select_slider(key="al_tau").set_value(100.0).run()
    large = plan(ok(at))
    assert large.sum() == pytest.approx(1.0, abs=0.02)
    assert not np.allclose(small, large)


def test_cost_weighting_and_level_controls():
    at = ok(page())
    cos_cost = _arr(chart(at, "cost")["data"][0]["z"])
    assert cos_cost.max() <= 2.0
    at.radio(key="al_metric").set_value("sqeuclidean").run()
    sq = _arr(chart(ok(at), "cost")["data"][0]["z"])
    assert sq.max() > 2.0
    assert "applied as" in texts(at, "markdown")  # ε scaled to the cost range, said so
    at.radio(key="al_metric").set_value("cosine").run()
    bars = [t for t in chart(ok(at))["data"]
            if t["type"] == "bar" and t["name"] == "source weight a"]
    uniform = _arr(bars[0]["x"])
    at.radio(key="al_weighting").set_value("norm").run()
    bars = [t for t in chart(ok(at))["data"]
            if t["type"] == "bar" and t["name"] == "source weight a"]
    norm = _arr(bars[0]["x"])
    assert np.allclose(uniform, uniform[0]) and not np.allclose(norm, norm[0])
    at.radio(key="al_level").set_value("word").run()
    assert plan(ok(at)).shape == (7, 8)
    at = ok(page(al_src="Unbelievably, skateboarding continues.", al_level="subword"))
    sub = plan(at).shape[0]
    at.radio(key="al_level").set_value("word").run()
    assert plan(ok(at)).shape[0] < sub


def test_link_methods_agreement_and_disagreement_overlay():
    at = ok(page())
    names = [t.get("name") for t in chart(at)["data"]]
    assert "OT threshold links" in names and "argmax links" in names
    table = at.dataframe[0].value
    assert list(table["method"]) == ["OT threshold", "argmax", "itermax"]
    assert (table["Jaccard"] <= 1).all()
    # Short headers: the table shares half the page, and at 1,000 px a long "Jaccard vs OT
    # threshold" header pushed the numbers out of sight (the tooltip names the method).
    assert list(table.columns) == ["method", "links", "Jaccard"]
    assert table["Jaccard"].iloc[0] == 1.0
    assert "Only **OT threshold**" in texts(at, "markdown")
    at.selectbox(key="al_link").set_value("itermax").run()
    ok(at)
    assert at.slider(key="al_threshold").disabled
    names = [t.get("name") for t in chart(at)["data"]]
    assert "itermax links" in names
    at.selectbox(key="al_other").set_value("none").run()
    names = [t.get("name") for t in chart(ok(at))["data"]]
    assert not any(n and n.startswith("argmax") for n in names)
    at.selectbox(key="al_link").set_value("ot").run()
    at.slider(key="al_threshold").set_value(1.0).run()
    strict = int(ok(at).dataframe[0].value["links"][0])
    at.slider(key="al_threshold").set_value(0.1).run()
    assert int(ok(at).dataframe[0].value["links"][0]) > strict


def test_german_demo_pair_is_diffuse_explained_and_scored():
    at = ok(page(al_source="demo"))
    box = at.selectbox(key="al_demo")
    box.select_index(next(i for i, o in enumerate(box.options) if o.startswith("de-01"))).run()
    ok(at)
    warn = texts(at, "warning")
    assert "The plan is diffuse" in warn and "German" in warn
    assert "Distillation" in warn and "multilingual" in warn
    labels = [m.label for m in at.metric]
    assert {"AER", "Precision", "Recall", "F1"} <= set(labels)
    names = [t.get("name") for t in chart(at)["data"]]
    assert "gold sure" in names
    at.toggle(key="al_gold").set_value(False).run()
    assert "gold sure" not in [t.get("name") for t in chart(ok(at))["data"]]


def test_epsilon_is_explained_beside_its_slider():
    at = ok(page(al_eps=0.01))
    assert "ε = 0.01: nearly one-to-one" in texts(at, "caption")
    at.select_slider(key="al_eps").set_value(1.0).run()
    assert "ε = 1: a blur" in texts(ok(at), "caption")


def test_diffuse_typed_english_texts_are_not_blamed_on_a_language():
    # Two unrelated English texts: the plan is diffuse, but not because of German.
    at = ok(page(al_src="The committee approved the annual budget after a long debate.",
                 al_tgt="A puppy is running on the sand.", al_solver="partial"))
    warn = texts(at, "warning")
    assert "The plan is diffuse" in warn
    assert "German" not in warn and "may simply not say the same things" in warn
    assert "only because the exact and partial solvers" in warn  # the shown plan is sparse


def test_paraphrase_demo_pair_is_not_diffuse_and_large_epsilon_is_named():
    at = ok(page(al_source="demo"))
    demo = at.selectbox(key="al_demo")
    assert demo.format_func(demo.value).startswith("en-para-01")
    assert "diffuse" not in texts(at, "warning")
    at.select_slider(key="al_eps").set_value(1.0).run()
    assert "blurred by the large ε" in texts(ok(at), "info")


@pytest.mark.skipif(not (SHARED / "gold_alignments" / "enfr.gold").is_file(),
                    reason="gold alignments not found at ../shared/data")
def test_gold_set_pair():
    at = ok(page(al_source="gold", al_g_line=5))
    assert "AER" in [m.label for m in at.metric]
    assert "AER" in at.dataframe[0].value.columns


@pytest.mark.skipif(not (SHARED / "gold_alignments" / "enfr.gold").is_file(),
                    reason="gold alignments not found at ../shared/data")
def test_gold_set_opens_on_a_full_sentence():
    # Sentence 1 of the Hansards sets is "2 . ↔ 2 .": nothing to see on a first visit.
    at = ok(page(al_source="gold"))
    line = at.number_input(key="al_g_line").value
    assert line > 1
    assert min(plan(at).shape) >= 6  # six words a side give at least six subwords
    at.number_input(key="al_g_line").set_value(1).run()
    assert ok(at).number_input(key="al_g_line").value == 1  # the user's choice stays


@pytest.mark.skipif(not (SHARED / "multi30k" / "task1" / "raw").is_dir(),
                    reason="Multi30k not found at ../shared/data")
def test_multi30k_pair():
    at = ok(page(al_source="multi30k"))
    at.selectbox(key="al_m_lang").set_value("cs").run()
    at.number_input(key="al_m_line").set_value(3).run()
    ok(at)
    assert plan(at).size > 0
    assert "Czech" in texts(at, "warning")  # default model on Czech: diffuse, explained


def test_missing_data_sources_are_hidden_with_a_note(monkeypatch, tmp_path):
    monkeypatch.setenv("OPTICAL_DATA_DIR", str(tmp_path / "nothing"))
    monkeypatch.setenv("OPTICAL_CACHE_DIR", str(tmp_path / "cache"))
    from ui.common import data_sources

    data_sources.clear()
    try:
        at = ok(page())
        assert at.radio(key="al_source").options == ["Type two texts", "Demo set"]
        assert "OPTICAL_DATA_DIR" in texts(at, "caption")
    finally:
        data_sources.clear()


# ------------------------------------------------------------------- bad input


def test_bad_model_id_gives_error_box_not_traceback():
    at = ok(page(optical_model_id="no-such-org/no-such-model-xyz"))
    err = texts(at, "error")
    assert "Could not load the model" in err and "What to do" in err
    assert not figure_specs(at)
    # the picker shows the typed id so the user can fix it
    assert at.sidebar.text_input[0].value == "no-such-org/no-such-model-xyz"


def test_folder_that_is_not_a_model(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTICAL_MODELS_DIR", str(tmp_path))  # typed folders must lie in one
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("hello")
    at = ok(page(optical_model_id=str(junk)))
    assert "is not a model folder" in texts(at, "error")


@pytest.mark.parametrize("src", ["", "   \n\t "])
def test_empty_or_blank_text_gives_a_message(src):
    at = ok(page(al_src=src))
    warn = texts(at, "warning")
    assert "source text is empty" in warn
    assert not figure_specs(at)
    at.text_area(key="al_tgt").input(" ").run()
    assert "source and target text is empty" in texts(ok(at), "warning")


def test_emoji_only_text_warns_about_unknown_tokens():
    at = ok(page(al_src="🐶🐶 🏖️", al_tgt="😀"))
    assert "unknown to the model's vocabulary" in texts(at, "warning")
    assert plan(at).size > 0


def test_very_long_text_is_cut_with_a_warning():
    long_text = " ".join(["dog"] * 5000)
    t0 = time.perf_counter()
    at = ok(page(al_src=long_text))
    assert time.perf_counter() - t0 < 30
    assert "cut at the model's limit" in texts(at, "warning")
    assert 250 <= plan(at).shape[0] <= 256  # the model limit, special tokens removed


# ---------------------------------------------------------- models and runs


@pytest.fixture
def fake_run(tmp_path, monkeypatch):
    """A finished Distillation run whose model/ is the default MiniLM (a symlink)."""
    from optical_core.encoders.base import default_model_path

    root = tmp_path / "runs"
    run = root / "cs-ot-test"
    run.mkdir(parents=True)
    (run / "model").symlink_to(default_model_path(), target_is_directory=True)
    (run / "run.json").write_text(json.dumps({
        "status": "finished", "config": {"lang": "cs", "loss": "ot"}, "evals": [],
        "updated_ts": time.time(),
    }))
    (root / "half-done").mkdir()
    (root / "half-done" / "run.json").write_text(json.dumps({"status": "running", "config": {}}))
    monkeypatch.setenv("OPTICAL_RUNS_DIR", str(root))
    return run


def test_runs_are_offered_by_the_model_picker(fake_run):
    from ui.common import list_runs

    runs = list_runs()
    assert [r.name for r in runs] == ["cs-ot-test"]  # the run without a model is not offered
    assert runs[0].path.endswith("model") and "cs" in runs[0].label
    at = ok(AppTest.from_file(HOME, default_timeout=TIMEOUT).run())
    picker = at.sidebar.selectbox[0]
    assert "Run: cs-ot-test (cs, ot, finished)" in picker.options  # labels, not paths
    picker.select_index(picker.options.index("Run: cs-ot-test (cs, ot, finished)")).run()
    assert ok(at).session_state["optical_model_id"] == runs[0].path


def test_compare_two_models(fake_run):
    at = ok(page(al_compare=True, al_source="demo"))
    box = at.selectbox(key="_w_optical_model_id__compare_choice")
    box.select_index(next(i for i, o in enumerate(box.options) if o.startswith("Run: cs-ot"))).run()
    ok(at)
    kinds = figure_kinds(at)
    assert kinds.count("plan") == 3 and "diff" in kinds
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Mass moved ½‖P₁ − P₂‖₁"] == "0.000"  # same weights, same plan
    assert "AER (model 2)" in metrics
    diff = _arr(chart(at, "diff")["data"][0]["z"])
    assert np.abs(diff).max() < 1e-9


def test_a_distilled_run_shows_the_plan_of_the_model_it_started_from(fake_run):
    rec = json.loads((fake_run / "run.json").read_text())
    rec["teacher"] = "default"  # what run_distillation records for the embedded MiniLM
    (fake_run / "run.json").write_text(json.dumps(rec))
    from ui.common import list_runs

    model = list_runs()[0].path
    at = ok(page(optical_model_id=model, al_source="demo"))
    assert at.session_state["optical_model_id"] == model
    toggle = at.toggle(key="al_before")
    assert not toggle.value and "all-MiniLM-L6-v2" in toggle.label and toggle.help
    assert figure_kinds(at).count("plan") == 1
    toggle.set_value(True).run()
    ok(at)
    titles = [s["layout"]["title"]["text"] for s in figure_specs(at)
              if s["layout"].get("meta", {}).get("kind") == "plan"]
    assert any("before: all-MiniLM-L6-v2" in t for t in titles), titles
    assert any("after: cs-ot-test" in t for t in titles), titles
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Mass moved ½‖P₁ − P₂‖₁"] == "0.000"  # the model is the MiniLM itself
    assert "Row entropy (after)" in metrics and "AER (after)" in metrics
    # Another model (the default) has no start model: no toggle.
    at.sidebar.selectbox[0].set_value("__default__").run()
    assert not [t for t in ok(at).toggle if t.key == "al_before"]


def test_start_model_of_a_run(fake_run, tmp_path):
    from optical_core.encoders.base import default_model_path
    from ui.models import start_model

    assert start_model(str(fake_run / "model")) is None  # the record names no teacher
    rec = json.loads((fake_run / "run.json").read_text())
    (fake_run / "run.json").write_text(json.dumps({**rec, "teacher": "default"}))
    assert start_model(str(fake_run / "model")) == "all-MiniLM-L6-v2"
    assert start_model(str(fake_run)) == "all-MiniLM-L6-v2"
    rec["config"]["student"] = str(fake_run)  # a student initialised from another run
    (fake_run / "run.json").write_text(json.dumps({**rec, "teacher": "x/y"}))
    assert start_model(str(fake_run / "model")) == str(fake_run / "model")
    assert start_model("all-MiniLM-L6-v2") is None
    assert start_model(default_model_path()) is None


def test_exports_and_help_on_every_control():
    at = ok(page())
    code = at.code[0].value
    assert "0-0" in code and "'dog'" in code
    buttons = at.get("download_button")
    assert len(buttons) >= 3
    # At most three buttons a row: in a quarter of the page the labels were cut at 1,000 px.
    holders = [c for c in at.columns if c.get("download_button")]
    assert holders and all(c.proto.weight >= 1 / 3 - 1e-6 for c in holders), [
        c.proto.weight for c in holders]
    # every widget a learner touches explains itself
    for w in [*at.select_slider, *at.slider, *at.radio, *at.selectbox, *at.toggle, *at.text_area]:
        if w.key and w.key.startswith("al_"):
            assert w.help, f"widget {w.key} has no help text"


def test_choices_survive_a_page_switch():
    at = ok(AppTest.from_file(HOME, default_timeout=TIMEOUT).run())
    at.switch_page("pages/1_Alignment.py").run()
    ok(at)
    at.select_slider(key="al_eps").set_value(0.2).run()
    at.switch_page("app.py").run()
    ok(at)
    at.switch_page("pages/1_Alignment.py").run()
    assert ok(at).select_slider(key="al_eps").value == 0.2


def test_ui_error_messages_say_what_to_do():
    from optical_core.data import DataNotFoundError
    from optical_core.ot.config import OTInputError
    from ui import common

    assert "What to do" in common.error_message(ModelLoadError("nope"))
    assert common.error_message(DataNotFoundError("gone")).startswith("Data not found")
    assert common.error_message(OTInputError("bad")).startswith("The transport problem")
    assert common.error_message(ValueError("text is empty")) == "Text is empty"
    assert "bug" in common.error_message(RuntimeError("boom"))


def test_home_page_does_not_import_torch():
    import subprocess

    code = (
        "import sys; sys.path.insert(0, %r)\n"
        "from streamlit.testing.v1 import AppTest\n"
        "at = AppTest.from_file(%r, default_timeout=60).run()\n"
        "assert not at.exception, at.exception\n"
        "print('torch' in sys.modules)\n"
    ) % (str(ROOT), HOME)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"  # the home page opens at once


def test_pair_choice_survives_a_page_switch():
    at = ok(AppTest.from_file(HOME, default_timeout=TIMEOUT).run())
    at.switch_page("pages/1_Alignment.py").run()
    at.radio(key="al_source").set_value("demo").run()
    box = at.selectbox(key="al_demo")
    box.select_index(next(i for i, o in enumerate(box.options) if o.startswith("fr-01"))).run()
    at.switch_page("app.py").run()
    at.switch_page("pages/1_Alignment.py").run()
    ok(at)
    assert at.radio(key="al_source").value == "demo"
    demo = at.selectbox(key="al_demo")
    assert demo.format_func(demo.value).startswith("fr-01")

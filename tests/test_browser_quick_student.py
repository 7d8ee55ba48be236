"""Real-browser test of the quick student: on the home page one click trains it (a tiny
random teacher and the demo pairs through ``OPTICAL_QUICK_STUDENT``), the page shows the
job live, and when it finishes the sidebar model switches to the new run, with a note;
the Alignment page then draws the plan of the model it started from beside its own.

`streamlit run app.py` and Debian's chromium driven by Playwright; skipped when
/usr/bin/chromium or the playwright package is missing.
"""

from __future__ import annotations

import json

import pytest
from browser_support import PICKER_JS, chromium, save_screenshot, tiny_training_server

from ui.live_chart import PLOTLY_DIVS_JS

pytestmark = pytest.mark.browser
T = 1_800_000  # ms per wait: generous, for a machine busy with other work
# Every plan title's text fits its figure: the drawn title ends inside the figure's width.
TITLES_FIT_JS = f"""() => ({PLOTLY_DIVS_JS}).filter(d => d.layout.meta
  && d.layout.meta.kind === 'plan').every(d => {{
    const t = d.querySelector('.gtitle'), box = d.getBoundingClientRect();
    return !t || t.getBoundingClientRect().right <= box.right + 1; }})"""
IDLE_JS = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("quick-browser")
    # A generous start-up limit: the server may share two cores with a training grid.
    with tiny_training_server(
        base, "OPTICAL_QUICK_STUDENT", {"max_steps": 40, "probe_every": 2, "eval_limit": 8},
        timeout_s=600, OPTICAL_MODELS_DIR=str(base),  # the Alignment page may load the tiny teacher
    ) as served:
        yield served


def test_quick_student_finishes_and_the_sidebar_switches_to_it(server):
    url, runs_dir = server
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        page.set_default_timeout(T)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            _walk(page, url, runs_dir, errors)
        except Exception:
            save_screenshot(page, "quick_student_failure")
            raise


def _idle(page) -> None:
    """Wait until the page's rerun has finished (no stale elements in the screenshot)."""
    page.wait_for_timeout(300)
    page.wait_for_function(IDLE_JS)


def _walk(page, url, runs_dir, errors: list[str]) -> None:
    page.goto(url, wait_until="domcontentloaded")
    button = page.get_by_role("button", name="Train a quick student")
    button.wait_for(timeout=T)
    sidebar = page.locator('[data-testid="stSidebar"]')
    page.wait_for_function(f"({PICKER_JS})().includes('all-MiniLM-L6-v2 (default')")
    button.click()
    # Live: the progress bar's step counter, then the loss chart and the probe plan.
    page.wait_for_function(
        "() => /de-quick-[0-9-]+: step [1-9]/.test(document.body.innerText)"
        " || /finished after/.test(document.body.innerText)", timeout=T)
    page.get_by_text("Training loss").wait_for(timeout=T)
    page.locator('[data-testid="stVegaLiteChart"]').first.wait_for(timeout=T)
    save_screenshot(page, "quick_student_running")
    page.get_by_text("is the sidebar model of every page now").wait_for(timeout=T)
    run = next(runs_dir.glob("de-quick-*"))
    assert json.loads((run / "run.json").read_text())["status"] == "finished"
    # The sidebar's model picker now shows the run, with the note.
    page.wait_for_function(f"({PICKER_JS})().includes('Run: {run.name}')")
    sidebar.get_by_text("The sidebar model is now the quick student").wait_for(timeout=T)
    # The rerun has settled: the page names the new model too.
    page.wait_for_function(
        "n => document.body.innerText.includes('shared by all pages): ' + n)", arg=run.name)
    page.get_by_text("Probe plan at step").first.wait_for(timeout=T)
    _idle(page)
    save_screenshot(page, "quick_student_finished")
    body = page.inner_text("body")
    assert "Traceback" not in body and not errors, errors
    # The Alignment page (the note's link: same session) keeps the model and offers
    # the before/after view.
    page.get_by_role("link", name="Before and after on the Alignment page").click()
    # The run started from its teacher (the tiny model here; the default MiniLM in class).
    toggle = page.get_by_text("Before distillation: show the plan of tiny, the model")
    toggle.wait_for(timeout=T)
    assert f"Run: {run.name}" in page.evaluate(PICKER_JS)
    # The lesson lands: the German demo pair de-01 with Before on, without a click, and the
    # link to this view keeps the toggle.
    page.wait_for_function("() => location.href.includes('before=true')", timeout=T)
    assert "demo=de-01" in page.url
    page.wait_for_function(  # the plan is a live chart in an iframe, "before" beside it
        f"([a, b]) => {{ const t = ({PLOTLY_DIVS_JS}).map(d => d.layout.title"
        " && d.layout.title.text).join(' | '); return t.includes(a) && t.includes(b); }",
        arg=["before: tiny", f"after: {run.name}"], timeout=T)
    page.get_by_text("Row entropy (after)").wait_for(timeout=T)
    page.get_by_text("AER (after)").wait_for(timeout=T)  # a ★ pair: gold links, AER
    _idle(page)
    save_screenshot(page, "quick_student_before_after")
    # At 1,000 px the two plans share the width; neither title is cut off.
    page.set_viewport_size({"width": 1000, "height": 1200})
    _idle(page)
    assert page.evaluate(TITLES_FIT_JS), "a plan title is clipped"
    assert "Traceback" not in page.inner_text("body") and not errors, errors

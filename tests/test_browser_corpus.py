"""Real-browser test of the Corpus page: upload a file of sentence pairs, read the table of
the pairs sorted by how the two models differ, and open one on the Alignment page with one
click. `streamlit run app.py` + Debian's chromium driven by Playwright; skipped when
/usr/bin/chromium or the Python playwright package is missing."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from browser_support import chromium, require_browser, save_screenshot, streamlit_server

from ui.live_chart import FIND_FIGURE_JS

pytestmark = pytest.mark.browser
T = 300_000  # ms per wait: a machine busy with other work
PAIRS = ("a dog runs on the beach ||| ein Hund läuft am Strand ||| 0-0 1-1 2-2 5-4\n"
         "the red car ||| das rote Auto ||| 0-0 1-1 2-2\n")
PLAN_TICKS_JS = f"""() => {{ const d = ({FIND_FIGURE_JS})('plan');
  return d ? (d.layout.yaxis.ticktext || []).join(' ') : ''; }}"""
TGT_TICKS_JS = PLAN_TICKS_JS.replace("yaxis", "xaxis")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_browser()
    base = tmp_path_factory.mktemp("streamlit-corpus")
    with streamlit_server(base, OPTICAL_RUNS_DIR=str(base / "runs")) as url:
        yield url


def test_upload_and_open_a_pair_on_alignment(server, tmp_path):
    corpus = tmp_path / "pairs.txt"
    corpus.write_text(PAIRS, encoding="utf-8")
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1400, "height": 1100})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{server}/Corpus", wait_until="domcontentloaded")
        # The radio option; without gold sets the page also shows "Upload a file of …".
        page.get_by_text("Upload a file", exact=True).click()
        page.locator('[data-testid="stFileUploader"] input[type=file]').set_input_files(
            str(corpus))
        grid = page.locator('[data-testid="stDataFrame"]')
        grid.wait_for(timeout=T)
        page.get_by_text("Mean AER (1)").wait_for(timeout=T)
        save_screenshot(page, "corpus_table")
        # One click on a pair's link opens it on the Alignment page, in this tab.
        link = page.get_by_role("link", name="Line 1 ·")
        link.click()
        page.wait_for_function("() => location.pathname.endsWith('/Alignment')", timeout=T)
        page.wait_for_function("() => location.href.includes('tokens=word')", timeout=T)
        page.wait_for_function(f"() => ({PLAN_TICKS_JS})().includes('beach')", timeout=T)
        assert parse_qs(urlsplit(page.url).query)["pair"] == ["typed"]
        assert "Hund" in page.evaluate(TGT_TICKS_JS)
        save_screenshot(page, "corpus_opened_on_alignment")
        assert "Traceback" not in page.inner_text("body") and not errors, errors


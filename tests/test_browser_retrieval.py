"""Real-browser test of the Retrieval page: `streamlit run app.py` + Debian's chromium.

Types a query, sets the noise level to 0 (the noisy ranking equals the clean one), then
raises it to the maximum with the keyboard and waits for the noisy ranking table to change.
Runs on the packaged demo corpus (an empty data folder), so it needs no Multi30k. Skipped
when /usr/bin/chromium or the Python playwright package is missing.
"""

from __future__ import annotations

import json
import time

import pytest
from browser_support import require_browser, save_screenshot, streamlit_server

QUERY = "Zwei Kinder spielen Fußball im Park."

pytestmark = pytest.mark.browser

# Cell texts of the ranking tables (those with a "caption" column), clean first: a noisy
# row is [rank, change, score, caption].
TABLES_JS = """() => Array.from(document.querySelectorAll('[data-testid="stTable"] table'))
  .filter(t => Array.from(t.querySelectorAll('th')).some(h => h.innerText.trim() === 'caption'))
  .map(t => Array.from(t.querySelectorAll('tbody tr')).map(r =>
      Array.from(r.querySelectorAll('th,td')).map(c => c.innerText.trim())))"""
RUNNING_JS = """() => !document.querySelector('[data-testid="stStatusWidget"]')"""
# What the "Why did it move?" caption picker shows.
CAPTION_JS = """() => {
  const box = Array.from(document.querySelectorAll('[data-testid="stSelectbox"]'))
  .find(e => e.innerText.trim().startsWith('Caption'));
  return box ? (box.querySelector('input') || {}).value || box.innerText : null; }"""
TOP_CAPTION = "Two children are playing football in the park."  # the typed query's first hit


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_browser()
    tmp = tmp_path_factory.mktemp("streamlit-retrieval")
    with streamlit_server(tmp, OPTICAL_RUNS_DIR=str(tmp / "runs"),
                          OPTICAL_DATA_DIR=str(tmp / "no-data"),
                          OPTICAL_CACHE_DIR=str(tmp / "cache")) as url:
        yield url


def _tables(page):
    return page.evaluate(TABLES_JS)


def _wait_tables(page, predicate_js: str, timeout: int = 90_000):
    page.wait_for_function(
        f"(() => {{ const t = ({TABLES_JS})(); return t.length === 2 && ({predicate_js}); }})()",
        timeout=timeout,
    )
    page.wait_for_function(RUNNING_JS, timeout=timeout)
    return _tables(page)


def test_typed_query_noise_moves_the_ranking(server, browser):
    page = browser.new_page(viewport={"width": 1500, "height": 1400})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{server}/Retrieval", wait_until="domcontentloaded")
    _wait_tables(page, "true", timeout=180_000)
    assert page.get_by_text("Demo set: 24 hand-written scenes").count() >= 1

    page.get_by_text("Type a query", exact=True).click()
    box = page.get_by_label("Your query", exact=True).and_(page.get_by_test_id("stTextInputField"))
    box.wait_for(timeout=60_000)
    box.fill(QUERY)
    box.press("Enter")
    # the noisy-query heading shows the typed text once the page has rerun
    page.get_by_text(f"Clean query — {QUERY}").wait_for(timeout=90_000)
    page.wait_for_function(RUNNING_JS, timeout=90_000)
    # The caption picker follows the new query (the browser once kept showing the first
    # query's caption above the plans of another one).
    page.wait_for_function(f"({CAPTION_JS})() === {json.dumps(TOP_CAPTION)}", timeout=90_000)

    slider = page.get_by_role("slider", name="Noise level (target character error rate, %)")
    slider.focus()
    page.keyboard.press("Home")  # 0 %: the noisy query is the clean one
    quiet = _wait_tables(
        page, "t[1].every(r => r[1] === '=') && t[0].map(r => r[r.length - 1]).join('|') === "
        "t[1].map(r => r[r.length - 1]).join('|')")
    save_screenshot(page, "retrieval_clean")
    captions0 = [r[-1] for r in quiet[1]]

    t0 = time.perf_counter()
    slider.focus()
    page.keyboard.press("End")  # 30 %
    noisy = _wait_tables(page, "t[1].some(r => r[1] !== '=')")
    elapsed = time.perf_counter() - t0
    save_screenshot(page, "retrieval_noisy")

    clean_now, noisy_now = noisy
    assert page.evaluate(CAPTION_JS) == TOP_CAPTION  # still the caption picked before
    assert [r[-1] for r in clean_now] == captions0  # the clean ranking did not move
    assert [r[-1] for r in noisy_now] != captions0  # the noisy one did
    assert any(r[1].startswith(("↑", "↓")) or r[1] == "new" for r in noisy_now)
    noisy_query = page.locator("textarea").first.input_value()
    assert noisy_query != QUERY
    print(f"\nnoisy ranking redrawn {elapsed:.1f} s after the key press; "
          f"noisy query: {noisy_query}")
    assert not errors, errors
    page.close()


def test_switching_language_shows_that_languages_caption(server, browser):
    page = browser.new_page(viewport={"width": 1500, "height": 1400})
    page.goto(f"{server}/Retrieval", wait_until="domcontentloaded")
    _wait_tables(page, "true", timeout=180_000)
    box_js = """(label) => { const b = Array.from(document.querySelectorAll(
      '[data-testid="stSelectbox"]')).find(e => e.innerText.trim().startsWith(label));
      return b ? (b.querySelector('input') || {}).value : null; }"""
    assert page.evaluate(box_js, "German caption").startswith("0: Ein ")
    page.get_by_test_id("stSelectbox").filter(has_text="Query language").locator(
        "input").first.click()
    page.get_by_role("option", name="Czech").click()
    # The browser once kept showing the German caption in the (now Czech) query picker.
    page.wait_for_function(f"({box_js})('Czech caption') === '0: Pes běží po pláži.'",
                           timeout=90_000)
    page.close()

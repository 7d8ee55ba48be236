"""Real-browser test of shareable views and of the Alignment page's fragment:
`streamlit run app.py` + Debian's chromium driven by Playwright.

A URL with query parameters opens the Alignment page with those controls set; bad
parameters give a visible note and the defaults; moving ε reruns only the transport
panel (an ``st.fragment``: the websocket carries no full page) and updates the URL.
Skipped when /usr/bin/chromium or the Python playwright package is missing.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from browser_support import require_browser, save_screenshot, streamlit_server

from ui.live_chart import FIND_FIGURE_JS

pytestmark = pytest.mark.browser

PLAN_TITLE_JS = f"""() => {{ const d = ({FIND_FIGURE_JS})('plan');
  return d ? d.layout.title.text : null; }}"""
# The plan's column labels (target tokens), joined.
PLAN_TICKS_JS = f"""() => {{ const d = ({FIND_FIGURE_JS})('plan');
  return d ? (d.layout.xaxis.ticktext || []).join(' ') : ''; }}"""
SLIDER_VALUES_JS = """() => Object.fromEntries(Array.from(
  document.querySelectorAll('input[type=range]'),
  e => [e.getAttribute('aria-label'), e.getAttribute('aria-valuetext')]))"""
# The shown value of a select box: its text, or its <input>'s value.
SELECT_JS = """(label) => {
  for (const box of document.querySelectorAll('[data-testid="stSelectbox"]')) {
    if (!box.innerText.startsWith(label)) continue;
    const input = box.querySelector('input');
    return box.innerText + ' ' + (input ? input.value : '');
  }
  return null;
}"""
TITLE_TEXT = b"Token alignment as transport"  # sent only by a full run of the page


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_browser()
    base = tmp_path_factory.mktemp("streamlit-share")
    with streamlit_server(base, OPTICAL_RUNS_DIR=str(base / "runs"),
                          OPTICAL_CACHE_DIR=str(base / "cache")) as url:
        yield url


def wait_plan(page, *parts: str, timeout: int = 300_000) -> str:
    cond = " && ".join(f"t.includes({p!r})" for p in parts) or "true"
    page.wait_for_function(f"(() => {{ const t = ({PLAN_TITLE_JS})(); return t && {cond}; }})()",
                           timeout=timeout)
    return page.evaluate(PLAN_TITLE_JS)


def settle(page) -> None:
    page.wait_for_timeout(300)
    page.wait_for_function(
        "!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)


def test_a_link_restores_the_alignment_controls(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{server}/Alignment?pair=demo&demo=fr-02&solver=unbalanced&eps=0.2&tau=3"
              "&link=itermax&threshold=0.7&cost=sqeuclidean", wait_until="domcontentloaded")
    title = wait_plan(page, "unbalanced", "ε = 0.2", "τ = 3")
    settle(page)
    values = page.evaluate(SLIDER_VALUES_JS)
    assert values["ε — entropic blur"] == "0.2", values
    assert values["τ — marginal relaxation"] == "3.0", values
    assert values["OT threshold"] == "0.70", values
    assert "unbalanced Sinkhorn" in page.evaluate(SELECT_JS, "Solver")
    assert "itermax" in page.evaluate(SELECT_JS, "Link method")
    assert "fr-02" in page.evaluate(SELECT_JS, "Demo pair")
    assert page.get_by_role("radio", name="sqeuclidean").is_checked()
    # the URL and the link box name the same view, with this server's address
    query = parse_qs(urlsplit(page.url).query)
    assert query["demo"] == ["fr-02"] and query["eps"] == ["0.2"] and query["model"] == ["default"]
    box = page.locator('[data-testid="stSidebar"] [data-testid="stCode"]').first
    assert box.inner_text().startswith(f"{server}/Alignment?model=default&pair=demo")
    save_screenshot(page, "alignment_link")
    assert "Traceback" not in page.inner_text("body") and not errors, errors
    assert "unbalanced" in title
    page.close()


def test_bad_parameters_give_a_note_not_an_error(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    errors: list[str] = []
    dialogs: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{server}/Alignment?eps=-1&mass=NaN&solver=%3Cscript%3Ealert(1)%3C/script%3E"
              "&zzz=1&src=" + "x" * 3000 + "&pair=typed", wait_until="domcontentloaded")
    wait_plan(page, "ε = 0.05")
    settle(page)
    alerts = page.locator('[data-testid="stAlert"]').all_inner_texts()
    text = "\n".join(alerts)
    assert "ε = “-1” is out of range" in text, alerts
    assert "transported mass = “NaN” is not a finite number" in text
    assert "solver = “<script>alert(1)</script>” is not one of" in text
    assert "does not know the link's parameter “zzz”" in text
    assert "source text = “xxxx" in text and "too long" in text
    assert page.evaluate(SLIDER_VALUES_JS)["ε — entropic blur"] == "0.05"
    assert page.locator('[data-testid="stException"]').count() == 0
    assert not dialogs and not errors, (dialogs, errors)
    query = parse_qs(urlsplit(page.url).query)
    assert "zzz" not in query and query["eps"] == ["0.05"]  # the URL names the view shown
    save_screenshot(page, "alignment_bad_link")
    page.close()


def test_epsilon_reruns_only_the_fragment_and_updates_the_url(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    frames: list[bytes] = []
    page.on("websocket", lambda ws: ws.on(
        "framereceived", lambda d: frames.append(d if isinstance(d, bytes) else d.encode())))
    page.goto(f"{server}/Alignment", wait_until="domcontentloaded")
    wait_plan(page, "ε = 0.05")
    settle(page)
    assert any(TITLE_TEXT in f for f in frames)  # the first, full run sent the title
    slider = page.locator('[data-testid="stSidebar"]').get_by_role("slider",
                                                                   name="ε — entropic blur")
    slider.focus()
    for want in ("0.07", "0.1"):
        frames.clear()
        page.keyboard.press("ArrowRight")
        wait_plan(page, f"ε = {want}", timeout=60_000)
        settle(page)
        assert frames, "the step sent nothing"
        assert not any(TITLE_TEXT in f for f in frames), "an ε step reran the whole page"
        assert parse_qs(urlsplit(page.url).query)["eps"] == [want]
    # Typing a new text is a full run (the pair sits outside the fragment). Each wait names
    # the state it needs: "ε = 0.1" was on screen before the edit, so waiting for it alone
    # checked the URL before the rerun had even started (late, not lost, under load).
    frames.clear()
    target = page.get_by_role("textbox", name="Target text (columns)")
    target.fill("A puppy runs on the dune.")
    page.keyboard.press("Control+Enter")
    page.wait_for_function("() => location.href.includes('dune')", timeout=300_000)
    wait_plan(page, "ε = 0.1")
    page.wait_for_function(f"() => ({PLAN_TICKS_JS})().includes('dune')", timeout=300_000)
    settle(page)
    assert any(TITLE_TEXT in f for f in frames)
    query = parse_qs(urlsplit(page.url).query)
    assert query["tgt"] == ["A puppy runs on the dune."] and query["eps"] == ["0.1"]
    # Never undone: a second later the box, the plan and the URL still hold the edit.
    page.wait_for_timeout(1500)
    settle(page)
    assert target.input_value() == "A puppy runs on the dune."
    assert "dune" in page.evaluate(PLAN_TICKS_JS) and "dune" in page.url
    page.close()

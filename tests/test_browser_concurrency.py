"""Real-browser concurrency test: five browser sessions on one `streamlit run app.py` server.

Two sessions type different sentence pairs on Alignment, one starts a distillation job (tiny
random teacher, packaged demo pairs, via ``OPTICAL_DISTILL_DEFAULTS``), one types a query on
Retrieval, and a fifth starts a second distillation while the first trains. Each session is
its own browser context (own cookies, own websocket, own Streamlit session), and they are
driven interleaved so that their reruns overlap on the server.

Checks: no session shows another's inputs or job, no page shows an exception element or a
browser error, and the second job is queued with the page's clear "Queued" message. Then
the queued job is cancelled without touching the running one, which is cancelled last.
Skipped when /usr/bin/chromium or the playwright package is missing.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from browser_support import chromium, save_screenshot, tiny_training_server

from ui.live_chart import FIND_FIGURE_JS

pytestmark = pytest.mark.browser

PAIRS = {  # session → (source, target); "station" and "sofa" are single MiniLM tokens
    "align1": ("A red car stops near the station.", "Ein rotes Auto hält am Bahnhof."),
    "align2": ("Three cats sleep on a sofa.", "Trois chats dorment sur un canapé."),
}
MARK = {"align1": "station", "align2": "sofa"}
QUERY = "Eine Frau liest ein Buch am Fenster."
JOBS = {"distill1": "job-one", "distill2": "job-two"}
PATHS = {"align1": "Alignment", "align2": "Alignment", "distill1": "Distillation",
         "retrieval": "Retrieval", "distill2": "Distillation"}

# Tick labels (tokens) of the plan heatmap on the page, joined by spaces ('' before it is drawn).
PLAN_TOKENS_JS = f"""() => {{
  const d = ({FIND_FIGURE_JS})('plan');
  return d ? Object.keys(d.layout).filter(k => /^[xy]axis/.test(k))
    .flatMap(k => d.layout[k].ticktext || []).join(' ') : '';
}}"""
IDLE_JS = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("concurrency")
    # Enough steps that job-one is still training when job-two is submitted.
    with tiny_training_server(
        base, "OPTICAL_DISTILL_DEFAULTS", {"max_steps": 5000, "probe_every": 0, "evaluate": False},
        OPTICAL_DATA_DIR=str(base / "no-data"), OPTICAL_CACHE_DIR=str(base / "cache"),
    ) as served:
        yield served


def _exceptions(page) -> int:
    return page.locator('[data-testid="stException"]').count()


def _start_job(page, name: str) -> None:
    box = page.locator('input[aria-label="Run name"]')
    box.wait_for()
    box.fill(name)
    box.press("Enter")
    page.wait_for_function(IDLE_JS)
    page.get_by_role("button", name="Start training").click()


def test_five_sessions_at_once_stay_apart(server):
    url, runs_dir = server
    t0 = time.perf_counter()
    laps: list[str] = []

    def lap(what: str) -> None:
        laps.append(f"{what} {time.perf_counter() - t0:.0f} s")

    with chromium() as browser:
        pages, errors = {}, {}
        for who in PATHS:
            ctx = browser.new_context(viewport={"width": 1400, "height": 1200})
            ctx.set_default_timeout(300_000)  # five sessions share two (often busy) cores
            pages[who] = ctx.new_page()
            errors[who] = []
            pages[who].on("pageerror", lambda e, who=who: errors[who].append(str(e)))
        try:
            for who, path in PATHS.items():  # open every session before driving any
                pages[who].goto(f"{url}/{path}", wait_until="domcontentloaded")
            lap("opened")
            _scenario(pages, runs_dir, lap)
        except BaseException:
            for who, page in pages.items():  # what each session showed, for the CI artifacts
                with contextlib.suppress(Exception):
                    save_screenshot(page, f"concurrency_failed_{who}")
            print("\nreached after: " + "; ".join(laps))
            raise
        for who, page in pages.items():
            assert _exceptions(page) == 0, who
            assert "Traceback" not in page.inner_text("body"), who
        assert not any(errors.values()), errors
    print("\nreached after: " + "; ".join(laps))  # reported, never asserted


def _scenario(pages: dict, runs_dir: Path, lap: Callable[[str], None]) -> None:
    # First renders (the default MiniLM loads once for all sessions), then every session
    # acts while job-one trains in the same server process.
    for who in PAIRS:
        pages[who].wait_for_function(f"() => ({PLAN_TOKENS_JS})() !== ''")
    lap("default plans drawn")
    _start_job(pages["distill1"], JOBS["distill1"])
    lap("job-one submitted")
    for who, (src, tgt) in PAIRS.items():  # both Alignment sessions type their own pair
        page = pages[who]
        page.get_by_role("textbox", name="Source text (rows)").fill(src)
        target = page.get_by_role("textbox", name="Target text (columns)")
        target.fill(tgt)
        target.press("Control+Enter")
    ret = pages["retrieval"]
    ret.get_by_text("Type a query", exact=True).click()
    query = ret.get_by_label("Your query", exact=True).and_(ret.get_by_test_id("stTextInputField"))
    query.fill(QUERY)
    query.press("Enter")

    # job-one trains; then the fifth session starts job-two and is told it waits
    d1, d2 = pages["distill1"], pages["distill2"]
    d1.wait_for_function(
        f"() => /{JOBS['distill1']}: step [1-9][0-9]*\\//.test(document.body.innerText)")
    lap("job-one training")
    _start_job(d2, JOBS["distill2"])
    d2.get_by_text("Queued (1 job(s) ahead)").wait_for()
    lap("job-two queued")

    for who in PAIRS:
        pages[who].wait_for_function(f"() => ({PLAN_TOKENS_JS})().includes({MARK[who]!r})")
    lap("typed plans drawn")
    ret.get_by_text(f"Clean query — {QUERY}").wait_for()
    lap("typed ranking drawn")
    for who, page in pages.items():
        page.wait_for_function(IDLE_JS)
        save_screenshot(page, f"concurrency_{who}")
    texts = {who: page.inner_text("body") for who, page in pages.items()}

    # -- each session shows its own inputs and job only
    for who, (src, tgt) in PAIRS.items():
        other = next(o for o in PAIRS if o != who)
        page = pages[who]
        assert page.get_by_role("textbox", name="Source text (rows)").input_value() == src
        assert page.get_by_role("textbox", name="Target text (columns)").input_value() == tgt
        tokens = page.evaluate(PLAN_TOKENS_JS)
        assert MARK[who] in tokens and MARK[other] not in tokens, tokens
        assert PAIRS[other][0] not in texts[who] and QUERY not in texts[who]
    assert QUERY in texts["retrieval"]
    assert not any(s in texts["retrieval"] for pair in PAIRS.values() for s in pair)
    busy = f"{JOBS['distill1']} is training"
    assert "Your job" in texts["distill1"] and "Queued" not in texts["distill1"]
    assert d1.locator('[data-testid="stProgress"]').count() == 1
    assert "Your job" in texts["distill2"] and busy in texts["distill2"]
    assert "The server trains one job at a time" in texts["distill2"]
    assert d2.locator('[data-testid="stProgress"]').count() == 0  # not job-one's bar
    for who in ("align1", "align2", "retrieval"):
        assert "Your job" not in texts[who] and JOBS["distill1"] not in texts[who]
    # only the running job has a run folder; the queued one has not started
    assert json.loads((runs_dir / JOBS["distill1"] / "run.json").read_text())["status"] == "running"
    assert not (runs_dir / JOBS["distill2"]).exists()

    # -- cancelling the queued job leaves the running one alone
    d2.get_by_role("button", name="Cancel").click()
    d2.get_by_text(f"{JOBS['distill2']} was cancelled").wait_for()
    d1.wait_for_timeout(2000)  # a poll or two of job-one's live view
    assert "was cancelled" not in d1.inner_text("body")
    assert d1.locator('[data-testid="stProgress"]').count() == 1
    d1.get_by_role("button", name="Cancel").click()
    d1.get_by_text(f"{JOBS['distill1']} was cancelled").wait_for()
    save_screenshot(d1, "concurrency_distill1_cancelled")
    lap("both cancelled")

"""Real-browser tests of the Distillation page: start a job → watch progress → cancel, and
close the tab of a running job → it is cancelled once the grace period is over.

`streamlit run app.py` with ``OPTICAL_DISTILL_DEFAULTS`` pointing the form at a tiny
random teacher and the demo pairs; Debian's chromium driven by Playwright. Skipped when
/usr/bin/chromium or the playwright package is missing.
"""

from __future__ import annotations

import json
import time

import pytest
from browser_support import chromium, save_screenshot, tiny_training_server

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # A short grace period, so that the closed-tab test need not wait two minutes; the
    # open tabs of the other test keep their job alive by polling every second.
    with tiny_training_server(
        tmp_path_factory.mktemp("distill-browser"), "OPTICAL_DISTILL_DEFAULTS",
        {"max_steps": 2000, "probe_every": 2, "eval_limit": 8}, OPTICAL_JOB_ORPHAN_S="30",
    ) as served:
        yield served


def test_start_progress_cancel_in_a_real_browser(server):
    url, runs_dir = server
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{url}/Distillation", wait_until="domcontentloaded")
        name = page.locator('input[aria-label="Run name"]')
        name.wait_for(timeout=120_000)
        name.fill("browser-run")
        name.press("Enter")
        page.get_by_role("button", name="Start training").click()
        # progress: the bar text shows a step > 0 and the loss chart appears
        page.wait_for_function(
            "() => /step [1-9][0-9]*\\//.test(document.body.innerText)", timeout=120_000)
        page.get_by_text("Training loss").wait_for(timeout=60_000)
        page.wait_for_selector(".js-plotly-plot", timeout=60_000)  # the probe plan
        save_screenshot(page, "distill_running")
        page.get_by_role("button", name="Cancel").click()
        page.get_by_text("was cancelled").wait_for(timeout=120_000)
        save_screenshot(page, "distill_cancelled")
        body = page.inner_text("body")
        assert "Traceback" not in body and not errors, errors
        rec = json.loads((runs_dir / "browser-run" / "run.json").read_text())
        assert rec["status"] == "cancelled" and rec["step"] >= 1
        assert (runs_dir / "browser-run" / "model" / "model.safetensors").is_file()


def test_closing_the_tab_cancels_its_job(server):
    url, runs_dir = server
    run_json = runs_dir / "closed-tab" / "run.json"
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.goto(f"{url}/Distillation", wait_until="domcontentloaded")
        name = page.locator('input[aria-label="Run name"]')
        name.wait_for(timeout=120_000)
        name.fill("closed-tab")
        name.press("Enter")
        page.get_by_role("button", name="Start training").click()
        page.wait_for_function(
            "() => /step [1-9][0-9]*\\//.test(document.body.innerText)", timeout=120_000)
        # The open tab's polling is its heartbeat: the job outlives the 30 s grace period.
        page.wait_for_timeout(40_000)
        assert json.loads(run_json.read_text())["status"] == "running"
        save_screenshot(page, "distill_tab_before_close")
        page.close()
        deadline = time.monotonic() + 240
        while json.loads(run_json.read_text())["status"] == "running":
            assert time.monotonic() < deadline, "the job of the closed tab kept running"
            time.sleep(1)
    rec = json.loads(run_json.read_text())
    assert rec["status"] == "cancelled"
    assert rec["note"] == "cancelled: the browser tab that started it was closed"
    assert (runs_dir / "closed-tab" / "model" / "model.safetensors").is_file()

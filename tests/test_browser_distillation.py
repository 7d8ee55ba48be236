"""Real-browser test of the Distillation page: start a job → watch progress → cancel.

`streamlit run app.py` with ``OPTICAL_DISTILL_DEFAULTS`` pointing the form at a tiny
random teacher and the demo pairs; Debian's chromium driven by Playwright. Skipped when
/usr/bin/chromium or the playwright package is missing.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from _distill_models import make_tiny_model

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("OPTICAL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium, or set OPTICAL_CHROMIUM)")
    pytest.importorskip("playwright.sync_api", reason="the playwright Python package is missing")
    base = tmp_path_factory.mktemp("distill-browser")
    tiny = make_tiny_model(base / "tiny", seed=0)
    port = _free_port()
    log = base / "server.log"
    env = dict(
        os.environ, OPTICAL_RUNS_DIR=str(base / "runs"),
        OPTICAL_DISTILL_DEFAULTS=json.dumps({
            "teacher": tiny, "data": "demo", "pairs": 24, "batch_size": 4, "max_tokens": 32,
            "max_steps": 2000, "probe_every": 2, "eval_limit": 8, "lr": 1e-3,
        }),
    )
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"streamlit did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.3)
        yield url, base / "runs"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def test_start_progress_cancel_in_a_real_browser(server, tmp_path):
    from playwright.sync_api import sync_playwright

    url, runs_dir = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
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
            page.screenshot(path=str(tmp_path / "distill_running.png"))
            page.get_by_role("button", name="Cancel").click()
            page.get_by_text("was cancelled").wait_for(timeout=120_000)
            page.screenshot(path=str(tmp_path / "distill_cancelled.png"))
            body = page.inner_text("body")
            assert "Traceback" not in body and not errors, errors
            rec = json.loads((runs_dir / "browser-run" / "run.json").read_text())
            assert rec["status"] == "cancelled" and rec["step"] >= 1
            assert (runs_dir / "browser-run" / "model" / "model.safetensors").is_file()
        finally:
            browser.close()

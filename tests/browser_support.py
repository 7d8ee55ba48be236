"""What the real-browser tests share: a `streamlit run app.py` server, Debian's chromium and
one place for screenshots (``$OPTICAL_SCREENSHOT_DIR``, else ``<tmp>/optical-screenshots``;
``.ci/run`` sets it and prints it at the end, for CI to keep as artifacts)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("OPTICAL_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags chromium keeps trying hosts this machine can't reach.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SCREENSHOT_ENV = "OPTICAL_SCREENSHOT_DIR"


def require_browser() -> None:
    """Skip the calling test when chromium or the playwright package is missing."""
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium, or set OPTICAL_CHROMIUM)")
    pytest.importorskip("playwright.sync_api", reason="the playwright Python package is missing")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(workdir: Path, **env: str) -> Iterator[str]:
    """Run the app on a free loopback port with extra environment; yield its URL."""
    port = _free_port()
    log = workdir / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ, **env),
            start_new_session=True,
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
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


@contextlib.contextmanager
def chromium() -> Iterator:
    """A headless Debian chromium driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def screenshot_dir() -> Path:
    """The folder for screenshots: ``$OPTICAL_SCREENSHOT_DIR`` or ``<tmp>/optical-screenshots``."""
    folder = Path(os.environ.get(SCREENSHOT_ENV) or Path(tempfile.gettempdir()) / "optical-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# Streamlit scrolls an inner container, not the document, so Playwright's full_page alone
# captures one viewport: the viewport is stretched to the content's height for the shot.
_CONTENT_HEIGHT_JS = """() => Math.max(document.documentElement.scrollHeight, ...Array.from(
  document.querySelectorAll('[data-testid="stMain"], [data-testid="stAppViewContainer"]'),
  e => e.scrollHeight))"""
MAX_SHOT_HEIGHT = 12_000  # px


def save_screenshot(page, name: str) -> Path:
    """Save a full-page PNG of a Playwright ``page`` as ``<screenshot dir>/<name>.png``."""
    path = screenshot_dir() / f"{name}.png"
    size = page.viewport_size
    height = min(int(page.evaluate(_CONTENT_HEIGHT_JS)), MAX_SHOT_HEIGHT)
    if size is not None and height > size["height"]:
        page.set_viewport_size({"width": size["width"], "height": height})
    try:
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => r()))")
        page.screenshot(path=str(path), full_page=True)
    finally:
        if size is not None and height > size["height"]:
            page.set_viewport_size(size)
    return path

"""What the real-browser tests (and ``bench/bench_memory.py``) share: a `streamlit run app.py`
server, Debian's chromium and one place for screenshots (``$OPTICAL_SCREENSHOT_DIR``, else
``<tmp>/optical-screenshots``;
``.ci/run`` sets it and prints it at the end, for CI to keep as artifacts)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from _distill_models import make_tiny_model

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("OPTICAL_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags chromium keeps trying hosts this machine can't reach.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SCREENSHOT_ENV = "OPTICAL_SCREENSHOT_DIR"
# What the sidebar's model picker shows (its value sits in an <input>, not in the text).
PICKER_JS = """() => {
  const box = document.querySelector('[data-testid="stSidebar"] [data-testid="stSelectbox"]');
  if (!box) return '';
  const input = box.querySelector('input');
  const value = input ? input.value + ' ' + (input.getAttribute('aria-label') || '') : '';
  return box.innerText + ' ' + value;
}"""


def require_browser() -> None:
    """Skip the calling test when chromium or the playwright package is missing."""
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no chromium at {CHROMIUM} "
                    "(apt-get install chromium, or set OPTICAL_CHROMIUM)")
    pytest.importorskip("playwright.sync_api", reason="the playwright Python package is missing")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_streamlit(log: Path, env: Mapping[str, str],
                    timeout_s: float = 90) -> tuple[subprocess.Popen, str]:
    """Start ``streamlit run app.py`` on a free loopback port with extra environment, its
    output in ``log``; return the server process and its URL once it answers.

    Raises:
        RuntimeError: the server exited or did not answer within ``timeout_s`` (it is
            stopped; the message ends with the log's tail).
    """
    port = _free_port()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ, **env),
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
            return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_streamlit(proc)
                raise RuntimeError(f"streamlit did not start:\n{log.read_text()[-3000:]}") from None
            time.sleep(0.3)


def stop_streamlit(proc: subprocess.Popen, timeout_s: float = 15) -> None:
    """Stop a server of :func:`start_streamlit` and its children (SIGTERM, then SIGKILL)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


@contextlib.contextmanager
def streamlit_server(workdir: Path, *, timeout_s: float = 90, **env: str) -> Iterator[str]:
    """Run the app on a free loopback port with extra environment; yield its URL (fail
    the test when it does not answer within ``timeout_s``)."""
    try:
        proc, url = start_streamlit(workdir / "server.log", env, timeout_s)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield url
    finally:
        stop_streamlit(proc)


# The packaged demo pairs, few and short: a training step of the tiny teacher takes
# milliseconds even on two busy cores.
TINY_TRAINING = {"data": "demo", "pairs": 24, "batch_size": 4, "max_tokens": 32, "lr": 1e-3}


@contextlib.contextmanager
def tiny_training_server(base: Path, settings_env: str, settings: Mapping[str, object], *,
                         timeout_s: float = 90, **env: str) -> Iterator[tuple[str, Path]]:
    """Serve the app to a browser test that trains; yield its URL and runs folder.

    A tiny random teacher is saved under ``base``; it and :data:`TINY_TRAINING`, updated by
    ``settings``, go as JSON into the environment variable ``settings_env``
    (``OPTICAL_DISTILL_DEFAULTS`` for the Distillation form, ``OPTICAL_QUICK_STUDENT`` for
    the home page's button). Runs go to ``base / "runs"``; ``env`` is added to the server's
    environment, and ``timeout_s`` bounds its start-up. Skips the test, before building the
    model, when chromium or playwright is missing.
    """
    require_browser()
    teacher = make_tiny_model(base / "tiny", seed=0)
    runs_dir = base / "runs"
    env = {"OPTICAL_RUNS_DIR": str(runs_dir),
           settings_env: json.dumps({**TINY_TRAINING, "teacher": teacher, **settings}), **env}
    with streamlit_server(base, timeout_s=timeout_s, **env) as url:
        yield url, runs_dir


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
    default = Path(tempfile.gettempdir()) / "optical-screenshots"
    folder = Path(os.environ.get(SCREENSHOT_ENV) or default)
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

"""Memory of the app: peak RSS of the ``streamlit run app.py`` server after a page tour and
after a distillation job.

Starts the app headless on a free loopback port (runs, a fresh embedding cache and the server
log go to a temporary folder, removed at the end unless ``--keep`` or a failure) and drives
Debian's chromium with Playwright through every page, so that the default MiniLM is really
loaded and used: Home (transport diagram), Alignment (the default pair's plan), Retrieval
(the default query ranked with the dense scorer, then again with the OT reranker),
Distillation and, when the page exists, Results. Then it starts a distillation job from the
Distillation page (default MiniLM teacher and student, ``--pairs`` training pairs of
Multi30k, or of the demo set when Multi30k is missing; one epoch, batch 32, evaluation on
the val split before and after) and waits until the page reports it finished; with
``--job quick`` it clicks Home's "Train a quick student" button instead (the class demo's
one-click student, :func:`optical_core.distill.recipes.quick_student`) and waits until the
sidebar has switched to it.

A sampler thread reads the resident set size of the server and its children every 0.1 s
(psutil, which comes with accelerate); the kernel's high-water mark ``VmHWM`` of the server
process (``/proc/<pid>/status``) catches peaks between samples. Both are cumulative: the
"job" row includes the tour. The RSS held at the end of each stage (sampled once the page
has settled) is what the server keeps for the rest of a lesson. Goal: ≤ 1.2 GB (1200 MB,
10^6 bytes) after the page tour, and held after the job; the job's peak is reported.

    python bench/bench_memory.py [--pairs 1000] [--job-timeout 3600] [--keep]
    python bench/bench_memory.py --job quick   # the page tour, then Home's quick student
    python bench/bench_memory.py --quick    # smoke run: tiny random teacher, 100 demo pairs
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the server and browser helpers of the browser tests
sys.path.insert(0, str(ROOT))

from browser_support import CHROMIUM, chromium, start_streamlit, stop_streamlit  # noqa: E402

from ui.live_chart import FIND_FIGURE_JS  # noqa: E402

GOAL_MB = 1200.0
MB = 1e6

IDLE_JS = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
PLAN_JS = f"() => ({FIND_FIGURE_JS})('plan') !== null"
RANKINGS_JS = """() => Array.from(document.querySelectorAll('[data-testid="stTable"] table'))
  .filter(t => Array.from(t.querySelectorAll('th')).some(h => h.innerText.trim() === 'caption'))
  .length === 2"""


class RssSampler(threading.Thread):
    """Peak resident set size (bytes) of a process and its children, sampled every
    ``interval`` s."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        import psutil

        self.proc = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.last = 0
        self._stop = threading.Event()

    def sample(self) -> int:
        import psutil

        total = 0
        with contextlib.suppress(psutil.Error):
            for p in [self.proc, *self.proc.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
        self.last = total
        self.peak = max(self.peak, total)
        return total

    def run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._stop.set()


def vm_hwm(pid: int) -> int:
    """The kernel's peak RSS of one process (bytes; 0 where /proc is unavailable)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def settle(page, timeout_ms: int = 300_000) -> None:
    """Wait until the page's script run is over (Streamlit's running indicator is gone)."""
    page.wait_for_timeout(500)
    page.wait_for_function(IDLE_JS, timeout=timeout_ms)


def check_page(page, name: str, problems: list[str]) -> None:
    """Note an exception on the page; say on stderr how far the run has got."""
    if page.locator('[data-testid="stException"]').count():
        problems.append(f"{name}: the page shows an exception")
    print(f"[{time.strftime('%H:%M:%S')}] {name} done", file=sys.stderr, flush=True)


def page_tour(page, url: str, problems: list[str]) -> list[str]:
    """Visit every page and use the default model on each; returns the pages visited."""
    visited = []
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector(".js-plotly-plot", timeout=300_000)
    settle(page)
    check_page(page, "Home", problems)
    visited.append("Home")

    page.goto(f"{url}/Alignment", wait_until="domcontentloaded")
    page.wait_for_function(PLAN_JS, timeout=300_000)
    settle(page)
    check_page(page, "Alignment", problems)
    visited.append("Alignment")

    page.goto(f"{url}/Retrieval", wait_until="domcontentloaded")
    page.wait_for_function(RANKINGS_JS, timeout=600_000)
    settle(page)
    page.get_by_text("OT rerank", exact=True).click()
    settle(page, 600_000)
    page.wait_for_function(RANKINGS_JS, timeout=600_000)
    check_page(page, "Retrieval", problems)
    visited.append("Retrieval (dense, OT rerank)")

    if (ROOT / "pages" / "4_Results.py").is_file():
        page.goto(f"{url}/Results", wait_until="domcontentloaded")
        page.wait_for_selector("h1", timeout=300_000)
        settle(page)
        check_page(page, "Results", problems)
        visited.append("Results")

    page.goto(f"{url}/Distillation", wait_until="domcontentloaded")
    page.locator('input[aria-label="Run name"]').wait_for(timeout=300_000)
    settle(page)
    check_page(page, "Distillation", problems)
    visited.append("Distillation")
    return visited


def run_job(page, name: str, timeout_s: float) -> str:
    """Start a job on the (open) Distillation page; wait until it ends; return the page's line."""
    box = page.locator('input[aria-label="Run name"]')
    box.fill(name)
    box.press("Enter")
    settle(page)
    page.get_by_role("button", name="Start training").click()
    page.wait_for_function(
        "() => /finished after|failed:|was cancelled/.test(document.body.innerText)",
        timeout=int(timeout_s * 1000), polling=1000)
    text = page.inner_text("body")
    ends = ("finished", "failed", "cancelled")
    line = next((ln for ln in text.splitlines()
                 if name in ln and any(end in ln for end in ends)), "")
    return line.strip()


def run_quick_student(page, url: str, timeout_s: float) -> str:
    """Click Home's quick-student button; wait until the student is the sidebar model (or
    the job failed); return the page's line about it."""
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("button", name="Train a quick student").click()
    page.wait_for_function(
        "() => /is the sidebar model of every page now|failed:|was cancelled/"
        ".test(document.body.innerText)", timeout=int(timeout_s * 1000), polling=1000)
    text = page.inner_text("body")
    return next((ln.strip() for ln in text.splitlines()
                 if "sidebar model of every page now" in ln or "failed:" in ln), "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=1000, help="training pairs of the job")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: the job uses a tiny random teacher and 100 demo pairs")
    ap.add_argument("--job", choices=("form", "quick"), default="form",
                    help="form: a job from the Distillation page's form; quick: Home's "
                         "quick-student button")
    ap.add_argument("--job-timeout", type=float, default=3600.0, help="seconds to wait for the job")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary folder (server log, run, cache) after a good run")
    args = ap.parse_args()
    if not Path(CHROMIUM).is_file():
        sys.exit(f"error: no chromium at {CHROMIUM} (apt-get install chromium, or set "
                 "OPTICAL_CHROMIUM)")
    if importlib.util.find_spec("playwright") is None:
        sys.exit("error: the playwright Python package is missing (pip install playwright)")

    tmp = Path(tempfile.mkdtemp(prefix="optical-bench-memory-"))
    quick_env: dict[str, str] = {}
    if args.quick:
        from _distill_models import make_tiny_model  # noqa: PLC2701 (the tests' helper module)

        pairs = 100
        defaults = {"teacher": make_tiny_model(tmp / "tiny"), "data": "demo", "pairs": pairs,
                    "batch_size": 8, "max_tokens": 32, "eval_limit": 8}
        job_kind = f"tiny random teacher, {pairs} demo pairs"
        quick_env = {"OPTICAL_QUICK_STUDENT": json.dumps(defaults)}
    elif args.job == "quick":
        from optical_core.distill.recipes import quick_student

        q = quick_student()
        pairs, defaults = q.pairs, {}
        job_kind = (f"the quick student: default MiniLM, {q.pairs} {q.data} {q.lang}-en pairs, "
                    f"{q.epochs:g} epoch, batch {q.batch_size}, {q.max_tokens} tokens")
    else:
        from optical_core.data import multi30k_available

        pairs = args.pairs
        defaults = {"pairs": pairs}
        found = multi30k_available(splits=("train", "val"), image_splits=False)
        data = "Multi30k" if found else "demo"
        job_kind = f"default MiniLM, {pairs} {data} de-en pairs, 1 epoch, batch 32"
    # A fresh embedding cache: the Retrieval page computes the caption embeddings (the cold
    # start, the larger peak) instead of reading them from an earlier run's cache.
    env = {"OPTICAL_RUNS_DIR": str(tmp / "runs"), "OPTICAL_CACHE_DIR": str(tmp / "cache"),
           "OPTICAL_DISTILL_DEFAULTS": json.dumps(defaults), **quick_env}
    try:
        proc, url = start_streamlit(tmp / "server.log", env, timeout_s=180)
    except RuntimeError as exc:
        sys.exit(f"error: {exc}")
    sampler = RssSampler(proc.pid)
    sampler.start()
    rows: list[tuple[str, float, float, float, str, str]] = []
    problems: list[str] = []
    try:
        time.sleep(2.0)
        sampler.sample()
        rows.append(("server started, idle", sampler.peak / MB, vm_hwm(proc.pid) / MB,
                     sampler.last / MB, "", ""))
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            page.on("pageerror", lambda e: problems.append(f"browser error: {e}"))
            t0 = time.perf_counter()
            visited = page_tour(page, url, problems)
            tour_s = time.perf_counter() - t0
            sampler.sample()
            tour_mb, tour_hwm = sampler.peak / MB, vm_hwm(proc.pid) / MB
            met = "yes" if max(tour_mb, tour_hwm) <= GOAL_MB else "NO"
            rows.append(("after the page tour", tour_mb, tour_hwm, sampler.last / MB,
                         f"≤ {GOAL_MB:.0f}", met))
            t0 = time.perf_counter()
            if args.job == "quick":
                outcome = run_quick_student(page, url, args.job_timeout)
                done = "the sidebar model of every page now" in outcome
            else:
                outcome = run_job(page, "memory-job", args.job_timeout)
                done = "finished" in outcome
            job_s = time.perf_counter() - t0
            time.sleep(2.0)  # the page's last polls after the job
            sampler.sample()
            what = "quick student" if args.job == "quick" else "job"
            held_ok = "yes (held)" if sampler.last / MB <= GOAL_MB else "NO (held)"
            rows.append((f"after the {pairs}-pair {what}", sampler.peak / MB,
                         vm_hwm(proc.pid) / MB, sampler.last / MB,
                         f"≤ {GOAL_MB:.0f} held; peak reported", held_ok))
            check_page(page, "Home (quick student)" if args.job == "quick"
                       else "Distillation (job)", problems)
    finally:
        sampler.stop()
        stop_streamlit(proc, timeout_s=20)

    load = os.getloadavg()
    print(f"\npages: {', '.join(visited)} ({tour_s:.0f} s); job: {job_kind} ({job_s:.0f} s)")
    print(f"job outcome: {outcome or 'not found on the page'}")
    print(f"machine: {os.cpu_count()} CPUs, "
          f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    print("\n| stage | peak RSS, sampled (MB) | VmHWM (MB) | RSS held at the end (MB) "
          "| goal (MB) | met |")
    print("|---|---:|---:|---:|---|---|")
    for stage, rss, hwm, now, goal, ok in rows:
        print(f"| {stage} | {rss:.0f} | {hwm:.0f} | {now:.0f} | {goal} | {ok} |")
    for p in problems:
        print(f"problem: {p}")
    failed = bool(problems) or not done
    if failed or args.keep:
        print(f"\nserver log, run folder and cache kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

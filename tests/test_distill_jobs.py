"""optical_core.distill.jobs: the job manager (one run at a time, queue, cancel, failures,
orphaned jobs of closed tabs), with a fake runner and with real tiny runs (the ``tiny``
fixture in conftest.py)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from _helpers import distill_cfg

from optical_core import runs
from optical_core.distill.checkpoints import validate_checkpoint
from optical_core.distill.config import DistillConfig, DistillError
from optical_core.distill.jobs import (
    DEFAULT_ORPHAN_S,
    ENV_ORPHAN_S,
    ORPHAN_NOTE,
    JobManager,
    orphan_grace_s,
    release_memory,
)
from optical_core.distill.train import RunResult


def _fake_runner(gate: threading.Event):
    def runner(config, run_dir, resume=False, progress=None, cancel=None):
        for step in range(1, 1000):
            if cancel.is_set():
                return RunResult(Path(run_dir), "cancelled", None, step)
            progress({"kind": "step", "step": step, "max_steps": 5, "epoch": 0.1})
            progress({"kind": "loss", "step": step, "loss": 1.0 / step})
            if step >= 5 and gate.is_set():
                return RunResult(Path(run_dir), "finished", None, step)
            time.sleep(0.01)
        return RunResult(Path(run_dir), "finished", None, step)

    return runner


def test_job_manager_runs_one_job_at_a_time(tmp_path):
    gate = threading.Event()
    mgr = JobManager(runner=_fake_runner(gate))
    a = mgr.submit("tab-a", DistillConfig(), tmp_path / "a")
    with pytest.raises(RuntimeError, match="already has"):
        mgr.submit("tab-a", DistillConfig(), tmp_path / "a2")
    with pytest.raises(RuntimeError, match="same|already writing"):
        mgr.submit("tab-c", DistillConfig(), tmp_path / "a")
    b = mgr.submit("tab-b", DistillConfig(), tmp_path / "b")
    time.sleep(0.2)
    assert mgr.snapshot(a.id).status == "running"
    assert mgr.snapshot(b.id).status == "queued" and mgr.queue_position(b.id) == 1
    assert mgr.busy().id == a.id
    assert mgr.latest_for("tab-b").id == b.id
    assert mgr.cancel(a.id)
    assert mgr.wait(a.id, 5).status == "cancelled"
    time.sleep(0.2)
    assert mgr.snapshot(b.id).status == "running"
    gate.set()
    done = mgr.wait(b.id, 5)
    assert done.status == "finished" and done.step >= 5 and done.losses


def test_job_manager_cancels_queued_jobs_and_survives_failures(tmp_path):
    def boom(config, run_dir, **kw):
        raise DistillError("no data here")

    mgr = JobManager(runner=boom)
    j = mgr.submit("s", DistillConfig(), tmp_path / "x")
    done = mgr.wait(j.id, 5)
    assert done.status == "failed" and "no data here" in done.error
    j2 = mgr.submit("s", DistillConfig(), tmp_path / "y")  # the worker is still alive
    assert mgr.wait(j2.id, 5).status == "failed"


def test_job_manager_with_a_real_tiny_run(tiny, tmp_path):
    mgr = JobManager()
    job = mgr.submit("s", distill_cfg(tiny, max_steps=6, probe_every=3), tmp_path / "real")
    done = mgr.wait(job.id, 120)
    assert done.status == "finished", done.error
    assert done.step == 6 and len(done.losses) == 6 and len(done.evals) == 2
    assert [p["step"] for p in done.probes] == [0, 3, 6] and done.probe_tokens


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _wait_for(mgr, job_id, cond, timeout=120.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        snap = mgr.snapshot(job_id)
        if cond(snap):
            return snap
        time.sleep(0.02)
    raise AssertionError(f"job state not reached: {mgr.snapshot(job_id)}")


def test_a_job_whose_tab_stops_polling_is_cancelled_and_can_be_resumed(tiny, tmp_path):
    clock = FakeClock()
    mgr = JobManager(orphan_s=120, clock=clock)
    run_dir = tmp_path / "orphan"
    job = mgr.submit("tab", distill_cfg(tiny, max_steps=5000, evaluate=False, probe_every=0),
                     run_dir)
    _wait_for(mgr, job.id, lambda j: j.step >= 2)
    # the tab polls: time passes, but never more than the grace period without a heartbeat
    for _ in range(3):
        clock.now += 100
        mgr.heartbeat("tab")
        step = mgr.snapshot(job.id).step
        _wait_for(mgr, job.id, lambda j, s=step: j.step >= s + 2)
    assert mgr.snapshot(job.id).status == "running" and not mgr.reap()
    # the tab is closed: no heartbeat for longer than the grace period
    clock.now += 121
    done = mgr.wait(job.id, 120)
    assert done.status == "cancelled" and done.note == ORPHAN_NOTE
    assert 2 <= done.step < 5000
    rec = runs.load_run(run_dir).record
    assert rec["status"] == "cancelled" and rec["note"] == ORPHAN_NOTE
    validate_checkpoint(run_dir / "checkpoints" / f"checkpoint-{done.step}")
    # a reopened tab (a new session) resumes it from the runs list and it finishes
    again = mgr.submit("new-tab", distill_cfg(tiny, max_steps=done.step + 2), run_dir, resume=True)
    finished = mgr.wait(again.id, 120)
    assert finished.status == "finished" and finished.step == done.step + 2
    rec = runs.load_run(run_dir).record
    assert rec["status"] == "finished" and rec["note"] is None
    assert rec["resumed_from"] == f"checkpoint-{done.step}"


def test_a_queued_job_of_a_closed_tab_is_dropped_and_a_live_one_is_kept(tmp_path):
    gate = threading.Event()
    clock = FakeClock()
    mgr = JobManager(runner=_fake_runner(gate), orphan_s=60, clock=clock)
    a = mgr.submit("tab-a", DistillConfig(), tmp_path / "a")
    b = mgr.submit("tab-b", DistillConfig(), tmp_path / "b")
    c = mgr.submit("tab-c", DistillConfig(), tmp_path / "c")
    _wait_for(mgr, a.id, lambda j: j.status == "running")
    clock.now += 50
    mgr.heartbeat("tab-a")
    mgr.heartbeat("tab-c")
    clock.now += 50  # tab-b: silent for 100 s; tab-a and tab-c: 50 s
    assert mgr.reap() == [b.id]
    assert mgr.snapshot(b.id).status == "cancelled" and mgr.snapshot(b.id).note == ORPHAN_NOTE
    assert mgr.snapshot(a.id).status == "running" and mgr.snapshot(c.id).status == "queued"
    assert mgr.queue_position(c.id) == 1
    gate.set()
    assert mgr.wait(a.id, 10).status == "finished"
    assert mgr.wait(c.id, 10).status == "finished"
    # without a grace period nothing is ever reaped
    still = JobManager(runner=_fake_runner(threading.Event()), clock=clock)
    d = still.submit("tab-d", DistillConfig(), tmp_path / "d")
    clock.now += 10_000
    assert still.reap() == [] and still.snapshot(d.id).active
    still.cancel(d.id)


def test_orphan_grace_period_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(ENV_ORPHAN_S, raising=False)
    assert orphan_grace_s() == DEFAULT_ORPHAN_S == 120
    monkeypatch.setenv(ENV_ORPHAN_S, "30")
    assert orphan_grace_s() == 30
    monkeypatch.setenv(ENV_ORPHAN_S, "0")
    assert orphan_grace_s() is None
    for bad in ("soon", "-5", "inf"):
        monkeypatch.setenv(ENV_ORPHAN_S, bad)
        with pytest.raises(ValueError, match=ENV_ORPHAN_S):
            orphan_grace_s()


#: Run in a fresh interpreter: in a long test session earlier tests (torch) have already
#: shaped the heap, so the same blocks may reuse its free space and change no RSS.
_FREED_MEMORY_SCRIPT = r"""
import os
from pathlib import Path
from optical_core.distill.config import DistillConfig
from optical_core.distill.jobs import JobManager
from optical_core.distill.train import RunResult

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

seen, keep = {}, []  # keep outlives the job, like a training's caches and loaded models

def runner(config, run_dir, resume=False, progress=None, cancel=None):
    # 64 KiB blocks (written, so resident) from the worker thread's malloc heap, each
    # followed by a small block that lives on, so the heap cannot shrink by itself
    blocks = []
    for _ in range(4000):
        blocks.append(b"\x01" * (64 * 1024))
        keep.append(b"\x02" * 600)
    del blocks
    seen["freed"] = rss()
    return RunResult(Path(run_dir), "finished", None, len(keep))

mgr = JobManager(runner=runner)
job = mgr.submit("tab", DistillConfig(), os.environ["RUN_DIR"])
assert mgr.wait(job.id, 60).status == "finished"
print(seen["freed"] - rss())
"""


@pytest.mark.skipif(not Path("/proc/self/statm").exists() or platform.libc_ver()[0] != "glibc",
                    reason="RSS from /proc and malloc_trim need Linux with glibc")
def test_a_finished_job_gives_its_freed_memory_back(tmp_path):
    """A training's memory is garbage once it ends, but glibc keeps freed heap pages
    mapped: the manager trims them, so the server's RSS does not stay at the peak."""
    out = subprocess.run([sys.executable, "-c", _FREED_MEMORY_SCRIPT], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "RUN_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.strip().splitlines()[-1]) > 150 * 2**20, out.stdout
    assert release_memory() > 0

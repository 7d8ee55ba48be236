"""A process-wide queue of distillation jobs: one trains at a time, the rest wait.

The Streamlit page keeps one :class:`JobManager` per server (``st.cache_resource``) and
keys jobs by a per-browser-session id, so each tab sees its own job; a job submitted while
another trains is queued and its owner is told so. Nothing here imports Streamlit, so the
manager is tested directly.

Each job runs :func:`optical_core.distill.train.run_distillation` in the manager's single worker
thread; its progress events are folded into a :class:`JobState` that the page polls.

A job belongs to the session that submitted it. With ``orphan_s`` set, that session must
keep calling :meth:`JobManager.heartbeat` (the page does, from its polling fragment); a
job whose session has been silent for longer than ``orphan_s`` seconds (its browser tab
was closed) is cancelled like a Cancel click: a checkpoint is saved, the status becomes
``cancelled`` with a note, and any tab can resume the run later. Stale sessions are looked
for on every heartbeat, on every progress event of the running job and before a queued
job starts, so the rule needs no timer thread and a test can drive it with a fake clock.
"""

from __future__ import annotations

import ctypes
import gc
import itertools
import math
import os
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optical_core.distill.config import CancelEvent, DistillConfig

if TYPE_CHECKING:
    from optical_core.distill.train import RunResult

JOB_STATUSES = ("queued", "running", "finished", "cancelled", "failed")
ACTIVE = ("queued", "running")

#: Environment variable with the grace period (seconds) before an abandoned job is
#: cancelled; 0 turns the rule off.
ENV_ORPHAN_S = "OPTICAL_JOB_ORPHAN_S"
#: Long enough to outlast the once-a-minute timers of a browser's background tabs.
DEFAULT_ORPHAN_S = 120.0
ORPHAN_NOTE = "cancelled: the browser tab that started it was closed"


def orphan_grace_s() -> float | None:
    """The grace period from :data:`ENV_ORPHAN_S` (default 120 s; ``None`` when it is 0).

    Raises:
        ValueError: the variable is set to something that is not a number >= 0.
    """
    raw = os.environ.get(ENV_ORPHAN_S, "").strip()
    if not raw:
        return DEFAULT_ORPHAN_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{ENV_ORPHAN_S}={raw!r} is not a number of seconds >= 0 "
                         f"(0 keeps jobs of closed tabs running); using {DEFAULT_ORPHAN_S:g} s")
    return value or None


@dataclass
class JobState:
    """Everything the page shows about one job (read it under :meth:`JobManager.snapshot`)."""

    id: str
    owner: str
    name: str
    run_dir: Path
    config: DistillConfig
    resume: bool = False
    status: str = "queued"
    step: int = 0
    max_steps: int = 0
    epoch: float = 0.0
    eta_s: float | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    probes: list[dict[str, Any]] = field(default_factory=list)
    probe_tokens: tuple[list[str], list[str]] | None = None
    components: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    note: str | None = None
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    cancel_event: CancelEvent = field(default_factory=CancelEvent, repr=False)
    result: RunResult | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.max_steps) if self.max_steps else 0.0

    def copy(self) -> JobState:
        """A shallow copy with copied lists, safe to read while the worker goes on."""
        c = JobState(**{k: getattr(self, k) for k in self.__dataclass_fields__})
        c.losses, c.evals, c.probes = list(self.losses), list(self.evals), list(self.probes)
        c.components = dict(self.components)
        return c


Runner = Callable[..., "RunResult"]


def release_memory() -> int | None:
    """Give the memory a finished training freed back to the operating system; the
    resident set size in bytes afterwards (``None`` where ``/proc`` is missing).

    A run's student, teacher, optimizer moments and batches are garbage once it ends, but
    glibc keeps freed heap pages mapped for reuse, so the server's RSS stays at the
    training's peak. The quick student's training on the 2-core machine: 1.43 GB after
    the run, 1.25 GB after ``gc.collect()``, 0.66 GB after ``malloc_trim(0)`` (500 pairs)
    (docs/RELIABILITY.md). A no-op beside ``gc.collect()`` without glibc.
    """
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl)
        pass
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _run_distillation(*args: Any, **kwargs: Any) -> RunResult:
    """:func:`~optical_core.distill.train.run_distillation`, imported when a job starts: a
    page that only shows the queue (the home page) must not import torch."""
    from optical_core.distill.train import run_distillation

    return run_distillation(*args, **kwargs)


class JobManager:
    """FIFO queue of distillation jobs with one worker thread.

    Args:
        runner: the training function (default
            :func:`~optical_core.distill.train.run_distillation`); tests may pass a
            fake with the same signature.
        orphan_s: cancel a session's active job once the session has not called
            :meth:`heartbeat` for this many seconds; ``None`` keeps jobs running whatever
            happens to their session (scripts, tests).
        clock: the time source for heartbeats, in seconds (tests inject a fake one).
    """

    def __init__(self, runner: Runner | None = None, orphan_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._runner = runner or _run_distillation
        self.orphan_s = orphan_s
        self._clock = clock
        self._seen: dict[str, float] = {}  # session -> clock() of its last heartbeat
        self._lock = threading.Lock()
        self._jobs: dict[str, JobState] = {}
        self._queue: deque[str] = deque()
        self._current: str | None = None
        self._wake = threading.Condition(self._lock)
        self._ids = itertools.count(1)
        self._worker = threading.Thread(target=self._loop, name="optical-distill-worker",
                                        daemon=True)
        self._worker.start()

    # -- submitting and controlling -------------------------------------------

    def submit(self, owner: str, config: DistillConfig, run_dir: str | Path, resume: bool = False,
               name: str | None = None) -> JobState:
        """Queue a job for session ``owner``. A session has at most one active job.

        Raises:
            RuntimeError: the session already has a queued or running job, or another
                active job writes to the same run folder.
        """
        run_dir = Path(run_dir).expanduser().resolve()
        config = config if resume else config.validate()
        with self._lock:
            mine = self._active_for(owner)
            if mine is not None:
                raise RuntimeError(
                    f"this session already has a {mine.status} job ({mine.name}); cancel it first"
                )
            if any(j.active and j.run_dir == run_dir for j in self._jobs.values()):
                raise RuntimeError(f"another job is already writing to {run_dir.name}")
            job = JobState(id=f"job-{next(self._ids)}", owner=owner, name=name or run_dir.name,
                           run_dir=run_dir, config=config, resume=resume)
            self._seen[owner] = self._clock()
            self._jobs[job.id] = job
            self._queue.append(job.id)
            self._wake.notify_all()
            return job.copy()

    def cancel(self, job_id: str, reason: str | None = None) -> bool:
        """Cancel a queued job at once, or stop a running one after its current step.

        Args:
            reason: kept as the job's ``note`` (and the run's, once it stops).

        Returns ``True`` if the job was active.
        """
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or not job.active:
                return False
            self._cancel_locked(job, reason)
            return True

    def _cancel_locked(self, job: JobState, reason: str | None) -> None:
        job.cancel_event.cancel(reason)
        job.note = job.note or reason
        if job.status == "queued":
            with _suppress_value_error():
                self._queue.remove(job.id)
            job.status, job.ended = "cancelled", time.time()

    # -- sessions ----------------------------------------------------------------

    def heartbeat(self, owner: str) -> None:
        """Record that session ``owner`` is still there (its tab is open and polling)."""
        with self._lock:
            self._seen[owner] = self._clock()
            self._reap_locked()

    def reap(self) -> list[str]:
        """Cancel the active jobs whose session has been silent for over ``orphan_s``;
        returns their ids."""
        with self._lock:
            return self._reap_locked()

    def _reap_locked(self) -> list[str]:
        if self.orphan_s is None:
            return []
        now = self._clock()
        reaped = []
        for job in self._jobs.values():
            last = self._seen.get(job.owner, now)
            if job.active and not job.cancel_event.is_set() and now - last > self.orphan_s:
                self._cancel_locked(job, ORPHAN_NOTE)
                reaped.append(job.id)
        owners = {j.owner for j in self._jobs.values() if j.active}
        for owner in [o for o in self._seen if o not in owners]:
            del self._seen[owner]  # a session without an active job has nothing to lose
        return reaped

    # -- reading ---------------------------------------------------------------

    def snapshot(self, job_id: str) -> JobState | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return job.copy() if job else None

    def latest_for(self, owner: str) -> JobState | None:
        """The newest job of a session (active or not)."""
        with self._lock:
            mine = [j for j in self._jobs.values() if j.owner == owner]
            return max(mine, key=lambda j: j.submitted).copy() if mine else None

    def _active_for(self, owner: str) -> JobState | None:
        return next((j for j in self._jobs.values() if j.owner == owner and j.active), None)

    def queue_position(self, job_id: str) -> int | None:
        """0 while the job trains, k ≥ 1 when k jobs are ahead of it, ``None`` otherwise."""
        with self._lock:
            if self._current == job_id:
                return 0
            if job_id in self._queue:
                return list(self._queue).index(job_id) + (1 if self._current else 0)
            return None

    def busy(self) -> JobState | None:
        """The job that trains now, if any."""
        with self._lock:
            return self._jobs[self._current].copy() if self._current else None

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "running": self._current,
                "queued": list(self._queue),
                "jobs": {j.id: j.status for j in self._jobs.values()},
            }

    def wait(self, job_id: str, timeout: float | None = None) -> JobState | None:
        """Block until the job is no longer active (or ``timeout``); for tests and scripts."""
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            snap = self.snapshot(job_id)
            if snap is None or not snap.active:
                return snap
            if end is not None and time.monotonic() > end:
                return snap
            time.sleep(0.05)

    # -- worker ----------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._queue:
                    self._wake.wait()
                self._reap_locked()  # a queued job of a closed tab must not start
                if not self._queue:
                    continue
                job_id = self._queue.popleft()
                job = self._jobs[job_id]
                if job.cancel_event.is_set():
                    continue
                self._current = job_id
                job.status, job.started = "running", time.time()
            try:
                try:
                    result = self._runner(
                        job.config, job.run_dir, resume=job.resume,
                        progress=lambda ev, j=job: self._on_event(j, ev),
                        cancel=job.cancel_event,
                    )
                finally:  # before the job is seen to end: a page reads RSS after it
                    release_memory()
                with self._lock:
                    job.result = result
                    job.status = result.status
                    if result.status != "cancelled":  # it ended before the cancel took hold
                        job.note = None
            except BaseException as exc:  # noqa: BLE001 - the job fails, the worker lives on
                with self._lock:
                    job.status = "failed"
                    text = str(exc).strip() or type(exc).__name__
                    job.error = " ".join(text.split())[:1000]
                    job.traceback = traceback.format_exc()  # type: ignore[attr-defined]
            finally:
                with self._lock:
                    job.ended = time.time()
                    self._current = None

    def _on_event(self, job: JobState, ev: dict[str, Any]) -> None:
        kind = ev.get("kind")
        with self._lock:
            self._reap_locked()
            if kind == "step":
                job.step, job.max_steps = int(ev["step"]), int(ev["max_steps"])
                job.epoch, job.eta_s = float(ev.get("epoch") or 0.0), ev.get("eta_s")
                job.components = dict(ev.get("components") or {})
            elif kind == "loss":
                job.losses.append((int(ev["step"]), float(ev["loss"])))
            elif kind == "eval":
                job.evals.append({"step": ev["step"], "epoch": ev.get("epoch"),
                                  "metrics": ev["metrics"]})
            elif kind == "probe":
                job.probe_tokens = (list(ev["src_tokens"]), list(ev["en_tokens"]))
                job.probes.append({"step": ev["step"], "plan": ev["plan"],
                                   "ot_cost": ev.get("ot_cost")})
            elif kind == "status" and ev.get("status") == "running":
                job.status = "running"


class _suppress_value_error:
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        return exc_type is ValueError

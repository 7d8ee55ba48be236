"""Spreading one grid over processes and machines: shards, tasks and claim files.

A grid is a fixed, ordered list of tasks per stage (lr tuning runs, trainings, evaluation
cells, alignment scores), each with a stable id that depends on the config only. Shard
``K/N`` owns the tasks at positions ``K-1, K-1+N, ...`` of each stage; every shard works
against the same results folder (and runs folder), so the finished tasks of one are the
reused tasks of the others, and any shard's report merges whatever is finished.

Before a shard runs a task it *claims* it: it creates ``<claims>/<task>.<gen>.claim``
with ``O_CREAT | O_EXCL`` (atomic, also on NFS v3 and later), holding its host, pid,
shard and the time. The claim with the highest generation is the task's current one. It
may be taken over when it is stale: its file was not touched (:func:`heartbeat`) for
``timeout_s`` seconds, or it was made on this host by a process that no longer runs.
Taking over means creating generation ``gen + 1``, again with ``O_EXCL``: of several
shards that find the same stale claim exactly one wins, and nothing is renamed or
deleted under a live claimer's feet. A finished (or failed) task's claims are removed.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: A claim whose file was not touched for this long is taken to be abandoned (seconds).
CLAIM_TIMEOUT_S = 3600.0
_CLAIM_RE = re.compile(r"^(?P<task>.+)\.(?P<gen>\d+)\.claim$")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


@dataclass(frozen=True)
class Shard:
    """Shard ``k`` of ``n`` (1-based)."""

    k: int = 1
    n: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"K/N"`` with ``1 <= K <= N``.

        Raises:
            ValueError: anything else; the message shows the expected form.
        """
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
        if not m or not 1 <= int(m[1]) <= int(m[2]):
            raise ValueError(f"a shard is K/N with 1 <= K <= N (e.g. 1/2), got {text!r}")
        return cls(int(m[1]), int(m[2]))

    def owns(self, position: int) -> bool:
        """Whether the task at 0-based ``position`` of a stage is this shard's."""
        return position % self.n == self.k - 1

    def __str__(self) -> str:
        return f"{self.k}/{self.n}"


@dataclass
class Task:
    """One unit of work of a grid.

    Attributes:
        id: stable, config-derived name (letters, digits, ``.``, ``_``, ``+``, ``-``).
        stage: ``tune``, ``train``, ``evaluate`` or ``alignment``.
        done: whether its result is on disk (cheap; called often).
        run: computes and stores the result.
    """

    id: str
    stage: str
    done: Callable[[], bool]
    run: Callable[[], None]

    def __post_init__(self) -> None:
        if not _ID_RE.match(self.id):
            raise ValueError(f"task id {self.id!r} is not a plain file name")


@dataclass(frozen=True)
class Claim:
    """A claim this process holds: the file and its generation."""

    path: Path
    task: str
    gen: int


def _claims_of(folder: Path, task: str) -> list[tuple[int, Path]]:
    """``(generation, path)`` of the task's claim files, lowest generation first."""
    out = []
    if folder.is_dir():
        for p in folder.iterdir():
            m = _CLAIM_RE.match(p.name)
            if m and m["task"] == task:
                out.append((int(m["gen"]), p))
    return sorted(out)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def is_stale(path: Path, timeout_s: float = CLAIM_TIMEOUT_S, now: float | None = None) -> bool:
    """Whether a claim file may be taken over: untouched for ``timeout_s`` seconds, or made
    on this host by a process that has ended. A claim still being written (empty) is
    judged by its age only."""
    try:
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except FileNotFoundError:
        return True
    if age > timeout_s:
        return True
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (isinstance(info, dict) and info.get("host") == socket.gethostname()
            and isinstance(info.get("pid"), int) and not _pid_alive(info["pid"]))


def _create(path: Path, task: str, gen: int, shard: str) -> Claim | None:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"task": task, "host": socket.gethostname(), "pid": os.getpid(),
                   "shard": shard, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}, f)
    return Claim(path, task, gen)


def claim(folder: str | os.PathLike[str], task: str, shard: str = "",
          timeout_s: float = CLAIM_TIMEOUT_S) -> Claim | None:
    """Claim ``task`` for this process, or ``None`` when a live claim of another process
    (or another claimer in this one) holds it.

    Args:
        folder: the claims folder (created if missing).
        task: the task id.
        shard: who claims, for the record (e.g. ``"1/2"``).
        timeout_s: a claim untouched this long is stale (see :func:`is_stale`).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    held = _claims_of(folder, task)
    if not held:
        return _create(folder / f"{task}.0.claim", task, 0, shard)
    gen, current = held[-1]
    if not is_stale(current, timeout_s):
        return None
    return _create(folder / f"{task}.{gen + 1}.claim", task, gen + 1, shard)


def heartbeat(c: Claim) -> None:
    """Touch the claim so that it does not go stale while its task runs."""
    try:
        os.utime(c.path)
    except FileNotFoundError:
        pass


def release(c: Claim) -> None:
    """Remove this claim and the older ones it took over (a newer claim, made by a shard
    that took this one over, stays)."""
    for gen, path in _claims_of(c.path.parent, c.task):
        if gen <= c.gen:
            path.unlink(missing_ok=True)

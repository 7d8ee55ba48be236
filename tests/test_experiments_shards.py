"""optical_core.experiments.shards: shard ids, claim files raced by threads and by
processes, stale claims taken over exactly once, and two shards sharing one stage of a
grid (:meth:`StageRunner.run_stage`) so that every task runs once."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from optical_core.experiments import shards
from optical_core.experiments.config import GridConfig
from optical_core.experiments.runner import ExperimentRunner
from optical_core.experiments.shards import Shard, Task

REPO = Path(__file__).resolve().parents[1]


def test_shard_parse_and_ownership():
    s = Shard.parse(" 2/3 ")
    assert (s.k, s.n, str(s)) == (2, 3, "2/3")
    assert [i for i in range(7) if s.owns(i)] == [1, 4]
    assert [i for i in range(3) if Shard().owns(i)] == [0, 1, 2]
    for bad in ("0/2", "3/2", "1", "a/b", "1/0", "-1/2"):
        with pytest.raises(ValueError, match="K/N"):
            Shard.parse(bad)


def _race(n: int, call) -> list:
    """Run ``call()`` in ``n`` threads released at the same moment; their results."""
    gate = threading.Barrier(n)
    out: list = [None] * n

    def one(i: int) -> None:
        gate.wait()
        out[i] = call()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_one_of_many_threads_wins_a_claim(tmp_path):
    won = [c for c in _race(16, lambda: shards.claim(tmp_path, "eval-x-0.2", "1/1")) if c]
    assert len(won) == 1 and won[0].gen == 0
    info = json.loads(won[0].path.read_text())
    assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
    assert shards.claim(tmp_path, "eval-x-0.2") is None  # held (by this live process)
    assert shards.claim(tmp_path, "eval-x-0") is not None  # another task, another claim


_CLAIMER = """
import sys, time
from optical_core.experiments import shards
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
c = shards.claim(sys.argv[1], "train-ot-de-50-s1", sys.argv[3])
print("won" if c else "lost", flush=True)
"""


def _claimers(folder: Path, n: int, delay: float = 3.0) -> list[str]:
    start = time.time() + delay  # all processes are up (imports done) before they race
    procs = [subprocess.Popen([sys.executable, "-c", _CLAIMER, str(folder), str(start), f"{k}/{n}"],
                              cwd=REPO, stdout=subprocess.PIPE, text=True) for k in range(1, n + 1)]
    return [p.communicate(timeout=120)[0].strip() for p in procs]


def test_one_of_many_processes_wins_a_claim_and_a_dead_claimer_loses_it(tmp_path):
    results = _claimers(tmp_path, 4)
    assert sorted(results) == ["lost", "lost", "lost", "won"]
    held = list(tmp_path.glob("*.claim"))
    assert [p.name for p in held] == ["train-ot-de-50-s1.0.claim"]
    # the winner has ended: on this host, its claim is stale and is taken over, once
    assert shards.is_stale(held[0])
    won = [c for c in _race(8, lambda: shards.claim(tmp_path, "train-ot-de-50-s1")) if c]
    assert len(won) == 1 and won[0].gen == 1
    assert not shards.is_stale(won[0].path)


def _fake_claim(folder: Path, task: str, gen: int, host: str, pid: int, age_s: float) -> Path:
    path = folder / f"{task}.{gen}.claim"
    path.write_text(json.dumps({"task": task, "host": host, "pid": pid, "shard": "2/2",
                                "time": "2025-01-01T00:00:00"}))
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def test_claims_of_other_hosts_go_stale_by_age_only(tmp_path):
    _fake_claim(tmp_path, "cell", 0, "elsewhere", 1, age_s=60)  # pid 1 means nothing there
    assert shards.claim(tmp_path, "cell", timeout_s=3600) is None
    old = _fake_claim(tmp_path, "old", 0, "elsewhere", os.getpid(), age_s=7200)
    assert shards.is_stale(old, timeout_s=3600)
    taken = [c for c in _race(8, lambda: shards.claim(tmp_path, "old", timeout_s=3600)) if c]
    assert len(taken) == 1 and taken[0].gen == 1
    # a claim still being written (empty) is judged by its age
    (tmp_path / "new.0.claim").write_text("")
    assert not shards.is_stale(tmp_path / "new.0.claim")


def test_heartbeat_and_release(tmp_path):
    mine = shards.claim(tmp_path, "align-enfr-none")
    then = time.time() - 7200
    os.utime(mine.path, (then, then))
    assert shards.is_stale(mine.path, timeout_s=3600)
    shards.heartbeat(mine)
    assert not shards.is_stale(mine.path, timeout_s=3600)
    # a shard that took this claim over keeps its own when the old holder releases
    os.utime(mine.path, (then, then))
    theirs = shards.claim(tmp_path, "align-enfr-none", timeout_s=3600)
    assert theirs.gen == 1
    shards.release(mine)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["align-enfr-none.1.claim"]
    shards.release(theirs)
    assert not list(tmp_path.iterdir())


def test_task_ids_are_plain_file_names():
    with pytest.raises(ValueError, match="plain file name"):
        Task("../x", "evaluate", lambda: False, lambda: None)


def test_two_shards_share_a_stage_and_run_every_task_once(tmp_path):
    """Both shards run their own share, then wait for (or take over) the rest: every task
    runs once and both return with all of them done."""
    grid = GridConfig(name="g", methods=["none"], langs=["fr"])
    ran: list[tuple[str, str]] = []
    lock = threading.Lock()

    def task(i: int, shard: str) -> Task:
        def run() -> None:
            time.sleep(0.05)
            with lock:
                ran.append((f"t{i}", shard))
        return Task(f"t{i}", "train", lambda: any(t == f"t{i}" for t, _ in ran), run)

    runners = [ExperimentRunner(grid, tmp_path / "results", tmp_path / "runs", shard=Shard(k, 2),
                                poll_s=0.01) for k in (1, 2)]
    errors: list[BaseException] = []

    def go(r: ExperimentRunner) -> None:
        try:
            r.stages.run_stage("train", [task(i, str(r.shard)) for i in range(10)], wait=True)
        except BaseException as exc:  # noqa: BLE001 — reported below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(r,)) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert sorted(t for t, _ in ran) == sorted(f"t{i}" for i in range(10))  # each once
    assert {s for _, s in ran} == {"1/2", "2/2"}
    assert not list((tmp_path / "results" / "g" / "claims").iterdir())

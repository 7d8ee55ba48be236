"""Running one stage of the grid: claim each task, run it, time it, and wait for the
tasks other shards are running when the next stage needs all of them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from optical_core import runs as runs_mod
from optical_core.experiments import shards
from optical_core.experiments.config import ExperimentError
from optical_core.experiments.context import GridContext
from optical_core.experiments.folder import record_written
from optical_core.experiments.shards import Task
from optical_core.experiments.timings import time_file

#: Seconds between heartbeats of a claim during a long task.
HEARTBEAT_S = 30.0


class StageRunner:
    """Runs the tasks of a stage under claim files, so shards sharing a results folder
    run each task once (:mod:`optical_core.experiments.shards`)."""

    def __init__(self, ctx: GridContext) -> None:
        self.ctx = ctx
        self._claim: shards.Claim | None = None
        self._beat = 0.0

    def attempt(self, task: Task) -> bool:
        """Claim and run ``task`` unless it is finished or another live claimer holds it;
        whether it ran. Its seconds go to ``time-<task>.json`` (for the time estimate)."""
        ctx = self.ctx
        if task.done():
            return False
        claim = shards.claim(ctx.claims, task.id, str(ctx.shard), ctx.claim_timeout)
        if claim is None:
            return False
        try:
            if task.done():  # finished by another shard between the look and the claim
                return False
            ctx.check_cancel()
            ctx.emit(kind="task", stage=task.stage, label=task.id)
            self._claim, self._beat = claim, time.monotonic()
            t0 = time.perf_counter()
            task.run()
            if not task.done():  # else a waiting stage would run it again and again
                raise ExperimentError(f"{task.id} ran but left no result where the grid looks")
            f = time_file(ctx.cache, task.id)
            runs_mod.write_json_atomic(f, {"stage": task.stage,
                                           "seconds": time.perf_counter() - t0,
                                           "shard": str(ctx.shard)})
            record_written(ctx.out, f)
            return True
        finally:
            self._claim = None
            shards.release(claim)

    def heartbeat(self) -> None:
        """Keep the current claim fresh during a long task (at most every 30 s)."""
        if self._claim is not None and time.monotonic() - self._beat > HEARTBEAT_S:
            shards.heartbeat(self._claim)
            self._beat = time.monotonic()

    def run_stage(self, stage: str, tasks: list[Task], wait: bool) -> None:
        """Run this shard's share of ``tasks``. With ``wait`` (the next stage needs all of
        them), then run the ones nobody has claimed and wait for those that other live
        shards are running."""
        ctx = self.ctx
        ctx.check_cancel()
        ctx.emit(kind="stage", stage=stage)
        for i, task in enumerate(tasks):
            if ctx.shard.owns(i):
                self.attempt(task)
        while wait:
            left = [t for t in tasks if not t.done()]
            if not left:
                return
            # a list, not a generator: every task left is attempted, not up to the first
            if not any([self.attempt(t) for t in left]):  # noqa: C419
                ctx.check_cancel()
                ctx.emit(kind="wait", stage=stage, left=[t.id for t in left])
                time.sleep(ctx.poll_s)

    @contextlib.contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """Hold the claim ``name`` for the block, waiting while another shard holds it."""
        ctx = self.ctx
        while (held := shards.claim(ctx.claims, name, str(ctx.shard),
                                    ctx.claim_timeout)) is None:
            ctx.check_cancel()
            time.sleep(min(ctx.poll_s, 1.0))
        try:
            yield
        finally:
            shards.release(held)

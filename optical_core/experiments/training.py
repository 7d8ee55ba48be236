"""The grid's trainings: the distillation config of each, the run folder that holds it (a
finished run of the same config is reused, an interrupted one resumed), and the training
itself.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from optical_core import runs as runs_mod
from optical_core.experiments.config import (
    ExperimentError,
    distill_config,
    run_name,
    same_config,
)
from optical_core.experiments.context import Cancelled, GridContext


class Trainings:
    """Finds, reuses and trains the distillation runs of a grid.

    Args:
        ctx: the grid run's shared state.
        heartbeat: called at every training event (keeps the task's claim fresh).
    """

    def __init__(self, ctx: GridContext, heartbeat: Callable[[], None]) -> None:
        self.ctx = ctx
        self.heartbeat = heartbeat
        self._finished: dict[str, Path] = {}

    def config(self, method: str, lang: str, pairs: int, seed: int, lr: float, schedule: str):
        """The :class:`~optical_core.distill.config.DistillConfig` of one training, with
        the grid's data folder."""
        cfg = distill_config(self.ctx.grid, method, lang, pairs, seed, lr, schedule)
        if self.ctx.data_dir:
            cfg.data_dir = self.ctx.data_dir
        return cfg

    def find_run(self, cfg) -> tuple[Path, dict[str, Any] | None]:
        """The run folder for ``cfg`` and its record: its own name, or an earlier run of
        the same config (same method, language, size, lr and seed prefix, equal config);
        the record is ``None`` when no such run exists."""
        runs_dir = self.ctx.runs_dir
        name = run_name(cfg)
        prefix = name.rsplit("-", 1)[0]
        candidates = [runs_dir / name]
        if runs_dir.is_dir():
            candidates += sorted(p for p in runs_dir.glob(f"{prefix}-*")
                                 if p.name != name and ".stale-" not in p.name)
        for path in candidates:
            try:
                rec = runs_mod.read_record(path)
            except runs_mod.RunError:
                continue
            if same_config(rec.get("config", {}), cfg.to_dict()):
                return path, rec
        return runs_dir / name, None

    def finished_run(self, cfg) -> Path | None:
        """The finished run of ``cfg`` with its saved model, or ``None`` (remembered once
        found: a finished run stays finished)."""
        key = json.dumps(cfg.to_dict(), sort_keys=True, default=str)
        if key not in self._finished:
            run_dir, rec = self.find_run(cfg)
            if not (rec and rec.get("status") == "finished"
                    and (run_dir / runs_mod.MODEL_DIR).is_dir()):
                return None
            self._finished[key] = run_dir
        return self._finished[key]

    def train(self, cfg) -> None:
        """Train (or resume) the run of ``cfg``; an unusable earlier attempt in its
        folder is moved aside first.

        Raises:
            ExperimentError: the training failed.
            Cancelled: the cancel flag stopped it (its checkpoint is kept).
        """
        from optical_core.distill.config import DistillError
        from optical_core.distill.train import run_distillation

        ctx = self.ctx
        run_dir, rec = self.find_run(cfg)
        resume = rec is not None and (run_dir / runs_mod.CHECKPOINT_DIR).is_dir()
        if run_dir.exists() and not resume:
            aside = run_dir.with_name(f"{run_dir.name}.stale-{int(time.time())}")
            run_dir.rename(aside)
            ctx.note(f"{run_dir.name}: an unusable earlier attempt was moved to {aside.name}")
        ctx.runs_dir.mkdir(parents=True, exist_ok=True)

        def relay(ev: dict[str, Any]) -> None:
            self.heartbeat()
            if ev.get("kind") == "step":
                ctx.emit(kind="step", run=run_dir.name, step=ev.get("step"),
                         max_steps=ev.get("max_steps"))

        try:
            res = run_distillation(cfg, run_dir, resume=resume, progress=relay, cancel=ctx.cancel)
        except DistillError as exc:
            raise ExperimentError(f"training {run_dir.name} failed: {exc}") from exc
        if res.status != "finished":
            raise Cancelled

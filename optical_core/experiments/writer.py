"""Writing a results folder's record: ``results.json`` (status, config, versions, notes,
the chosen settings and every table) and one CSV per table.
"""

from __future__ import annotations

import json
import time
from typing import Any

from optical_core import runs as runs_mod
from optical_core.experiments.config import write_csv
from optical_core.experiments.context import GridContext
from optical_core.experiments.tables import GRID_TABLES, RESULTS_FILE
from optical_core.experiments.tuning import Tuning


class ResultsWriter:
    """Writes ``results.json`` and the CSVs of one grid run, carrying over what an
    earlier session of the same folder recorded (its start, wall time and tables)."""

    def __init__(self, ctx: GridContext, tuning: Tuning) -> None:
        self.ctx = ctx
        self.tuning = tuning
        self.t0 = time.perf_counter()
        self.started = time.strftime("%Y-%m-%dT%H:%M:%S")
        self.prior_wall = 0.0
        self.prev_tables: dict[str, list] = {}

    def resume(self) -> None:
        """Start the clock and read what an earlier session left in ``results.json``."""
        self.t0 = time.perf_counter()
        self.started = time.strftime("%Y-%m-%dT%H:%M:%S")
        self.prior_wall, self.prev_tables = 0.0, {}
        old = self.ctx.out / RESULTS_FILE
        if not old.is_file():
            return
        try:
            prev = json.loads(old.read_text(encoding="utf-8"))
            self.started = prev.get("started") or self.started
            self.prev_tables = {k: prev.get(k) or [] for k in GRID_TABLES}
            self.tuning.rows = prev.get("lr_tuning") or []  # until tuning is read again
            # a continued or extended grid reports the wall time of all its sessions
            self.prior_wall = float(prev.get("wall_s") or 0.0)
        except (OSError, ValueError):
            pass

    def record(self, status: str, tables: dict[str, list], wall: float) -> dict[str, Any]:
        """The ``results.json`` record."""
        from optical_core.distill.models import package_versions

        ctx, chosen = self.ctx, self.tuning.chosen_by_name()
        return {"name": ctx.grid.name, "status": status, "started": self.started,
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S") if status != "running" else None,
                "wall_s": wall, "config": ctx.grid.to_dict(), "versions": package_versions(),
                "runs_dir": str(ctx.runs_dir),
                "chosen_lr": {m: lr for m, (lr, _) in chosen.items()},
                "chosen_schedule": {m: s for m, (_, s) in chosen.items()},
                "lr_tuning": self.tuning.rows, "notes": ctx.notes, **tables}

    def write(self, status: str, tables: dict[str, list] | None = None) -> None:
        """Write ``results.json`` and the CSVs; without ``tables`` (a run still going, or
        stopped) the tables of the previous run stay as they were."""
        out = self.ctx.out
        out.mkdir(parents=True, exist_ok=True)
        wall = self.prior_wall + time.perf_counter() - self.t0
        kept = tables if tables is not None else self.prev_tables
        runs_mod.write_json_atomic(out / RESULTS_FILE, self.record(status, kept, wall))
        if tables is not None:
            for name in GRID_TABLES:
                write_csv(out / f"{name}.csv", tables.get(name, []))
        write_csv(out / "lr_tuning.csv", self.tuning.rows)

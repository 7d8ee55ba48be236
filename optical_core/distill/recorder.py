"""What a run writes while it trains: ``run.json`` and ``probe.json`` (rank 0 only).
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

from optical_core import runs as runs_mod
from optical_core.distill.config import ProgressFn


class RunRecorder:
    """Keeps ``run.json`` / ``probe.json`` up to date (rank 0 only) and forwards events to
    the user's progress function. Writes are atomic and throttled to one per second,
    except for status changes, evaluations and probes."""

    def __init__(self, run_dir: Path, record: dict[str, Any], probe: dict[str, Any],
                 progress: ProgressFn | None) -> None:
        self.run_dir = run_dir
        self.record = record
        self.probe_doc = probe
        self.progress = progress
        self._last_write = 0.0
        self._lock = threading.Lock()

    def emit(self, event: dict[str, Any]) -> None:
        if self.progress is not None:
            with contextlib.suppress(Exception):
                self.progress(event)

    def write(self, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._last_write < 1.0:
            return
        with self._lock:
            self.record["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
            self.record["updated_ts"] = now
            runs_mod.write_json_atomic(self.run_dir / runs_mod.RUN_FILE, self.record)
            self._last_write = now

    def update(self, **kw) -> None:
        self.record.update(kw)
        self.write(force=True)

    def status(self, status: str, **kw) -> None:
        self.record["status"] = status
        self.record.update(kw)
        self.write(force=True)
        self.emit({"kind": "status", "status": status, **kw})

    def step(self, step: int, max_steps: int, epoch: float, eta: float | None, comps: dict) -> None:
        self.record.update(step=step, max_steps=max_steps, epoch=epoch)
        self.write()
        self.emit({"kind": "step", "step": step, "max_steps": max_steps, "epoch": epoch,
                   "eta_s": eta, "components": dict(comps)})

    def loss(self, step: int, value: float, lr: float | None) -> None:
        self.record.setdefault("losses", []).append([step, round(value, 6)])
        self.emit({"kind": "loss", "step": step, "loss": value, "lr": lr})

    def eval(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
        entry = {"step": step, "epoch": round(float(epoch), 4), "metrics": metrics}
        self.record.setdefault("evals", []).append(entry)
        self.write(force=True)
        self.emit({"kind": "eval", **entry})

    def has_probe(self, step: int) -> bool:
        return any(s["step"] == step for s in self.probe_doc.get("snapshots", []))

    def add_probe(self, step: int, snap: dict[str, Any]) -> None:
        doc = self.probe_doc
        doc["src_tokens"], doc["en_tokens"] = snap["src_tokens"], snap["en_tokens"]
        doc.setdefault("snapshots", []).append(
            {"step": step, "plan": snap["plan"], "ot_cost": snap["ot_cost"]}
        )
        runs_mod.write_json_atomic(self.run_dir / runs_mod.PROBE_FILE, doc)
        self.emit({"kind": "probe", "step": step, **snap})

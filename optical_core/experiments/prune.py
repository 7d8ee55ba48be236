"""The cache files of a results folder that its grid does not read.

A results folder gathers cells from every config that wrote to it and from the grids
whose cache was copied in to reuse their cells (robust29k starts from results29k's). Before
a folder is shipped (committed beside docs/RESULTS.md) ``optical experiment --prune``
removes what the config does not read: cell files (``.npz``) of other models, scorers or
noise levels, and the timings (``time-*.json``) of tasks that are not the grid's. Tuning
scores and alignment scores are small and kept.
"""

from __future__ import annotations

from pathlib import Path

from optical_core.experiments.config import ExperimentError
from optical_core.experiments.runner import ExperimentRunner


def grid_cache_files(runner: ExperimentRunner) -> set[Path]:
    """Every cell file and task timing of ``runner``'s grid, whether it exists yet or not.

    Raises:
        ExperimentError: a student's cells cannot be named yet (the learning-rate tuning
            is not finished), so what the grid reads is not known.
    """
    if not runner._choose():
        raise ExperimentError("the learning-rate tuning is not finished, so the students' "
                              "cells cannot be told from others yet")
    files: set[Path] = set()
    for mdl in runner._models():
        if not runner._identify(mdl):
            raise ExperimentError(f"{mdl.tag}: its cells cannot be named yet")
        files.update(f for _, f in runner._cell_files(mdl))
    files.update(runner._time_file(task.id) for _, tasks in runner._stages() for task in tasks)
    return files


def unused_files(runner: ExperimentRunner) -> list[Path]:
    """The cell files and task timings in the grid's cache that the grid does not read,
    sorted by name (see :func:`grid_cache_files`)."""
    if not runner.cache.is_dir():
        return []
    keep = grid_cache_files(runner)
    return sorted(f for pattern in ("*.npz", "time-*.json") for f in runner.cache.glob(pattern)
                  if f not in keep)

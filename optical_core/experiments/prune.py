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

from optical_core.experiments.runner import ExperimentRunner


def unused_files(runner: ExperimentRunner) -> list[Path]:
    """The cell files and task timings in the grid's cache that the grid does not read
    (:meth:`ExperimentRunner.grid_files`), sorted by name.

    Raises:
        ExperimentError: the grid's files cannot all be named yet.
    """
    if not runner.cache.is_dir():
        return []
    keep = runner.grid_files()
    return sorted(f for pattern in ("*.npz", "time-*.json") for f in runner.cache.glob(pattern)
                  if f not in keep)

"""The cache files of a results folder that its grid does not read.

A results folder gathers cells from every config that wrote to it and from the grids
whose cache was copied in to reuse their cells (robust29k starts from results29k's). Before
a folder is shipped, ``optical experiment --prune`` removes what the config does not read:
cell files (``.npz``) of other models, scorers or noise levels, and the timings
(``time-*.json``) of tasks that are not the grid's. It deletes only files the folder's
index lists as written by the grid, with the bytes it wrote
(:mod:`~optical_core.experiments.folder`): a file a user put there stays, and a folder
without an index is refused. Tuning scores and alignment scores are small and kept.
"""

from __future__ import annotations

from pathlib import Path

from optical_core.experiments.folder import is_written, written_files
from optical_core.experiments.runner import ExperimentRunner

#: The cache files pruning considers.
PRUNED_PATTERNS = ("*.npz", "time-*.json")


def unused_files(runner: ExperimentRunner) -> list[Path]:
    """The cell files and task timings in the grid's cache that the grid wrote and does
    not read (:meth:`~optical_core.experiments.tasks.GridTasks.grid_files`), sorted by name.

    Raises:
        ExperimentError: the folder has no index of the files the grid wrote (it is not
            a results folder of the grid), or the grid's files cannot all be named yet.
    """
    written = written_files(runner.out)
    keep = runner.tasks.grid_files()
    return sorted(f for pattern in PRUNED_PATTERNS for f in runner.cache.glob(pattern)
                  if f not in keep and is_written(f, written))

"""A results folder of the grid and the index of the files the grid wrote in it.

``<out>/cache/index.jsonl`` is the folder's marker and its index: the grid creates it
before it writes anything else, and appends one line ``{"file": name, "sha1": digest}``
for every cell (``.npz``) and task timing (``time-*.json``) it writes in the cache. Only
files the index lists, with the bytes it recorded, count as the grid's own: ``optical
experiment --prune`` deletes nothing else (a user's stray ``*.npz`` stays), and the grid
writes into no non-empty folder that is neither marked nor a results folder written before
the index existed (``results.json`` or ``cells.csv``, which the shipped grids hold).

Copying one grid's cache into a new results folder (to reuse its cells) copies its index
with it, so the copied cells count as the grid's own there too. Lines are appended with one
``write`` of a short line, so shards sharing a folder do not interleave them.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from optical_core.experiments.config import ExperimentError
from optical_core.experiments.tables import RESULTS_FILE

INDEX_FILE = "index.jsonl"
#: Files whose presence marks a results folder written before the index existed.
LEGACY_MARKERS = (RESULTS_FILE, "cells.csv")


def index_path(out: Path) -> Path:
    """The index of results folder ``out``: ``<out>/cache/index.jsonl``."""
    return out / "cache" / INDEX_FILE


def is_results_folder(out: Path) -> bool:
    """Whether ``out`` is a results folder of the grid: it holds the index, or (written
    before the index existed) ``results.json`` or ``cells.csv``."""
    return index_path(out).is_file() or any((out / f).is_file() for f in LEGACY_MARKERS)


def check_results_folder(out: Path) -> None:
    """Refuse a results folder the grid must not write into.

    Raises:
        ExperimentError: ``out`` is a file, or a non-empty folder that is not a results
            folder of the grid (:func:`is_results_folder`).
    """
    if out.exists() and not out.is_dir():
        raise ExperimentError(f"{out} is a file, not a results folder; choose another "
                              "--name or --results-dir")
    if out.is_dir() and any(out.iterdir()) and not is_results_folder(out):
        raise ExperimentError(f"{out} is not empty and is not a results folder of optical "
                              f"experiment (no cache/{INDEX_FILE}); nothing written there: "
                              "choose another --name or --results-dir")


def open_results_folder(out: Path) -> None:
    """Make ``out`` ready for the grid to write: create it and its index (the marker),
    after :func:`check_results_folder`."""
    check_results_folder(out)
    index = index_path(out)
    if not index.is_file():  # touching an existing one would change a reused folder
        index.parent.mkdir(parents=True, exist_ok=True)
        index.touch()


def file_digest(path: Path) -> str:
    """SHA-1 hex digest of a file's bytes."""
    return hashlib.sha1(path.read_bytes()).hexdigest()


def record_written(out: Path, path: Path) -> None:
    """Add ``path`` (a file the grid just wrote in ``<out>/cache``) to the index with the
    digest of its bytes."""
    line = json.dumps({"file": path.name, "sha1": file_digest(path)}) + "\n"
    fd = os.open(index_path(out), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


def written_files(out: Path) -> dict[str, set[str]]:
    """File name → the digests the grid recorded for it (a timing rewritten by a rerun
    has several), from the index of ``out``.

    Raises:
        ExperimentError: ``out`` has no index (not a results folder of the grid, or one
            written before the index existed).
    """
    path = index_path(out)
    if not path.is_file():
        raise ExperimentError(f"{out} has no cache/{INDEX_FILE}, so it is not a results "
                              "folder whose files optical experiment can tell from others; "
                              "nothing deleted")
    out_files: dict[str, set[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
            out_files.setdefault(str(entry["file"]), set()).add(str(entry["sha1"]))
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a kill: its file counts as not the grid's
    return out_files


def is_written(path: Path, written: dict[str, set[str]]) -> bool:
    """Whether ``path`` holds bytes the grid wrote (its name and digest are in
    ``written``, from :func:`written_files`)."""
    return path.name in written and file_digest(path) in written[path.name]

"""A results folder's index (optical_core.experiments.folder) and what ``--prune`` and the
grid refuse: a folder the grid did not write is left byte for byte as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from optical_core.cli.entry import main as cli_main
from optical_core.experiments.config import ExperimentError, GridConfig
from optical_core.experiments.folder import (
    is_results_folder,
    is_written,
    open_results_folder,
    record_written,
    written_files,
)
from optical_core.experiments.runner import ExperimentRunner

CONFIG = """
[grid]
name = "g"
methods = ["none"]
langs = ["fr"]
cer_levels = [0.0, 0.1]
gold = false
"""


def _foreign(folder: Path) -> dict[Path, bytes]:
    """A folder of someone else's files shaped like a grid's cache; their bytes."""
    files = {folder / "cache" / "none-fr-test_2016_flickr-clean-0-0123456789ab.npz": b"PK\x03\x04x",
             folder / "cache" / "time-eval-none.json": b'{"stage": "evaluate", "seconds": 1}',
             folder / "notes.txt": b"mine"}
    for f, data in files.items():
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(data)
    return files


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_prune_refuses_a_folder_the_grid_did_not_write(tmp_path, capsys):
    """``--prune`` on a folder without the grid's index: one line naming the folder, exit
    2, every file (cells and timings included) unchanged."""
    cfg = tmp_path / "g.toml"
    cfg.write_text(CONFIG)
    folder = tmp_path / "results" / "g"
    _foreign(folder)
    before = _snapshot(folder)
    code = cli_main(["experiment", "--config", str(cfg), "--results-dir",
                     str(tmp_path / "results"), "--prune"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and str(folder) in err[0] and "nothing deleted" in err[0]
    assert _snapshot(folder) == before


def test_the_grid_writes_into_no_folder_of_someone_else(tmp_path, capsys):
    """A non-empty folder that is not a results folder is refused before anything is
    written, by the runner and by the command (which surveys the folder first)."""
    folder = tmp_path / "results" / "g"
    _foreign(folder)
    before = _snapshot(folder)
    runner = ExperimentRunner(GridConfig(name="g", methods=["none"], langs=["fr"], gold=False),
                              tmp_path / "results", tmp_path / "runs")
    with pytest.raises(ExperimentError, match="is not empty and is not a results folder"):
        runner.run()
    cfg = tmp_path / "g.toml"
    cfg.write_text(CONFIG)
    code = cli_main(["experiment", "--config", str(cfg), "--results-dir",
                     str(tmp_path / "results"), "--list-cells"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and str(folder) in err[0]
    assert _snapshot(folder) == before and not (tmp_path / "runs").exists()


def test_a_results_folder_is_marked_and_indexes_what_the_grid_wrote(tmp_path):
    """An empty or new folder becomes a results folder (its index is the marker); a folder
    of an older grid (``results.json`` or ``cells.csv``) counts as one; only a file whose
    name and bytes the index recorded is the grid's."""
    out = tmp_path / "g"
    assert not is_results_folder(out)
    open_results_folder(out)
    assert is_results_folder(out) and written_files(out) == {}
    cell = out / "cache" / "a.npz"
    cell.write_bytes(b"cell")
    record_written(out, cell)
    other = out / "cache" / "b.npz"
    other.write_bytes(b"cell")  # same bytes, a name the grid never wrote
    written = written_files(out)
    assert is_written(cell, written) and not is_written(other, written)
    cell.write_bytes(b"a user's own file under the grid's name")
    assert not is_written(cell, written)
    old = tmp_path / "old"
    old.mkdir()
    (old / "cells.csv").write_text("method\nnone\n")
    assert is_results_folder(old)
    open_results_folder(old)  # an older grid's folder is written on, its index started
    assert written_files(old) == {}
    with pytest.raises(ExperimentError, match="no cache/index.jsonl"):
        written_files(tmp_path / "elsewhere")


def test_open_results_folder_refuses_a_file(tmp_path):
    f = tmp_path / "g"
    f.write_text(json.dumps({"not": "a folder"}))
    with pytest.raises(ExperimentError, match="is a file"):
        open_results_folder(f)

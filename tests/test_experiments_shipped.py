"""The shipped grids are found by listing grid-results/, not by a list of names."""

from __future__ import annotations

from pathlib import Path

from optical_core.experiments.shipped import is_shipped_grid, shipped_grid_folders

ROOT = Path(__file__).resolve().parents[1] / "grid-results"


def _grid(folder: Path, table: str = "cells.csv") -> Path:
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text("[grid]\n", encoding="utf-8")
    (folder / table).write_text("x\n", encoding="utf-8")
    return folder


def test_every_folder_of_grid_results_is_found():
    on_disk = sorted(p.name for p in ROOT.iterdir()
                     if (p / "config.toml").is_file() and (p / "cells.csv").is_file())
    found = [p.name for p in shipped_grid_folders(ROOT, first="results5k")]
    assert found[0] == "results5k"  # the default grid leads
    assert sorted(found) == on_disk
    assert {"results29k", "robust5k", "robust29k", "robust29kseeds", "robustaer"} <= set(found)
    assert "archive" not in found  # superseded grids sit one level down


def test_listing_keeps_grids_and_skips_the_rest(tmp_path):
    _grid(tmp_path / "b")
    _grid(tmp_path / "a", table="report.md")
    _grid(tmp_path / "archive" / "old")  # nested: not a shipped grid
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "config.toml").write_text("", encoding="utf-8")  # no tables
    (tmp_path / "c.toml").write_text("", encoding="utf-8")
    assert [p.name for p in shipped_grid_folders(tmp_path)] == ["a", "b"]
    assert [p.name for p in shipped_grid_folders(tmp_path, first="b")] == ["b", "a"]
    assert not is_shipped_grid(tmp_path / "notes")
    assert shipped_grid_folders(tmp_path / "missing") == []


def test_the_results_page_offers_every_shipped_grid():
    from ui.results import shipped_grids

    names = [g.name for g in shipped_grids()]
    assert names == [p.name for p in shipped_grid_folders(ROOT, first="results5k")]
    assert "robust29kseeds" in names  # missed while the page named its grids one by one

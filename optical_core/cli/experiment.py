"""The ``optical experiment`` subcommand (registered by :mod:`optical_core.cli`).

Runs a grid (:mod:`optical_core.experiments`) from a TOML file or a preset name with a
progress bar on stderr::

    optical experiment --config grid-configs/quick.toml     # or: --quick
    optical experiment --config grid-configs/results5k.toml --results-dir results

Before it starts it prints what it reuses and what is left (trainings, cells and
alignment scores) with a time estimate from the tasks timed so far. Rerunning the same
command continues a killed or cancelled grid: finished runs and evaluated cells are
reused. Ctrl-C stops after the current training step.

Several machines share a grid with ``--shard K/N`` (one K per machine, all with the same
``--results-dir`` and ``--runs-dir`` on a shared file system); ``--list-cells`` prints the
pending tasks (of the shard, with ``--shard``) and exits. ``--prune`` deletes the cached
cells and timings the config does not read (before a results folder is shipped): only files
the folder's index lists as written by the grid; a folder without one is refused.
"""

from __future__ import annotations

import os
import sys

from optical_core.cli.common import CLIError, stop_on_ctrl_c


def add_experiment(sub) -> None:
    from optical_core.experiments.shards import CLAIM_TIMEOUT_S

    p = sub.add_parser(
        "experiment", help="run an experiment grid (train, evaluate on noisy queries, report)",
        description="Train and evaluate a grid of method × language × bitext size × seed on "
        "clean and noise-perturbed Multi30k x→en retrieval, with bootstrap intervals, "
        "robustness slopes, paired significance tests and a Markdown report.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", help="grid TOML file or preset name (quick, micro, results5k)")
    src.add_argument("--quick", action="store_true",
                     help="the quick preset (grid-configs/quick.toml, < 30 min on 2 cores)")
    p.add_argument("--name", help="results folder name (default: the config's name)")
    p.add_argument("--results-dir",
                   help="results root (default: $OPTICAL_RESULTS_DIR or ./results)")
    p.add_argument("--runs-dir",
                   help="where trained runs go (default: $OPTICAL_RUNS_DIR or ./runs)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    p.add_argument("--shard", default="1/1", metavar="K/N",
                   help="run every N-th task of each stage, starting with the K-th, against a "
                   "results (and runs) folder shared with the other shards (default 1/1)")
    p.add_argument("--list-cells", action="store_true",
                   help="print the pending tasks (of this shard), one id a line, and exit")
    p.add_argument("--report-only", action="store_true",
                   help="write the tables and report.md from the cells finished so far and "
                   "exit: trains and measures nothing (while shards run, or after a stopped run)")
    p.add_argument("--prune", action="store_true",
                   help="delete the cell files and task timings in the results folder's cache "
                   "that this config does not read (e.g. cells of a grid copied in to reuse "
                   "them) and exit; only files the folder's index lists as the grid's; with "
                   "--dry-run, list them only")
    p.add_argument("--claim-timeout", type=float, default=CLAIM_TIMEOUT_S, metavar="SECONDS",
                   help="a task claimed by another shard that has shown no sign of life for "
                   f"this long is taken over (default {CLAIM_TIMEOUT_S:g})")
    p.set_defaults(func=run_experiment)


_ONE = {"trainings": "training", "cells": "cell", "alignment": "alignment score"}


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def survey_lines(survey: dict, shard) -> list[str]:
    """What a run reuses and what is left, and the time estimate, as printed at start."""
    counts = survey["counts"]
    lines = ["; ".join(f"{kind}: {c['done']} reused, {c['pending']} pending"
                       for kind, c in counts.items())]
    todo = ", ".join(f"{kind} {c['mine']}" for kind, c in counts.items() if c["mine"])
    if not todo:
        return [*lines, "nothing left to run" + (" in this shard" if shard.n > 1 else "")]
    if survey["eta_s"] is None:
        when = "no time estimate yet (a kind of task left has never been timed here)"
    else:
        per = ", ".join(f"{_duration(s)} per {_ONE[kind]}" for kind, s in survey["seconds"].items())
        when = f"about {_duration(survey['eta_s'])} from past tasks ({per})"
    who = f"shard {shard} runs" if shard.n > 1 else "to run"
    return [*lines, f"{who}: {todo}; {when}"]


def _prune(runner, dry_run: bool) -> int:
    from optical_core.experiments.config import ExperimentError
    from optical_core.experiments.prune import unused_files

    try:
        files = unused_files(runner)
    except ExperimentError as exc:
        raise CLIError(f"--prune: {exc}") from None
    size = sum(f.stat().st_size for f in files)
    for f in files:
        if dry_run:
            print(f.name)
        else:
            f.unlink(missing_ok=True)
    verb = "would delete" if dry_run else "deleted"
    print(f"{runner.grid.name}: {verb} {len(files)} cache files the config does not read "
          f"({size / 1e6:.1f} MB) in {runner.cache}")
    return 0


def _print_plan(runner) -> int:
    """``--dry-run``: every task with its rough duration, and the total."""
    plan = runner.plan()
    for stage, label, w in plan:
        print(f"{stage:9s} {label}  (~{w / 60:.1f} min)")
    print(f"{len(plan)} tasks, roughly {sum(w for *_, w in plan) / 60:.0f} min on 2 idle "
          f"cores; results in {runner.out}")
    return 0


def _run_with_bar(runner, pending: int, quiet: bool) -> dict:
    """Run the grid with a progress bar on stderr (one step per task, a training's steps
    as fractions); Ctrl-C stops it after the current training step. Its record."""
    from tqdm import tqdm

    bar = tqdm(total=max(1, pending), desc="experiment", unit="task",
               file=sys.stderr, disable=quiet or None, dynamic_ncols=True,
               bar_format="{l_bar}{bar}| {n:.1f}/{total} {elapsed}<{remaining} {postfix}")
    state = {"started": 0}

    def progress(ev: dict) -> None:
        kind = ev.get("kind")
        if kind == "task":
            state["started"] += 1
            bar.total = max(bar.total, state["started"])  # tasks taken over from other shards
            bar.n = state["started"] - 1
            bar.set_postfix_str(ev.get("label", ""), refresh=False)
            bar.refresh()
        elif kind == "step" and ev.get("max_steps") and state["started"]:
            bar.n = state["started"] - 1 + min(1.0, ev["step"] / ev["max_steps"])
            bar.refresh()
        elif kind == "wait":
            bar.set_postfix_str(f"waiting for other shards: {len(ev.get('left', []))} tasks",
                                refresh=True)

    runner.progress = progress
    try:
        with stop_on_ctrl_c(runner.cancel, lambda msg: bar.write(msg, file=sys.stderr)):
            record = runner.run()
    finally:
        bar.close()
    return record


def run_experiment(args) -> int:
    from optical_core.experiments.config import config_path, load_config
    from optical_core.experiments.folder import check_results_folder
    from optical_core.experiments.runner import ExperimentRunner
    from optical_core.experiments.shards import Shard

    try:
        shard = Shard.parse(args.shard)
    except ValueError as exc:
        raise CLIError(f"--shard: {exc}") from None
    if not args.claim_timeout > 0:
        raise CLIError("--claim-timeout must be a positive number of seconds")
    for option, value in (("--results-dir", args.results_dir), ("--runs-dir", args.runs_dir)):
        if value and os.path.exists(value) and not os.path.isdir(value):
            raise CLIError(f"{option} {value} is a file, not a folder; give a folder")
    path = config_path("quick" if args.quick else args.config)
    grid = load_config(path)
    if args.name:
        grid.name = args.name
        try:
            grid.validate()
        except ValueError as exc:  # RunError: the name is the user's --name
            raise CLIError(f"--name: {exc}") from None
    text = path.read_text(encoding="utf-8")
    runner = ExperimentRunner(grid, args.results_dir, args.runs_dir,
                              getattr(args, "data_dir", None), config_text=text, shard=shard,
                              claim_timeout=args.claim_timeout)
    if args.prune:
        return _prune(runner, dry_run=args.dry_run)
    if args.dry_run:
        return _print_plan(runner)
    if args.report_only:
        record = runner.run(report_only=True)
        print(f"{record['name']}: {len(record['cells'])} cells, status {record['status']} "
              f"(report only) → {runner.out}")
        for note in record.get("notes") or []:
            print(f"note: {note}")
        return 0
    check_results_folder(runner.out)  # before the survey reads (or caches) anything there
    survey = runner.survey()
    if args.list_cells:
        for task_id in survey["pending"]:
            print(task_id)
        return 0
    print(f"{grid.name}" + (f", shard {shard}" if shard.n > 1 else "") + f" → {runner.out}")
    for line in survey_lines(survey, shard):
        print(line)
    sys.stdout.flush()
    record = _run_with_bar(runner, len(survey["pending"]), getattr(args, "quiet", False))
    print(f"{record['name']}: {len(record['cells'])} cells, status {record['status']}, "
          f"{record['wall_s'] / 60:.1f} min → {runner.out}")
    report = runner.out / "report.md"
    if report.is_file():
        print(f"report: {report}")
    return 0

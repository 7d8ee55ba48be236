"""The ``optical experiment`` subcommand (registered by :mod:`optical_core.cli`).

Runs a grid (:mod:`optical_core.experiments`) from a TOML file or a preset name with a
progress bar and time estimate on stderr::

    optical experiment --config experiments/quick.toml     # or: --quick
    optical experiment --config experiments/results5k.toml --results-dir results

Rerunning the same command continues a killed or cancelled grid: finished runs and
evaluated cells are reused. Ctrl-C stops after the current training step.
"""

from __future__ import annotations

import sys

from optical_core.cli.common import stop_on_ctrl_c


def add_experiment(sub) -> None:
    p = sub.add_parser(
        "experiment", help="run an experiment grid (train, evaluate on noisy queries, report)",
        description="Train and evaluate a grid of method × language × bitext size × seed on "
        "clean and noise-perturbed Multi30k x→en retrieval, with bootstrap intervals, "
        "robustness slopes, paired significance tests and a Markdown report.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", help="grid TOML file or preset name (quick, micro, results5k)")
    src.add_argument("--quick", action="store_true",
                     help="the quick preset (experiments/quick.toml, < 30 min on 2 cores)")
    p.add_argument("--name", help="results folder name (default: the config's name)")
    p.add_argument("--results-dir", help="results root (default: $OPTICAL_RESULTS_DIR or ./results)")
    p.add_argument("--runs-dir", help="where trained runs go (default: $OPTICAL_RUNS_DIR or ./runs)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    p.set_defaults(func=run_experiment)


def run_experiment(args) -> int:
    from tqdm import tqdm

    from optical_core.experiments.config import config_path, load_config
    from optical_core.experiments.runner import ExperimentRunner

    path = config_path("quick" if args.quick else args.config)
    grid = load_config(path)
    if args.name:
        grid.name = args.name
        grid.validate()
    text = path.read_text(encoding="utf-8")
    runner = ExperimentRunner(grid, args.results_dir, args.runs_dir,
                              getattr(args, "data_dir", None), config_text=text)
    plan = runner.plan()
    if args.dry_run:
        for stage, label, w in plan:
            print(f"{stage:9s} {label}  (~{w / 60:.1f} min)")
        print(f"{len(plan)} tasks, roughly {sum(w for *_, w in plan) / 60:.0f} min on 2 idle "
              f"cores; results in {runner.out}")
        return 0
    quiet = getattr(args, "quiet", False)
    weights = [w for *_, w in plan]
    bar = tqdm(total=round(sum(weights)), desc="experiment", unit="s", file=sys.stderr,
               disable=quiet or None, dynamic_ncols=True,
               bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}")
    state = {"task": -1}

    def progress(ev: dict) -> None:
        kind = ev.get("kind")
        if kind == "task":
            state["task"] = min(state["task"] + 1, len(weights) - 1)
            bar.n = round(sum(weights[: state["task"]]))
            bar.set_postfix_str(ev.get("label", ""), refresh=False)
            bar.refresh()
        elif kind == "step" and ev.get("max_steps") and state["task"] >= 0:
            frac = min(1.0, ev["step"] / ev["max_steps"])
            bar.n = round(sum(weights[: state["task"]]) + frac * weights[state["task"]])
            bar.refresh()

    runner.progress = progress
    try:
        with stop_on_ctrl_c(runner.cancel, lambda msg: bar.write(msg, file=sys.stderr)):
            record = runner.run()
    finally:
        bar.close()
    print(f"{record['name']}: {len(record['cells'])} cells in {record['wall_s'] / 60:.1f} min "
          f"→ {runner.out}")
    report = runner.out / "report.md"
    if report.is_file():
        print(f"report: {report}")
    return 0

"""The ``optical distill`` subcommand (registered by :mod:`optical_core.cli`).

Runs :func:`optical_core.distill.train.run_distillation` with a tqdm progress bar on stderr.
Ctrl-C stops after the current step, saves a checkpoint and the model and marks the run
``cancelled`` (resume it with ``--resume``); a second Ctrl-C aborts at once. The same
command runs under ``torchrun --nproc_per_node N -m optical_core.cli distill ...``
(DDP with gloo on CPU); only rank 0 draws the bar and writes the run folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path
from typing import Any

from optical_core.cli.common import stop_on_ctrl_c
from optical_core.distill.config import DistillConfig, DistillError, Option, options
from optical_core.distill.option_words import flag_words
from optical_core.distill.recipes import RECIPES, recipe_options

#: The CLI's help sections of :attr:`Option.group`.
GROUPS: dict[str, str] = {
    "robustness": "robustness (off by default; see optical_core.distill.augment and "
    "OpticalLoss)",
}


def recipe_help() -> str:
    """The ``--recipe`` help, written from :data:`RECIPES` (so a changed recipe describes
    itself), e.g. ``robust: --cooc-weight 0.3 --cooc-measure npmi``."""
    by_name = {o.name: o.flag for o in options()}
    presets = "; ".join(
        f"{name}: " + " ".join(f"{by_name[f]} {v}" for f, v in RECIPES[name]().items())
        for name in sorted(RECIPES))
    return f"a preset of the options below ({presets}); explicit flags override it"


def add_option(parser, opt: Option) -> None:
    """The flag of one :class:`~optical_core.distill.config.Option`: its name, type, choices
    and help from ``DistillConfig``'s field. It defaults to ``None`` (not given), so that
    ``--recipe`` and the config's own default fill in what the user left out; a bool's flag
    sets the opposite of its default (``--no-eval``), ``--demo-data`` sets ``data`` to
    ``demo``."""
    default = "" if opt.default is None else f" (default {opt.default})"
    if opt.type is bool:
        parser.add_argument(opt.flag, dest=opt.name, action="store_const",
                            const=not opt.default, default=None, help=opt.help)
    elif opt.name == "data":
        parser.add_argument(opt.flag, dest=opt.name, action="store_const", const="demo",
                            default=None, help=opt.help)
    else:
        parser.add_argument(opt.flag, dest=opt.name, type=opt.type, choices=opt.choices,
                            default=None, metavar=None if opt.choices else opt.name.upper(),
                            help=opt.help + default)


def add_distill(sub) -> None:
    p = sub.add_parser(
        "distill", help="distil a student for a language (OT, MSE or both)",
        description="Train a student encoder by OT knowledge distillation (OPTICAL) or the "
        "sentence-level MSE baseline on Multi30k pairs, and write a run folder (run.json, "
        "model/, checkpoints/).",
    )
    p.add_argument("--out", required=True, help="run folder, e.g. runs/de-ot")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--restart", action="store_true",
                   help="start the run in --out over (its run files are replaced; other files "
                   "in the folder are left alone)")
    groups = {name: p.add_argument_group(title) for name, title in GROUPS.items()}
    groups["robustness"].add_argument("--recipe", choices=sorted(RECIPES), default=None,
                                      help=recipe_help())
    for opt in options():
        if opt.cli:
            add_option(groups.get(opt.group, p), opt)
    p.set_defaults(func=run_distill)


def given_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options given on the command line, field name → value (a flag left out is
    ``None``), for :func:`~optical_core.distill.recipes.recipe_options` to lay over
    ``--recipe``; ``--data-dir`` (a flag of every subcommand) as ``data_dir``."""
    given = {o.name: getattr(args, o.name) for o in options()
             if o.cli and getattr(args, o.name, None) is not None}
    if getattr(args, "data_dir", None):
        given["data_dir"] = args.data_dir
    return given


def check_out(out: str) -> None:
    """Refuse an ``--out`` that names no folder: an empty one (the current folder), or a
    link to a folder that does not exist (the run would create it and its parents wherever
    the link points).

    Raises:
        DistillError: naming ``--out`` and what to give instead.
    """
    if not str(out).strip():
        raise DistillError(f"--out is empty, which would be the current folder {Path.cwd()}; "
                           "give the run folder, e.g. --out runs/de-ot")
    path = Path(out).expanduser()
    if path.is_symlink() and not path.exists():
        raise DistillError(f"--out {out} is a link to {os.readlink(path)}, which does not "
                           "exist; create that folder first or give a plain folder")


def config_from_args(args: argparse.Namespace) -> DistillConfig:
    """The checked :class:`DistillConfig` of the command line.

    Raises:
        DistillError: a bad option, named by its flag as the user typed it (``--epochs``),
            with the values it takes.
    """
    check_out(args.out)
    given = given_options(args)
    if "ot_tau" in given and given.get("ot_solver") != "unbalanced":
        raise DistillError("--tau only applies to --ot-solver unbalanced")
    try:
        return DistillConfig.from_options(**recipe_options(args.recipe, given)).validate()
    except DistillError as exc:
        raise DistillError(flag_words(str(exc))) from None


def run_distill(args) -> int:
    from tqdm import tqdm

    from optical_core.data import gold_available
    from optical_core.distill.train import run_distillation
    from optical_core.runs import primary_mrr

    cfg = config_from_args(args)
    quiet = getattr(args, "quiet", False) or int(os.environ.get("RANK", "0")) != 0
    if cfg.track_aer and not gold_available("enfr", cfg.data_dir):
        print("warning: --track-aer: the en-fr gold alignments were not found in the data "
              "folder, so no AER is tracked", file=sys.stderr)
    bar = tqdm(total=None, desc="distilling", unit="step", file=sys.stderr, disable=quiet or None,
               dynamic_ncols=True)
    last_loss: list[float] = []

    def progress(ev: dict) -> None:
        kind = ev.get("kind")
        if kind == "step":
            if bar.total != ev["max_steps"]:
                bar.total = ev["max_steps"]
            bar.n = ev["step"]
            post = {"loss": f"{last_loss[-1]:.4f}"} if last_loss else {}
            bar.set_postfix(post, refresh=False)
            bar.refresh()
        elif kind == "loss":
            last_loss.append(float(ev["loss"]))
        elif kind == "eval":
            m = ev["metrics"]
            mrr = primary_mrr(m)
            aer = f", AER {m['aer_enfr']:.1f}" if "aer_enfr" in m else ""
            if mrr is not None:
                bar.write(f"step {ev['step']}: MRR@10 {100 * mrr:.1f}{aer}", file=sys.stderr)
        elif kind == "status" and ev.get("resume_note"):
            bar.write(f"note: {ev['resume_note']}", file=sys.stderr)

    cancel = threading.Event()
    try:
        with stop_on_ctrl_c(cancel, lambda msg: bar.write(msg, file=sys.stderr)):
            result = run_distillation(cfg, args.out, resume=args.resume, progress=progress,
                                      cancel=cancel, restart=args.restart)
    except DistillError as exc:
        if args.resume:  # the stored config speaks, not this command line's flags
            raise
        raise DistillError(flag_words(str(exc))) from None
    finally:
        bar.close()
    if int(os.environ.get("RANK", "0")) == 0:
        m = result.metrics
        mrr = primary_mrr(m)
        tail = f", MRR@10 {100 * mrr:.1f}" if mrr is not None else ""
        print(f"{result.status}: {result.steps} steps{tail}; model in {result.model_dir or '-'}")
    return 130 if result.status == "cancelled" else 0

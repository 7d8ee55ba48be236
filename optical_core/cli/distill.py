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
from typing import Any

from optical_core.cli.common import stop_on_ctrl_c
from optical_core.distill.config import (
    COOC_MEASURES,
    DEVICES,
    KD_INPUTS,
    LR_SCHEDULES,
    PRECISIONS,
    RECIPES,
    ROBUST_FIELDS,
    DistillConfig,
    recipe_options,
)


def recipe_help() -> str:
    """The ``--recipe`` help, written from :data:`RECIPES` (so a changed recipe describes
    itself), e.g. ``robust: --cooc-weight 0.3 --cooc-measure npmi``."""
    presets = "; ".join(
        f"{name}: " + " ".join(f"--{f.replace('_', '-')} {v}" for f, v in RECIPES[name]().items())
        for name in sorted(RECIPES))
    return f"a preset of the options below ({presets}); explicit flags override it"


def add_distill(sub) -> None:
    p = sub.add_parser(
        "distill", help="distil a student for a language (OT, MSE or both)",
        description="Train a student encoder by OT knowledge distillation (OPTICAL) or the "
        "sentence-level MSE baseline on Multi30k pairs, and write a run folder (run.json, "
        "model/, checkpoints/).",
    )
    p.add_argument("--lang", choices=("de", "fr", "cs"), default="de")
    p.add_argument("--pairs", type=int, default=5000, help="training pairs (low-resource size)")
    p.add_argument("--loss", choices=("ot", "mse", "ot+mse"), default="ot")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--out", required=True, help="run folder, e.g. runs/de-ot")
    p.add_argument("--teacher", default=None, help="teacher model id/folder (default: embedded MiniLM)")
    p.add_argument("--student", default=None,
                   help="student initialisation, model id/folder or run folder (default: the teacher)")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--epsilon", type=float, default=0.01, help="Sinkhorn ε in cosine-cost units")
    p.add_argument("--sinkhorn-iters", type=int, default=300, help="Sinkhorn iteration budget")
    p.add_argument("--ot-solver", choices=("sinkhorn", "unbalanced", "exact"), default="sinkhorn",
                   help="plan of the OT loss: balanced Sinkhorn, unbalanced Sinkhorn (KL-relaxed "
                   "marginals, see --tau) or exact (POT, slow)")
    p.add_argument("--tau", type=float, default=None,
                   help="marginal relaxation τ of --ot-solver unbalanced, in cosine-cost units "
                   "(default 1; smaller leaves more mass unaligned)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--max-steps", type=int, default=0, help="stop after N steps (0: epochs)")
    p.add_argument("--align-english", action="store_true",
                   help="also align student(en) tokens to the teacher's")
    p.add_argument("--marginals", choices=("uniform", "norm"), default="uniform")
    p.add_argument("--ot-weight", type=float, default=1.0, help="OT weight in ot+mse")
    p.add_argument("--mse-weight", type=float, default=1.0, help="MSE weight in ot+mse")
    p.add_argument("--eval-limit", type=int, default=0, help="evaluate on the first N val lines")
    p.add_argument("--eval-steps", type=int, default=0, help="also evaluate every N steps")
    p.add_argument("--no-eval", action="store_true", help="skip evaluation")
    p.add_argument("--track-aer", action="store_true", help="AER on the en-fr gold set at each eval")
    p.add_argument("--save-steps", type=int, default=200, help="checkpoint every N steps")
    d = DistillConfig()  # one source of truth for the defaults of the options below
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=d.lr_schedule,
                   help="lr after warm-up: constant, linear decay to 0, or cosine")
    p.add_argument("--warmup-ratio", type=float, default=d.warmup_ratio,
                   help="share of the steps over which the lr rises from 0")
    p.add_argument("--max-grad-norm", type=float, default=d.max_grad_norm,
                   help="clip the gradient norm to this (0: no clipping)")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help="AdamW weight decay")
    p.add_argument("--device", choices=DEVICES, default=d.device,
                   help="auto: CUDA with bf16 autocast when a GPU is present, else the CPU")
    p.add_argument("--precision", choices=PRECISIONS, default=d.precision,
                   help="auto: bf16 autocast where the GPU or CPU has fast bf16, else float32")
    p.add_argument("--no-teacher-cache", action="store_true",
                   help="run the teacher at every step instead of reading its cached embeddings")
    p.add_argument("--no-group-by-length", action="store_true",
                   help="random batches instead of length-grouped ones (more padding)")
    r = p.add_argument_group(
        "robustness (off by default; see optical_core.distill.augment and OpticalLoss)")
    # The robustness flags default to None, so that --recipe fills in what was not given.
    r.add_argument("--recipe", choices=sorted(RECIPES), default=None, help=recipe_help())
    r.add_argument("--noise-p", type=float, default=None,
                   help=f"share of foreign sentences perturbed on the fly (default {d.noise_p})")
    r.add_argument("--noise-max-cer", type=float, default=None,
                   help=f"a perturbed sentence's CER is drawn from [0, this] (default {d.noise_max_cer})")
    r.add_argument("--noise-kind", default=None,
                   help="noise kind(s) of optical_core.perturb, comma-separated, one drawn per "
                   f"sentence (default {d.noise_kind})")
    r.add_argument("--subword-dropout", type=float, default=None,
                   help="WordPiece dropout probability on the foreign side (default 0: off)")
    r.add_argument("--kd-input", choices=KD_INPUTS, default=None,
                   help="what the KD terms read of an augmented sentence: the noisy one "
                   "(default) or the clean one (then the noisy one feeds the terms below only)")
    r.add_argument("--consistency-weight", type=float, default=None,
                   help="weight of OT from the noisy student tokens onto its clean ones (0: off)")
    r.add_argument("--self-teach-weight", type=float, default=None,
                   help="weight of Self-Teaching's KL(clean || noisy) in-batch scores (0: off)")
    r.add_argument("--cooc-weight", type=float, default=None,
                   help="share λ of the bitext co-occurrence cost in the OT plan's cost (0: off)")
    r.add_argument("--cooc-measure", choices=COOC_MEASURES, default=None,
                   help=f"co-occurrence measure (default {d.cooc_measure})")
    p.add_argument("--demo-data", action="store_true",
                   help="train on the packaged demo pairs instead of Multi30k (smoke test)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.set_defaults(func=run_distill)


def given_robust_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The robustness flags given on the command line (a flag left out is ``None``), for
    :func:`~optical_core.distill.config.recipe_options` to lay over ``--recipe``."""
    return {f: getattr(args, f) for f in ROBUST_FIELDS if getattr(args, f, None) is not None}


def run_distill(args) -> int:
    from tqdm import tqdm

    from optical_core.data import gold_available
    from optical_core.distill.config import DistillError
    from optical_core.distill.train import run_distillation
    from optical_core.runs import primary_mrr

    if args.tau is not None and args.ot_solver != "unbalanced":
        raise DistillError("--tau only applies to --ot-solver unbalanced")
    cfg = DistillConfig(
        lang=args.lang, pairs=args.pairs, loss=args.loss, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, seed=args.seed, max_steps=args.max_steps,
        max_tokens=args.max_tokens, teacher=args.teacher, student=args.student,
        epsilon=args.epsilon, sinkhorn_iters=args.sinkhorn_iters, ot_solver=args.ot_solver,
        **({} if args.tau is None else {"ot_tau": args.tau}), marginals=args.marginals,
        align_english=args.align_english, ot_weight=args.ot_weight, mse_weight=args.mse_weight,
        data="demo" if args.demo_data else "multi30k", eval_limit=args.eval_limit,
        eval_steps=args.eval_steps, evaluate=not args.no_eval, track_aer=args.track_aer,
        save_steps=args.save_steps, data_dir=getattr(args, "data_dir", None),
        lr_schedule=args.lr_schedule, warmup_ratio=args.warmup_ratio,
        max_grad_norm=args.max_grad_norm, weight_decay=args.weight_decay, device=args.device,
        precision=args.precision,
        teacher_cache=not args.no_teacher_cache, group_by_length=not args.no_group_by_length,
        **recipe_options(getattr(args, "recipe", None), given_robust_flags(args)),
    )
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
                                      cancel=cancel)
    finally:
        bar.close()
    if int(os.environ.get("RANK", "0")) == 0:
        m = result.metrics
        mrr = primary_mrr(m)
        tail = f", MRR@10 {100 * mrr:.1f}" if mrr is not None else ""
        print(f"{result.status}: {result.steps} steps{tail}; model in {result.model_dir or '-'}")
    return 130 if result.status == "cancelled" else 0

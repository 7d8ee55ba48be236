"""Distillation throughput: the project's training path against a plain PyTorch loop.

``--plain`` trains one epoch over the same pairs twice per loss, side by side in one
process, and prints pairs per second of both and their ratio:

* **plain**: the reference a researcher would write in 60 lines: the teacher runs online
  on every batch, random batches padded to their longest sentence, ``torch.optim.AdamW``
  at a constant lr, and for OT-KD the project's batched Sinkhorn on ``1 − cos`` between
  the student's foreign tokens and the teacher's English tokens (special tokens without
  mass, as in :class:`~optical_core.distill.loss.OpticalLoss`);
* **project**: :func:`optical_core.distill.train.run_distillation` with the same pairs,
  batch, token limit, ε and lr (evaluation, probes and checkpoints off), in a fresh cache
  folder, so the teacher-cache build is part of its time.

Both include loading the models. The goals (issue: training throughput): OT-KD ≥ 2×
the plain loop, MSE-KD ≥ 1.5×. Run on an idle machine and say the load average::

    python bench/bench_distill.py --plain [--lang cs] [--pairs 5000] [--loss ot mse]

The padded share (padding positions over all positions of the student's foreign side)
is printed for random batches and for the length-grouped batches the project trains on.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402


def plain_epoch(cfg, pairs, loss: str) -> float:
    """One epoch of the plain loop; returns its wall time in seconds, model loading included."""
    from optical_core.distill.models import load_models
    from optical_core.distill.teacher_cache import content_mask, special_ids, tokenize
    from optical_core.ot.batch import sinkhorn_batch
    from optical_core.ot.costs import cost_matrix

    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    teacher, student = load_models(cfg)
    teacher.eval()
    student.train()
    opt = torch.optim.AdamW(student.parameters(), lr=cfg.lr)
    s_special, t_special = special_ids(student.tokenizer), special_ids(teacher.tokenizer)
    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(cfg.seed)).tolist()

    def feats(model, texts):
        return {k: v for k, v in tokenize(model, texts).items() if isinstance(v, torch.Tensor)}

    for start in range(0, len(order), cfg.batch_size):
        batch = [pairs[i] for i in order[start:start + cfg.batch_size]]
        en, x = feats(teacher, [p[0] for p in batch]), feats(student, [p[1] for p in batch])
        with torch.no_grad():
            t_out = teacher(dict(en))
        if loss == "ot":
            s_tok = student(dict(x))["token_embeddings"]
            a_mask = content_mask(x["input_ids"], x["attention_mask"], s_special)
            b_mask = content_mask(en["input_ids"], en["attention_mask"], t_special)
            a = a_mask.float() / a_mask.sum(1, keepdim=True)
            b = b_mask.float() / b_mask.sum(1, keepdim=True)
            cost = cost_matrix(s_tok, t_out["token_embeddings"], "cosine")
            with torch.no_grad():
                plan = sinkhorn_batch(cost.detach(), a, b, epsilon=cfg.ot.epsilon,
                                      max_iter=cfg.ot.max_iter, tol=cfg.ot.tol).plan
            value = (plan * cost).sum(dim=(1, 2)).mean()
        else:
            target = t_out["sentence_embedding"]
            en_s = feats(student, [p[0] for p in batch])
            value = (torch.nn.functional.mse_loss(student(dict(en_s))["sentence_embedding"], target)
                     + torch.nn.functional.mse_loss(student(dict(x))["sentence_embedding"], target))
        value.backward()
        opt.step()
        opt.zero_grad()
    return time.perf_counter() - t0


def project_epoch(cfg, pairs) -> tuple[float, int]:
    """One epoch of :func:`run_distillation` in a fresh cache; (wall seconds, steps)."""
    from optical_core.distill.train import run_distillation

    with tempfile.TemporaryDirectory() as tmp:
        saved = os.environ.get("OPTICAL_CACHE_DIR")
        os.environ["OPTICAL_CACHE_DIR"] = str(Path(tmp) / "cache")
        try:
            t0 = time.perf_counter()
            res = run_distillation(cfg, Path(tmp) / "run", train_pairs=pairs)
            return time.perf_counter() - t0, res.steps
        finally:
            if saved is None:
                os.environ.pop("OPTICAL_CACHE_DIR", None)
            else:
                os.environ["OPTICAL_CACHE_DIR"] = saved


def padded_shares(cfg, pairs) -> tuple[float, float]:
    """Padded share of the student's foreign side: random batches, length-grouped batches."""
    from optical_core.distill.batching import length_grouped_batches, padded_share
    from optical_core.distill.models import load_models
    from optical_core.distill.train import batch_lengths

    _, student = load_models(cfg)
    lengths = batch_lengths(cfg, student, pairs)
    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(cfg.seed)).tolist()
    random = [order[i:i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
    grouped = length_grouped_batches(lengths, cfg.batch_size, seed=cfg.seed)
    return padded_share(lengths, random), padded_share(lengths, grouped)



def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plain", action="store_true",
                    help="time the project's path against the plain loop (the only mode)")
    ap.add_argument("--lang", default="cs")
    ap.add_argument("--pairs", type=int, default=5000)
    ap.add_argument("--loss", nargs="+", default=["ot", "mse"], choices=("ot", "mse"))
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--epsilon", type=float, default=0.01)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--model", default=None, help="teacher/student (default: embedded MiniLM)")
    ap.add_argument("--precision", nargs="+", default=["auto"], choices=("auto", "fp32", "bf16"),
                    help="the project's precision(s), each timed against the same plain loop")
    args = ap.parse_args()
    if not args.plain:
        ap.error("give --plain (the plain loop is the reference of every figure here)")

    from optical_core.distill.config import DistillConfig
    from optical_core.distill.models import load_pairs

    base = dict(lang=args.lang, pairs=args.pairs, batch_size=args.batch_size, lr=args.lr,
                max_tokens=args.max_tokens, epsilon=args.epsilon, teacher=args.model,
                evaluate=False, probe_every=0, save_steps=10**6, epochs=1.0)
    cfg = DistillConfig.from_options(**base)
    pairs = load_pairs(cfg, "train", args.pairs)
    load = os.getloadavg()
    print(f"{len(pairs)} {args.lang} pairs, batch {args.batch_size}, {args.max_tokens} tokens, "
          f"ε {args.epsilon}, lr {args.lr}, torch threads {torch.get_num_threads()}, "
          f"cores {os.cpu_count()}, load average at start {load[0]:.2f} {load[1]:.2f}")
    rand, grouped = padded_shares(cfg, pairs)
    print(f"padded share of the foreign side: random batches {100 * rand:.1f} %, "
          f"length-grouped {100 * grouped:.1f} %")
    rows = []
    for loss in args.loss:
        cfg = DistillConfig.from_options(**base, loss=loss)
        t_plain = plain_epoch(cfg, pairs, loss)
        print(f"{loss}: plain loop {t_plain:.1f} s", flush=True)
        for precision in args.precision:
            t_proj, _ = project_epoch(
                DistillConfig.from_options(**base, loss=loss, precision=precision), pairs)
            rows.append((loss, precision, t_plain, t_proj))
            print(f"{loss}: project ({precision}) {t_proj:.1f} s", flush=True)
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    print("| loss | project precision | plain loop pairs/s | project pairs/s | ratio | goal |")
    print("|---|---|---:|---:|---:|---|")
    goals = {"ot": 2.0, "mse": 1.5}
    for loss, precision, tp, tj in rows:
        ratio = tp / tj
        print(f"| {loss} | {precision} | {len(pairs) / tp:.1f} | {len(pairs) / tj:.1f} | "
              f"**{ratio:.2f}×** | ≥ {goals[loss]}× "
              f"{'met' if ratio >= goals[loss] else 'not met'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

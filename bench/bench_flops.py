"""The training engine against the machine's limit: achieved FLOP/s of a distillation
epoch beside this machine's measured matmul peak, fp32 and bf16, in one run.

Two measurements, side by side:

* **peak**: ``torch.matmul`` on square ``n × n`` matrices and on the shapes the student
  multiplies (``(B·L) × d`` by ``d × d_ff``), in float32 and bfloat16, with every torch
  thread; ``2·m·k·n`` FLOPs per product;
* **training**: :func:`optical_core.distill.train.run_distillation` over ``--pairs`` pairs
  (one epoch, evaluation and checkpoints off, a fresh teacher cache) and the same run
  stopped after one step; the difference is the time of the other steps, fixed costs
  (model loading, the teacher cache, the trainer's set-up) left out.

The work of a step is counted from the shapes, not profiled: a BERT layer over a batch of
``B`` rows padded to ``L`` tokens does ``2·B·L·(4d² + 2·d·d_ff) + 4·B·L²·d`` FLOPs forward
(Q, K, V and output projections, the feed-forward pair, ``QKᵀ`` and ``AV``) and twice that
backward, so a forward + backward is ``3×`` the forward. Padding positions are counted:
the hardware computes them. Embeddings, layer norms, softmax, the pooling and the OT loss
are left out (a few % of the matmuls), so the achieved figure is a slight underestimate.
The student runs on the foreign side of each pair (OT-KD) or on both sides (MSE-KD); the
teacher is read from its cache.

Run on an idle machine and say the load average::

    python bench/bench_flops.py [--lang cs] [--pairs 2000] [--loss ot mse]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from bench_distill import project_epoch  # noqa: E402


def matmul_peak(m: int, k: int, n: int, dtype: torch.dtype, seconds: float = 2.0) -> float:
    """FLOP/s of ``(m × k) @ (k × n)`` in ``dtype``, the best of repeated timed rounds."""
    a = torch.randn(m, k).to(dtype)
    b = torch.randn(k, n).to(dtype)
    for _ in range(3):
        a @ b
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        reps = 5
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = max(best, reps * 2 * m * k * n / (time.perf_counter() - t0))
    return best


def layer_flops(rows: int, length: int, d: int, d_ff: int) -> float:
    """Forward FLOPs of one BERT layer over ``rows`` sequences padded to ``length`` tokens."""
    tokens = rows * length
    return 2 * tokens * (4 * d * d + 2 * d * d_ff) + 4 * rows * length * length * d


def epoch_flops(batches: list[list[int]], lengths: list[int], config, passes: int) -> float:
    """Forward + backward FLOPs of the student over ``batches`` (lists of row indices into
    ``lengths``, each batch padded to its longest row); ``passes`` student runs per row."""
    total = 0.0
    for batch in batches:
        length = max(lengths[i] for i in batch)
        total += config.num_hidden_layers * layer_flops(
            len(batch), length, config.hidden_size, config.intermediate_size)
    return 3 * passes * total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lang", default="cs")
    ap.add_argument("--pairs", type=int, default=2000)
    ap.add_argument("--loss", nargs="+", default=["ot", "mse"], choices=("ot", "mse"))
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    args = ap.parse_args()

    from optical_core.distill.batching import length_grouped_batches
    from optical_core.distill.config import DistillConfig
    from optical_core.distill.models import load_models, load_pairs
    from optical_core.distill.train import batch_lengths, use_bf16

    print(f"torch threads {torch.get_num_threads()}, cores {os.cpu_count()}, "
          f"load average at start {os.getloadavg()[0]:.2f}", flush=True)
    base = dict(lang=args.lang, pairs=args.pairs, batch_size=args.batch_size,
                max_tokens=args.max_tokens, evaluate=False, probe_every=0, save_steps=10**6,
                epochs=1.0, precision=args.precision)
    _, student = load_models(DistillConfig(**base))
    bert = student[0].auto_model.config
    d, d_ff = bert.hidden_size, bert.intermediate_size
    shape_rows = args.batch_size * 24  # a typical length-grouped batch of Multi30k captions
    peaks = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        peaks[name] = (matmul_peak(2048, 2048, 2048, dtype),
                       matmul_peak(shape_rows, d, d_ff, dtype))
        print(f"peak {name}: square 2048 {peaks[name][0] / 1e9:.1f} GFLOP/s, "
              f"student-shaped ({shape_rows}×{d} @ {d}×{d_ff}) {peaks[name][1] / 1e9:.1f} "
              f"GFLOP/s", flush=True)

    pairs = load_pairs(DistillConfig(**base), "train", args.pairs)
    rows = []
    for loss in args.loss:
        cfg = DistillConfig(**base, loss=loss)
        lengths = batch_lengths(cfg, student, pairs)
        batches = length_grouped_batches(lengths, cfg.batch_size, seed=cfg.seed)
        passes = 2 if loss == "mse" else 1
        flops = epoch_flops(batches, lengths, bert, passes)
        t_all, steps = project_epoch(cfg, pairs)
        t_one, _ = project_epoch(DistillConfig(**base, loss=loss, max_steps=1), pairs)
        per_step = (t_all - t_one) / max(steps - 1, 1)
        achieved = flops * (steps - 1) / steps / (t_all - t_one)
        dtype = "bf16" if use_bf16(cfg.precision, "cpu") else "fp32"
        rows.append((loss, dtype, steps, t_all, per_step, flops / steps, achieved, peaks[dtype]))
        print(f"{loss}: {steps} steps, epoch {t_all:.1f} s (one step alone {t_one:.1f} s), "
              f"{per_step * 1000:.0f} ms a step, {achieved / 1e9:.1f} GFLOP/s", flush=True)
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    print("| loss | precision | steps | epoch s | ms / step | GFLOP / step | achieved GFLOP/s "
          "| of square peak | of student-shaped peak |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for loss, dtype, steps, t_all, per_step, fl, ach, (sq, shaped) in rows:
        print(f"| {loss} | {dtype} | {steps} | {t_all:.1f} | {per_step * 1000:.0f} | "
              f"{fl / 1e9:.1f} | {ach / 1e9:.1f} | {100 * ach / sq:.0f} % | "
              f"{100 * ach / shaped:.0f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

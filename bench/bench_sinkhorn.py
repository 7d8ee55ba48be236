"""Batched torch Sinkhorn vs POT, on real token costs, measured side by side in one run.

Costs: the default MiniLM's token embeddings of Multi30k val de–en pairs, cosine cost.
Compared, at each ε, with the same stopping level (marginal error 1e-6):

(a) a loop over POT's ``ot.sinkhorn``, taking for every pair the fastest of its methods
    (``sinkhorn``, ``sinkhorn_log``, ``sinkhorn_stabilized``), an oracle no real loop has,
    timed in turns with ours;
(b) POT's own batched solver ``ot.batch.solve_batch`` (torch backend, the faster of its
    ``sinkhorn`` and ``log_sinkhorn``) on an equal-size batch: every cost cropped to the
    smallest pair's shape, since that solver needs equal sizes. Ours runs on the same crop,
    in turns with it, so that a slow spell of the machine falls on both alike.

Plans are checked against a tight POT reference (``sinkhorn_log``, stopThr 1e-12).

    python bench/bench_sinkhorn.py [--pairs 64] [--eps 0.05 0.02] [--repeats 5]
    python bench/bench_sinkhorn.py --tail 256     # iteration counts on 3 × 256 more pairs
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import ot as pot
import torch
from ot.batch import solve_batch

from optical_core.data import load_bitext
from optical_core.encoders.registry import load_encoder
from optical_core.ot.batch import pad_costs, sinkhorn_batch
from optical_core.ot.costs import cost_matrix, uniform_marginal

POT_METHODS = ("sinkhorn", "sinkhorn_log", "sinkhorn_stabilized")


def real_costs(n_pairs: int, lang: str = "de", skip: int = 0) -> list[np.ndarray]:
    pairs = load_bitext("val", lang, "en", limit=skip + n_pairs)[skip:]
    enc = load_encoder()
    embs = enc.token_embeddings([t for pair in pairs for t in pair])
    return [cost_matrix(embs[2 * k].embeddings.astype(np.float64),
                        embs[2 * k + 1].embeddings.astype(np.float64))
            for k in range(len(pairs))]


def iteration_tail(args) -> None:
    """Iterations per pair on pairs the speed table does not use, plain vs over-relaxed.

    In a batch the slowest pair sets the number of chunks, so the tail matters as much as
    the mean: per ε, the mean over pairs, the mean over batches of the batch's slowest pair,
    and the slowest pair of all.
    """
    langs = ("de", "fr", "cs")
    batches = [c[k:k + 64] for lang in langs
               for c in [real_costs(args.tail, lang, skip=args.pairs)]
               for k in range(0, len(c), 64)]
    print(f"{sum(map(len, batches))} more Multi30k val pairs ({', '.join(langs)}–en, after "
          f"the first {args.pairs}), batches of 64, tol {args.tol}")
    print(f"{'eps':>5} | {'omega':>5} | {'mean':>6} | {'mean of batch max':>17} | {'max':>6} | "
          "not converged")
    for eps in args.eps:
        for omega in (1.0, 1.95):
            its, maxes, missed = [], [], 0
            for costs in batches:
                c, a, b = pad_costs(costs, dtype=torch.float32)
                res = sinkhorn_batch(c, a, b, epsilon=eps, tol=args.tol, max_iter=20000,
                                     omega=omega)
                its.extend(res.iterations.tolist())
                maxes.append(int(res.iterations.max()))
                missed += int((~res.converged).sum())
            print(f"{eps:>5} | {omega:>5} | {np.mean(its):>6.1f} | {np.mean(maxes):>17.0f} | "
                  f"{max(maxes):>6} | {missed}")


def race(fns, repeats: int):
    """Best time and last output of each function, run in turns so that a slow spell of
    the machine falls on all of them alike."""
    times = [[] for _ in fns]
    outs = [None] * len(fns)
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            t0 = time.perf_counter()
            outs[k] = fn()
            times[k].append(time.perf_counter() - t0)
    return [min(t) for t in times], outs  # other load on the machine only ever adds time


def reference(costs, eps):
    return [pot.sinkhorn(uniform_marginal(c.shape[0]), uniform_marginal(c.shape[1]), c, eps,
                         method="sinkhorn_log", stopThr=1e-12, numItermax=500000)
            for c in costs]


def ours_vs_pot_loop(costs, eps, tol, repeats):
    """Ours on the ragged batch, and per pair the fastest POT method, timed in turns.

    Each pass times our batch once, then every pair with every method once, so that a slow
    spell of the machine falls on both alike. Returns our best time, result and plans, and
    the loop's total (the sum over pairs of each pair's best time), plans and methods.
    """
    call = ours_call(costs, eps, tol)
    best = np.full((len(costs), len(POT_METHODS)), np.inf)
    pot_plans: dict[tuple[int, int], np.ndarray] = {}
    t_ours, res = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = call()
        t_ours = min(t_ours, time.perf_counter() - t0)
        for k, c in enumerate(costs):
            a, b = uniform_marginal(c.shape[0]), uniform_marginal(c.shape[1])
            for j, method in enumerate(POT_METHODS):
                t0 = time.perf_counter()
                plan = pot.sinkhorn(a, b, c, eps, method=method, stopThr=tol, numItermax=100000)
                sec = time.perf_counter() - t0
                if np.all(np.isfinite(plan)):
                    best[k, j] = min(best[k, j], sec)
                    pot_plans[k, j] = plan
    pick = best.argmin(1)
    loop_total = float(best[np.arange(len(costs)), pick].sum())
    loop_plans = [pot_plans[k, j] for k, j in enumerate(pick)]
    return (t_ours, res, plans_of(res, costs),
            loop_total, loop_plans, [POT_METHODS[j] for j in pick])


def max_diff(plans, refs) -> float:
    return max(float(np.abs(np.asarray(p, dtype=np.float64) - r).max())
               for p, r in zip(plans, refs))


def ours_call(costs, eps, tol):
    c, a, b = pad_costs(costs, dtype=torch.float32)
    return lambda: sinkhorn_batch(c, a, b, epsilon=eps, tol=tol, max_iter=100000)


def plans_of(res, costs):
    return [res.plan[k, :x.shape[0], :x.shape[1]].double().numpy() for k, x in enumerate(costs)]


def ours_vs_pot_batch(costs_equal, eps, tol, repeats):
    """Ours and ``ot.batch`` on the same equal-size batch, in turns with each of its two
    methods (one race per method, so that neither runs right after the other's mess)."""
    m = torch.tensor(np.stack(costs_equal), dtype=torch.float64)
    call = ours_call(costs_equal, eps, tol)
    mine, best = None, None
    for method in ("sinkhorn", "log_sinkhorn"):
        (sec_ours, sec), (res_ours, res) = race(
            [call, lambda method=method: solve_batch(m, eps, max_iter=100000, tol=tol,
                                                     method=method, grad="detach")], repeats)
        mine = sec_ours if mine is None else min(mine, sec_ours)
        plan = res.plan.numpy()
        if np.all(np.isfinite(plan)) and (best is None or sec < best[0]):
            best = (sec, list(plan), method)
    return mine, plans_of(res_ours, costs_equal), best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--eps", type=float, nargs="+", default=[0.05, 0.02])
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (POT's loop is single-threaded; at these sizes extra "
                    "threads only add contention)")
    ap.add_argument("--tail", type=int, default=0, metavar="N",
                    help="instead: iteration counts on N more pairs per language (de, fr, cs)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    if args.tail:
        iteration_tail(args)
        return
    costs = real_costs(args.pairs)
    n0 = min(c.shape[0] for c in costs)
    m0 = min(c.shape[1] for c in costs)
    cropped = [c[:n0, :m0] for c in costs]
    shapes = np.array([c.shape for c in costs])
    print(f"{len(costs)} Multi30k val de-en pairs, token counts de {shapes[:, 0].min()}-"
          f"{shapes[:, 0].max()}, en {shapes[:, 1].min()}-{shapes[:, 1].max()}; "
          f"equal-size crop {n0}x{m0}; torch threads {torch.get_num_threads()}; "
          f"best of {args.repeats}")
    print()
    header = (f"{'eps':>5} | {'ours ms':>8} | {'POT loop ms':>11} | {'x loop':>6} | "
              f"{'ours(eq) ms':>11} | {'ot.batch ms':>11} | {'x batch':>7} | "
              f"{'diff ours':>9} | {'diff loop':>9} | {'diff batch':>10} | iters mean/max")
    print(header)
    print("-" * len(header))
    for eps in args.eps:
        refs = reference(costs, eps)
        refs_eq = reference(cropped, eps)
        ours_call(costs[:4], eps, args.tol)()  # warm-up
        t_ours, res, p_ours, t_loop, p_loop, chosen = ours_vs_pot_loop(
            costs, eps, args.tol, args.repeats)
        t_ours_eq, p_ours_eq, (t_batch, p_batch, batch_method) = ours_vs_pot_batch(
            cropped, eps, args.tol, args.repeats)
        d_ours = max(max_diff(p_ours, refs), max_diff(p_ours_eq, refs_eq))
        print(f"{eps:>5} | {1e3 * t_ours:>8.1f} | {1e3 * t_loop:>11.1f} | "
              f"{t_loop / t_ours:>6.1f} | {1e3 * t_ours_eq:>11.1f} | {1e3 * t_batch:>11.1f} | "
              f"{t_batch / t_ours_eq:>7.1f} | {d_ours:>9.1e} | {max_diff(p_loop, refs):>9.1e} | "
              f"{max_diff(p_batch, refs_eq):>10.1e} | "
              f"{res.iterations.float().mean():.0f}/{int(res.iterations.max())}")
        picks = {m: chosen.count(m) for m in POT_METHODS if chosen.count(m)}
        print(f"        POT loop picked {picks}; ot.batch method {batch_method}; "
              f"ours converged {int(res.converged.sum())}/{len(costs)}")


if __name__ == "__main__":
    main()

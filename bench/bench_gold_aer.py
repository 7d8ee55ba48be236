"""Word-alignment quality of a model on the gold sets, for each link method.

Words are the gold files' whitespace tokens; subword vectors are averaged per word
(``--level word``) or aligned as subwords and mapped to words (``--level subword``).
Scores are micro-averaged over sentences (awesome-align's convention).

    python bench/bench_gold_aer.py [--model M] [--pairs enfr roen] [--level word subword]
"""

from __future__ import annotations

import argparse
import time

from optical_core import alignment as al
from optical_core.encoders.registry import load_encoder
from optical_core.gold import load_gold
from optical_core.ot.config import OTConfig
from optical_core.pairs.align import align_embeddings

SETTINGS = [
    ("argmax (intersection)", "argmax", OTConfig(solver="sinkhorn", epsilon=0.05)),
    ("itermax", "itermax", OTConfig(solver="sinkhorn", epsilon=0.05)),
    ("OT sinkhorn ε=0.05", "ot", OTConfig(solver="sinkhorn", epsilon=0.05)),
    ("OT sinkhorn ε=0.02", "ot", OTConfig(solver="sinkhorn", epsilon=0.02, max_iter=5000)),
    ("OT exact", "ot", OTConfig(solver="exact")),
    ("OT partial m=0.8", "ot", OTConfig(solver="partial", mass=0.8)),
    ("OT unbalanced τ=0.1", "ot", OTConfig(solver="unbalanced", epsilon=0.05, tau=0.1)),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--pairs", nargs="+", default=["enfr", "roen"])
    ap.add_argument("--level", nargs="+", default=["word", "subword"])
    args = ap.parse_args()
    enc = load_encoder(args.model)
    print(f"model: {enc.name}")
    print(f"{'set':<5} | {'level':<7} | {'method':<22} | {'AER':>5} | {'P':>5} | {'R':>5} | "
          f"{'F1':>5}")
    print("-" * 70)
    for pair in args.pairs:
        gold = load_gold(pair)
        t0 = time.perf_counter()
        texts = [t for g in gold for t in (" ".join(g.src_tokens), " ".join(g.tgt_tokens))]
        words = [w for g in gold for w in (g.src_tokens, g.tgt_tokens)]
        embs = enc.token_embeddings(texts, words)
        diag = al.score_corpus(
            [al.diagonal_links(len(g.src_tokens), len(g.tgt_tokens)) for g in gold], gold)
        print(f"{pair:<5} | {'-':<7} | {'diagonal baseline':<22} | {100 * diag.aer:5.1f} | "
              f"{100 * diag.precision:5.1f} | {100 * diag.recall:5.1f} | {100 * diag.f1:5.1f}")
        for level in args.level:
            for name, method, cfg in SETTINGS:
                preds = [
                    align_embeddings(embs[2 * k], embs[2 * k + 1], config=cfg, level=level,
                                     link_method=method).word_links
                    for k in range(len(gold))
                ]
                s = al.score_corpus(preds, gold)
                print(f"{pair:<5} | {level:<7} | {name:<22} | {100 * s.aer:5.1f} | "
                      f"{100 * s.precision:5.1f} | {100 * s.recall:5.1f} | {100 * s.f1:5.1f}")
        print(f"({pair}: {len(gold)} sentence pairs, {time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()

"""Retrieval latency per query (perturb + encode + rank over the corpus), and the sanity table.

Latency (default): one query at a time, as the Retrieval page does it: perturb the query
(``random_char`` at 10 % CER), encode it, score every document and sort. The documents
(1,000 English captions of Multi30k test_2016_flickr) are embedded beforehand (disk
cache), and a few queries warm the model up first. Printed: median and 90th percentile
over ``--runs`` de queries, for each scorer:

* ``dense``  – cosine of pooled embeddings (goal ≤ 50 ms);
* ``maxsim`` – late interaction over all document tokens;
* ``ot``     – dense, then ``-<P*, C>`` rerank of the top ``--k`` (20) in one batched
  Sinkhorn call (goal ≤ 300 ms).

    python bench/bench_retrieval.py [--runs 50] [--k 20] [--threads N]
    python bench/bench_retrieval.py --sanity      # DESIGN's sanity table (dense MRR@10)

The sanity mode prints x→en dense MRR@10 on test_2016_flickr for en/fr/de/cs, clean and
with ``random_char`` noise at 10 % and 20 % (seed 0, all 1,000 queries), next to the
figures in DESIGN.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from optical_core.encoders.registry import load_encoder  # noqa: E402
from optical_core.ot.config import OTConfig  # noqa: E402
from optical_core.retrieval.corpus import DEFAULT_SPLIT, load_corpus, load_corpus_or_demo
from optical_core.retrieval.index import build_index, encode_queries
from optical_core.retrieval.metrics import per_query_metrics
from optical_core.retrieval.noise import perturb_queries, perturb_query
from optical_core.retrieval.scorers import ScorerConfig, rank, single_thread

DESIGN = {  # DESIGN.md "Sanity figures": clean, 10 %, 20 % random_char
    "en": (100.0, None, None), "fr": (41.9, 21.6, 10.4),
    "de": (28.0, 14.6, 7.6), "cs": (8.8, 4.5, 2.7),
}


def latency(args) -> None:
    enc = load_encoder(args.model)
    corpus = load_corpus_or_demo(args.split)
    t0 = time.perf_counter()
    index = build_index(enc, corpus, tokens=True)
    build = time.perf_counter() - t0
    qset = corpus.query_set(args.lang)
    rng = np.random.default_rng(0)
    picks = rng.choice(len(qset), size=min(args.runs + args.warmup, len(qset)), replace=False)
    warm, timed = picks[: args.warmup], picks[args.warmup:]
    print(f"corpus {corpus.name}: {corpus.n_docs} documents "
          f"({'from cache' if all(index.from_cache.values()) else f'embedded in {build:.1f} s'}); "
          f"{len(timed)} {args.lang} queries, noise random_char CER 0.1; "
          f"torch threads {torch.get_num_threads()}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    rows = []
    for scorer in ("dense", "maxsim", "ot"):
        cfg = ScorerConfig(scorer=scorer, rerank_depth=args.k, ot=OTConfig(epsilon=args.epsilon))

        def one(i: int) -> tuple[float, float, float]:
            # the steps of R.search, timed one by one (same single-thread context)
            t0 = time.perf_counter()
            p = perturb_query(qset.texts[i], "random_char", 0.1, 0, args.lang, index=int(i))
            with single_thread():
                t1 = time.perf_counter()
                q = encode_queries(enc, [p.text], tokens=cfg.needs_tokens,
                                     sentence=cfg.needs_sentence)
                t2 = time.perf_counter()
                ranking = rank(q, index, cfg)
                _ = ranking.order[0, :10]
            t3 = time.perf_counter()
            return t3 - t0, t2 - t1, t3 - t2

        for i in warm:
            one(int(i))
        times = np.array([one(int(i)) for i in timed]) * 1000
        total = times[:, 0]
        rows.append((scorer, statistics.median(total), float(np.percentile(total, 90)),
                     total.min(), statistics.median(times[:, 1]), statistics.median(times[:, 2])))
    goal = {"dense": "≤ 50", "maxsim": "–", "ot": "≤ 300"}
    label = {"dense": "dense", "maxsim": "maxsim",
             "ot": f"ot (rerank top {args.k}, ε {args.epsilon:g})"}
    print("\n| scorer | median ms | p90 ms | min ms | of which encode | score + sort | goal ms |"
          "\n|---|---:|---:|---:|---:|---:|---:|")
    for scorer, med, p90, mn, enc_ms, score_ms in rows:
        print(f"| {label[scorer]} | {med:.1f} | {p90:.1f} | {mn:.1f} | {enc_ms:.1f} | "
              f"{score_ms:.1f} | {goal[scorer]} |")


def sanity(args) -> None:
    enc = load_encoder(args.model)
    corpus = load_corpus(args.split)
    index = build_index(enc, corpus, tokens=False)
    cfg = ScorerConfig("dense")
    print(f"x→en dense MRR@10, {args.split}, {corpus.n_docs} documents, "
          "random_char noise, seed 0 (DESIGN in brackets)\n")
    print("| lang | clean | 10 % | 20 % | measured CER 10 % / 20 % |\n|---|---:|---:|---:|---|")
    for lang in ("en", "fr", "de", "cs"):
        qset = corpus.query_set(lang)
        cells, cers = [], []
        for level in (0.0, 0.1, 0.2):
            if level:
                perts = perturb_queries(qset, "random_char", level, seed=0)
                texts = [p.text for p in perts]
                cers.append(float(np.mean([p.measured_cer for p in perts])))
            else:
                texts = list(qset.texts)
            q = encode_queries(enc, texts)
            ranking = rank(q, index, cfg, query_ids=qset.ids)
            mrr = 100 * per_query_metrics(ranking, qset, corpus, ("mrr@10",))["mrr@10"].mean()
            cells.append(mrr)
        ref = DESIGN[lang]
        txt = [f"{v:.1f}" + (f" ({r})" if r is not None else "") for v, r in zip(cells, ref)]
        print(f"| {lang} | {' | '.join(txt)} | {cers[0]:.3f} / {cers[1]:.3f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--split", default=DEFAULT_SPLIT)
    ap.add_argument("--lang", default="de")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--epsilon", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: default)")
    ap.add_argument("--sanity", action="store_true", help="print the sanity table instead")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    (sanity if args.sanity else latency)(args)


if __name__ == "__main__":
    main()

"""``optical align``: align sentence pairs and print the links.
"""

from __future__ import annotations

import sys
import warnings

from optical_core.cli.common import _open_in, _progress, _read_pairs, _write_out

# ----------------------------------------------------------------------- align


def add_align(sub) -> None:
    from optical_core.alignment import DEFAULT_OT_THRESHOLD, LINK_METHODS
    from optical_core.ot.costs import METRICS
    from optical_core.ot.solve import SOLVERS

    p = sub.add_parser(
        "align", help="align 'src ||| tgt' lines, write Pharaoh links",
        description="Read 'source ||| target' lines (whitespace-tokenised words, as in "
        "awesome-align/SimAlign input), write one line of 0-indexed Pharaoh word links "
        "'i-j' per pair.",
    )
    p.add_argument("input", nargs="?", default="-", help="input file (default: stdin)")
    p.add_argument("-o", "--output", default="-", help="output file (default: stdout)")
    p.add_argument("--model", default=None, help="model id or folder (default: embedded MiniLM)")
    p.add_argument("--method", choices=LINK_METHODS, default="ot")
    p.add_argument("--solver", choices=SOLVERS, default="sinkhorn")
    p.add_argument("--epsilon", type=float, default=0.05, help="entropic ε in cost units")
    p.add_argument("--tau", type=float, default=1.0, help="marginal relaxation (unbalanced)")
    p.add_argument("--mass", type=float, default=0.8, help="transported mass (partial)")
    p.add_argument("--metric", choices=METRICS, default="cosine")
    p.add_argument("--level", choices=("word", "subword"), default="word",
                   help="align word vectors (mean of subwords) or subwords, then map to words")
    p.add_argument("--threshold", type=float, default=DEFAULT_OT_THRESHOLD,
                   help="cut-off on P*max(n,m) for --method ot")
    p.add_argument("--one-indexed", action="store_true", help="write 1-indexed links")
    p.add_argument("--batch-size", type=int, default=32)
    p.set_defaults(func=run_align)


def run_align(args) -> int:
    from optical_core.encoders.base import TruncationWarning
    from optical_core.encoders.registry import load_encoder
    from optical_core.ot.solve import OTConfig
    from optical_core.pairs.align import align_embeddings
    from optical_core.pharaoh import to_pharaoh

    cfg = OTConfig(solver=args.solver, epsilon=args.epsilon, tau=args.tau, mass=args.mass)
    with _open_in(args.input) as stream:
        pairs = _read_pairs(stream)
    encoder = load_encoder(args.model)
    out_lines: list[str] = []
    truncated = 0
    noted: list[str] = []  # the first solver note of each pair that had one
    bs = max(1, args.batch_size)
    bar = _progress(range(len(pairs)), len(pairs), "aligning", args.quiet)
    for start in range(0, len(pairs), bs):
        chunk = pairs[start:start + bs]
        texts = [t for pair in chunk for t in pair]
        words = [t.split() for t in texts]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", TruncationWarning)
            embs = encoder.token_embeddings(texts, words)
        truncated += sum(issubclass(w.category, TruncationWarning) for w in caught)
        for k in range(len(chunk)):
            result = align_embeddings(
                embs[2 * k], embs[2 * k + 1], config=cfg, metric=args.metric,
                level=args.level, link_method=args.method, threshold=args.threshold,
            )
            out_lines.append(to_pharaoh(result.word_links, one_indexed=args.one_indexed))
            noted += result.ot.messages[:1]
            bar.update(1)
    bar.close()
    if noted:
        print(f"warning: the solver reported on {len(noted)} of {len(pairs)} pairs, e.g.: "
              f"{noted[0]}", file=sys.stderr)
    if truncated:
        print(f"warning: {truncated} sentences were longer than the model limit and were cut; "
              "their last words have no links", file=sys.stderr)
    _write_out(args.output, "\n".join(out_lines) + "\n")
    return 0

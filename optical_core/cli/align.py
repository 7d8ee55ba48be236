"""``optical align``: align sentence pairs and print the links.
"""

from __future__ import annotations

import math
import sys
import warnings

from optical_core.cli.common import CLIError, progress, read_pairs, write_out

# ----------------------------------------------------------------------- align


def add_align(sub) -> None:
    from optical_core.alignment import DEFAULT_OT_THRESHOLD, LINK_METHODS
    from optical_core.ot.config import SOLVERS
    from optical_core.ot.costs import METRICS

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


def ot_config(args):
    """The solver settings of ``args``; a bad value is a :class:`CLIError` naming its option."""
    from optical_core.ot.config import OTConfig, OTInputError

    try:
        return OTConfig(solver=args.solver, epsilon=args.epsilon, tau=args.tau, mass=args.mass)
    except OTInputError as exc:
        text = str(exc)
        option, value = (("--epsilon", args.epsilon) if "ε" in text
                         else ("--tau", args.tau) if "τ" in text else ("--mass", args.mass))
        raise CLIError(f"{option} {value:g}: {text}") from None


def check_align_options(args) -> None:
    """Options checked before the input is read or a model loaded."""
    if not math.isfinite(args.threshold):
        raise CLIError(f"--threshold must be a finite number, got {args.threshold}")
    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be at least 1, got {args.batch_size}")


def check_not_the_input(input_path: str, output: str) -> None:
    """Refuse an ``--output`` that is the input file (also through a link): the links
    would replace the pairs they were read from."""
    import os

    try:
        same = input_path != "-" and os.path.samefile(input_path, output)
    except OSError:  # one of them does not exist (yet): they cannot be the same file
        return
    if same:
        raise CLIError(f"--output {output} is the input file; the links would replace the "
                       "pairs: give another output file")


def align_lines(encoder, pairs: list[tuple[str, str]], args, cfg) -> tuple[list[str], int, list]:
    """Pharaoh lines of ``pairs`` (in order), the count of truncated sentences and the
    first solver note of each pair that had one."""
    from optical_core.encoders.base import TruncationWarning
    from optical_core.pairs.align import align_embeddings
    from optical_core.pharaoh import to_pharaoh

    out_lines: list[str] = []
    truncated = 0
    noted: list[str] = []
    bs = args.batch_size
    bar = progress(range(len(pairs)), len(pairs), "aligning", args.quiet)
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
    return out_lines, truncated, noted


def run_align(args) -> int:
    from optical_core.encoders.registry import load_encoder
    from optical_core.safe_write import check_output_file

    check_align_options(args)
    cfg = ot_config(args)
    if args.output != "-":
        check_output_file(args.output, "--output")
        check_not_the_input(args.input, args.output)
    lines = read_pairs(args.input)
    pairs = [pair for pair in lines if pair is not None]
    encoder = load_encoder(args.model)
    aligned, truncated, noted = align_lines(encoder, pairs, args, cfg)
    # a blank input line gets a blank output line: output line N answers input line N
    links = iter(aligned)
    out_lines = ["" if pair is None else next(links) for pair in lines]
    blank = len(lines) - len(pairs)
    warned = []
    if blank:
        warned.append(f"{blank} blank input line{'s' if blank > 1 else ''} got "
                      f"{'blank output lines' if blank > 1 else 'a blank output line'}, so "
                      "output line N still belongs to input line N")
    if noted:
        warned.append(f"the solver reported on {len(noted)} of {len(pairs)} pairs, e.g.: "
                      f"{noted[0]}")
    if truncated:
        warned.append(f"{truncated} sentences were longer than the model limit and were cut; "
                      "their last words have no links")
    if warned:
        print("warning: " + "; ".join(warned), file=sys.stderr)
    write_out(args.output, "\n".join(out_lines) + "\n")
    return 0

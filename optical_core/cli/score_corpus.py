"""``optical score --corpus``: per-sentence scores of a whole ``source ||| target [||| links]``
file for one model, or two models side by side sorted by how much they differ.

The Corpus page's function (:func:`optical_core.pairs.corpus.sentence_scores` and
:func:`~optical_core.pairs.corpus.compare_sentences`), for files of any size: AER per
sentence against the file's gold links (0-indexed ``i-j`` sure, ``ipj`` possible), or,
without gold, the plan's row entropy and its mass on the diagonal.
"""

from __future__ import annotations

import sys

from optical_core.cli.common import CLIError

#: A whole file from the command line may be far larger than an upload on the page.
MAX_FILE_BYTES = 200_000_000
MAX_FILE_PAIRS = 1_000_000


def add_corpus_options(p) -> None:
    """The ``--corpus`` mode's options on the ``score`` parser."""
    g = p.add_argument_group("per-sentence scores of a corpus file (the Corpus page)")
    g.add_argument("--corpus", default=None,
                   help="a 'source ||| target [||| links]' file: score each sentence with "
                   "--model (AER with links, else row entropy and diagonal mass)")
    g.add_argument("--model", default=None,
                   help="model id or folder for --corpus (default: the embedded MiniLM)")
    g.add_argument("--second-model", default=None,
                   help="a second model: print both, sorted by how much they differ")
    g.add_argument("--epsilon", type=float, default=0.05,
                   help="Sinkhorn's ε for --corpus (cost units; default 0.05)")


def read_corpus(path: str):
    """The pairs of ``--corpus``; any problem is a :class:`CLIError` naming the file."""
    from optical_core.pairs.corpus import CorpusError, parse_corpus

    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise CLIError(f"--corpus {path}: cannot read it ({why}); check the path") from None
    try:
        return parse_corpus(data, name=path, max_bytes=MAX_FILE_BYTES, max_pairs=MAX_FILE_PAIRS)
    except CorpusError as exc:
        raise CLIError(str(exc)) from None


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.4f}"


def run_score_corpus(args) -> int:
    """Score every pair of ``--corpus`` and print one tab-separated row per pair."""
    import math

    from optical_core.encoders.registry import load_encoder
    from optical_core.ot.config import OTConfig
    from optical_core.pairs.corpus import compare_sentences, sentence_scores

    if args.gold or args.pred:
        raise CLIError("--corpus scores a text file with a model; --gold / --pred score two "
                       "link files: give one or the other")
    if not (math.isfinite(args.epsilon) and args.epsilon > 0):
        raise CLIError(f"--epsilon must be a finite number > 0 (e.g. 0.05), got {args.epsilon}")
    pairs = read_corpus(args.corpus)
    cfg = OTConfig(epsilon=args.epsilon)
    first = sentence_scores(load_encoder(args.model), pairs, cfg)
    if args.second_model is None:
        print("pair\tAER\trow_entropy\tdiagonal_mass")
        for s in first:
            print(f"{s.index + 1}\t{_num(s.aer)}\t{_num(s.entropy)}\t{_num(s.diagonal)}")
        scored = [s.aer for s in first if s.aer is not None]
        if scored:
            print(f"mean AER\t{sum(scored) / len(scored):.4f}\t({len(scored)} pairs)",
                  file=sys.stderr)
        return 0
    second = sentence_scores(load_encoder(args.second_model), pairs, cfg)
    print("pair\tmetric\tfirst\tsecond\tdelta")
    for d in compare_sentences(first, second):
        a, b = getattr(d.first, d.metric), getattr(d.second, d.metric)
        print(f"{d.index + 1}\t{d.metric}\t{_num(a)}\t{_num(b)}\t{d.delta:+.4f}")
    return 0

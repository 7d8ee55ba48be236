"""``optical score``: AER, precision, recall and F1 of predicted links against gold.
"""

from __future__ import annotations

import sys

from optical_core.cli.common import CLIError, read_lines
from optical_core.cli.score_corpus import add_corpus_options, run_score_corpus

# ----------------------------------------------------------------------- score


def add_score(sub) -> None:
    p = sub.add_parser("score", help="AER, precision, recall, F1 of predicted links",
                       description="Score Pharaoh links against gold ('i-j' sure, 'ipj' "
                       "possible), micro-averaged over sentences as awesome-align does.")
    p.add_argument("--gold", default=None, help="gold Pharaoh file")
    p.add_argument("--pred", default=None, help="predicted Pharaoh file")
    p.add_argument("--one-indexed", action="store_true",
                   help="both files are 1-indexed (the WPT/awesome-align gold files are)")
    p.add_argument("--gold-one-indexed", action="store_true",
                   help="only the gold file is 1-indexed")
    p.add_argument("--text", default=None,
                   help="the 'source ||| target' file both alignments index: every link "
                   "is checked to lie inside its sentence")
    add_corpus_options(p)
    p.set_defaults(func=run_score)


def read_links(path: str, option: str, one_indexed: bool) -> list[tuple[set, set]]:
    """A Pharaoh file given as ``option``; a file that cannot be read or parsed is a
    :class:`CLIError` naming the option, the file and the line."""
    from optical_core.pharaoh import read_pharaoh_file

    try:
        return read_pharaoh_file(path, one_indexed=one_indexed)
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise CLIError(f"{option} {path}: cannot read it ({why}); check the path") from None
    except ValueError as exc:
        hint = (" (or drop --one-indexed / --gold-one-indexed if the file is 0-indexed)"
                if "1-indexed" in str(exc) else "")
        raise CLIError(f"{exc}{hint}") from None


def check_scorable(args, gold: list, pred: list) -> list[str]:
    """Errors for inputs that would give a meaningless score; the warnings to print.

    Raises:
        CLIError: no sentence, different line counts, or a gold file without any link.
    """
    if not gold and not pred:
        raise CLIError(f"--gold {args.gold} and --pred {args.pred} are both empty: there is "
                       "nothing to score (one Pharaoh line per sentence is expected)")
    if len(gold) != len(pred):
        raise CLIError(f"{args.gold} has {len(gold)} lines but {args.pred} has {len(pred)}; "
                       "both need one line per sentence (a blank line for no links)")
    if not any(possible for _, possible in gold):
        raise CLIError(f"--gold {args.gold} has no link on any of its {len(gold)} lines; "
                       "score against a gold file with links")
    warned = []
    maybe = [len(possible - sure) for sure, possible in pred]
    if sum(maybe):
        lines = sum(1 for k in maybe if k)
        warned.append(f"{args.pred} has {sum(maybe)} possible ('ipj') links on {lines} of "
                      f"{len(pred)} lines; predictions are scored as sure links only, so "
                      "these were ignored (write them as 'i-j' to count them)")
    return warned


def run_score(args) -> int:
    from optical_core.alignment import score_corpus

    if args.corpus is not None:
        return run_score_corpus(args)
    if not (args.gold and args.pred):
        raise CLIError("give --gold and --pred (two Pharaoh files), or --corpus FILE to "
                       "score each sentence of a text file with a model")

    gold_one = args.one_indexed or args.gold_one_indexed
    gold = read_links(args.gold, "--gold", gold_one)
    pred = read_links(args.pred, "--pred", args.one_indexed)
    warned = check_scorable(args, gold, pred)
    if args.text:
        _check_link_ranges(args, gold, pred)
    scores = score_corpus([sure for sure, _ in pred], gold)
    if warned:
        print("warning: " + "; ".join(warned), file=sys.stderr)
    print(f"AER\t{100 * scores.aer:.2f}")
    print(f"Precision\t{100 * scores.precision:.2f}")
    print(f"Recall\t{100 * scores.recall:.2f}")
    print(f"F1\t{100 * scores.f1:.2f}")
    print(f"sentences\t{len(gold)}")
    return 0


def _check_link_ranges(args, gold, pred) -> None:
    """Every gold and predicted link must index a word of its line of ``--text``."""
    lines = read_lines(args.text)
    if len(lines) != len(gold):
        raise CLIError(f"{args.text} has {len(lines)} lines but {args.gold} has {len(gold)}; "
                       "--text needs the 'source ||| target' line of every sentence")
    for path, links, one in ((args.gold, gold, args.one_indexed or args.gold_one_indexed),
                             (args.pred, pred, args.one_indexed)):
        for lineno, ((_, possible), text) in enumerate(zip(links, lines), 1):
            if "|||" not in text:
                raise CLIError(f"{args.text}, line {lineno}: expected 'source ||| target'")
            n, m = (len(side.split()) for side in text.split("|||", 1))
            bad = sorted((i, j) for i, j in possible if i >= n or j >= m)
            if bad:
                i, j = bad[0]
                raise CLIError(
                    f"{path}, line {lineno}: link {i + one}-{j + one} is outside the sentence "
                    f"({n} source, {m} target words in {args.text}); check the files and "
                    "--one-indexed / --gold-one-indexed"
                )

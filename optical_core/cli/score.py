"""``optical score``: AER, precision, recall and F1 of predicted links against gold.
"""

from __future__ import annotations

from optical_core.cli.common import CLIError, _open_in

# ----------------------------------------------------------------------- score


def add_score(sub) -> None:
    p = sub.add_parser("score", help="AER, precision, recall, F1 of predicted links",
                       description="Score Pharaoh links against gold ('i-j' sure, 'ipj' "
                       "possible), micro-averaged over sentences as awesome-align does.")
    p.add_argument("--gold", required=True, help="gold Pharaoh file")
    p.add_argument("--pred", required=True, help="predicted Pharaoh file")
    p.add_argument("--one-indexed", action="store_true",
                   help="both files are 1-indexed (the WPT/awesome-align gold files are)")
    p.add_argument("--gold-one-indexed", action="store_true",
                   help="only the gold file is 1-indexed")
    p.add_argument("--text", default=None,
                   help="the 'source ||| target' file both alignments index: every link "
                   "is checked to lie inside its sentence")
    p.set_defaults(func=run_score)


def run_score(args) -> int:
    from optical_core.alignment import score_corpus
    from optical_core.pharaoh import read_pharaoh_file

    gold = read_pharaoh_file(args.gold, one_indexed=args.one_indexed or args.gold_one_indexed)
    pred = read_pharaoh_file(args.pred, one_indexed=args.one_indexed)
    if len(gold) != len(pred):
        raise CLIError(f"{args.gold} has {len(gold)} lines but {args.pred} has {len(pred)}")
    if args.text:
        _check_link_ranges(args, gold, pred)
    scores = score_corpus([sure for sure, _ in pred], gold)
    print(f"AER\t{100 * scores.aer:.2f}")
    print(f"Precision\t{100 * scores.precision:.2f}")
    print(f"Recall\t{100 * scores.recall:.2f}")
    print(f"F1\t{100 * scores.f1:.2f}")
    print(f"sentences\t{len(gold)}")
    return 0


def _check_link_ranges(args, gold, pred) -> None:
    """Every gold and predicted link must index a word of its line of ``--text``."""
    with _open_in(args.text) as stream:
        lines = [line.rstrip("\n") for line in stream]
    if len(lines) != len(gold):
        raise CLIError(f"{args.text} has {len(lines)} lines but {args.gold} has {len(gold)}")
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

"""The ``optical`` command line: the same calls the app and the tests make.

Each subcommand is a ``add_<name>(subparsers)`` function that registers its parser and
sets ``func``; :data:`SUBCOMMANDS` lists them. Errors print one line on stderr and exit
non-zero; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


class CLIError(Exception):
    """An error whose message is meant for the user as it is."""


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (argparse prints the whole usage block first)."""

    def error(self, message: str):
        print(f"error: {message} (see '{self.prog} --help')", file=sys.stderr)
        self.exit(EXIT_ERROR)


def _progress(iterable: Iterable, total: int | None, desc: str, quiet: bool):
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="pair", file=sys.stderr,
                disable=quiet or None, leave=False)


def _read_pairs(stream) -> list[tuple[str, str]]:
    pairs = []
    for lineno, line in enumerate(stream, 1):
        line = line.rstrip("\n")
        if not line.strip():
            continue
        if "|||" not in line:
            raise CLIError(f"line {lineno}: expected 'source ||| target', got {line[:60]!r}")
        src, tgt = (part.strip() for part in line.split("|||", 1))
        if not src or not tgt:
            raise CLIError(f"line {lineno}: one side of the pair is empty")
        pairs.append((src, tgt))
    if not pairs:
        raise CLIError("no 'source ||| target' lines on the input")
    return pairs


# ----------------------------------------------------------------------- align


def add_align(sub) -> None:
    from .alignment import DEFAULT_OT_THRESHOLD, LINK_METHODS
    from .ot import METRICS, SOLVERS

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
    from .alignment import to_pharaoh
    from .encoders import TruncationWarning, load_encoder
    from .ot import OTConfig
    from .pairs import align_embeddings

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
    from .alignment import read_pharaoh_file, score_corpus

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


# -------------------------------------------------------------------- download


def add_download(sub) -> None:
    p = sub.add_parser("download", help="fetch the official Multi30k files into the cache")
    p.add_argument("--dest", default=None, help="target folder (default: the user cache)")
    p.add_argument("--task2", action="store_true", help="also the task2 (5 captions) files")
    p.set_defaults(func=run_download)


def run_download(args) -> int:
    from .data import download_multi30k

    path = download_multi30k(dest=args.dest, task2=args.task2)
    print(f"Multi30k files are in {path}")
    return 0


# ------------------------------------------------------------------ plumbing


class _open_in:
    def __init__(self, path: str) -> None:
        self.path = path
        self.handle = None

    def __enter__(self):
        if self.path == "-":
            return sys.stdin
        try:
            self.handle = open(self.path, encoding="utf-8")
        except OSError as exc:
            raise CLIError(f"cannot read {self.path}: {exc.strerror}") from exc
        return self.handle

    def __exit__(self, *exc) -> None:
        if self.handle is not None:
            self.handle.close()


def _write_out(path: str, text: str) -> None:
    if path == "-":
        sys.stdout.write(text)
        return
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


@contextlib.contextmanager
def stop_on_ctrl_c(cancel: threading.Event, say: Callable[[str], None]) -> Iterator[None]:
    """While the block runs, the first Ctrl-C sets ``cancel`` (a training loop stops after
    its current step and saves); a second one aborts at once. Outside the main thread
    (signals cannot be handled there) the block runs unchanged."""

    def on_sigint(signum, frame):
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        say("stopping after this step (Ctrl-C again to abort)…")

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def add_distill(sub) -> None:
    from .distill_cli import add_distill as _add

    _add(sub)


def add_evaluate(sub) -> None:
    from .evaluate_cli import add_evaluate as _add

    _add(sub)


def add_experiment(sub) -> None:
    from .experiment_cli import add_experiment as _add

    _add(sub)


def add_retrieve_images(sub) -> None:
    from .multimodal_cli import add_retrieve_images as _add

    _add(sub)


SUBCOMMANDS: list[Callable] = [
    add_align, add_score, add_download, add_distill, add_evaluate, add_experiment,
    add_retrieve_images,
]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="optical",
        description="OPTICAL Explorer: optimal-transport token alignment and distillation.",
    )
    _add_common(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    # The common flags work before or after the subcommand name.
    for subparser in sub.choices.values():
        _add_common(subparser, suppress=True)
    return parser


def _add_common(parser: argparse.ArgumentParser, suppress: bool) -> None:
    off = {"default": argparse.SUPPRESS} if suppress else {}
    parser.add_argument("--data-dir", **({"default": None} | off),
                        help="Multi30k / gold alignment folder (else $OPTICAL_DATA_DIR, "
                        "then ../shared/data, then the user cache)")
    parser.add_argument("-q", "--quiet", action="store_true", **off, help="no progress bar")
    parser.add_argument("--debug", action="store_true", **off, help="show tracebacks")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # --data-dir reaches every module through the environment for this command only: an
    # in-process caller (a test, a notebook) must not keep it afterwards.
    saved = os.environ.get("OPTICAL_DATA_DIR")
    if args.data_dir:
        os.environ["OPTICAL_DATA_DIR"] = args.data_dir
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # one clear line, never a traceback, unless --debug
        if args.debug:
            raise
        print(f"error: {_describe(exc)}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        if saved is None:
            os.environ.pop("OPTICAL_DATA_DIR", None)
        else:
            os.environ["OPTICAL_DATA_DIR"] = saved


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, FileNotFoundError) and exc.filename and str(exc.filename) not in text:
        text = f"{text}: {exc.filename}"
    return " ".join(text.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

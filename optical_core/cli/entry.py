"""The ``optical`` command line: the same calls the app and the tests make.

Each subcommand is a ``add_<name>(subparsers)`` function that registers its parser and
sets ``func``; :data:`SUBCOMMANDS` lists them. Errors print one line on stderr and exit
non-zero; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from optical_core.cli.align import add_align
from optical_core.cli.common import EXIT_ERROR, EXIT_INTERRUPTED, _Parser
from optical_core.cli.distill import add_distill
from optical_core.cli.download import add_download
from optical_core.cli.evaluate import add_evaluate
from optical_core.cli.experiment import add_experiment
from optical_core.cli.images import add_retrieve_images
from optical_core.cli.score import add_score

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

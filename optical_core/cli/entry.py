"""The ``optical`` command line: the same calls the app and the tests make.

Each subcommand is a ``add_<name>(subparsers)`` function that registers its parser and
sets ``func``; :data:`SUBCOMMANDS` lists them. Errors print one line on stderr and exit
non-zero; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings
from collections.abc import Callable

from optical_core.cli.align import add_align
from optical_core.cli.common import EXIT_ERROR, EXIT_INTERRUPTED, OneLineParser
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
    parser = OneLineParser(
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
        with warnings.catch_warnings():
            warnings.showwarning = show_warning
            # what a library says to its developers is not for the user of the command
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # one clear line, never a traceback, unless --debug
        if args.debug:
            raise
        print(f"error: {describe(exc, args.command)}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        if saved is None:
            os.environ.pop("OPTICAL_DATA_DIR", None)
        else:
            os.environ["OPTICAL_DATA_DIR"] = saved


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A library warning as one ``warning: ...`` line (no source location)."""
    print(f"warning: {' '.join(str(message).split())}", file=sys.stderr)


#: Python's own wording, which names neither the user's option nor what to do: a message
#: matching one of these is a bug of a check that is missing, not an answer to the user.
RAW_PYTHON_TEXT = re.compile(
    r"invalid literal for|could not convert|cannot convert float|not supported between"
    r"|unsupported operand|object has no attribute|object is not|positional argument"
    r"|values to unpack|out of bounds|NoneType|must be real number"
    r"|math domain error|division by zero"
)


def describe(exc: BaseException, command: str = "") -> str:
    """The one line the user reads for ``exc``.

    The project's own exceptions and plain ``ValueError`` / ``RuntimeError`` messages are
    written for the user and shown as they are; an ``OSError`` names its file; anything
    else (``TypeError``, ``KeyError``, Python's own wording in a ``ValueError``) is an
    internal error: the line says so and how to see the traceback, without Python's text.
    """
    text = " ".join((str(exc).strip() or type(exc).__name__).split())
    ours = type(exc).__module__.startswith("optical_core")
    if isinstance(exc, UnicodeDecodeError):
        return (f"a file is not UTF-8 text (byte {exc.start} cannot be decoded); save it as "
                "UTF-8")
    if isinstance(exc, OSError) and not ours:
        name = exc.filename or ""
        why = exc.strerror or type(exc).__name__
        return f"cannot use {name}: {why}; check the path" if name else text
    if isinstance(exc, MemoryError):
        return "out of memory; use a smaller input, --limit or --batch-size"
    plain = isinstance(exc, (ValueError, RuntimeError)) and not RAW_PYTHON_TEXT.search(text)
    if ours or plain:
        return text
    where = f"optical {command}" if command else "optical"
    return (f"{where} stopped on an internal error ({type(exc).__name__}); rerun with "
            "--debug to see the traceback and report it")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

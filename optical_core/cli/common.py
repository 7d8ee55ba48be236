"""What every subcommand shares: the one-line error, exit codes, input/output helpers and
the Ctrl-C handler. It imports no subcommand.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


class CLIError(Exception):
    """An error whose message is meant for the user as it is."""


class OneLineParser(argparse.ArgumentParser):
    """argparse with a one-line error (argparse prints the whole usage block first)."""

    def error(self, message: str):
        print(f"error: {message} (see '{self.prog} --help')", file=sys.stderr)
        self.exit(EXIT_ERROR)


def progress(iterable: Iterable, total: int | None, desc: str, quiet: bool):
    """A tqdm bar on stderr (hidden with ``--quiet`` or when stderr is not a terminal)."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="pair", file=sys.stderr,
                disable=quiet or None, leave=False)


def input_name(path: str) -> str:
    """How messages name an input: the path, or ``standard input`` for ``-``."""
    return "standard input" if path == "-" else path


def read_lines(path: str) -> list[str]:
    """The lines of a UTF-8 text file (``-``: standard input), without their line ends.

    Raises:
        CLIError: the file cannot be read or is not UTF-8 text; the message names it.
    """
    with open_in(path) as stream:
        try:
            return [line.rstrip("\r\n") for line in stream]
        except UnicodeDecodeError as exc:
            raise CLIError(f"{input_name(path)} is not UTF-8 text (byte {exc.start} of a "
                           "line cannot be decoded); save it as UTF-8") from None


def read_pairs(path: str) -> list[tuple[str, str] | None]:
    """The ``source ||| target`` pairs of a file, one entry per line: a blank line gives
    ``None`` so that output line N stays the answer to input line N.

    Raises:
        CLIError: a line without ``|||``, a pair with an empty side, or no pair at all;
            the message names the file and the line.
    """
    name = input_name(path)
    pairs: list[tuple[str, str] | None] = []
    for lineno, line in enumerate(read_lines(path), 1):
        if not line.strip():
            pairs.append(None)
            continue
        if "|||" not in line:
            raise CLIError(f"{name}, line {lineno}: expected 'source ||| target', "
                           f"got {line[:60]!r}")
        src, tgt = (part.strip() for part in line.split("|||", 1))
        if not src or not tgt:
            raise CLIError(f"{name}, line {lineno}: one side of the pair is empty; "
                           "give both sides or leave the whole line blank")
        pairs.append((src, tgt))
    if not any(pairs):
        raise CLIError(f"no 'source ||| target' lines in {name}")
    return pairs


# ------------------------------------------------------------------ plumbing


class open_in:
    """``with open_in(path) as stream``: a UTF-8 text file, or stdin for ``-``; a file that
    cannot be opened is a :class:`CLIError` naming it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.handle = None

    def __enter__(self):
        if self.path == "-":
            return sys.stdin
        try:
            self.handle = open(self.path, encoding="utf-8-sig")  # drops a BOM
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            raise CLIError(f"cannot read {self.path}: {why}; check the path") from None
        return self.handle

    def __exit__(self, *exc) -> None:
        if self.handle is not None:
            self.handle.close()


def write_out(path: str, text: str, what: str = "--output") -> None:
    """Write ``text`` to stdout (``-``) or atomically to ``path``
    (:func:`optical_core.safe_write.write_text_atomic`: nothing is left behind on failure)."""
    if path == "-":
        sys.stdout.write(text)
        return
    from optical_core.safe_write import write_text_atomic

    write_text_atomic(Path(path).expanduser(), text, what=what)


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

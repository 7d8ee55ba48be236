"""What every subcommand shares: the one-line error, exit codes, input/output helpers and
the Ctrl-C handler. It imports no subcommand.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
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

"""Writing the user's output files: atomically, cleaning up after a failure, and never into
a folder that holds someone else's files.

* :func:`write_text_atomic` writes a temporary file next to the target and renames it into
  place, so the target is either the old file or the whole new one. On any failure
  (a full disk, Ctrl-C) the temporary file is removed and the error names the user's path,
  never the temporary one. A temporary file left by a killed writer (its process is gone)
  is removed by the next write of the same target.
* :func:`claim_output_folder` lets a writer create or fill a folder only when it is new,
  empty, or carries :data:`OUTPUT_MARKER` (the project made it); anything else is refused.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import tempfile
from pathlib import Path

OUTPUT_MARKER = ".optical-explorer-output"
"""The file that marks a folder the project created and may write into again."""


class OutputError(OSError):
    """An output could not be written; the message names the user's path and what to do.
    An ``OSError``, so callers that caught the write's own error still catch it."""


def temp_tag() -> str:
    """``<pid>@<host>-``: what a temporary name carries after its prefix, so that a later
    writer can tell a dead writer's leftover (same host, process gone) from a live one's.
    The host keeps a writer on another machine sharing the folder from being judged by
    this machine's process table."""
    return f"{os.getpid()}@{socket.gethostname()}-"


def _tmp_prefix(path: Path) -> str:
    return f".{path.name}.{temp_tag()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_stale(folder: str | os.PathLike[str], prefix: str, suffix: str = "") -> int:
    """Remove what killed writers left in ``folder``: files or folders named
    ``<prefix><pid>@<host>-<random><suffix>`` (see :func:`temp_tag`) written on this host
    by a process that is no longer running. A live writer's temporary is never touched.

    Returns:
        How many were removed.
    """
    pattern = re.compile(
        rf"^{re.escape(prefix)}(\d+)@{re.escape(socket.gethostname())}-.*{re.escape(suffix)}$"
    )
    removed = 0
    try:
        entries = list(Path(folder).expanduser().iterdir())
    except OSError:
        return 0
    for entry in entries:
        match = pattern.match(entry.name)
        pid = int(match.group(1)) if match else os.getpid()
        if pid == os.getpid() or _pid_alive(pid):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed += 1
        except OSError:
            pass
    return removed


def remove_stale_temps(path: str | os.PathLike[str]) -> int:
    """Remove the temporary files that killed writers of ``path`` left beside it
    (``.<name>.<pid>@<host>-<random>.tmp``, see :func:`remove_stale`)."""
    path = Path(path).expanduser()
    return remove_stale(path.parent, f".{path.name}.", ".tmp")


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def is_stream(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a character device or a FIFO (``/dev/null``, ``/dev/stdout``, a
    named pipe): written into as a stream, never replaced by a renamed file."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


def output_target(path: str | os.PathLike[str]) -> Path:
    """The file a write of ``path`` lands in: a symlink's target (the link stays a link, as
    with the shell's ``>``), else ``path`` itself."""
    path = Path(path).expanduser()
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def check_output_file(path: str | os.PathLike[str], what: str = "") -> str:
    """Refuse, before any work, an output file that cannot be written: a folder, a file
    whose folder does not exist, a read-only file (no write bit: renaming over it would
    bypass its protection), or something that is neither a file nor a stream
    (:func:`is_stream`), such as a block device or a socket.

    Returns:
        How messages name it (``what`` and the path).

    Raises:
        OutputError: the message names ``path`` and what to do.
    """
    path = Path(path).expanduser()
    label = f"{what} {path}" if what else str(path)
    if path.is_dir():
        raise OutputError(f"{label} is a folder; give a file name inside it")
    if is_stream(path):
        return label
    target = output_target(path)
    if target.exists():
        mode = target.stat().st_mode
        if not stat.S_ISREG(mode):
            raise OutputError(f"{label} is neither a file nor a stream (a device or socket); "
                              "give a file name")
        if not mode & 0o222:
            raise OutputError(f"{label} is read-only; make it writable (chmod u+w) or choose "
                              "another path")
    if not target.parent.is_dir():
        raise OutputError(
            f"cannot write {label}: the folder {target.parent} does not exist; create it first"
        )
    return label


def _write_stream(path: Path, text: str, label: str) -> None:
    try:
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
    except OSError as exc:
        raise OutputError(f"cannot write {label}: {_why(exc)}; choose another path") from None


def write_text_atomic(path: str | os.PathLike[str], text: str, what: str = "") -> None:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``path`` through a temporary file in the
    same folder, flushed to disk, and a rename. A symlink is written through (its target
    is replaced, the link stays); a stream (:func:`is_stream`: ``/dev/null``, a named pipe)
    is written into directly, since renaming a file over it would replace the device.

    Args:
        path: the user's output file.
        text: its whole content.
        what: how the user named it (``"--output"``), put in front of the error messages.

    Raises:
        OutputError: :func:`check_output_file` refuses ``path``, or writing failed; the
            message names ``path`` and nothing is left behind.
    """
    path = Path(path).expanduser()
    label = check_output_file(path, what)
    if is_stream(path):
        _write_stream(path, text, label)
        return
    target = output_target(path)
    remove_stale_temps(target)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=_tmp_prefix(target), suffix=".tmp")
    except OSError as exc:
        raise OutputError(f"cannot write {label}: {_why(exc)}; choose another path") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp makes the file private: keep the replaced file's mode, else a plain 0o644
        os.chmod(tmp, stat.S_IMODE(target.stat().st_mode) if target.exists() else 0o644)
        os.replace(tmp, target)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OutputError(
                f"cannot write {label}: {_why(exc)}; nothing was written, choose another path"
            ) from None
        raise


def claim_output_folder(folder: str | os.PathLike[str], what: str = "") -> Path:
    """Make ``folder`` ready to be written into, or refuse.

    A folder that does not exist is created (with its parents) and marked; an empty one is
    marked; one that carries :data:`OUTPUT_MARKER` is used as it is. Any other folder (the
    user's own files) and any path that is a file are refused.

    Returns:
        ``folder`` as a :class:`~pathlib.Path`.

    Raises:
        OutputError: the folder is not ours, is a file, or cannot be created.
    """
    folder = Path(folder).expanduser()
    label = f"{what} {folder}" if what else str(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{label} is a file, not a folder; give a new or empty folder")
    if folder.is_dir():
        if (folder / OUTPUT_MARKER).is_file():
            return folder
        if any(folder.iterdir()):
            raise OutputError(
                f"{label} already holds files that optical did not write; give a new "
                "or empty folder"
            )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / OUTPUT_MARKER).write_text(
            "written by optical-explorer; it may write into this folder again\n",
            encoding="utf-8",
        )
    except OSError as exc:
        raise OutputError(f"cannot create {label}: {_why(exc)}; choose another folder") from None
    return folder


__all__ = [
    "OUTPUT_MARKER",
    "OutputError",
    "check_output_file",
    "claim_output_folder",
    "is_stream",
    "output_target",
    "remove_stale",
    "remove_stale_temps",
    "temp_tag",
    "write_text_atomic",
]

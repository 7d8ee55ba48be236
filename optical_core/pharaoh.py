"""The Pharaoh link format: one sentence per line, ``i-j`` a sure link, ``ipj`` a possible
one (awesome-align, SimAlign and the WPT gold files use it).

Indices are 0-indexed in memory; the ``one_indexed`` flags read and write the 1-indexed
gold files. Links are :data:`optical_core.alignment.Links`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from optical_core.alignment import Links, check_link
from optical_core.safe_write import write_text_atomic

_TOKEN = re.compile(r"^(\d+)([-p])(\d+)$")


def to_pharaoh(
    links: Iterable[tuple[int, int]],
    one_indexed: bool = False,
    possible: Iterable[tuple[int, int]] | None = None,
) -> str:
    """Write links as one Pharaoh line, e.g. ``"0-1 2-3 4p4"``, sorted by (source, target).

    Args:
        links: 0-indexed sure links, written ``i-j``.
        one_indexed: add 1 to every index on output (the gold files are 1-indexed).
        possible: 0-indexed possible links; those not among ``links`` are written ``ipj``.
            (Passing the possible set with or without the sure links gives the same line.)

    Raises:
        ValueError: a negative or non-integer index.
    """
    off = 1 if one_indexed else 0
    sure = {check_link(x) for x in links}
    maybe = {check_link(x) for x in (possible or ())} - sure
    items = [(i, j, "-") for i, j in sure] + [(i, j, "p") for i, j in maybe]
    items.sort()
    return " ".join(f"{i + off}{sep}{j + off}" for i, j, sep in items)


def parse_pharaoh(line: str, one_indexed: bool = False) -> tuple[Links, Links]:
    """Read one Pharaoh line (``i-j`` sure, ``ipj`` possible).

    Args:
        line: whitespace-separated tokens; an empty line is an empty alignment.
        one_indexed: the indices in ``line`` start at 1 (they are returned 0-indexed).

    Returns:
        ``(sure, possible)`` 0-indexed, with ``possible ⊇ sure``.

    Raises:
        ValueError: a token that is not ``<int>-<int>`` / ``<int>p<int>`` (the message
            names it), or a 0 index in a 1-indexed line.
    """
    off = 1 if one_indexed else 0
    sure: Links = set()
    possible: Links = set()
    for tok in line.split():
        mt = _TOKEN.match(tok)
        if mt is None:
            raise ValueError(
                f"malformed Pharaoh token {tok!r}: expected 'i-j' (sure) or 'ipj' (possible)"
            )
        i, j = int(mt.group(1)) - off, int(mt.group(3)) - off
        if i < 0 or j < 0:
            raise ValueError(
                f"Pharaoh token {tok!r} has index 0 but the line is read as 1-indexed"
            )
        possible.add((i, j))
        if mt.group(2) == "-":
            sure.add((i, j))
    return sure, possible


def read_pharaoh_file(
    path: str | os.PathLike[str], one_indexed: bool = False
) -> list[tuple[Links, Links]]:
    """Read a Pharaoh file, one ``(sure, possible)`` pair per line (blank line = no links).

    Raises:
        ValueError: a malformed token (the message gives the file and line number) or a
            file that is not UTF-8 text.
        OSError: the file cannot be read.
    """
    out: list[tuple[Links, Links]] = []
    try:
        text = Path(path).read_text(encoding="utf-8-sig")  # a BOM (Windows editors) is not a link
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path} is not UTF-8 text (byte {err.start}); save it as UTF-8"
        ) from None
    for k, line in enumerate(text.splitlines(), start=1):
        try:
            out.append(parse_pharaoh(line, one_indexed=one_indexed))
        except ValueError as err:
            raise ValueError(f"{path}, line {k}: {err}") from None
    return out


def write_pharaoh_file(
    path: str | os.PathLike[str],
    links: Sequence[Iterable[tuple[int, int]]],
    one_indexed: bool = False,
    possible: Sequence[Iterable[tuple[int, int]]] | None = None,
) -> None:
    """Write one Pharaoh line per sentence (atomically: temp file, then rename).

    Args:
        path: output file.
        links: per sentence, the 0-indexed sure links.
        one_indexed: write 1-indexed.
        possible: per sentence, possible links (same length as ``links``), or ``None``.
    """
    if possible is not None and len(possible) != len(links):
        raise ValueError(
            f"{len(links)} sentences of links but {len(possible)} of possible links"
        )
    per_sentence = possible if possible is not None else [None] * len(links)
    lines = [
        to_pharaoh(sent, one_indexed=one_indexed, possible=maybe)
        for sent, maybe in zip(links, per_sentence)
    ]
    write_text_atomic(path, "".join(line + "\n" for line in lines))


__all__ = [
    "parse_pharaoh",
    "read_pharaoh_file",
    "to_pharaoh",
    "write_pharaoh_file",
]

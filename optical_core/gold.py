"""Human gold word alignments: the ``enfr`` and ``roen`` sets of awesome-align, and any
``src ||| tgt`` file with its Pharaoh-style gold file.

Conventions
-----------
* Gold links are 0-indexed ``(source, target)`` tuples. ``possible`` always *includes* the
  sure links (the usual AER convention S ⊆ P, Och & Ney 2003), so ``sure <= possible`` holds.
* In ``roen`` the **source is Romanian and the target is English**; in ``enfr`` the source
  is English. See :data:`~optical_core.data.GOLD_LANGS` and :meth:`GoldPair.reversed`.
* The files are looked for in the data root only (:func:`optical_core.data.data_dir`),
  never downloaded: ``<root>/gold_alignments/{pair}.src-tgt`` and ``{pair}.gold``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from optical_core.data import GOLD_PAIRS, check_name, find_file

#: One link of a gold file: ``i-j`` (sure) or ``ipj`` (possible), source index first.
LINK_RE = re.compile(r"^(\d+)([-p])(\d+)$")


@dataclass
class GoldPair:
    """One human-aligned sentence pair.

    Links are 0-indexed ``(source index, target index)``; ``possible`` includes ``sure``.
    """

    src_tokens: list[str]
    tgt_tokens: list[str]
    sure: set[tuple[int, int]]
    possible: set[tuple[int, int]]

    def reversed(self) -> GoldPair:
        """The same pair with source and target swapped (e.g. English first for ``roen``)."""
        return GoldPair(
            src_tokens=list(self.tgt_tokens),
            tgt_tokens=list(self.src_tokens),
            sure={(j, i) for i, j in self.sure},
            possible={(j, i) for i, j in self.possible},
        )


def parse_gold_line(
    line: str,
    n_src: int | None,
    n_tgt: int | None,
    one_indexed: bool = True,
) -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
    """Parse ``"i-j i-j ipj ..."`` into ``(sure, possible)``, 0-indexed, ``sure ⊆ possible``.

    ``i-j`` is a sure link and ``ipj`` a possible link, source index first. Indices are
    checked against ``n_src`` / ``n_tgt`` (pass ``None`` to skip). An empty line gives two
    empty sets. Raises ``ValueError`` on a malformed link or an index out of range.
    """
    sure: set[tuple[int, int]] = set()
    possible: set[tuple[int, int]] = set()
    offset = 1 if one_indexed else 0
    for tok in line.split():
        m = LINK_RE.match(tok)
        if m is None:
            raise ValueError(f"malformed link {tok!r} (expected i-j or ipj)")
        i, j = int(m.group(1)) - offset, int(m.group(3)) - offset
        if i < 0 or j < 0:
            raise ValueError(f"link {tok!r}: indices start at {offset}")
        if n_src is not None and i >= n_src:
            raise ValueError(f"link {tok!r}: source index out of range ({n_src} source tokens)")
        if n_tgt is not None and j >= n_tgt:
            raise ValueError(f"link {tok!r}: target index out of range ({n_tgt} target tokens)")
        possible.add((i, j))
        if m.group(2) == "-":
            sure.add((i, j))
    return sure, possible


def load_gold_file(
    text_path: str | os.PathLike[str],
    gold_path: str | os.PathLike[str],
    one_indexed: bool = True,
) -> list[GoldPair]:
    """Read a ``src ||| tgt`` text file and its Pharaoh-style gold file (one line per pair).

    Tokens are whitespace-separated. Raises ``FileNotFoundError`` for a missing file and
    ``ValueError`` naming file and line for a malformed line, an out-of-range index or a
    line-count mismatch.
    """
    tpath, gpath = Path(text_path).expanduser().resolve(), Path(gold_path).expanduser().resolve()
    texts = read_user_lines(tpath)
    golds = read_user_lines(gpath)
    if len(texts) != len(golds):
        raise ValueError(
            f"{tpath} has {len(texts)} lines but {gpath} has {len(golds)}; "
            "expected one gold line per sentence pair"
        )
    out: list[GoldPair] = []
    for lineno, (text, gold) in enumerate(zip(texts, golds), start=1):
        sides = text.split("|||")
        if len(sides) != 2:
            raise ValueError(f"{tpath}:{lineno}: expected 'source ||| target', got {text!r}")
        src, tgt = sides[0].split(), sides[1].split()
        try:
            sure, possible = parse_gold_line(gold, len(src), len(tgt), one_indexed=one_indexed)
        except ValueError as exc:
            raise ValueError(f"{gpath}:{lineno}: {exc}") from None
        out.append(GoldPair(src, tgt, sure, possible))
    return out


def read_user_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    try:
        with open(path, encoding="utf-8", newline="") as f:
            lines = f.read().split("\n")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 ({exc})") from None
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def load_gold(pair: str, data_dir: str | os.PathLike[str] | None = None) -> list[GoldPair]:
    """The human gold alignments ``enfr`` (200 pairs) or ``roen`` (248 pairs, sure only).

    Source/target languages are given by :data:`GOLD_LANGS`: English is the *target* of
    ``roen``. Raises :class:`DataNotFoundError` if the files are missing.
    """
    check_name("gold alignment pair", pair, GOLD_PAIRS)
    text = find_file(
        ("gold_alignments", f"{pair}.src-tgt"), data_dir, use_cache=False, what="gold file"
    )
    gold = find_file(
        ("gold_alignments", f"{pair}.gold"), data_dir, use_cache=False, what="gold file"
    )
    return load_gold_file(text, gold)

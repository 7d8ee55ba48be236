"""Tests of optical_core.gold: the gold word alignments (the shared enfr / roen sets when
``../shared/data`` is there, else skipped) and user gold files."""

from __future__ import annotations

from pathlib import Path

import pytest

from optical_core import data as D
from optical_core import gold as G

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
HAS_GOLD = (SHARED / "gold_alignments" / "enfr.gold").is_file()
needs_gold = pytest.mark.skipif(not HAS_GOLD, reason=f"gold alignments not found under {SHARED}")
pytestmark = pytest.mark.usefixtures("isolated_data_env")


@needs_gold
@pytest.mark.parametrize("pair,n", [("enfr", 200), ("roen", 248)])
def test_gold_real_files(pair: str, n: int) -> None:
    gold = G.load_gold(pair, data_dir=SHARED)
    assert len(gold) == n
    for g in gold:
        assert g.sure <= g.possible
        assert g.src_tokens and g.tgt_tokens
        assert all(0 <= i < len(g.src_tokens) and 0 <= j < len(g.tgt_tokens)
                   for i, j in g.possible)
    n_possible_only = sum(len(g.possible - g.sure) for g in gold)
    if pair == "roen":
        assert n_possible_only == 0  # sure links only
    else:
        assert n_possible_only > 0


@needs_gold
def test_gold_content_and_sides() -> None:
    enfr = G.load_gold("enfr", data_dir=SHARED)
    assert enfr[0].src_tokens == ["2", "."] and enfr[0].sure == {(0, 0), (1, 1)}
    roen = G.load_gold("roen", data_dir=SHARED)
    assert D.GOLD_LANGS["roen"] == ("ro", "en")
    assert roen[0].src_tokens == ["ajunge", "!"]
    assert roen[0].tgt_tokens == ["that", "'s", "enough", "!"]
    assert roen[0].sure == {(1, 3), (0, 2)}  # "2-4 1-3", source (Romanian) first
    rev = roen[0].reversed()
    assert rev.src_tokens[0] == "that" and rev.sure == {(3, 1), (2, 0)}
    assert D.gold_available("roen", SHARED)


def test_parse_gold_line() -> None:
    sure, possible = G.parse_gold_line("1-1 2p3 2-2", 2, 3)
    assert sure == {(0, 0), (1, 1)}
    assert possible == {(0, 0), (1, 1), (1, 2)}
    assert G.parse_gold_line("", 3, 3) == (set(), set())
    assert G.parse_gold_line("0-0 1p2", 2, 3, one_indexed=False) == ({(0, 0)}, {(0, 0), (1, 2)})
    assert G.parse_gold_line("9-9", None, None) == ({(8, 8)}, {(8, 8)})


@pytest.mark.parametrize(
    "line,match",
    [
        ("1-", "malformed"),
        ("a-b", "malformed"),
        ("1_2", "malformed"),
        ("1--2", "malformed"),
        ("1-2-3", "malformed"),
        ("-1-2", "malformed"),
        ("1x2", "malformed"),
        ("0-1", "start at 1"),
        ("3-1", "source index out of range"),
        ("1-4", "target index out of range"),
        ("1-1 2p4", "target index out of range"),
    ],
)
def test_parse_gold_line_malformed(line: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        G.parse_gold_line(line, 2, 3)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_load_gold_file_user_files(tmp_path: Path) -> None:
    text = _write(tmp_path / "x.src-tgt", "a b ||| c d e\nf ||| g\n")
    gold = _write(tmp_path / "x.gold", "1-1 2p3\n1-1\n")
    pairs = G.load_gold_file(text, gold)
    assert pairs[0] == G.GoldPair(["a", "b"], ["c", "d", "e"], {(0, 0)}, {(0, 0), (1, 2)})
    assert pairs[1].sure == {(0, 0)}


@pytest.mark.parametrize(
    "text,gold,match",
    [
        ("a b ||| c\nd ||| e\n", "1-1\n1-2\n", r"x\.gold:2: .*target index out of range"),
        ("a b ||| c\nd ||| e\n", "1-1\n1:1\n", r"x\.gold:2: malformed"),
        ("a b ||| c\nd e\n", "1-1\n1-1\n", r"x\.src-tgt:2: expected 'source \|\|\| target'"),
        ("a b ||| c\nd ||| e\n", "1-1\n", "has 2 lines but .* has 1"),
    ],
)
def test_load_gold_file_errors(tmp_path: Path, text: str, gold: str, match: str) -> None:
    t = _write(tmp_path / "x.src-tgt", text)
    g = _write(tmp_path / "x.gold", gold)
    with pytest.raises(ValueError, match=match):
        G.load_gold_file(t, g)


def test_load_gold_file_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.gold"):
        G.load_gold_file(_write(tmp_path / "x.src-tgt", "a ||| b\n"), tmp_path / "nope.gold")

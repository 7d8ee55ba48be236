"""Tests of optical_core.pharaoh: the Pharaoh line and file format (no models)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optical_core.pharaoh import (
    parse_pharaoh,
    read_pharaoh_file,
    to_pharaoh,
    write_pharaoh_file,
)


def test_pharaoh_round_trip_zero_and_one_indexed():
    sure = {(2, 3), (0, 1), (0, 0)}
    possible = {(1, 1), (0, 0)}  # (0,0) is also sure: written once, as sure
    line0 = to_pharaoh(sure, possible=possible)
    assert line0 == "0-0 0-1 1p1 2-3"
    line1 = to_pharaoh(sure, one_indexed=True, possible=possible)
    assert line1 == "1-1 1-2 2p2 3-4"
    for line, one in ((line0, False), (line1, True)):
        s, p = parse_pharaoh(line, one_indexed=one)
        assert s == sure
        assert p == possible | sure
    assert to_pharaoh(set()) == ""
    assert parse_pharaoh("") == (set(), set())
    assert parse_pharaoh("  0-1\t1-2 \n") == ({(0, 1), (1, 2)}, {(0, 1), (1, 2)})


def test_pharaoh_sorts_numerically():
    assert to_pharaoh({(10, 2), (2, 10), (2, 9)}) == "2-9 2-10 10-2"


link_sets = st.sets(st.tuples(st.integers(0, 60), st.integers(0, 60)), max_size=40)


@settings(max_examples=200, deadline=None)
@given(sure=link_sets, extra=link_sets, one=st.booleans())
def test_pharaoh_round_trip_property(sure, extra, one):
    line = to_pharaoh(sure, one_indexed=one, possible=extra)
    s, p = parse_pharaoh(line, one_indexed=one)
    assert s == sure
    assert p == sure | extra
    assert len(line.split()) == len(sure | extra)


@pytest.mark.parametrize(
    "line, token",
    [
        ("0-1 x", "x"),
        ("0-1 1-", "1-"),
        ("1--2", "1--2"),
        ("a-b", "a-b"),
        ("1-2-3", "1-2-3"),
        ("-1-2", "-1-2"),
        ("1p2p3", "1p2p3"),
        ("1:2", "1:2"),
        ("1-2,", "1-2,"),
    ],
)
def test_malformed_pharaoh_names_token(line, token):
    with pytest.raises(ValueError, match="malformed") as err:
        parse_pharaoh(line)
    assert repr(token) in str(err.value)


def test_zero_index_in_one_indexed_line_raises():
    with pytest.raises(ValueError, match=r"'0-1'.*1-indexed"):
        parse_pharaoh("1-1 0-1", one_indexed=True)
    assert parse_pharaoh("1-1 0-1") == ({(1, 1), (0, 1)}, {(1, 1), (0, 1)})


def test_to_pharaoh_rejects_bad_links():
    with pytest.raises(ValueError, match="negative"):
        to_pharaoh({(-1, 0)})
    with pytest.raises(ValueError, match="integers"):
        to_pharaoh({(0.5, 1)})


def test_pharaoh_files_round_trip(tmp_path):
    sents = [{(0, 0), (1, 2)}, set(), {(3, 1)}]
    poss = [{(2, 2)}, {(0, 0)}, set()]
    path = tmp_path / "out.align"
    write_pharaoh_file(path, sents, one_indexed=True, possible=poss)
    assert path.read_text() == "1-1 2-3 3p3\n1p1\n4-2\n"
    back = read_pharaoh_file(path, one_indexed=True)
    assert [s for s, _ in back] == sents
    assert [p for _, p in back] == [s | q for s, q in zip(sents, poss)]
    # an empty last sentence survives the round trip
    write_pharaoh_file(path, [{(0, 0)}, set()])
    assert read_pharaoh_file(path) == [({(0, 0)}, {(0, 0)}), (set(), set())]
    assert not list(tmp_path.glob(".*tmp"))  # no temp file left behind
    with pytest.raises(ValueError, match="possible"):
        write_pharaoh_file(path, sents, possible=poss[:1])


def test_read_pharaoh_file_reports_line(tmp_path):
    path = tmp_path / "bad.align"
    path.write_text("0-0\n1-1 oops\n")
    with pytest.raises(ValueError, match=r"line 2: malformed Pharaoh token 'oops'"):
        read_pharaoh_file(path)

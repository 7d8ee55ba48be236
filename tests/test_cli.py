"""The ``optical`` command line: align, score, and one-line errors."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from optical_core.cli.entry import main
from optical_core.pharaoh import read_pharaoh_file

PAIRS = (
    "A dog runs along the beach . ||| A puppy is running on the sand .\n"
    "the cat sleeps ||| the cat sleeps\n"
)


def run(argv, stdin: str = "", monkeypatch=None, capsys=None):
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("method", ["ot", "argmax", "itermax"])
def test_align_writes_one_pharaoh_line_per_pair(method, monkeypatch, capsys):
    code, out, err = run(["-q", "align", "--method", method], PAIRS, monkeypatch, capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2
    # Identical sentences align on the diagonal with every method.
    assert set(lines[1].split()) == {"0-0", "1-1", "2-2"}
    # dog ↔ puppy (1-1) and beach ↔ sand (5-6) with an English model.
    assert {"1-1", "5-6"} <= set(lines[0].split())


def test_align_then_score_round_trip(tmp_path, monkeypatch, capsys):
    src = tmp_path / "pairs.txt"
    src.write_text(PAIRS, encoding="utf-8")
    pred = tmp_path / "pred.txt"
    code, _, err = run(["align", str(src), "-o", str(pred), "--quiet", "--one-indexed"],
                       "", monkeypatch, capsys)
    assert code == 0, err
    gold = tmp_path / "gold.txt"
    gold.write_text("1-1 2-2 3-4 6-7 7-8\n1-1 2-2 3-3\n")
    code, out, err = run(["score", "--gold", str(gold), "--pred", str(pred), "--one-indexed"],
                         "", monkeypatch, capsys)
    assert code == 0, err
    rows = dict(line.split("\t") for line in out.splitlines())
    assert float(rows["AER"]) < 40.0
    assert rows["sentences"] == "2"
    assert len(read_pharaoh_file(pred, one_indexed=True)) == 2


def test_score_hand_case(tmp_path, monkeypatch, capsys):
    gold = tmp_path / "g"
    gold.write_text("0-0 1p1\n")
    pred = tmp_path / "p"
    pred.write_text("0-0 1-0\n")
    code, out, _ = run(["score", "--gold", str(gold), "--pred", str(pred)], "", monkeypatch, capsys)
    # A = {0-0, 1-0}, S = {0-0}, P = {0-0, 1-1}: AER = 1 - (1 + 1) / (2 + 1) = 33.33.
    assert code == 0 and "AER\t33.33" in out


@pytest.mark.parametrize(
    "argv, stdin, message",
    [
        (["align"], "no separator here\n", "expected 'source ||| target'"),
        (["align"], " ||| x\n", "empty"),
        (["align"], "", "no 'source ||| target' lines"),
        (["align", "--model", "no/such-model"], "a ||| b\n", "unknown model"),
        (["align", "--epsilon", "0"], "a ||| b\n", "ε must be"),
        (["align", "/no/such/file"], "", "cannot read"),
        (["score", "--gold", "/no/g", "--pred", "/no/p"], "", "error:"),
    ],
)
def test_errors_are_one_line_and_nonzero(argv, stdin, message, monkeypatch, capsys):
    code, _, err = run(argv, stdin, monkeypatch, capsys)
    assert code != 0
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_score_line_count_mismatch(tmp_path, monkeypatch, capsys):
    (tmp_path / "g").write_text("0-0\n1-1\n")
    (tmp_path / "p").write_text("0-0\n")
    code, _, err = run(["score", "--gold", str(tmp_path / "g"), "--pred", str(tmp_path / "p")],
                       "", monkeypatch, capsys)
    assert code == 2 and "has 2 lines" in err


def test_console_script_is_installed_and_errors_cleanly():
    proc = subprocess.run([sys.executable, "-m", "optical_core.cli", "score", "--gold", "/nope",
                           "--pred", "/nope"], check=False, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("error:")


def test_data_dir_flag_does_not_outlive_the_command(tmp_path, monkeypatch, capsys):
    import os

    from optical_core.cli.entry import main

    monkeypatch.delenv("OPTICAL_DATA_DIR", raising=False)
    main(["--data-dir", str(tmp_path), "score", "--gold", str(tmp_path / "g"), "--pred", str(tmp_path / "p")])
    assert "OPTICAL_DATA_DIR" not in os.environ

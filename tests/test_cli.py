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
    main(["--data-dir", str(tmp_path), "score", "--gold", str(tmp_path / "g"),
          "--pred", str(tmp_path / "p")])
    assert "OPTICAL_DATA_DIR" not in os.environ


# ------------------------------------------------ scores that cannot be silently wrong


def _score(tmp_path, gold: str, pred: str, monkeypatch, capsys, *extra):
    (tmp_path / "g").write_text(gold, encoding="utf-8")
    (tmp_path / "p").write_text(pred, encoding="utf-8")
    return run(["score", "--gold", str(tmp_path / "g"), "--pred", str(tmp_path / "p"), *extra],
               "", monkeypatch, capsys)


def test_score_of_two_empty_files_is_an_error(tmp_path, monkeypatch, capsys):
    """It used to print AER 0 and P/R/F1 100 for 0 sentences."""
    code, out, err = _score(tmp_path, "", "", monkeypatch, capsys)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and "both empty" in err and len(err.splitlines()) == 1
    assert str(tmp_path / "g") in err and str(tmp_path / "p") in err


def test_score_against_a_gold_file_without_links_is_an_error(tmp_path, monkeypatch, capsys):
    code, out, err = _score(tmp_path, "\n\n", "0-0\n\n", monkeypatch, capsys)
    assert code == 2 and out == "" and "has no link on any of its 2 lines" in err


def test_score_warns_with_the_count_of_possible_links_in_the_prediction(tmp_path, monkeypatch,
                                                                       capsys):
    code, out, err = _score(tmp_path, "0-0 1-1\n0-0\n", "0-0 1p1 2p2\n0p0\n", monkeypatch, capsys)
    assert code == 0
    assert err.startswith("warning: ") and len(err.splitlines()) == 1
    assert "3 possible ('ipj') links on 2 of 2 lines" in err
    rows = dict(line.split("\t") for line in out.splitlines())
    assert rows["Recall"] == "33.33"  # only the sure 0-0 of line 1 is scored


def test_score_names_a_file_that_is_not_utf8(tmp_path, monkeypatch, capsys):
    (tmp_path / "p").write_bytes(b"0-0 \xff\xfe\n")
    (tmp_path / "g").write_text("0-0\n")
    code, _, err = run(["score", "--gold", str(tmp_path / "g"), "--pred", str(tmp_path / "p")],
                       "", monkeypatch, capsys)
    assert code == 2 and f"{tmp_path / 'p'} is not UTF-8 text" in err


def test_score_zero_index_in_a_one_indexed_file_says_what_to_do(tmp_path, monkeypatch, capsys):
    code, _, err = _score(tmp_path, "0-0\n", "0-0\n", monkeypatch, capsys, "--one-indexed")
    assert code == 2 and "drop --one-indexed" in err and str(tmp_path / "g") in err


# ------------------------------------------------ align keeps line N for line N


def test_align_keeps_a_blank_line_for_a_blank_input_line(tmp_path, monkeypatch, capsys):
    """A blank input line used to be skipped, so output line N no longer answered line N."""
    src = tmp_path / "pairs.txt"
    lines = PAIRS.splitlines()
    src.write_text(f"\n{lines[0]}\n\n{lines[1]}\n", encoding="utf-8")
    code, out, err = run(["-q", "align", str(src)], "", monkeypatch, capsys)
    assert code == 0
    got = out.split("\n")
    assert got[-1] == "" and len(got) == 5  # 4 lines, each ending in a newline
    assert got[0] == "" and got[2] == ""
    assert set(got[3].split()) == {"0-0", "1-1", "2-2"}
    assert err.startswith("warning: 2 blank input lines") and len(err.splitlines()) == 1


def test_align_names_an_input_that_is_not_utf8(tmp_path, monkeypatch, capsys):
    src = tmp_path / "latin1.txt"
    src.write_bytes("caf\xe9 ||| caf\xe9\n".encode("latin-1"))
    code, _, err = run(["-q", "align", str(src)], "", monkeypatch, capsys)
    assert code == 2 and f"{src} is not UTF-8 text" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("where", ["missing-folder", "a-folder"])
def test_align_refuses_an_output_it_cannot_write_before_loading(where, tmp_path, monkeypatch,
                                                               capsys):
    out = tmp_path / "no" / "out.txt" if where == "missing-folder" else tmp_path
    code, _, err = run(["-q", "align", "--model", "no/such-model", "-o", str(out)],
                       PAIRS, monkeypatch, capsys)
    assert code == 2 and str(out) in err and "unknown model" not in err
    assert ".tmp" not in err


def test_align_output_failure_leaves_no_temp_file_and_names_the_users_path(
        tmp_path, monkeypatch, capsys):
    import os

    out = tmp_path / "links.txt"
    out.write_text("keep me\n")

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    code, _, err = run(["-q", "align", "-o", str(out)], PAIRS, monkeypatch, capsys)
    assert code == 2
    assert f"cannot write --output {out}: No space left on device" in err
    assert ".tmp" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["links.txt"]
    assert out.read_text() == "keep me\n"


# ------------------------------------------------ one line, in the user's words


@pytest.mark.parametrize("exc, want", [
    (TypeError("'<' not supported between instances of 'str' and 'int'"), "internal error"),
    (ValueError("invalid literal for int() with base 10: 'x'"), "internal error"),
    (OverflowError("cannot convert float infinity to integer"), "internal error"),
    (ValueError("unknown direction 'x'; choose one of ('a', 'b')"), "unknown direction 'x'"),
    (FileNotFoundError(2, "No such file or directory", "/data/x.txt"),
     "cannot use /data/x.txt: No such file or directory"),
])
def test_describe_never_shows_pythons_own_wording(exc, want):
    from optical_core.cli.entry import describe

    line = describe(exc, "score")
    assert want in line
    assert "not supported between" not in line and "invalid literal" not in line
    assert "cannot convert float" not in line


def test_download_refuses_a_folder_of_the_users_files(tmp_path, monkeypatch, capsys):
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("mine")
    code, _, err = run(["download", "--dest", str(mine)], "", monkeypatch, capsys)
    assert code == 2 and f"--dest {mine} already holds files" in err
    assert [p.name for p in mine.iterdir()] == ["chapter1.tex"]
    code, _, err = run(["download", "--dest", str(mine / "chapter1.tex")], "", monkeypatch,
                       capsys)
    assert code == 2 and "is a file, not a folder" in err

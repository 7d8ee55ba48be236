"""Regression tests of an adversarial sweep of the command line: inputs that were not in the
catalogue (docs/RELIABILITY.md, *Bad inputs*) and that failed before their fix: an output
that is the input, a stream, a symlink or a read-only file; a byte-order mark; distill
messages in the words of Python's field names; a damaged run record on ``--resume``; a
dangling ``--out`` link; a results folder that is a file.

Every case runs in-process against the tiny random BERT (``tiny``), so nothing big loads.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from optical_core.cli.entry import main

PAIRS = "a dog runs ||| ein hund läuft\nthe cat ||| die katze\n"


def run(argv, capsys) -> tuple[int, str, str]:
    code = main(["-q", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "internal error" not in lines[0] and "Traceback" not in err
    return lines[0]


@pytest.fixture
def pairs(tmp_path) -> Path:
    path = tmp_path / "pairs.txt"
    path.write_text(PAIRS, encoding="utf-8")
    return path


# ------------------------------------------------------------------- align's output


def test_align_refuses_an_output_that_is_its_input(pairs, tiny, capsys):
    link = pairs.parent / "same.txt"
    link.symlink_to(pairs)
    for out in (pairs, link):
        code, _, err = run(["align", str(pairs), "--model", tiny, "-o", str(out)], capsys)
        assert code == 2
        assert f"--output {out} is the input file" in one_error(err)
    assert pairs.read_text(encoding="utf-8") == PAIRS


def test_align_refuses_a_read_only_output_file(pairs, tiny, capsys):
    out = pairs.parent / "kept.txt"
    out.write_text("keep me\n")
    out.chmod(0o444)
    code, _, err = run(["align", str(pairs), "--model", tiny, "-o", str(out)], capsys)
    assert code == 2
    assert f"--output {out} is read-only" in one_error(err)
    assert out.read_text() == "keep me\n"


def test_align_writes_through_a_symlink_and_keeps_it(pairs, tiny, capsys):
    target = pairs.parent / "users" / "links.txt"
    target.parent.mkdir()
    target.write_text("old\n")
    link = pairs.parent / "out.txt"
    link.symlink_to(target)
    code, _, err = run(["align", str(pairs), "--model", tiny, "-o", str(link)], capsys)
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert len(target.read_text().splitlines()) == 2
    assert sorted(p.name for p in target.parent.iterdir()) == ["links.txt"]


def test_align_writes_into_a_named_pipe_without_replacing_it(pairs, tiny, capsys):
    fifo = pairs.parent / "pipe"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    code, _, err = run(["align", str(pairs), "--model", tiny, "-o", str(fifo)], capsys)
    reader.join(timeout=30)
    assert code == 0, err
    assert fifo.is_fifo()  # a rename would have put a plain file in its place
    assert len(got[0].splitlines()) == 2
    assert sorted(p.name for p in pairs.parent.iterdir()) == ["pairs.txt", "pipe"]


def test_align_and_score_read_past_a_byte_order_mark(tmp_path, tiny, capsys):
    src = tmp_path / "bom.txt"
    src.write_text("\ufeff" + PAIRS, encoding="utf-8")
    code, out, err = run(["align", str(src), "--model", tiny], capsys)
    assert code == 0, err
    assert "\ufeff" not in out and len(out.splitlines()) == 2
    gold = tmp_path / "gold.txt"
    gold.write_text("\ufeff0-0 1-1\n0-0\n", encoding="utf-8")
    code, out, err = run(["score", "--gold", str(gold), "--pred", str(gold)], capsys)
    assert code == 0, err  # it was "malformed Pharaoh token '\ufeff0-0'"
    assert "AER\t0.00" in out


def test_a_killed_writers_temp_file_is_removed_by_the_rerun(pairs, tiny, capsys):
    out = pairs.parent / "links.txt"
    out.write_text("old\n")
    stale = pairs.parent / f".links.txt.999999999@{socket.gethostname()}-x1.tmp"
    stale.write_text("half a fi")
    code, _, err = run(["align", str(pairs), "--model", tiny, "-o", str(out)], capsys)
    assert code == 0, err
    assert not stale.exists()
    assert sorted(p.name for p in pairs.parent.iterdir()) == ["links.txt", "pairs.txt"]


# ------------------------------------------------------------- evaluate --run-file


def _ranking():
    from optical_core.retrieval.scorers import Ranking

    order = np.array([[1, 0], [0, 1]])
    return Ranking("dense", ["q0", "q1"], order, np.array([[0.9, 0.1], [0.8, 0.2]]))


def test_write_run_goes_through_safe_write(tmp_path, monkeypatch):
    from optical_core.retrieval.evaluate import write_run
    from optical_core.safe_write import OutputError

    corpus = SimpleNamespace(doc_ids=["d0", "d1"])
    path = tmp_path / "run.trec"
    path.write_text("old run\n")
    stale = tmp_path / f".run.trec.999999999@{socket.gethostname()}-x1.tmp"
    stale.write_text("half")

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(os, "replace", full_disk)
        with pytest.raises(OutputError, match=f"cannot write --run-file {path}: No space"):
            write_run(_ranking(), corpus, path, what="--run-file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.trec"]  # stale one gone too
    assert path.read_text() == "old run\n"
    write_run(_ranking(), corpus, path)
    assert path.read_text().splitlines()[0] == "q0 Q0 d1 1 0.900000 optical"
    with pytest.raises(OutputError, match="is a folder"):
        write_run(_ranking(), corpus, tmp_path)


def test_evaluate_writes_a_run_into_a_pipe_and_no_clean_file_beside_it(tmp_path, tiny, capsys,
                                                                       cache_root):
    """``--run-file`` a stream: the noisy run goes into it, and the clean run (written
    beside a file as ``X.clean``) is left out: beside ``/dev/null`` it would be
    ``/dev/null.clean``, a file in the system's device folder."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    code, _, err = run(["evaluate", "--demo", "--model", tiny, "--noise", "random_char",
                        "--cer", "0.2", "--bootstrap", "100", "--run-file", str(fifo)], capsys)
    reader.join(timeout=30)
    assert code == 0, err
    assert fifo.is_fifo() and sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]
    assert got and got[0].splitlines()[0].split()[1] == "Q0"


# ------------------------------------------------------------------------ distill

DISTILL = ["distill", "--demo-data", "--no-eval", "--max-steps", "1"]


@pytest.mark.parametrize("flags, words", [
    (["--epochs", "nan"], "--epochs must be > 0 and finite, got nan"),
    (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["--max-tokens", "4"], "--max-tokens must lie in [8, 512], got 4"),
    (["--noise-p", "2"], "--noise-p must lie in [0, 1], got 2.0"),
    (["--noise-kind", "bogus"], "--noise-kind: unknown noise kind 'bogus'"),
    (["--consistency-weight", "1"], "they need --noise-p > 0 or --subword-dropout > 0"),
    (["--epsilon", "-1"], "--epsilon must be > 0 and finite"),
], ids=["epochs-nan", "batch-size-0", "max-tokens-4", "noise-p-2", "noise-kind-bogus",
        "consistency-without-noise", "epsilon-negative"])
def test_distill_names_the_flag_as_typed(tmp_path, flags, words, capsys):
    code, _, err = run([*DISTILL, *flags, "--out", str(tmp_path / "r")], capsys)
    assert code == 2
    assert words in one_error(err)
    assert not (tmp_path / "r").exists()


def test_distill_refuses_an_empty_out(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run([*DISTILL, "--out", ""], capsys)
    assert code == 2
    assert "--out is empty" in one_error(err)
    assert list(tmp_path.iterdir()) == []


def test_distill_refuses_a_dangling_out_link(tmp_path, capsys):
    link = tmp_path / "r"
    link.symlink_to(tmp_path / "nowhere" / "deep")
    code, _, err = run([*DISTILL, "--out", str(link)], capsys)
    assert code == 2
    assert f"--out {link} is a link to" in one_error(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


@pytest.mark.parametrize("config, words", [
    ([1, 2], "its config is not a table of options"),
    ({"epochs": "x"}, "epochs must be a number, got 'x'"),
    ({"lang": 5}, "lang must be a string, got 5"),
], ids=["config-a-list", "epochs-a-string", "lang-a-number"])
def test_resume_of_a_damaged_record_names_it(tmp_path, config, words, capsys):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    record = json.dumps({"status": "cancelled", "config": config})
    (run_dir / "run.json").write_text(record)
    code, _, err = run([*DISTILL, "--resume", "--out", str(run_dir)], capsys)
    assert code == 2
    line = one_error(err)
    assert str(run_dir / "run.json") in line and words in line
    assert sorted(p.name for p in run_dir.iterdir()) == ["run.json"]
    assert (run_dir / "run.json").read_text() == record


# --------------------------------------------------------------------- experiment


@pytest.mark.parametrize("option", ["--results-dir", "--runs-dir"])
def test_experiment_refuses_a_folder_option_that_is_a_file(tmp_path, option, capsys):
    cfg = tmp_path / "g.toml"
    cfg.write_text("[grid]\nmethods = ['none']\nlangs = ['de']\n")
    afile = tmp_path / "afile"
    afile.write_text("mine\n")
    code, _, err = run(["experiment", "--config", str(cfg), option, str(afile),
                        "--list-cells"], capsys)
    assert code == 2
    assert f"{option} {afile} is a file, not a folder" in one_error(err)
    assert afile.read_text() == "mine\n"


def test_experiment_names_the_file_and_key_of_a_wrong_type(tmp_path, capsys):
    cfg = tmp_path / "g.toml"
    cfg.write_text("[grid]\nmethods = ['none']\nlangs = ['de']\nn_boot = '1000'\n")
    code, _, err = run(["experiment", "--config", str(cfg), "--dry-run",
                        "--results-dir", str(tmp_path / "res")], capsys)
    assert code == 2
    assert "g.toml: n_boot must be an integer in [100, 100,000], got '1000'" in one_error(err)
    assert not (tmp_path / "res").exists()


def test_experiment_names_the_name_option(tmp_path, capsys):
    cfg = tmp_path / "g.toml"
    cfg.write_text("[grid]\nmethods = ['none']\nlangs = ['de']\n")
    code, _, err = run(["experiment", "--config", str(cfg), "--name", "a/b", "--dry-run",
                        "--results-dir", str(tmp_path / "res")], capsys)
    assert code == 2
    assert one_error(err).startswith("error: --name: invalid run name 'a/b'")


@pytest.mark.parametrize("flag", ["--student", "--teacher"])
def test_distill_names_the_model_flag_of_a_model_that_does_not_load(tmp_path, tiny, flag,
                                                                    capsys):
    afile = tmp_path / "afile"
    afile.write_text("not a model\n")
    models = {"--teacher": tiny, "--student": tiny, flag: str(afile)}
    code, _, err = run([*DISTILL, *(x for kv in models.items() for x in kv),
                        "--out", str(tmp_path / "r")], capsys)
    assert code == 2
    assert one_error(err).startswith(f"error: {flag}: '{afile}' is a file")
    assert afile.read_text() == "not a model\n"

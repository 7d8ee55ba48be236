"""The run folder's safety (``optical distill --out``): a folder that is not a run is never
taken over, every option is checked before the first write, and a run that failed is
recorded and started again by the corrected command (or with ``--restart``). A tiny random
teacher (the ``tiny`` fixture) on the packaged demo pairs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _distill_models import make_tiny_model

from optical_core.cli.common import EXIT_ERROR
from optical_core.cli.entry import main


def _args(tiny: str, out, *extra: str) -> list[str]:
    """Two steps of a tiny model on the demo pairs, writing the run to ``out``."""
    return ["distill", "--demo-data", "--teacher", tiny, "--pairs", "16", "--batch-size", "8",
            "--max-steps", "2", "--max-tokens", "32", "--no-eval", *extra, "--out", str(out)]


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b""
            for p in sorted(folder.rglob("*"))}


def _one_line_error(capsys) -> str:
    """The error line of the last command (after any model-loading progress bars)."""
    err = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert err.startswith("error: "), err
    return err


def test_out_onto_a_folder_that_is_not_a_run_is_refused_and_left_alone(
        tiny, tmp_path, capsys, monkeypatch):
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("my work", encoding="utf-8")
    (mine / "checkpoints").mkdir()  # even a folder named like a run's
    before = _tree(mine)
    assert main(_args(tiny, mine)) == EXIT_ERROR
    err = _one_line_error(capsys)
    assert str(mine) in err and "run.json" in err
    assert _tree(mine) == before
    # --out "" is the current folder: the same refusal, nothing written there
    monkeypatch.chdir(mine)
    assert main(_args(tiny, "")) == EXIT_ERROR
    assert str(mine) in _one_line_error(capsys)
    assert _tree(mine) == before


@pytest.mark.parametrize("flags, option", [
    (["--seed", "-1"], "--seed"),  # named by the flag as typed, not the field
    (["--epochs", "inf"], "--epochs"),
    (["--max-steps", "-1"], "--max-steps"),
    (["--eval-limit", "-3"], "--eval-limit"),
    (["--noise-kind", "smudge"], "--noise-kind"),  # checked even with --noise-p 0
    (["--sinkhorn-iters", "0"], "--sinkhorn-iters"),
])
def test_a_bad_option_is_refused_before_the_first_write(tiny, tmp_path, capsys, flags, option):
    out = tmp_path / "run"
    assert main(_args(tiny, out, *flags)) == EXIT_ERROR
    err = _one_line_error(capsys)
    assert option in err and "Traceback" not in err
    assert not out.exists()


def test_a_student_of_another_width_is_refused_before_the_first_write(tiny, tmp_path, capsys):
    wide = make_tiny_model(tmp_path / "wide", hidden=48)
    capsys.readouterr()
    out = tmp_path / "run"
    assert main(_args(tiny, out, "--student", wide)) == EXIT_ERROR
    err = _one_line_error(capsys)
    assert "--student" in err and "width 48" in err and "width 32" in err
    assert not out.exists()


def _broken_gold_folder(root: Path) -> Path:
    """A data folder whose en-fr gold file does not parse: ``--track-aer`` fails at the
    first evaluation, after the run folder was written."""
    gold = root / "gold_alignments"
    gold.mkdir(parents=True)
    (gold / "enfr.src-tgt").write_text("a b ||| c d\n", encoding="utf-8")
    (gold / "enfr.gold").write_text("1-1 this-is-not-a-link\n", encoding="utf-8")
    return root


def test_a_failed_run_is_recorded_and_the_corrected_command_starts_it_again(
        tiny, tmp_path, capsys):
    out = tmp_path / "run"
    bad = _broken_gold_folder(tmp_path / "bad-data")
    failing = _args(tiny, out, "--track-aer", "--eval-limit", "4", "--data-dir", str(bad))
    failing.remove("--no-eval")
    assert main(failing) == EXIT_ERROR
    _one_line_error(capsys)
    rec = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert rec["status"] == "failed" and rec["error"] and not rec.get("step")
    (out / "notes.txt").write_text("beside the run", encoding="utf-8")  # the user's file
    # the corrected command (no --track-aer) starts it again: no step had finished
    assert main(_args(tiny, out)) == 0, capsys.readouterr().err
    rec = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert rec["status"] == "finished" and rec["error"] is None and rec["step"] == 2
    assert not rec["config"]["track_aer"]
    # a run that trained is never replaced by accident; --restart says so explicitly
    capsys.readouterr()
    assert main(_args(tiny, out)) == EXIT_ERROR
    assert "--restart" in _one_line_error(capsys)
    assert main(_args(tiny, out, "--restart", "--seed", "7")) == 0
    rec = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert rec["status"] == "finished" and rec["config"]["seed"] == 7
    assert (out / "notes.txt").read_text(encoding="utf-8") == "beside the run"

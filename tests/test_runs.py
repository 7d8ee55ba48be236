"""optical_core.runs: run folders (names confined to the runs folder, listing with
interrupted and damaged runs, atomic writes)."""

from __future__ import annotations

import json
import time

import pytest

from optical_core import runs


def test_run_names_stay_inside_the_runs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTICAL_RUNS_DIR", str(tmp_path))
    assert runs.run_path("de-ot_1") == tmp_path.resolve() / "de-ot_1"
    for bad in ["", "..", "../x", "a/b", "/etc", ".hidden", "a" * 81, "x\x00"]:
        with pytest.raises(runs.RunError):
            runs.run_path(bad)
    runs.write_json_atomic(tmp_path / "a" / "run.json", {"status": "running", "config": {},
                                                          "updated_ts": time.time() - 10_000})
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "run.json").write_text("{oops")
    listed = {r.name: r for r in runs.list_runs()}
    assert listed["a"].status == "interrupted"
    assert listed["b"].status == "damaged" and listed["b"].problems
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_run_teacher_reads_new_and_old_records(tmp_path):
    new = tmp_path / "new"
    runs.write_json_atomic(new / "run.json", {"status": "finished", "teacher": "/models/t",
                                              "config": {"teacher": "/models/t"}})
    assert runs.is_run_folder(new) and runs.run_teacher(new) == "/models/t"
    old = tmp_path / "old"  # written before the top-level field: None was the MiniLM
    runs.write_json_atomic(old / "run.json", {"status": "finished", "config": {"teacher": None}})
    assert runs.run_teacher(old) == "default"
    runs.write_json_atomic(old / "run.json", {"status": "finished", "config": {"teacher": "x/y"}})
    assert runs.run_teacher(old) == "x/y"


def test_run_teacher_says_what_is_missing(tmp_path):
    (tmp_path / "plain-model").mkdir()
    assert not runs.is_run_folder(tmp_path / "plain-model")
    with pytest.raises(runs.RunError, match="not a distillation run folder"):
        runs.run_teacher(tmp_path / "plain-model")
    with pytest.raises(runs.RunError, match="not a distillation run folder"):
        runs.run_teacher("default")
    runs.write_json_atomic(tmp_path / "bare" / "run.json", {"status": "finished", "config": {}})
    with pytest.raises(runs.RunError, match="records no teacher"):
        runs.run_teacher(tmp_path / "bare")
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "run.json").write_text('{"teacher": "x')
    with pytest.raises(runs.RunError, match="damaged"):
        runs.run_teacher(tmp_path / "cut")


def test_a_run_folder_is_claimed_only_when_nothing_of_the_user_is_at_stake(tmp_path):
    from optical_core.runs import RunError, claim_run_folder, clear_run

    assert claim_run_folder(tmp_path / "new") is None  # does not exist yet
    (tmp_path / "empty").mkdir()
    assert claim_run_folder(tmp_path / "empty") is None
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("x", encoding="utf-8")
    with pytest.raises(RunError, match=r"holds files but no run\.json"):
        claim_run_folder(mine)
    with pytest.raises(RunError, match="holds files but no run.json"):
        claim_run_folder(mine, restart=True)  # --restart restarts runs, not folders
    (mine / "run.json").write_text(json.dumps({"status": "failed", "error": "x"}))
    assert claim_run_folder(mine)["status"] == "failed"  # failed before its first step
    (mine / "run.json").write_text(json.dumps({"status": "failed", "step": 3}))
    with pytest.raises(RunError, match="--restart"):
        claim_run_folder(mine)  # it trained: only on purpose
    assert claim_run_folder(mine, restart=True)["step"] == 3
    (mine / "checkpoints" / "checkpoint-3").mkdir(parents=True)
    (mine / "probe.json").write_text("{}")
    with pytest.raises(RunError, match="--restart"):
        (mine / "run.json").write_text(json.dumps({"status": "failed"}))
        claim_run_folder(mine)  # no step recorded, but a checkpoint was written
    clear_run(mine)
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]

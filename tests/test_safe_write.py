"""optical_core.safe_write: atomic writes that leave nothing behind and name the user's path,
and output folders that are never someone else's."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from optical_core.safe_write import (
    OUTPUT_MARKER,
    OutputError,
    claim_output_folder,
    remove_stale,
    remove_stale_temps,
    temp_tag,
    write_text_atomic,
)


def test_write_replaces_the_file_whole(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old\n")
    write_text_atomic(path, "new\n")
    assert path.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_failed_write_removes_its_temp_file_and_names_the_users_path(tmp_path, monkeypatch):
    path = tmp_path / "out.txt"
    path.write_text("old\n")

    def fail(*a, **k):
        raise PermissionError(13, "Permission denied", str(tmp_path / ".out.txt.123-x.tmp"))

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OutputError) as err:
        write_text_atomic(path, "new\n", what="--output")
    assert str(err.value).startswith(f"cannot write --output {path}: Permission denied")
    assert ".tmp" not in str(err.value)
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    assert path.read_text() == "old\n"


def test_ctrl_c_during_a_write_removes_the_temp_file(tmp_path, monkeypatch):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_text_atomic(tmp_path / "out.txt", "x")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["folder", "missing"])
def test_a_folder_or_a_missing_folder_is_refused(where, tmp_path):
    path = tmp_path if where == "folder" else tmp_path / "no" / "out.txt"
    with pytest.raises(OutputError, match="is a folder" if where == "folder" else "does not exist"):
        write_text_atomic(path, "x")


def test_a_killed_writers_temp_file_is_removed_by_the_next_write(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          check=True, capture_output=True, text=True)
    pid = int(dead.stdout)  # that process has exited
    host = socket.gethostname()
    stale = tmp_path / f".out.txt.{pid}@{host}-abc.tmp"
    stale.write_text("half")
    alive = tmp_path / f".out.txt.{os.getppid()}@{host}-def.tmp"  # a running writer's file
    alive.write_text("busy")
    elsewhere = tmp_path / f".out.txt.{pid}@another-machine-abc.tmp"  # not ours to judge
    elsewhere.write_text("busy")
    other = tmp_path / f".notes.txt.{pid}@{host}-abc.tmp"  # another target's
    other.write_text("x")
    write_text_atomic(tmp_path / "out.txt", "whole\n")
    assert not stale.exists() and alive.exists() and elsewhere.exists() and other.exists()
    assert remove_stale_temps(tmp_path / "notes.txt") == 1


def test_a_killed_writers_temp_folder_is_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          check=True, capture_output=True, text=True)
    stale = tmp_path / f".tmp-sentence-{int(dead.stdout)}@{socket.gethostname()}-x1"
    (stale / "sub").mkdir(parents=True)
    (stale / "sub" / "a.npy").write_bytes(b"half")
    mine = tmp_path / f".tmp-sentence-{temp_tag()}y2"  # this process: alive
    mine.mkdir()
    old_style = tmp_path / ".tmp-sentence-12ab_x9z"  # no pid: never guessed at
    old_style.mkdir()
    assert remove_stale(tmp_path, ".tmp-sentence-") == 1
    assert not stale.exists() and mine.exists() and old_style.exists()


def test_claim_output_folder(tmp_path):
    new = claim_output_folder(tmp_path / "a" / "b")
    assert (new / OUTPUT_MARKER).is_file()
    (new / "result.txt").write_text("x")
    assert claim_output_folder(new) == new  # ours: may be written again
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (claim_output_folder(empty) / OUTPUT_MARKER).is_file()
    users = tmp_path / "users"
    users.mkdir()
    (users / "thesis.tex").write_text("mine")
    with pytest.raises(OutputError, match=f"--dest {users} already holds files"):
        claim_output_folder(users, what="--dest")
    assert sorted(p.name for p in users.iterdir()) == ["thesis.tex"]
    with pytest.raises(OutputError, match="is a file"):
        claim_output_folder(users / "thesis.tex")

"""Crash safety of distillation runs: SIGKILL while a checkpoint is being written.

A real training process (``python -m optical_core.cli distill``, tiny random BERT, packaged
demo pairs, a checkpoint every 2 steps) is killed with SIGKILL in the middle of writing its
second checkpoint. The ``OPTICAL_TEST_SLOW_SAVE`` hook of :mod:`optical_core.distill` pauses
every checkpoint write after the model files and before the optimizer state and
``trainer_state.json``, so the kill lands inside the write every time, not by luck of timing.

Then: the half-written checkpoint is recognised as incomplete, the previous one validates
and loads, and ``run_distillation(..., resume=True)`` passes over the incomplete folder
(with a note), continues from the previous checkpoint and finishes with a higher step.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _distill_models import make_tiny_model

from optical_core import runs
from optical_core.distill.checkpoints import checkpoint_dirs, last_checkpoint, validate_checkpoint
from optical_core.distill.config import ENV_SLOW_SAVE, CheckpointError, DistillConfig
from optical_core.distill.train import run_distillation

REPO = Path(__file__).resolve().parents[1]
MAX_STEPS = 8
SAVE_STEPS = 2
PAUSE_S = 5.0  # the hook's pause: the window in which the test must see the half-written folder


def _wait_for(predicate, what: str, proc: subprocess.Popen, log: Path, timeout: float = 240.0):
    """Poll ``predicate`` every 20 ms until it is true; fail if the trainer exits first."""
    end = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            pytest.fail(f"the trainer exited ({proc.returncode}) before {what}:\n"
                        f"{log.read_text()[-3000:]}")
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.02)


def _complete(cp: Path) -> bool:
    return (cp / "trainer_state.json").is_file()


def test_sigkill_during_checkpoint_write_then_resume(tmp_path):
    tiny = make_tiny_model(tmp_path / "tiny", seed=0)
    run_dir = tmp_path / "run"
    ckpts = run_dir / "checkpoints"
    first, second = ckpts / f"checkpoint-{SAVE_STEPS}", ckpts / f"checkpoint-{2 * SAVE_STEPS}"
    log = tmp_path / "train.log"
    cmd = [sys.executable, "-m", "optical_core.cli", "distill", "--demo-data", "--teacher", tiny,
           "--lang", "de", "--pairs", "48", "--batch-size", "8", "--max-tokens", "32",
           "--lr", "1e-3", "--max-steps", str(MAX_STEPS), "--save-steps", str(SAVE_STEPS),
           "--no-eval", "--out", str(run_dir)]
    env = dict(os.environ, **{ENV_SLOW_SAVE: str(PAUSE_S)})
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for(lambda: _complete(first), "the first checkpoint", proc, log)
        # The second checkpoint's model is on disk, its optimizer and trainer state are not
        # yet: the process sits in the middle of the write.
        _wait_for(lambda: (second / "model.safetensors").is_file(), "the second checkpoint's model",
                  proc, log)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    assert not _complete(second) and not (second / "optimizer.pt").exists(), \
        "the kill did not land inside the checkpoint write"

    # What a crash leaves: a run still marked running, one complete and one cut-short checkpoint.
    record = runs.read_record(run_dir)
    assert record["status"] == "running"
    assert checkpoint_dirs(run_dir) == [first, second]
    with pytest.raises(CheckpointError, match="trainer_state.json is missing"):
        validate_checkpoint(second)
    skipped: list[Path] = []
    assert last_checkpoint(run_dir, skipped) == first
    assert skipped == [second]
    validate_checkpoint(first)
    state = json.loads((first / "trainer_state.json").read_text())
    assert state["global_step"] == SAVE_STEPS

    from sentence_transformers import SentenceTransformer

    emb = SentenceTransformer(str(first), device="cpu").encode(["Ein Hund läuft am Strand."])
    assert emb.shape == (1, 32)

    # Resume: the incomplete folder is set aside with a note; training goes on from step 2.
    events: list[dict] = []
    res = run_distillation(DistillConfig(), run_dir, resume=True, progress=events.append)
    assert res.status == "finished" and res.steps == MAX_STEPS > SAVE_STEPS
    rec = runs.load_run(run_dir).record
    assert rec["resumed_from"] == first.name
    assert second.name in rec["resume_note"] and "incomplete" in rec["resume_note"]
    started = next(e for e in events if e["kind"] == "status" and e["status"] == "running")
    assert started["resume_note"] == rec["resume_note"]
    steps = [e["step"] for e in events if e["kind"] == "step"]
    assert steps[0] == SAVE_STEPS + 1 and steps[-1] == MAX_STEPS
    # losses logged by the killed process after its last checkpoint are replaced, not doubled
    assert [s for s, _ in rec["losses"]] == list(range(1, MAX_STEPS + 1))
    aside = [p.name for p in ckpts.iterdir() if p.name.startswith(f"incomplete-{second.name}")]
    assert len(aside) == 1
    final = last_checkpoint(run_dir)
    assert final is not None and final.name == f"checkpoint-{MAX_STEPS}"
    validate_checkpoint(final)
    info = runs.load_run(run_dir)
    assert info.status == "finished" and info.loadable
    SentenceTransformer(str(info.model_path), device="cpu").encode(["ein Hund"])


def test_resume_with_only_an_incomplete_checkpoint_starts_again(tmp_path):
    """A crash during the *first* checkpoint write leaves nothing to resume from: the resume
    says so and trains from step 0, with a loss history that is not doubled."""
    import threading

    tiny = make_tiny_model(tmp_path / "tiny", seed=0)
    run_dir = tmp_path / "run"
    cfg = DistillConfig(lang="de", pairs=24, batch_size=8, lr=1e-3, teacher=tiny, data="demo",
                        max_tokens=32, probe_every=2, save_steps=1000, max_steps=6,
                        evaluate=False)
    cancel = threading.Event()
    run_distillation(cfg, run_dir, cancel=cancel,
                     progress=lambda ev: ev["kind"] == "step" and ev["step"] == 2 and cancel.set())
    only = run_dir / "checkpoints" / "checkpoint-2"
    (only / "trainer_state.json").unlink()  # what a kill before the last file leaves
    assert last_checkpoint(run_dir) is None

    res = run_distillation(DistillConfig(), run_dir, resume=True)
    assert res.status == "finished" and res.steps == 6
    rec = runs.load_run(run_dir).record
    assert rec["resumed_from"] is None and "from step 0" in rec["resume_note"]
    assert [s for s, _ in rec["losses"]] == list(range(1, 7))
    probe = runs.read_probe(run_dir)
    assert [s["step"] for s in probe["snapshots"]] == [0, 2, 4, 6]

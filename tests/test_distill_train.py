"""optical_core.distill.train: whole distillation runs (loss falls, evaluation and AER
tracking, cancel and resume, damaged checkpoints, clear errors, two-rank DDP).

Almost everything uses a tiny random BERT (2 layers, width 32, MiniLM tokenizer; the
``tiny`` and ``tiny_other`` fixtures in conftest.py) and the packaged demo pairs, so no
Multi30k copy is needed and a full run takes seconds. The DDP test starts two gloo
processes with torchrun.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from _distill_models import write_gold_subset
from _helpers import REPO, distill_cfg

from optical_core import runs
from optical_core.distill.checkpoints import validate_checkpoint
from optical_core.distill.config import CheckpointError, DistillConfig, DistillError
from optical_core.distill.train import run_distillation

# ----------------------------------------------------------------------- training runs


def test_ot_loss_decreases_over_30_steps(tiny, tiny_other, tmp_path):
    events = []
    cfg = distill_cfg(tiny, student=tiny_other, max_steps=30, evaluate=False, probe_every=10,
                      lr=2e-3)
    res = run_distillation(cfg, tmp_path / "r", progress=events.append)
    assert res.status == "finished" and res.steps == 30
    losses = [e["loss"] for e in events if e["kind"] == "loss"]
    assert len(losses) == 30
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])
    rec = runs.load_run(tmp_path / "r")
    assert rec.status == "finished" and rec.loadable and not rec.problems
    assert rec.record["data"]["train_pairs"] == 48 and rec.record["seed"] == 42
    assert "torch" in rec.record["versions"]
    probe = runs.read_probe(tmp_path / "r")
    assert [s["step"] for s in probe["snapshots"]] == [0, 10, 20, 30]
    assert probe["src_tokens"][:2] == ["ein", "hu"]
    plan = np.array(probe["snapshots"][-1]["plan"])
    assert plan.shape == (len(probe["src_tokens"]), len(probe["en_tokens"]))
    assert plan.sum() == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("loss", ["mse", "ot+mse"])
def test_mse_and_combined_runs_finish_with_eval(tiny, tmp_path, loss):
    res = run_distillation(distill_cfg(tiny, loss=loss, max_steps=4, probe_every=0),
                           tmp_path / loss)
    assert res.status == "finished"
    rec = runs.load_run(tmp_path / loss)
    assert [e["step"] for e in rec.evals] == [0, 4]
    mrr = next(v for k, v in rec.last_metrics.items() if k.endswith("mrr@10"))
    assert 0 <= mrr <= 1
    from optical_core.encoders.registry import load_encoder

    enc = load_encoder(str(rec.model_path))
    assert enc.sentence_embeddings(["ein Hund"]).shape == (1, 32)


@pytest.fixture
def gold_subset(tmp_path) -> Path:
    folder = write_gold_subset(tmp_path / "gold-data")
    if folder is None:
        pytest.skip("the en-fr gold alignments are not in the data folder")
    return folder


def test_aer_is_tracked_at_every_evaluation_and_skipped_without_gold(tiny, tmp_path, gold_subset):
    events = []
    cfg = distill_cfg(tiny, max_steps=4, eval_steps=2, eval_limit=8, probe_every=0, track_aer=True,
               data_dir=str(gold_subset), ot_solver="unbalanced", ot_tau=0.5)
    res = run_distillation(cfg, tmp_path / "aer", progress=events.append)
    assert res.status == "finished"
    evals = runs.load_run(tmp_path / "aer").evals
    assert [e["step"] for e in evals] == [0, 2, 4]
    aers = [e["metrics"]["aer_enfr"] for e in evals]
    assert all(0.0 <= a <= 100.0 for a in aers)
    # the page sees the same values live, through the progress events
    assert [e["metrics"]["aer_enfr"] for e in events if e["kind"] == "eval"] == aers
    assert runs.load_run(tmp_path / "aer").config["ot_tau"] == 0.5

    empty = tmp_path / "no-gold"
    empty.mkdir()
    cfg = distill_cfg(tiny, max_steps=2, eval_limit=8, probe_every=0, track_aer=True,
               data_dir=str(empty))
    res = run_distillation(cfg, tmp_path / "no-aer")
    assert res.status == "finished"
    evals = runs.load_run(tmp_path / "no-aer").evals
    assert len(evals) == 2 and not any("aer_enfr" in e["metrics"] for e in evals)


def test_cancel_stops_within_one_step_and_resume_finishes(tiny, tmp_path):
    cancel = threading.Event()
    seen = []

    def progress(ev):
        if ev["kind"] == "step":
            seen.append(ev["step"])
            if ev["step"] == 3:
                cancel.set()

    run_dir = tmp_path / "run"
    res = run_distillation(distill_cfg(tiny, max_steps=12, evaluate=False), run_dir,
                           progress=progress, cancel=cancel)
    assert res.status == "cancelled" and res.steps == 3 and seen[-1] == 3
    cp = run_dir / "checkpoints" / "checkpoint-3"
    validate_checkpoint(cp)
    info = runs.load_run(run_dir)
    assert info.status == "cancelled" and info.loadable
    from sentence_transformers import SentenceTransformer

    SentenceTransformer(str(cp), device="cpu").encode(["ein Hund"])
    SentenceTransformer(str(info.model_path), device="cpu").encode(["ein Hund"])

    with pytest.raises(DistillError, match="already holds a run"):
        run_distillation(distill_cfg(tiny, max_steps=12, evaluate=False), run_dir)

    res2 = run_distillation(distill_cfg(tiny, max_steps=12, evaluate=False), run_dir, resume=True)
    assert res2.status == "finished" and res2.steps == 12
    rec = runs.load_run(run_dir).record
    assert rec["resumed_from"] == "checkpoint-3"
    assert [s for s, _ in rec["losses"]] == list(range(1, 13))


def test_damaged_checkpoint_gives_a_clear_error(tiny, tmp_path):
    cancel = threading.Event()
    run_dir = tmp_path / "run"
    run_distillation(distill_cfg(tiny, max_steps=10, evaluate=False), run_dir, cancel=cancel,
                     progress=lambda ev: ev["kind"] == "step" and ev["step"] == 2 and cancel.set())
    cp = run_dir / "checkpoints" / "checkpoint-2"
    (cp / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError) as err:
        run_distillation(distill_cfg(tiny), run_dir, resume=True)
    msg = str(err.value)
    assert "checkpoint-2" in msg and "damaged" in msg and "model.safetensors" in msg
    assert "Delete the folder" in msg
    (cp / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no .safetensors"):
        validate_checkpoint(cp)
    cp2 = tmp_path / "cp"
    cp2.mkdir()
    (cp2 / "trainer_state.json").write_text("{broken")
    with pytest.raises(CheckpointError, match="trainer_state.json"):
        validate_checkpoint(cp2)


def test_resume_without_a_run_is_refused(tmp_path):
    with pytest.raises(DistillError, match="cannot resume"):
        run_distillation(DistillConfig(), tmp_path / "nothing", resume=True)


def test_missing_teacher_is_a_clear_error(tmp_path):
    with pytest.raises(DistillError, match="does not exist"):
        run_distillation(DistillConfig(teacher=str(tmp_path / "nope"), data="demo"), tmp_path / "r")


# --------------------------------------------------------------------------------- DDP


def test_ddp_two_ranks_end_with_identical_weights(tiny, tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(textwrap.dedent("""
        import hashlib, os, sys
        import torch
        from optical_core.distill import train as distill
        from optical_core.distill.config import DistillConfig
        from optical_core.distill.train import run_distillation

        teacher, out = sys.argv[1], sys.argv[2]
        captured = {}
        orig = distill.build_loss
        def build_loss(cfg, student, teacher_model, *rest):
            captured["student"] = student
            return orig(cfg, student, teacher_model, *rest)
        distill.build_loss = build_loss
        cfg = DistillConfig(lang="de", pairs=16, loss="ot+mse", batch_size=4, lr=1e-3,
                            teacher=teacher, data="demo", max_tokens=32, max_steps=3,
                            evaluate=False, probe_every=0, save_steps=1000)
        res = run_distillation(cfg, out + "/run")
        h = hashlib.sha256()
        for k, v in sorted(captured["student"].state_dict().items()):
            h.update(k.encode()); h.update(v.detach().cpu().numpy().tobytes())
        rank = os.environ["RANK"]
        with open(f"{out}/rank{rank}.txt", "w") as f:
            f.write(f"{h.hexdigest()} {res.steps}")
    """))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    r = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(script), tiny, str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300, env=env,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    h0 = (tmp_path / "rank0.txt").read_text().split()
    h1 = (tmp_path / "rank1.txt").read_text().split()
    assert h0 == h1 and h0[1] == "3"
    rec = runs.load_run(tmp_path / "run").record
    assert rec["world_size"] == 2 and rec["status"] == "finished"
    # the student moved: its weights differ from the teacher's
    from safetensors.torch import load_file

    before = load_file(str(Path(tiny) / "model.safetensors"))
    after = load_file(str(tmp_path / "run" / "model" / "model.safetensors"))
    assert any(not torch.equal(before[k], after[k]) for k in before if k in after)

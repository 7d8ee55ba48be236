"""Tests of optical_core.distill, optical_core.runs, optical_core.jobs and `optical distill`.

Almost everything uses a tiny random BERT (2 layers, width 32, MiniLM tokenizer) and the
packaged demo pairs, so no Multi30k copy is needed and a full run takes seconds. One test
loads the real embedded MiniLM. The DDP test starts two gloo processes with torchrun.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from _distill_models import make_tiny_model, write_gold_subset
from optical_core import distill, jobs, runs
from optical_core.distill import (
    CheckpointError,
    DistillConfig,
    DistillError,
    OpticalLoss,
    mrr_and_accuracy,
    run_distillation,
    validate_checkpoint,
)

REPO = Path(__file__).resolve().parents[1]
EN = ["A dog runs along the beach.", "Two children are playing football in the park.",
      "A woman is reading a book."]
DE = ["Ein Hund läuft am Strand entlang.", "Zwei Kinder spielen Fußball im Park.",
      "Eine Frau liest ein Buch."]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> str:
    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_other(tmp_path_factory) -> str:
    return make_tiny_model(tmp_path_factory.mktemp("models2") / "tiny2", seed=1)


def _load(path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device="cpu")


def _features(model, texts):
    feats = model.tokenize(texts)
    return {k: v for k, v in feats.items() if isinstance(v, torch.Tensor)}


def _cfg(teacher: str, **kw) -> DistillConfig:
    base = dict(lang="de", pairs=48, loss="ot", batch_size=8, lr=1e-3, teacher=teacher,
                data="demo", max_tokens=32, probe_every=2, save_steps=1000, warmup_ratio=0.0)
    base.update(kw)
    return DistillConfig(**base)


# ----------------------------------------------------------------------- the loss


def test_loss_gives_gradients_to_the_student_only(tiny, tiny_other):
    student, teacher = _load(tiny_other), _load(tiny)
    loss_fn = OpticalLoss(student, teacher)
    assert loss_fn.model is student
    assert not any(p is q for p in loss_fn.parameters() for q in teacher.parameters())
    assert all(not p.requires_grad for p in teacher.parameters())
    assert not teacher.training
    loss = loss_fn([_features(student, EN), _features(student, DE)], None)
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    grads = [p.grad for p in student.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None for p in teacher.parameters())
    assert set(loss_fn.last_components) == {"ot"}
    assert 0 < loss_fn.last_ot_stats["iterations"] <= 300


def test_loss_is_zero_for_identical_inputs_with_exact_ot(tiny):
    """student = teacher on the same English text: the diagonal plan has cost 0, so the
    exact OT cost is 0; Sinkhorn with a tiny ε gets close to it from above."""
    student, teacher = _load(tiny), _load(tiny)
    student.eval()
    feats = _features(student, EN)
    exact = OpticalLoss(student, teacher, solver="exact")
    with torch.no_grad():
        value = exact([feats, dict(feats)], None).item()
    assert abs(value) < 1e-6
    sk = OpticalLoss(student, teacher, epsilon=1e-3, max_iter=3000)
    with torch.no_grad():
        approx = sk([feats, dict(feats)], None).item()
        ref = OpticalLoss(student, teacher, epsilon=0.01)([feats, dict(feats)], None).item()
    assert 0 <= approx < 0.1 * ref + 1e-4  # shrinks with ε towards the exact optimum 0


def test_plan_masks_padding_and_special_tokens(tiny, tiny_other):
    student, teacher = _load(tiny_other), _load(tiny)
    loss_fn = OpticalLoss(student, teacher)
    xf, ef = _features(student, DE), _features(teacher, EN)
    with torch.no_grad():
        xt = student(dict(xf))["token_embeddings"]
        et = teacher(dict(ef))["token_embeddings"]
        xm = loss_fn._mask(xf, loss_fn._student_special)
        em = loss_fn._mask(ef, loss_fn._teacher_special)
        per_pair, plan, _ = loss_fn.ot_cost(xt, xm, et, em)
    # [CLS]/[SEP] and padding are out: the first column/row ([CLS]) carries no mass
    assert torch.all(plan[:, 0, :] == 0) and torch.all(plan[:, :, 0] == 0)
    assert torch.all(plan[~xm] == 0)
    assert torch.all(plan.transpose(1, 2)[~em] == 0)
    np.testing.assert_allclose(plan.sum((1, 2)).numpy(), 1.0, atol=1e-4)
    # the exact optimum is a lower bound of the entropic plan's transport cost
    exact = OpticalLoss(student, teacher, solver="exact")
    with torch.no_grad():
        ex, _, _ = exact.ot_cost(xt, xm, et, em)
    assert torch.all(per_pair >= ex - 1e-5)


def test_combined_loss_reports_both_terms(tiny, tiny_other):
    student, teacher = _load(tiny_other), _load(tiny)
    loss_fn = OpticalLoss(student, teacher, mse_weight=1.0, align_english=True)
    total = loss_fn([_features(student, EN), _features(student, DE)], None)
    comps = loss_fn.last_components
    assert set(comps) == {"ot", "ot_en", "mse"}
    assert total.item() == pytest.approx(comps["ot"] + comps["ot_en"] + comps["mse"], rel=1e-5)


def test_unbalanced_loss_relaxes_the_marginals_and_trains_the_student_only(tiny, tiny_other):
    student, teacher = _load(tiny_other), _load(tiny)
    feats = [_features(student, EN), _features(student, DE)]
    balanced = OpticalLoss(student, teacher, epsilon=0.05, max_iter=3000)
    with torch.no_grad():
        ref = balanced(feats, None).item()
    masses, values = [], []
    for tau in (0.05, 1.0, 20.0):
        fn = OpticalLoss(student, teacher, solver="unbalanced", tau=tau, epsilon=0.05, max_iter=5000)
        with torch.no_grad():
            values.append(fn(feats, None).item())
        assert fn.last_ot_stats["converged"] == 1.0
        masses.append(fn.last_ot_stats["mass"])
    # small τ: most mass stays put; large τ: nearly all of it moves, as balanced OT does
    assert masses[0] < masses[1] < masses[2] < 1.0
    assert masses[0] < 0.05 and masses[2] > 0.95
    assert values[2] == pytest.approx(ref, rel=0.05)

    loss_fn = OpticalLoss(student, teacher, solver="unbalanced", tau=1.0)
    assert not any(p is q for p in loss_fn.parameters() for q in teacher.parameters())
    loss = loss_fn(feats, None)
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    assert all(p.grad is None for p in teacher.parameters())


def test_bad_loss_options_are_refused(tiny):
    student, teacher = _load(tiny), _load(tiny)
    with pytest.raises(DistillError, match="ε"):
        OpticalLoss(student, teacher, epsilon=0)
    with pytest.raises(DistillError, match="solver"):
        OpticalLoss(student, teacher, solver="magic")
    with pytest.raises(DistillError, match="τ"):
        OpticalLoss(student, teacher, solver="unbalanced", tau=0.0)
    with pytest.raises(DistillError, match="τ"):
        DistillConfig(ot_solver="unbalanced", ot_tau=float("nan")).validate()
    with pytest.raises(DistillError, match="loss"):
        DistillConfig(loss="kl").validate()
    with pytest.raises(DistillError, match="language"):
        DistillConfig(lang="xx").validate()


def test_mrr_and_accuracy_by_hand():
    q = np.eye(3, dtype=np.float32)
    d = np.array([[1, 0, 0], [0, 0, 1], [0, 1, 0]], dtype=np.float32)  # 1 and 2 swapped
    m = mrr_and_accuracy(q, d)
    assert m["mrr@10"] == pytest.approx((1 + 0.5 + 0.5) / 3, abs=1e-6)
    assert m["accuracy_x2en"] == pytest.approx(1 / 3)


# ------------------------------------------------------------------- training runs


def test_ot_loss_decreases_over_30_steps(tiny, tiny_other, tmp_path):
    events = []
    cfg = _cfg(tiny, student=tiny_other, max_steps=30, evaluate=False, probe_every=10, lr=2e-3)
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
    res = run_distillation(_cfg(tiny, loss=loss, max_steps=4, probe_every=0), tmp_path / loss)
    assert res.status == "finished"
    rec = runs.load_run(tmp_path / loss)
    assert [e["step"] for e in rec.evals] == [0, 4]
    mrr = next(v for k, v in rec.last_metrics.items() if k.endswith("mrr@10"))
    assert 0 <= mrr <= 1
    from optical_core.encoders import load_encoder

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
    cfg = _cfg(tiny, max_steps=4, eval_steps=2, eval_limit=8, probe_every=0, track_aer=True,
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
    cfg = _cfg(tiny, max_steps=2, eval_limit=8, probe_every=0, track_aer=True,
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
    res = run_distillation(_cfg(tiny, max_steps=12, evaluate=False), run_dir,
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
        run_distillation(_cfg(tiny, max_steps=12, evaluate=False), run_dir)

    res2 = run_distillation(_cfg(tiny, max_steps=12, evaluate=False), run_dir, resume=True)
    assert res2.status == "finished" and res2.steps == 12
    rec = runs.load_run(run_dir).record
    assert rec["resumed_from"] == "checkpoint-3"
    assert [s for s, _ in rec["losses"]] == list(range(1, 13))


def test_damaged_checkpoint_gives_a_clear_error(tiny, tmp_path):
    cancel = threading.Event()
    run_dir = tmp_path / "run"
    run_distillation(_cfg(tiny, max_steps=10, evaluate=False), run_dir, cancel=cancel,
                     progress=lambda ev: ev["kind"] == "step" and ev["step"] == 2 and cancel.set())
    cp = run_dir / "checkpoints" / "checkpoint-2"
    (cp / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError) as err:
        run_distillation(_cfg(tiny), run_dir, resume=True)
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


# ---------------------------------------------------------------------- run folders


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


# ----------------------------------------------------------------------- job manager


def _fake_runner(gate: threading.Event):
    def runner(config, run_dir, resume=False, progress=None, cancel=None):
        for step in range(1, 1000):
            if cancel.is_set():
                return distill.RunResult(Path(run_dir), "cancelled", None, step)
            progress({"kind": "step", "step": step, "max_steps": 5, "epoch": 0.1})
            progress({"kind": "loss", "step": step, "loss": 1.0 / step})
            if step >= 5 and gate.is_set():
                return distill.RunResult(Path(run_dir), "finished", None, step)
            time.sleep(0.01)
        return distill.RunResult(Path(run_dir), "finished", None, step)

    return runner


def test_job_manager_runs_one_job_at_a_time(tmp_path):
    gate = threading.Event()
    mgr = jobs.JobManager(runner=_fake_runner(gate))
    a = mgr.submit("tab-a", DistillConfig(), tmp_path / "a")
    with pytest.raises(RuntimeError, match="already has"):
        mgr.submit("tab-a", DistillConfig(), tmp_path / "a2")
    with pytest.raises(RuntimeError, match="same|already writing"):
        mgr.submit("tab-c", DistillConfig(), tmp_path / "a")
    b = mgr.submit("tab-b", DistillConfig(), tmp_path / "b")
    time.sleep(0.2)
    assert mgr.snapshot(a.id).status == "running"
    assert mgr.snapshot(b.id).status == "queued" and mgr.queue_position(b.id) == 1
    assert mgr.busy().id == a.id
    assert mgr.latest_for("tab-b").id == b.id
    assert mgr.cancel(a.id)
    assert mgr.wait(a.id, 5).status == "cancelled"
    time.sleep(0.2)
    assert mgr.snapshot(b.id).status == "running"
    gate.set()
    done = mgr.wait(b.id, 5)
    assert done.status == "finished" and done.step >= 5 and done.losses


def test_job_manager_cancels_queued_jobs_and_survives_failures(tmp_path):
    def boom(config, run_dir, **kw):
        raise DistillError("no data here")

    mgr = jobs.JobManager(runner=boom)
    j = mgr.submit("s", DistillConfig(), tmp_path / "x")
    done = mgr.wait(j.id, 5)
    assert done.status == "failed" and "no data here" in done.error
    j2 = mgr.submit("s", DistillConfig(), tmp_path / "y")  # the worker is still alive
    assert mgr.wait(j2.id, 5).status == "failed"


def test_job_manager_with_a_real_tiny_run(tiny, tmp_path):
    mgr = jobs.JobManager()
    job = mgr.submit("s", _cfg(tiny, max_steps=6, probe_every=3), tmp_path / "real")
    done = mgr.wait(job.id, 120)
    assert done.status == "finished", done.error
    assert done.step == 6 and len(done.losses) == 6 and len(done.evals) == 2
    assert [p["step"] for p in done.probes] == [0, 3, 6] and done.probe_tokens


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _wait_for(mgr, job_id, cond, timeout=120.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        snap = mgr.snapshot(job_id)
        if cond(snap):
            return snap
        time.sleep(0.02)
    raise AssertionError(f"job state not reached: {mgr.snapshot(job_id)}")


def test_a_job_whose_tab_stops_polling_is_cancelled_and_can_be_resumed(tiny, tmp_path):
    clock = FakeClock()
    mgr = jobs.JobManager(orphan_s=120, clock=clock)
    run_dir = tmp_path / "orphan"
    job = mgr.submit("tab", _cfg(tiny, max_steps=5000, evaluate=False, probe_every=0), run_dir)
    _wait_for(mgr, job.id, lambda j: j.step >= 2)
    # the tab polls: time passes, but never more than the grace period without a heartbeat
    for _ in range(3):
        clock.now += 100
        mgr.heartbeat("tab")
        step = mgr.snapshot(job.id).step
        _wait_for(mgr, job.id, lambda j, s=step: j.step >= s + 2)
    assert mgr.snapshot(job.id).status == "running" and not mgr.reap()
    # the tab is closed: no heartbeat for longer than the grace period
    clock.now += 121
    done = mgr.wait(job.id, 120)
    assert done.status == "cancelled" and done.note == jobs.ORPHAN_NOTE
    assert 2 <= done.step < 5000
    rec = runs.load_run(run_dir).record
    assert rec["status"] == "cancelled" and rec["note"] == jobs.ORPHAN_NOTE
    validate_checkpoint(run_dir / "checkpoints" / f"checkpoint-{done.step}")
    # a reopened tab (a new session) resumes it from the runs list and it finishes
    again = mgr.submit("new-tab", _cfg(tiny, max_steps=done.step + 2), run_dir, resume=True)
    finished = mgr.wait(again.id, 120)
    assert finished.status == "finished" and finished.step == done.step + 2
    rec = runs.load_run(run_dir).record
    assert rec["status"] == "finished" and rec["note"] is None
    assert rec["resumed_from"] == f"checkpoint-{done.step}"


def test_a_queued_job_of_a_closed_tab_is_dropped_and_a_live_one_is_kept(tmp_path):
    gate = threading.Event()
    clock = FakeClock()
    mgr = jobs.JobManager(runner=_fake_runner(gate), orphan_s=60, clock=clock)
    a = mgr.submit("tab-a", DistillConfig(), tmp_path / "a")
    b = mgr.submit("tab-b", DistillConfig(), tmp_path / "b")
    c = mgr.submit("tab-c", DistillConfig(), tmp_path / "c")
    _wait_for(mgr, a.id, lambda j: j.status == "running")
    clock.now += 50
    mgr.heartbeat("tab-a")
    mgr.heartbeat("tab-c")
    clock.now += 50  # tab-b: silent for 100 s; tab-a and tab-c: 50 s
    assert mgr.reap() == [b.id]
    assert mgr.snapshot(b.id).status == "cancelled" and mgr.snapshot(b.id).note == jobs.ORPHAN_NOTE
    assert mgr.snapshot(a.id).status == "running" and mgr.snapshot(c.id).status == "queued"
    assert mgr.queue_position(c.id) == 1
    gate.set()
    assert mgr.wait(a.id, 10).status == "finished"
    assert mgr.wait(c.id, 10).status == "finished"
    # without a grace period nothing is ever reaped
    still = jobs.JobManager(runner=_fake_runner(threading.Event()), clock=clock)
    d = still.submit("tab-d", DistillConfig(), tmp_path / "d")
    clock.now += 10_000
    assert still.reap() == [] and still.snapshot(d.id).active
    still.cancel(d.id)


def test_orphan_grace_period_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(jobs.ENV_ORPHAN_S, raising=False)
    assert jobs.orphan_grace_s() == jobs.DEFAULT_ORPHAN_S == 120
    monkeypatch.setenv(jobs.ENV_ORPHAN_S, "30")
    assert jobs.orphan_grace_s() == 30
    monkeypatch.setenv(jobs.ENV_ORPHAN_S, "0")
    assert jobs.orphan_grace_s() is None
    for bad in ("soon", "-5", "inf"):
        monkeypatch.setenv(jobs.ENV_ORPHAN_S, bad)
        with pytest.raises(ValueError, match=jobs.ENV_ORPHAN_S):
            jobs.orphan_grace_s()


# ------------------------------------------------------------------------------ CLI


def _cli(*args, env=None, timeout=180):
    return subprocess.run([sys.executable, "-m", "optical_core.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_cli_distill_runs_and_reports_errors_on_one_line(tiny, tmp_path, capsys):
    from optical_core import cli

    out = tmp_path / "runs" / "cli"
    r = _cli("distill", "--demo-data", "--teacher", tiny, "--pairs", "16", "--batch-size", "8",
             "--max-steps", "2", "--max-tokens", "32", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "finished: 2 steps" in r.stdout
    assert json.loads((out / "run.json").read_text())["status"] == "finished"
    capsys.readouterr()
    assert cli.main(["distill", "--demo-data", "--teacher", tiny, "--out", str(out)]) != 0
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "already holds a run" in err
    code = cli.main(["distill", "--teacher", str(tmp_path / "missing"), "--out", str(tmp_path / "z")])
    err = capsys.readouterr().err
    assert code != 0 and err.startswith("error:") and "does not exist" in err
    assert err.strip().count("\n") == 0


def test_cli_unbalanced_solver_and_tau(tiny, tmp_path, capsys):
    from optical_core import cli

    out = tmp_path / "ub"
    code = cli.main(["distill", "--demo-data", "--teacher", tiny, "--pairs", "16",
                     "--batch-size", "8", "--max-steps", "2", "--max-tokens", "32", "--no-eval",
                     "--ot-solver", "unbalanced", "--tau", "0.3", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    cfg = json.loads((out / "run.json").read_text())["config"]
    assert cfg["ot_solver"] == "unbalanced" and cfg["ot_tau"] == 0.3
    for args, msg in ((["--tau", "0.3"], "only applies to --ot-solver unbalanced"),
                      (["--ot-solver", "unbalanced", "--tau", "0"], "τ")):
        code = cli.main(["distill", "--demo-data", "--teacher", tiny, *args,
                         "--out", str(tmp_path / "bad")])
        err = capsys.readouterr().err
        assert code != 0 and err.startswith("error:") and msg in err
        assert err.strip().count("\n") == 0
    assert not (tmp_path / "bad").exists()


# ------------------------------------------------------------------------------ DDP


def test_ddp_two_ranks_end_with_identical_weights(tiny, tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(textwrap.dedent("""
        import hashlib, os, sys
        import torch
        from optical_core import distill
        from optical_core.distill import DistillConfig, run_distillation

        teacher, out = sys.argv[1], sys.argv[2]
        captured = {}
        orig = distill.build_loss
        def build_loss(cfg, student, teacher_model):
            captured["student"] = student
            return orig(cfg, student, teacher_model)
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


# --------------------------------------------------------------------- real MiniLM


@pytest.mark.slow
def test_real_minilm_probe_and_exact_zero():
    """The embedded MiniLM: identical English input gives exact-OT loss 0, and the German
    probe's plan is a proper transport plan over the real tokens."""
    from optical_core.encoders import default_model_path

    student, teacher = _load(default_model_path()), _load(default_model_path())
    student.eval()
    feats = _features(student, EN[:2])
    loss_fn = OpticalLoss(student, teacher, solver="exact")
    with torch.no_grad():
        assert abs(loss_fn([feats, dict(feats)], None).item()) < 1e-6
    snap = OpticalLoss(student, teacher).probe(DE[0], EN[0])
    plan = np.array(snap["plan"])
    assert plan.shape == (len(snap["src_tokens"]), len(snap["en_tokens"]))
    assert "[CLS]" not in snap["src_tokens"] and plan.sum() == pytest.approx(1, abs=1e-3)
    assert snap["en_tokens"][:2] == ["a", "dog"]

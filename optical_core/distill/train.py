"""Train a student: :func:`run_distillation` and what it records while it trains.

Training goes through ``SentenceTransformerTrainer`` (checkpoints, resume, DDP under
``torchrun``). :func:`run_distillation` is the one entry point used by the CLI, the
Distillation page (through :mod:`optical_core.distill.jobs`) and the tests. It writes a run folder
(see :mod:`optical_core.runs`): ``run.json``, ``probe.json``, ``model/`` and ``checkpoints/``.

Defaults follow DESIGN.md: ε = 0.01 with 300 log-domain iterations for training (a diffuse
plan at ε = 0.05 pulls each foreign token towards a blend of English tokens and hurt both
retrieval and AER), 64 tokens, batch 32, lr 5e-4 (the best lr of both methods on 5k pairs).
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from optical_core import runs as runs_mod
from optical_core.distill.augment import AugmentingCollator, epoch_callback
from optical_core.distill.batching import LengthGroupedBatchSampler
from optical_core.distill.checkpoints import _forget_after, _set_aside, last_checkpoint
from optical_core.distill.config import (
    ENV_SLOW_SAVE,
    PROBES,
    DistillConfig,
    DistillError,
    ProgressFn,
)
from optical_core.distill.evaluator import RetrievalEvaluator
from optical_core.distill.loss import OpticalLoss
from optical_core.distill.models import (
    build_dataset,
    build_loss,
    check_teacher_supports,
    load_models,
    load_pairs,
    package_versions,
)
from optical_core.distill.teacher_cache import teacher_cache

# ======================================================================= callback


def _make_callback_class():
    from transformers import TrainerCallback

    class _DistillCallback(TrainerCallback):
        """Progress, loss, evaluation and probe-plan reporting; clean stop on cancel.

        Args:
            recorder: the :class:`_RunRecorder` of the run (rank 0) or ``None``.
            loss: the loss module (for the probe and the loss components).
            probe: ``(english, foreign)`` probe pair or ``None``.
            probe_every: steps between probe snapshots (0 = only first and last).
            cancel: set to stop after the current step (a checkpoint is still saved).
            aer: ``model -> AER (%) or None``, added to every evaluation's metrics as
                ``aer_enfr`` (``None``: not tracked).
        """

        def __init__(self, recorder, loss, probe, probe_every: int, cancel: threading.Event | None,
                     aer: Callable[[Any], float | None] | None = None):
            self.recorder = recorder
            self.loss = loss
            self.probe = probe
            self.probe_every = probe_every
            self.cancel = cancel
            self.aer = aer
            self.cancelled = False
            self.t0 = time.monotonic()
            self.step0 = 0

        def _snapshot(self, step: int) -> None:
            if self.recorder is None or self.probe is None or not isinstance(self.loss, OpticalLoss):
                return
            if self.recorder.has_probe(step):
                return
            snap = self.loss.probe(self.probe[1], self.probe[0])
            self.recorder.add_probe(step, snap)

        def on_train_begin(self, args, state, control, **kw):
            self.t0 = time.monotonic()
            self.step0 = state.global_step
            if self.recorder is not None:
                self.recorder.update(max_steps=state.max_steps, step=state.global_step)
                self._snapshot(state.global_step)

        def on_step_end(self, args, state, control, **kw):
            if self.recorder is not None:
                done = state.global_step - self.step0
                rate = done / max(time.monotonic() - self.t0, 1e-9)
                eta = (state.max_steps - state.global_step) / rate if rate > 0 else None
                comps = getattr(self.loss, "last_components", {}) or {}
                self.recorder.step(state.global_step, state.max_steps, state.epoch or 0.0, eta, comps)
                if self.probe_every and state.global_step % self.probe_every == 0:
                    self._snapshot(state.global_step)
            if self.cancel is not None and self.cancel.is_set():
                self.cancelled = True
                control.should_training_stop = True
                control.should_save = True
                control.should_evaluate = False
            return control

        def on_epoch_end(self, args, state, control, **kw):
            if self.cancelled:
                control.should_evaluate = False
            return control

        def on_log(self, args, state, control, logs=None, **kw):
            if self.recorder is not None and logs and "loss" in logs:
                self.recorder.loss(state.global_step, float(logs["loss"]), logs.get("learning_rate"))
            return control

        def on_evaluate(self, args, state, control, metrics=None, **kw):
            if self.recorder is not None and metrics:
                clean = {k[5:] if k.startswith("eval_") else k: float(v) for k, v in metrics.items()
                         if isinstance(v, (int, float)) and k != "epoch"
                         and not k.endswith(("_runtime", "per_second"))}
                aer = self.aer(kw["model"]) if self.aer is not None else None
                if aer is not None:
                    clean["aer_enfr"] = aer
                self.recorder.eval(state.global_step, state.epoch or 0.0, clean)
            return control

        def on_train_end(self, args, state, control, **kw):
            if self.recorder is not None:
                self._snapshot(state.global_step)
            return control

    return _DistillCallback


# ======================================================================= recorder


class _RunRecorder:
    """Keeps ``run.json`` / ``probe.json`` up to date (rank 0 only) and forwards events to
    the user's progress function. Writes are atomic and throttled to one per second,
    except for status changes, evaluations and probes."""

    def __init__(self, run_dir: Path, record: dict[str, Any], probe: dict[str, Any],
                 progress: ProgressFn | None) -> None:
        self.run_dir = run_dir
        self.record = record
        self.probe_doc = probe
        self.progress = progress
        self._last_write = 0.0
        self._lock = threading.Lock()

    def emit(self, event: dict[str, Any]) -> None:
        if self.progress is not None:
            with contextlib.suppress(Exception):
                self.progress(event)

    def write(self, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._last_write < 1.0:
            return
        with self._lock:
            self.record["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
            self.record["updated_ts"] = now
            runs_mod.write_json_atomic(self.run_dir / runs_mod.RUN_FILE, self.record)
            self._last_write = now

    def update(self, **kw) -> None:
        self.record.update(kw)
        self.write(force=True)

    def status(self, status: str, **kw) -> None:
        self.record["status"] = status
        self.record.update(kw)
        self.write(force=True)
        self.emit({"kind": "status", "status": status, **kw})

    def step(self, step: int, max_steps: int, epoch: float, eta: float | None, comps: dict) -> None:
        self.record.update(step=step, max_steps=max_steps, epoch=epoch)
        self.write()
        self.emit({"kind": "step", "step": step, "max_steps": max_steps, "epoch": epoch,
                   "eta_s": eta, "components": dict(comps)})

    def loss(self, step: int, value: float, lr: float | None) -> None:
        self.record.setdefault("losses", []).append([step, round(value, 6)])
        self.emit({"kind": "loss", "step": step, "loss": value, "lr": lr})

    def eval(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
        entry = {"step": step, "epoch": round(float(epoch), 4), "metrics": metrics}
        self.record.setdefault("evals", []).append(entry)
        self.write(force=True)
        self.emit({"kind": "eval", **entry})

    def has_probe(self, step: int) -> bool:
        return any(s["step"] == step for s in self.probe_doc.get("snapshots", []))

    def add_probe(self, step: int, snap: dict[str, Any]) -> None:
        doc = self.probe_doc
        doc["src_tokens"], doc["en_tokens"] = snap["src_tokens"], snap["en_tokens"]
        doc.setdefault("snapshots", []).append(
            {"step": step, "plan": snap["plan"], "ot_cost": snap["ot_cost"]}
        )
        runs_mod.write_json_atomic(self.run_dir / runs_mod.PROBE_FILE, doc)
        self.emit({"kind": "probe", "step": step, **snap})


# ============================================================================ run


@dataclass
class RunResult:
    """What :func:`run_distillation` returns."""

    run_dir: Path
    status: str
    model_dir: Path | None
    steps: int
    metrics: dict[str, float] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)


def _world() -> tuple[int, int]:
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def aer_on_gold(model, limit: int | None = None, data_dir: str | None = None) -> float | None:
    """Word-alignment AER (%) of ``model`` on the en–fr gold set (``None`` if it is absent)."""
    from optical_core import data
    from optical_core.encoders.transformer import Encoder
    from optical_core.gold import load_gold
    from optical_core.pairs.align import score_gold

    try:
        gold = load_gold("enfr", data_dir)
    except data.DataNotFoundError:
        return None
    gold = gold[:limit] if limit else gold
    base = getattr(model, "module", model)
    was = base.training
    try:
        return 100.0 * score_gold(Encoder(base, "student"), gold).aer
    finally:
        base.train(was)


#: ``DistillConfig.lr_schedule`` → the trainer's scheduler (``constant`` keeps its warm-up).
_SCHEDULERS = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine"}


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when torch sees a GPU, else ``cpu``; other values unchanged.

    Raises:
        DistillError: ``cuda`` is asked for and torch sees no GPU.
    """
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise DistillError("device 'cuda' asked for, but torch sees no GPU; use --device auto or cpu")
    return device


def use_bf16(precision: str, device: str) -> bool:
    """Whether to train under bf16 autocast: asked for, or ``auto`` on hardware with fast
    bf16 (a GPU that supports it; a CPU with AVX512-BF16 or AMX, where the bench measured
    1.6–1.9× the float32 speed at the same retrieval quality: docs/BENCHMARKS.md)."""
    if precision == "auto":
        if device == "cuda":
            return torch.cuda.is_bf16_supported()
        return cpu_has_fast_bf16()
    return precision == "bf16"


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU has bf16 dot products (AVX512-BF16 or AMX), from /proc/cpuinfo."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:  # not Linux: stay with float32
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])
    return "avx512_bf16" in flags or "amx_bf16" in flags


def batch_lengths(cfg: DistillConfig, student, pairs: list[tuple[str, str]]) -> list[int]:
    """Tokens per row that the student runs (what padding is counted in): the foreign side,
    or the longer of both sides when the loss also runs the student on English."""
    tok = student.tokenizer
    def count(texts: list[str]) -> list[int]:
        ids = tok(texts, truncation=True, max_length=cfg.max_tokens)["input_ids"]
        return [len(x) for x in ids]
    lengths = count([x for _, x in pairs])
    if cfg.loss != "ot" or cfg.align_english:
        lengths = [max(a, b) for a, b in zip(lengths, count([en for en, _ in pairs]), strict=True)]
    return lengths


def run_distillation(
    config: DistillConfig,
    out_dir: str | os.PathLike[str],
    resume: bool = False,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    train_pairs: list[tuple[str, str]] | None = None,
    eval_pairs: list[tuple[str, str]] | None = None,
) -> RunResult:
    """Train a student by OT / MSE distillation and write a run folder.

    Args:
        config: the run's settings (ignored on resume: the stored config is used, except
            ``epochs``/``max_steps``, which may be raised to train longer).
        out_dir: the run folder (``runs/NAME``); must not hold a run unless ``resume``.
        resume: continue from the newest checkpoint in ``out_dir/checkpoints``.
        progress: called with event dicts (``kind``: ``status``, ``step``, ``loss``,
            ``eval``, ``probe``) from the training thread; exceptions in it are ignored.
        cancel: when set, training stops after the current step, a checkpoint is saved and
            the status becomes ``cancelled``; the ``reason`` of a :class:`CancelEvent` is
            stored as the run's ``note``.
        train_pairs, eval_pairs: ``(english, foreign)`` pairs overriding the data source.

    Returns:
        :class:`RunResult`.

    Raises:
        DistillError: bad config, missing data or model, an existing run without ``resume``.
        CheckpointError: ``resume`` with a damaged newest checkpoint.
    """
    import transformers
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    rank, world = _world()
    is_main = rank == 0
    run_dir = Path(out_dir).expanduser().resolve()
    ckpt_root = run_dir / runs_mod.CHECKPOINT_DIR
    resume_from: Path | None = None
    incomplete: list[Path] = []
    old_record: dict[str, Any] | None = None
    if resume:
        try:
            old_record = runs_mod.read_record(run_dir)
        except runs_mod.RunError as exc:
            raise DistillError(f"cannot resume: {exc}") from None
        stored = DistillConfig.from_dict(old_record.get("config", {}))
        stored.epochs = max(stored.epochs, config.epochs) if config.epochs else stored.epochs
        stored.max_steps = config.max_steps or stored.max_steps
        config = stored
        resume_from = last_checkpoint(run_dir, incomplete)
        if resume_from is None and old_record.get("status") == "finished":
            raise DistillError(f"run {run_dir.name} has finished and has no checkpoint to resume")
    elif is_main and (run_dir / runs_mod.RUN_FILE).exists():
        raise DistillError(
            f"{run_dir} already holds a run; pass resume to continue it or choose another name"
        )
    cfg = config.validate()

    transformers.utils.logging.set_verbosity_error()
    teacher, student = load_models(cfg)
    pairs = train_pairs if train_pairs is not None else load_pairs(cfg, "train", cfg.pairs)
    if not pairs:
        raise DistillError("no training pairs")
    pairs = pairs[: cfg.pairs]
    evaluator = None
    if cfg.evaluate:
        ev = eval_pairs if eval_pairs is not None else load_pairs(cfg, cfg.eval_split, cfg.eval_limit or None)
        ev = ev[: cfg.eval_limit] if cfg.eval_limit else ev
        en_texts = [en for en, _ in ev]
        # OPTICAL's setting: the frozen teacher indexes the English side, once.
        docs = teacher.encode(en_texts, batch_size=128, convert_to_numpy=True,
                              normalize_embeddings=True, show_progress_bar=False)
        evaluator = RetrievalEvaluator([x for _, x in ev], en_texts, doc_embeddings=docs,
                                       name=cfg.eval_split if eval_pairs is None else "eval")
    device = resolve_device(cfg.device)
    check_teacher_supports(cfg, teacher)
    cached = None
    if cfg.teacher_cache:
        teacher.to(device)
        cached = teacher_cache(teacher, [en for en, _ in pairs], rank=rank,
                               teacher_name=str(cfg.teacher or "default"),
                               tokens=cfg.loss != "mse")
    loss = build_loss(cfg, student, teacher, cached, pairs)
    dataset = build_dataset(cfg, pairs, teacher, cached)
    lengths = batch_lengths(cfg, student, pairs)

    probe = PROBES[cfg.lang]
    record: dict[str, Any] = old_record or {
        "name": run_dir.name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "config": cfg.to_dict(),
        "evals": [],
        "losses": [],
    }
    record.update(
        status="running", error=None, world_size=world, versions=package_versions(),
        data={"train_pairs": len(pairs), "eval_pairs": len(evaluator.src_texts) if evaluator else 0,
              "source": cfg.data if train_pairs is None else "given"},
        seed=cfg.seed, config=cfg.to_dict(), teacher=str(cfg.teacher or "default"),
        eval_documents="teacher" if evaluator is not None else None,
        device=device,
        teacher_cache=({"path": str(cached.path) if cached.path else None, "reused": cached.reused}
                       if cached is not None else None),
        # flat copies for readers that do not dig into "config" (ui.common.list_runs)
        lang=cfg.lang, loss=cfg.loss, model_dir=runs_mod.MODEL_DIR, note=None,
    )
    probe_doc = (runs_mod.read_probe(run_dir) or {}) if resume else {}
    probe_doc.update(english=probe[0], foreign=probe[1], epsilon=cfg.epsilon)
    if resume:
        _forget_after(record, probe_doc, resume_from)
    recorder = None
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        note = _set_aside(incomplete, resume_from) if incomplete else None
        recorder = _RunRecorder(run_dir, record, probe_doc, progress)
        recorder.status("running", resumed_from=resume_from.name if resume_from else None,
                        resume_note=note)

    eval_strategy = "no"
    if evaluator is not None:
        eval_strategy = "steps" if cfg.eval_steps > 0 else "epoch"
    args_kw: dict[str, Any] = dict(
        output_dir=str(ckpt_root),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps if cfg.max_steps > 0 else -1,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        learning_rate=cfg.lr,
        lr_scheduler_type=_SCHEDULERS[cfg.lr_schedule],
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a float < 1 is a ratio
        max_grad_norm=cfg.max_grad_norm,  # 0: no clipping
        weight_decay=cfg.weight_decay,
        seed=cfg.seed,
        data_seed=cfg.seed,
        logging_steps=1,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        eval_strategy=eval_strategy,
        use_cpu=device == "cpu",
        bf16=use_bf16(cfg.precision, device),
        optim="adamw_torch_fused",  # one kernel per step instead of one per tensor
        dataloader_num_workers=0,
        report_to="none",
        disable_tqdm=True,
        save_only_model=False,
    )
    if eval_strategy == "steps":
        args_kw["eval_steps"] = cfg.eval_steps
    if world > 1:
        args_kw["ddp_backend"] = "gloo" if device == "cpu" else "nccl"
    if cfg.group_by_length:
        args_kw["batch_sampler"] = functools.partial(LengthGroupedBatchSampler, lengths=lengths)
    args = SentenceTransformerTrainingArguments(**args_kw)

    track_aer = functools.partial(aer_on_gold, data_dir=cfg.data_dir) if cfg.track_aer else None
    # MSE-KD has no plan to snapshot (also when an OpticalLoss carries its robustness terms)
    callback = _make_callback_class()(recorder, loss, probe if cfg.loss != "mse" else None,
                                      cfg.probe_every, cancel, track_aer)
    trainer = SentenceTransformerTrainer(
        model=student, args=args, train_dataset=dataset, loss=loss, evaluator=evaluator,
        callbacks=[callback],
    )
    if cfg.augments():  # the student reads a perturbed foreign side (distill.augment)
        collator = AugmentingCollator(trainer.data_collator, cfg, student)
        trainer.data_collator = collator
        trainer.add_callback(epoch_callback(collator))
    for cb in (PrinterCallback, ProgressCallback):
        with contextlib.suppress(ValueError):
            trainer.remove_callback(cb)
    _slow_save_hook(trainer)

    try:
        if evaluator is not None and resume_from is None and is_main:
            base = evaluator(student)
            metrics = {k: float(v) for k, v in base.items()}
            aer = track_aer(student) if track_aer is not None else None
            if aer is not None:
                metrics["aer_enfr"] = aer
            recorder.eval(0, 0.0, metrics)
        if cancel is not None and cancel.is_set():
            raise _CancelledBeforeStart
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        status = "cancelled" if callback.cancelled else "finished"
        model_dir = None
        if is_main:
            model_dir = runs_mod.save_model_atomic(student, run_dir / runs_mod.MODEL_DIR)
            recorder.status(status, step=trainer.state.global_step,
                            finished=time.strftime("%Y-%m-%dT%H:%M:%S"),
                            note=getattr(cancel, "reason", None) if callback.cancelled else None)
    except _CancelledBeforeStart:
        if recorder is not None:
            recorder.status("cancelled", step=0, note=getattr(cancel, "reason", None))
        return RunResult(run_dir, "cancelled", None, 0, {}, record)
    except BaseException as exc:
        if recorder is not None:
            msg = str(exc).strip().splitlines()[0][:500] if str(exc).strip() else type(exc).__name__
            recorder.status("failed", error=f"{type(exc).__name__}: {msg}")
        raise
    last = record.get("evals", [])
    return RunResult(run_dir, status, model_dir, int(trainer.state.global_step),
                     dict(last[-1]["metrics"]) if last else {}, record)


class _CancelledBeforeStart(Exception):
    pass


def _slow_save_hook(trainer) -> None:
    """Apply the :data:`ENV_SLOW_SAVE` test hook: pause after a checkpoint's model files."""
    delay = 0.0
    with contextlib.suppress(ValueError):
        delay = float(os.environ.get(ENV_SLOW_SAVE) or 0)
    if delay <= 0:
        return
    save_model = trainer.save_model

    def slow_save_model(*args, **kwargs):
        save_model(*args, **kwargs)
        time.sleep(delay)

    trainer.save_model = slow_save_model


def evaluate_model(model_id: str | None, lang: str, split: str = "test_2016_flickr",
                   limit: int | None = None, data_dir: str | None = None) -> dict[str, float]:
    """x→en MRR@10 and accuracies of a model (id, folder or run folder) on a Multi30k split."""
    cfg = DistillConfig(lang=lang, data_dir=data_dir)
    pairs = load_pairs(cfg, split, limit)
    from optical_core.encoders.base import ModelLoadError, resolve_model
    from optical_core.encoders.transformer import load_sentence_transformer

    try:
        model = load_sentence_transformer(str(runs_mod.resolve_model_dir(resolve_model(model_id))), "cpu")
    except ModelLoadError as exc:
        raise DistillError(str(exc)) from exc
    ev = RetrievalEvaluator([x for _, x in pairs], [en for en, _ in pairs], name="")
    return ev(model)

"""Train a student: :func:`run_distillation` and the steps it takes, in the order it takes them.

Training goes through ``SentenceTransformerTrainer`` (checkpoints, resume, DDP under
``torchrun``). :func:`run_distillation` is the one entry point used by the CLI, the
Distillation page (through :mod:`optical_core.distill.jobs`), the grid and the tests. It
writes a run folder (see :mod:`optical_core.runs`): ``run.json``, ``probe.json``,
``model/`` and ``checkpoints/``. Its steps:

1. :func:`plan_start`: the options and the folder are checked; nothing is written yet;
2. :func:`load_inputs`: models (widths checked), pairs and the evaluator;
3. the teacher cache, the loss (:func:`~optical_core.distill.models.build_loss`) and the
   dataset;
4. :func:`new_record` and :func:`open_recorder`: the first write, ``run.json`` ``running``;
5. :func:`training_args` and :func:`make_trainer`;
6. :func:`train`: evaluate, train, save the model, record the outcome (``failed`` with its
   error when anything after step 4 raises).

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from optical_core import runs as runs_mod
from optical_core.distill.augment import AugmentingCollator, epoch_callback
from optical_core.distill.batching import LengthGroupedBatchSampler
from optical_core.distill.checkpoints import forget_after, last_checkpoint, set_aside
from optical_core.distill.config import (
    ENV_SLOW_SAVE,
    PROBES,
    DistillConfig,
    DistillError,
    ProgressFn,
)
from optical_core.distill.evaluator import RetrievalEvaluator
from optical_core.distill.models import (
    build_dataset,
    build_loss,
    check_teacher_supports,
    check_widths,
    load_models,
    load_pairs,
    package_versions,
)
from optical_core.distill.recorder import RunRecorder
from optical_core.distill.teacher_cache import teacher_cache

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


def world_rank() -> tuple[int, int]:
    """``(rank, world size)`` of this process under ``torchrun`` (``(0, 1)`` alone)."""
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
SCHEDULERS = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine"}


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when torch sees a GPU, else ``cpu``; other values unchanged.

    Raises:
        DistillError: ``cuda`` is asked for and torch sees no GPU.
    """
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise DistillError("device 'cuda' asked for, but torch sees no GPU; use --device auto "
                           "or cpu")
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


@dataclass
class RunStart:
    """Where a run starts: its checked config and, on resume or restart, what it left.

    Attributes:
        config: the validated config (the stored one on resume).
        record: the folder's ``run.json`` (resume) or ``None`` (a new run).
        resume_from: the checkpoint training continues from, or ``None``.
        incomplete: checkpoints whose write was cut short (set aside before training).
        clear: the folder holds a run to start over (``restart``, or a run that failed
            before its first step): its files are removed before the first write.
    """

    config: DistillConfig
    record: dict[str, Any] | None = None
    resume_from: Path | None = None
    incomplete: list[Path] = field(default_factory=list)
    clear: bool = False


def plan_start(config: DistillConfig, run_dir: Path, resume: bool = False,
               restart: bool = False) -> RunStart:
    """Check everything a run needs from its options and folder, writing nothing.

    The one check before a run (the CLI, the grid and the Distillation page's jobs all
    reach it through :func:`run_distillation`): the config (:meth:`DistillConfig.validate`)
    and the folder (:func:`optical_core.runs.claim_run_folder`). On resume the stored
    config is used, except ``epochs`` / ``max_steps``, which may be raised to train longer.

    Raises:
        DistillError: a bad option, or a folder the run may not use (naming it).
        CheckpointError: ``resume`` with a damaged newest checkpoint.
    """
    if resume and restart:
        raise DistillError("--resume continues a run and --restart starts it over: pass one")
    try:
        record = runs_mod.claim_run_folder(run_dir, resume=resume, restart=restart)
    except runs_mod.RunError as exc:
        raise DistillError(f"cannot resume: {exc}" if resume else str(exc)) from None
    if not resume:
        return RunStart(config.validate(), clear=record is not None)
    try:  # checked before the CLI's epochs and steps are laid over it
        stored = DistillConfig.from_dict(record.get("config", {})).validate()
    except DistillError as exc:
        raise DistillError(f"cannot resume: the config in {run_dir / runs_mod.RUN_FILE} is "
                           f"damaged ({exc}); start a new run") from None
    stored.epochs = max(stored.epochs, config.epochs) if config.epochs else stored.epochs
    stored.max_steps = config.max_steps or stored.max_steps
    incomplete: list[Path] = []
    resume_from = last_checkpoint(run_dir, incomplete)
    if resume_from is None and record.get("status") == "finished":
        raise DistillError(f"run {run_dir.name} has finished and has no checkpoint to resume")
    return RunStart(stored.validate(), record, resume_from, incomplete)


@dataclass
class Inputs:
    """What a run trains on: the models, the training pairs and the evaluator."""

    teacher: Any
    student: Any
    pairs: list[tuple[str, str]]
    evaluator: RetrievalEvaluator | None


def load_inputs(cfg: DistillConfig, train_pairs: list[tuple[str, str]] | None = None,
                eval_pairs: list[tuple[str, str]] | None = None) -> Inputs:
    """Load the teacher and student (:func:`load_models`, widths checked), the training
    pairs and the evaluator, whose documents the frozen teacher embeds once (OPTICAL's
    setting)."""
    teacher, student = load_models(cfg)
    check_teacher_supports(cfg, teacher)
    check_widths(cfg, student, teacher)
    pairs = train_pairs if train_pairs is not None else load_pairs(cfg, "train", cfg.pairs)
    if not pairs:
        raise DistillError("no training pairs")
    evaluator = None
    if cfg.evaluate:
        ev = eval_pairs if eval_pairs is not None else load_pairs(cfg, cfg.eval_split,
                                                                  cfg.eval_limit or None)
        ev = ev[: cfg.eval_limit] if cfg.eval_limit else ev
        en_texts = [en for en, _ in ev]
        docs = teacher.encode(en_texts, batch_size=128, convert_to_numpy=True,
                              normalize_embeddings=True, show_progress_bar=False)
        evaluator = RetrievalEvaluator([x for _, x in ev], en_texts, doc_embeddings=docs,
                                       name=cfg.eval_split if eval_pairs is None else "eval")
    return Inputs(teacher, student, pairs[: cfg.pairs], evaluator)


def new_record(cfg: DistillConfig, run_dir: Path, start: RunStart, inputs: Inputs,
               device: str, cached, given_pairs: bool) -> dict[str, Any]:
    """The run's ``run.json`` at the start of training: the stored one on resume, updated
    with this process's settings, versions and data sizes."""
    resumed = start.record is not None and not start.clear
    record = start.record if resumed else {
        "name": run_dir.name, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "evals": [],
        "losses": []}
    _, world = world_rank()
    record.update(
        status="running", error=None, world_size=world, versions=package_versions(),
        data={"train_pairs": len(inputs.pairs),
              "eval_pairs": len(inputs.evaluator.src_texts) if inputs.evaluator else 0,
              "source": "given" if given_pairs else cfg.data},
        seed=cfg.seed, config=cfg.to_dict(), teacher=str(cfg.teacher or "default"),
        eval_documents="teacher" if inputs.evaluator is not None else None, device=device,
        teacher_cache=({"path": str(cached.path) if cached.path else None,
                        "reused": cached.reused} if cached is not None else None),
        # flat copies for readers that do not dig into "config" (ui.common.list_runs)
        lang=cfg.lang, loss=cfg.loss, model_dir=runs_mod.MODEL_DIR, note=None,
    )
    return record


def open_recorder(cfg: DistillConfig, run_dir: Path, start: RunStart, record: dict[str, Any],
                  progress: ProgressFn | None) -> RunRecorder:
    """The first write of a run (rank 0): clear a run to start over, set aside cut-short
    checkpoints, drop what a crashed process logged past its checkpoint, and write
    ``run.json`` with status ``running``."""
    if start.clear:
        runs_mod.clear_run(run_dir)
    resumed = start.record is not None and not start.clear
    probe_doc = (runs_mod.read_probe(run_dir) or {}) if resumed else {}
    english, foreign = PROBES[cfg.lang]
    probe_doc.update(english=english, foreign=foreign, epsilon=cfg.ot.epsilon)
    if resumed:
        forget_after(record, probe_doc, start.resume_from)
    run_dir.mkdir(parents=True, exist_ok=True)
    note = set_aside(start.incomplete, start.resume_from) if start.incomplete else None
    recorder = RunRecorder(run_dir, record, probe_doc, progress)
    recorder.status("running", resumed_from=start.resume_from.name if start.resume_from else None,
                    resume_note=note)
    return recorder


def training_args(cfg: DistillConfig, run_dir: Path, device: str, evaluating: bool,
                  lengths: list[int]):
    """The trainer's arguments of a run (checkpoints under ``run_dir/checkpoints``)."""
    from sentence_transformers import SentenceTransformerTrainingArguments

    _, world = world_rank()
    eval_strategy = ("steps" if cfg.eval_steps > 0 else "epoch") if evaluating else "no"
    extra: dict[str, Any] = {}
    if eval_strategy == "steps":
        extra["eval_steps"] = cfg.eval_steps
    if world > 1:
        extra["ddp_backend"] = "gloo" if device == "cpu" else "nccl"
    if cfg.group_by_length:
        extra["batch_sampler"] = functools.partial(LengthGroupedBatchSampler, lengths=lengths)
    return SentenceTransformerTrainingArguments(
        output_dir=str(run_dir / runs_mod.CHECKPOINT_DIR), num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps if cfg.max_steps > 0 else -1,
        per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
        learning_rate=cfg.lr, lr_scheduler_type=SCHEDULERS[cfg.lr_schedule],
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a float < 1 is a ratio
        max_grad_norm=cfg.max_grad_norm,  # 0: no clipping
        weight_decay=cfg.weight_decay, seed=cfg.seed, data_seed=cfg.seed, logging_steps=1,
        save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=cfg.save_total_limit,
        eval_strategy=eval_strategy, use_cpu=device == "cpu", bf16=use_bf16(cfg.precision, device),
        optim="adamw_torch_fused",  # one kernel per step instead of one per tensor
        dataloader_num_workers=0, report_to="none", disable_tqdm=True, save_only_model=False,
        **extra,
    )


def make_trainer(cfg: DistillConfig, inputs: Inputs, loss, dataset, args, recorder,
                 cancel: threading.Event | None, track_aer):
    """The ``SentenceTransformerTrainer`` of a run with its :class:`DistillCallback`, the
    augmenting collator when the foreign side is perturbed, and no console printing."""
    from sentence_transformers import SentenceTransformerTrainer
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from optical_core.distill.callback import DistillCallback

    # MSE-KD has no plan to snapshot (also when an OpticalLoss carries its robustness terms)
    probe = PROBES[cfg.lang] if cfg.loss != "mse" else None
    callback = DistillCallback(recorder, loss, probe, cfg.probe_every, cancel, track_aer)
    trainer = SentenceTransformerTrainer(model=inputs.student, args=args, train_dataset=dataset,
                                         loss=loss, evaluator=inputs.evaluator,
                                         callbacks=[callback])
    if cfg.augments():  # the student reads a perturbed foreign side (distill.augment)
        collator = AugmentingCollator(trainer.data_collator, cfg, inputs.student)
        trainer.data_collator = collator
        trainer.add_callback(epoch_callback(collator))
    for cb in (PrinterCallback, ProgressCallback):
        with contextlib.suppress(ValueError):
            trainer.remove_callback(cb)
    _slow_save_hook(trainer)
    return trainer, callback


def train(trainer, callback, inputs: Inputs, run_dir: Path, start: RunStart,
          recorder: RunRecorder | None, cancel: threading.Event | None, track_aer) -> RunResult:
    """Evaluate the starting student (a new run), train, save the model and record the
    outcome: ``finished``, ``cancelled`` (a checkpoint and the model kept)."""
    record = recorder.record if recorder is not None else {}
    if inputs.evaluator is not None and start.resume_from is None and recorder is not None:
        metrics = {k: float(v) for k, v in inputs.evaluator(inputs.student).items()}
        aer = track_aer(inputs.student) if track_aer is not None else None
        if aer is not None:
            metrics["aer_enfr"] = aer
        recorder.eval(0, 0.0, metrics)
    if cancel is not None and cancel.is_set():
        if recorder is not None:
            recorder.status("cancelled", step=0, note=getattr(cancel, "reason", None))
        return RunResult(run_dir, "cancelled", None, 0, {}, record)
    resume_from = str(start.resume_from) if start.resume_from else None
    trainer.train(resume_from_checkpoint=resume_from)
    status = "cancelled" if callback.cancelled else "finished"
    model_dir = None
    if recorder is not None:
        model_dir = runs_mod.save_model_atomic(inputs.student, run_dir / runs_mod.MODEL_DIR)
        recorder.status(status, step=trainer.state.global_step,
                        finished=time.strftime("%Y-%m-%dT%H:%M:%S"),
                        note=getattr(cancel, "reason", None) if callback.cancelled else None)
    last = record.get("evals", [])
    return RunResult(run_dir, status, model_dir, int(trainer.state.global_step),
                     dict(last[-1]["metrics"]) if last else {}, record)


def failure_message(exc: BaseException) -> str:
    """One line for ``run.json``'s ``error``: the exception's first line (no traceback)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:500]}" if text else type(exc).__name__


def run_distillation(
    config: DistillConfig,
    out_dir: str | os.PathLike[str],
    resume: bool = False,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    train_pairs: list[tuple[str, str]] | None = None,
    eval_pairs: list[tuple[str, str]] | None = None,
    restart: bool = False,
) -> RunResult:
    """Train a student by OT / MSE distillation and write a run folder.

    Nothing is written before every option and the folder are checked and the models and
    data are loaded (:func:`plan_start`, :func:`load_inputs`); a failure after the first
    write is recorded in ``run.json`` (status ``failed`` and its error), and a run that
    failed before its first step may be started again with corrected options.

    Args:
        config: the run's settings (ignored on resume: the stored config is used, except
            ``epochs``/``max_steps``, which may be raised to train longer).
        out_dir: the run folder (``runs/NAME``): new, empty, or holding a run to resume or
            restart; a folder with other files is never taken over.
        resume: continue from the newest checkpoint in ``out_dir/checkpoints``.
        progress: called with event dicts (``kind``: ``status``, ``step``, ``loss``,
            ``eval``, ``probe``) from the training thread; exceptions in it are ignored.
        cancel: when set, training stops after the current step, a checkpoint is saved and
            the status becomes ``cancelled``; the ``reason`` of a :class:`CancelEvent` is
            stored as the run's ``note``.
        train_pairs, eval_pairs: ``(english, foreign)`` pairs overriding the data source.
        restart: start the run in ``out_dir`` over (its files are replaced).

    Returns:
        :class:`RunResult`.

    Raises:
        DistillError: bad config, missing data or model, a folder the run may not use.
        CheckpointError: ``resume`` with a damaged newest checkpoint.
    """
    import transformers

    rank, _ = world_rank()
    run_dir = Path(out_dir).expanduser().resolve()
    start = plan_start(config, run_dir, resume=resume, restart=restart)
    cfg = start.config
    transformers.utils.logging.set_verbosity_error()
    inputs = load_inputs(cfg, train_pairs, eval_pairs)
    device = resolve_device(cfg.device)
    cached = None
    if cfg.teacher_cache:
        inputs.teacher.to(device)
        cached = teacher_cache(inputs.teacher, [en for en, _ in inputs.pairs], rank=rank,
                               teacher_name=str(cfg.teacher or "default"),
                               tokens=cfg.loss != "mse")
    loss = build_loss(cfg, inputs.student, inputs.teacher, cached, inputs.pairs)
    dataset = build_dataset(cfg, inputs.pairs, inputs.teacher, cached)
    record = new_record(cfg, run_dir, start, inputs, device, cached, train_pairs is not None)
    recorder = open_recorder(cfg, run_dir, start, record, progress) if rank == 0 else None
    try:
        track_aer = (functools.partial(aer_on_gold, data_dir=cfg.data_dir)
                     if cfg.track_aer else None)
        args = training_args(cfg, run_dir, device, inputs.evaluator is not None,
                             batch_lengths(cfg, inputs.student, inputs.pairs))
        trainer, callback = make_trainer(cfg, inputs, loss, dataset, args, recorder, cancel,
                                         track_aer)
        return train(trainer, callback, inputs, run_dir, start, recorder, cancel, track_aer)
    except BaseException as exc:
        if recorder is not None:
            recorder.status("failed", error=failure_message(exc))
        raise


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
        folder = runs_mod.resolve_model_dir(resolve_model(model_id))
        model = load_sentence_transformer(str(folder), "cpu")
    except ModelLoadError as exc:
        raise DistillError(str(exc)) from exc
    ev = RetrievalEvaluator([x for _, x in pairs], [en for en, _ in pairs], name="")
    return ev(model)

"""What a distillation run is asked to do: :class:`DistillConfig`, its choices and errors.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

LOSSES: tuple[str, ...] = ("ot", "mse", "ot+mse")
OT_SOLVERS: tuple[str, ...] = ("sinkhorn", "unbalanced", "exact")
MARGINALS: tuple[str, ...] = ("uniform", "norm")
DATA_SOURCES: tuple[str, ...] = ("multi30k", "demo")
#: Test hook, unset in normal use: seconds to pause inside every checkpoint write, after the
#: model files and before the optimizer state and ``trainer_state.json``, so that a crash
#: test can kill the process mid-write at a known point (tests/test_crash_safety.py).
ENV_SLOW_SAVE = "OPTICAL_TEST_SLOW_SAVE"

#: The probe pair whose plan is snapshotted during training, per language (English, foreign).
PROBES: dict[str, tuple[str, str]] = {
    "de": ("A dog runs along the beach.", "Ein Hund läuft am Strand entlang."),
    "fr": ("A dog runs along the beach.", "Un chien court le long de la plage."),
    "cs": ("A dog runs along the beach.", "Pes běží po pláži."),
}

ProgressFn = Callable[[dict[str, Any]], None]


class DistillError(RuntimeError):
    """A distillation job that cannot start or go on; the message says what to do."""


class CheckpointError(DistillError):
    """A checkpoint folder that cannot be resumed from (missing or damaged files)."""


class CancelEvent(threading.Event):
    """A cancel flag that can say why; :func:`run_distillation` stores the reason as the
    run's ``note``."""

    def __init__(self) -> None:
        super().__init__()
        self.reason: str | None = None

    def cancel(self, reason: str | None = None) -> None:
        """Set the flag; the first reason given is kept."""
        if reason and self.reason is None:
            self.reason = reason
        self.set()


# ========================================================================= config


@dataclass
class DistillConfig:
    """Everything that defines a distillation run (stored in ``run.json``).

    Attributes:
        lang: foreign language (``de``, ``fr``, ``cs``).
        pairs: number of training pairs (the first ``pairs`` lines of Multi30k train),
            to simulate a low-resource setting.
        loss: ``ot`` (OPTICAL), ``mse`` (Reimers & Gurevych) or ``ot+mse``.
        epochs, batch_size, lr, warmup_ratio, seed, max_steps (overrides epochs if > 0).
        max_tokens: tokens per sentence (student and teacher ``max_seq_length``).
        teacher, student: model id or folder; ``None`` = the embedded MiniLM. The student
            starts from ``student`` or, when that is ``None``, from the teacher's weights
            (from the embedded MiniLM when the teacher is a CLIP model; see :func:`load_models`).
        epsilon, sinkhorn_iters, sinkhorn_tol, ot_solver, marginals, align_english:
            the OT loss (see :class:`OpticalLoss`).
        ot_tau: marginal relaxation τ of ``ot_solver="unbalanced"`` (cosine-cost units).
        ot_weight, mse_weight: weights of the two terms of ``ot+mse``.
        data: ``multi30k`` or ``demo`` (the packaged hand-written pairs, for tests/offline).
        eval_split: Multi30k split for evaluation (``val``); eval_limit: its first N lines.
        eval_steps: evaluate every N steps (besides before training and after each epoch);
            0 turns step evaluation off; ``evaluate=False`` turns evaluation off.
        probe_every: plan snapshot of the probe pair every N steps (0 = off).
        save_steps: trainer checkpoint every N steps (and at each epoch end and on cancel).
        track_aer: compute word-alignment AER on the en–fr gold set at every evaluation.
        data_dir: Multi30k data root override.
    """

    lang: str = "de"
    pairs: int = 5000
    loss: str = "ot"
    epochs: float = 1.0
    batch_size: int = 32
    lr: float = 5e-4
    warmup_ratio: float = 0.1
    seed: int = 42
    max_steps: int = 0
    max_tokens: int = 64
    teacher: str | None = None
    student: str | None = None
    epsilon: float = 0.01
    sinkhorn_iters: int = 300
    sinkhorn_tol: float = 1e-6
    ot_solver: str = "sinkhorn"
    ot_tau: float = 1.0
    marginals: str = "uniform"
    align_english: bool = False
    ot_weight: float = 1.0
    mse_weight: float = 1.0
    data: str = "multi30k"
    eval_split: str = "val"
    eval_limit: int = 0
    evaluate: bool = True
    eval_steps: int = 0
    probe_every: int = 10
    save_steps: int = 200
    save_total_limit: int = 2
    track_aer: bool = False
    data_dir: str | None = None

    def validate(self) -> DistillConfig:
        if self.lang not in PROBES:
            raise DistillError(f"unknown language {self.lang!r}; choose one of {tuple(PROBES)}")
        if self.loss not in LOSSES:
            raise DistillError(f"unknown loss {self.loss!r}; choose one of {LOSSES}")
        if self.data not in DATA_SOURCES:
            raise DistillError(f"unknown data source {self.data!r}; choose one of {DATA_SOURCES}")
        if self.ot_solver not in OT_SOLVERS:
            raise DistillError(f"unknown OT solver {self.ot_solver!r}; choose one of {OT_SOLVERS}")
        if self.marginals not in MARGINALS:
            raise DistillError(f"unknown marginals {self.marginals!r}; choose one of {MARGINALS}")
        checks = [
            (self.pairs >= 1, "the number of pairs must be at least 1"),
            (self.epochs > 0 or self.max_steps > 0, "epochs must be > 0"),
            (self.batch_size >= 1, "the batch size must be at least 1"),
            (math.isfinite(self.lr) and self.lr > 0, "the learning rate must be > 0"),
            (0 <= self.warmup_ratio < 1, "warmup_ratio must lie in [0, 1)"),
            (8 <= self.max_tokens <= 512, "max_tokens must lie in [8, 512]"),
            (math.isfinite(self.epsilon) and self.epsilon > 0, "ε must be > 0"),
            (self.sinkhorn_iters >= 1, "the Sinkhorn iteration budget must be at least 1"),
            (math.isfinite(self.ot_tau) and self.ot_tau > 0,
             "τ (the marginal relaxation of unbalanced OT) must be > 0"),
            (self.ot_weight >= 0 and self.mse_weight >= 0, "loss weights must be >= 0"),
            (self.save_steps >= 1, "save_steps must be at least 1"),
        ]
        for ok, msg in checks:
            if not ok:
                raise DistillError(msg)
        if self.loss == "ot+mse" and self.ot_weight + self.mse_weight <= 0:
            raise DistillError("ot+mse needs a positive OT or MSE weight")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DistillConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

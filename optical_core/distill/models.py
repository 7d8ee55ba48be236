"""The inputs of a run: bitext pairs, teacher and student models, the loss and the dataset.
"""

from __future__ import annotations

import contextlib
import platform
from typing import Any

import numpy as np
from torch import nn

from optical_core import runs as runs_mod
from optical_core.distill.config import DistillConfig, DistillError
from optical_core.distill.loss import OpticalLoss, OpticalLossConfig
from optical_core.distill.teacher_cache import TeacherEmbeddings

# ========================================================================== data


def load_pairs(cfg: DistillConfig, split: str = "train",
               limit: int | None = None) -> list[tuple[str, str]]:
    """``(english, foreign)`` pairs for training (``split="train"``) or evaluation.

    ``data="demo"`` uses the packaged demo pairs of the language (repeated to ``limit``
    for training), so that tests and offline demos need no Multi30k copy.
    """
    from optical_core import data, demo_set

    if cfg.data == "demo":
        demo = [(p.src, p.tgt) for p in demo_set.load_demo(cfg.lang)]
        if split != "train" or not limit:
            return demo
        return [demo[i % len(demo)] for i in range(limit)]
    try:
        bitext = data.load_bitext(split, cfg.lang, "en", data_dir=cfg.data_dir, limit=None)
    except data.DataNotFoundError as exc:
        raise DistillError(f"{exc}\n(or train on the packaged demo pairs: --demo-data on the "
                           "command line, data='demo' in Python)") from exc
    pairs = [(en, x) for x, en in bitext if x.strip() and en.strip()]
    return pairs[:limit] if limit else pairs


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for mod in ("torch", "transformers", "sentence_transformers", "accelerate", "datasets", "ot",
                "numpy"):
        with contextlib.suppress(Exception):
            out[mod] = __import__(mod).__version__
    return out


def load_models(cfg: DistillConfig):
    """Fresh (uncached) teacher and student ``SentenceTransformer`` objects on CPU.

    The teacher's kind (:func:`optical_core.encoders.registry.teacher_kind`) decides the
    student a run starts from when ``cfg.student`` is ``None`` and how it is fitted to the
    teacher (a CLIP teacher: the embedded MiniLM with a ``Dense`` projection to its width).
    """
    from optical_core.encoders.base import ModelLoadError, resolve_model
    from optical_core.encoders.registry import teacher_kind
    from optical_core.encoders.transformer import load_sentence_transformer

    # each message opens with the option it is about ("student: ..."), which the CLI
    # turns into its flag (distill.option_words)
    try:
        teacher = load_sentence_transformer(resolve_model(cfg.teacher), "cpu")
    except ModelLoadError as exc:
        raise DistillError(f"teacher: {exc}") from exc
    kind = teacher_kind(teacher)
    student_id = cfg.student if cfg.student is not None else kind.default_student(cfg.teacher)
    try:
        student = load_sentence_transformer(
            str(runs_mod.resolve_model_dir(resolve_model(student_id))), "cpu"
        )
    except ModelLoadError as exc:
        raise DistillError(f"student: {exc}") from exc
    teacher.max_seq_length = cfg.max_tokens
    student.max_seq_length = cfg.max_tokens
    if kind.fit_student is not None:
        kind.fit_student(student, teacher, cfg.seed)
    return teacher, student


def check_teacher_supports(cfg: DistillConfig, teacher) -> None:
    """Raise :class:`DistillError` when the teacher's kind cannot teach ``cfg.loss`` (a CLIP
    teacher: ``mse`` only), before anything is computed with it."""
    from optical_core.encoders.registry import teacher_kind

    kind = teacher_kind(teacher)
    if cfg.loss not in kind.teacher_losses:
        raise DistillError(kind.loss_refusal.format(loss=cfg.loss))


def check_widths(cfg: DistillConfig, student, teacher) -> None:
    """Raise :class:`DistillError` when the student's vectors cannot be compared with the
    teacher's: token vectors of another width (the OT terms compare tokens) or sentence
    vectors of another width (the MSE term and the evaluation compare sentences)."""
    def widths(model) -> tuple[int | None, int | None]:
        first = model[0]
        token = getattr(first, "get_embedding_dimension", lambda: None)()
        return token, model.get_embedding_dimension()

    (s_tok, s_sent), (t_tok, t_sent) = widths(student), widths(teacher)
    who = f"--student {cfg.student}" if cfg.student else "the student"
    if cfg.loss != "mse" and None not in (s_tok, t_tok) and s_tok != t_tok:
        raise DistillError(f"{who} has token vectors of width {s_tok} and the teacher of "
                           f"width {t_tok}; OT distillation compares them: pick a student "
                           "of the teacher's width (or leave --student out)")
    if None not in (s_sent, t_sent) and s_sent != t_sent:
        raise DistillError(f"{who} has sentence vectors of width {s_sent} and the teacher "
                           f"of width {t_sent}: pick a student of the teacher's width (or "
                           "leave --student out)")


def build_loss(cfg: DistillConfig, student, teacher,
               teacher_embeddings: TeacherEmbeddings | None = None,
               pairs: list[tuple[str, str]] | None = None) -> nn.Module:
    """The loss module of ``cfg.loss`` (``mse`` → sentence-transformers ``MSELoss``).

    The teacher's kind says which losses it supports (a CLIP teacher: ``mse`` only, see
    :data:`optical_core.encoders.registry.CLIP`). MSE-KD with a consistency or
    self-teaching term is an :class:`OpticalLoss` without its OT term. ``pairs`` (the
    training bitext) is needed for the co-occurrence cost (``cfg.cooc_weight > 0``).
    """
    check_teacher_supports(cfg, teacher)
    terms = loss_config(cfg)
    if cfg.loss == "mse" and not cfg.needs_clean():
        from sentence_transformers.sentence_transformer.losses import MSELoss

        return MSELoss(student)
    cooc = None
    if terms.cooc_weight > 0:
        from optical_core.distill.cooc import bitext_cooc

        if pairs is None:
            raise DistillError("the co-occurrence cost needs the training pairs")
        cooc = bitext_cooc(cfg, student, teacher, pairs)
    return OpticalLoss(student, teacher, terms, teacher_embeddings=teacher_embeddings, cooc=cooc)


def loss_config(cfg: DistillConfig) -> OpticalLossConfig:
    """The :class:`OpticalLossConfig` of a run: its OT settings, and the weights that
    ``cfg.loss`` gives the OT and MSE terms (``ot``: OT only; ``mse``: MSE only, carrying a
    consistency or self-teaching term; ``ot+mse``: ``ot_weight`` and ``mse_weight``). The
    robustness terms only when a term compares the perturbed reading with the clean one."""
    weights = {"ot": (1.0, 0.0), "mse": (0.0, 1.0),
               "ot+mse": (cfg.ot_weight, cfg.mse_weight)}[cfg.loss]
    robust = {"kd_input": cfg.kd_input, "consistency_weight": cfg.consistency_weight,
              "self_teach_weight": cfg.self_teach_weight, "self_teach_on": cfg.self_teach_on,
              "self_teach_temperature": cfg.self_teach_temperature} if cfg.needs_clean() else {}
    return OpticalLossConfig(
        ot=cfg.ot, marginals=cfg.marginals, align_english=cfg.align_english and cfg.loss != "mse",
        ot_weight=weights[0], mse_weight=weights[1], cooc_weight=cfg.cooc_weight, **robust)


def build_dataset(cfg: DistillConfig, pairs: list[tuple[str, str]], teacher,
                  teacher_embeddings: TeacherEmbeddings | None = None):
    """A ``datasets.Dataset`` with columns ``english``, ``non_english`` and ``label``.

    ``label`` is what the loss reads of the teacher: for MSE-KD the teacher's English
    sentence embedding (the "make multilingual" recipe); for the OT losses with a teacher
    cache, the row's index into it; OT without a cache has no label (the teacher runs
    online). When the foreign side is augmented (``cfg.augments()``) a ``row`` column holds
    each row's index, which seeds its noise
    (:class:`~optical_core.distill.augment.AugmentingCollator` reads and drops it).
    """
    from datasets import Dataset

    cols: dict[str, Any] = {"english": [p[0] for p in pairs], "non_english": [p[1] for p in pairs]}
    if cfg.loss == "mse":
        if teacher_embeddings is not None:
            emb = teacher_embeddings.sentence.numpy()
        else:
            emb = teacher.encode(cols["english"], batch_size=64, convert_to_numpy=True,
                                 show_progress_bar=False)
        cols["label"] = np.asarray(emb, dtype=np.float32).tolist()
    elif teacher_embeddings is not None:
        cols["label"] = list(range(len(pairs)))
    if cfg.augments():
        from optical_core.distill.augment import ROW_COLUMN

        cols[ROW_COLUMN] = list(range(len(pairs)))
    return Dataset.from_dict(cols)

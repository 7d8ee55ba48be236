"""CLIP-family models: recognise one, load it as a teacher, fit a text student to it.

A CLIP-family teacher (a sentence-transformers model whose first module embeds both text
and images, e.g. ``sentence-transformers/clip-ViT-B-32``) puts English captions and images
in one space. Distilling a text student onto the teacher's English caption embeddings with
MSE lands the student's foreign captions in that space too: the recipe of multilingual
CLIP (Reimers & Gurevych 2020). A student whose width differs from the teacher's text
embedding gets a linear ``Dense`` projection (:func:`fit_student_to_clip`).
"""

from __future__ import annotations


class MultimodalError(RuntimeError):
    """A multimodal job that cannot run; the message says what to do."""


# --------------------------------------------------------------------------- models


def is_clip_model(model) -> bool:
    """Whether a ``SentenceTransformer`` embeds both text and images (CLIP family).

    sentence-transformers 6 loads ``sentence_transformers.models.CLIPModel`` folders (the
    layout of ``sentence-transformers/clip-ViT-B-32``) as its legacy ``CLIPModel`` module, and
    plain transformers CLIP folders as a ``Transformer`` whose modalities include ``image``;
    both embed text through ``get_text_features`` (the pooled, projected text tower).
    """
    try:
        first = model[0]
    except (TypeError, IndexError, KeyError):
        return False
    from sentence_transformers.sentence_transformer.modules import CLIPModel

    if isinstance(first, CLIPModel):
        return True
    modalities = getattr(first, "modalities", None) or ()
    inner = getattr(first, "model", None)
    return ("text" in modalities and "image" in modalities
            and callable(getattr(inner, "get_text_features", None))
            and callable(getattr(inner, "get_image_features", None)))


def load_clip_teacher(model_id: str, device: str = "cpu"):
    """A CLIP-family ``SentenceTransformer`` through the project's safe loader
    (safetensors only, ``trust_remote_code=False``, offline unless ``OPTICAL_ALLOW_DOWNLOAD``).

    Raises:
        ModelLoadError: the id or folder cannot be loaded.
        MultimodalError: the model has no image tower.
    """
    from optical_core.encoders.base import resolve_model
    from optical_core.encoders.transformer import load_sentence_transformer

    model = load_sentence_transformer(resolve_model(model_id), device)
    if not is_clip_model(model):
        raise MultimodalError(
            f"{model_id!r} is not a CLIP-family model (it cannot embed images); give a CLIP "
            "teacher, e.g. a local copy of sentence-transformers/clip-ViT-B-32"
        )
    return model


def fit_student_to_clip(student, teacher, seed: int = 42):
    """Make a text student regress onto a CLIP teacher's text embeddings (in place).

    The teacher's text embeddings are neither unit-norm nor as wide as a MiniLM's (512 for
    ViT-B/32 vs 384), so, as multilingual CLIP did: a trailing ``Normalize`` of the student is
    dropped (MSE must be able to match the teacher's norms; retrieval normalises anyway), and
    a bias-free linear ``Dense`` (identity activation) maps the pooled student embedding to
    the teacher's width when the two differ. The projection is initialised from ``seed``
    without touching the global RNG. A student that already has the right width (e.g. an
    earlier CLIP run) gets no second projection.

    Returns:
        The same ``student`` object.
    """
    import torch
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize

    if len(student) > 1 and isinstance(student[len(student) - 1], Normalize):
        del student[len(student) - 1]
    width = int(teacher.get_embedding_dimension())
    have = int(student.get_embedding_dimension())
    if have != width:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            dense = Dense(have, width, bias=False, activation_function=None)
        student.append(dense.to(next(student.parameters()).device))
    return student


def check_caption_model(model, teacher) -> None:
    """Raise :class:`MultimodalError` unless ``model``'s caption embeddings are as wide as the
    CLIP ``teacher``'s (checked before any image is embedded)."""
    have, want = model.get_embedding_dimension(), teacher.get_embedding_dimension()
    if have is not None and want is not None and int(have) != int(want):
        raise MultimodalError(
            f"the caption model outputs {have}-d embeddings but the CLIP teacher's space is "
            f"{want}-d: distil the model against this teacher first (optical distill "
            "--teacher CLIP --loss mse), or leave --model out to use the teacher itself"
        )

"""optical_core.encoders.clip: CLIP teachers through the safe loader, and distillation
against one (an MSE-only teacher that gets a MiniLM student projected to its width).

The tiny random CLIP teacher is described in tests/_clip_fixture.py; its fixtures
(``clip_dir``, ``teacher``, ``tiny_student``, ``clip_run``) are in conftest.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from _clip_fixture import CLIP_DIM

from optical_core.distill.config import DistillConfig, DistillError
from optical_core.distill.models import build_loss, load_models
from optical_core.distill.train import run_distillation
from optical_core.encoders.base import ModelLoadError
from optical_core.encoders.clip import MultimodalError, is_clip_model, load_clip_teacher

# ----------------------------------------------------------------------------- loading


def test_tiny_clip_loads_through_the_safe_loader(clip_dir, teacher):
    assert is_clip_model(teacher)
    assert teacher.get_embedding_dimension() == CLIP_DIM
    text = teacher.encode(["A dog runs."], convert_to_numpy=True)
    assert text.shape == (1, CLIP_DIM) and np.isfinite(text).all()


def test_a_text_only_model_is_not_a_clip_teacher(tiny_student):
    from sentence_transformers import SentenceTransformer

    assert not is_clip_model(SentenceTransformer(tiny_student, device="cpu"))
    with pytest.raises(MultimodalError, match="not a CLIP-family model"):
        load_clip_teacher(tiny_student)


def test_pickle_only_clip_is_refused_until_saved_as_safetensors(clip_dir, tmp_path):
    """The layout of the hub's sentence-transformers/clip-ViT-B-32 (pytorch_model.bin only) is
    refused; the README's one-off re-save gives a folder the safe loader takes."""
    from safetensors.torch import load_file
    from sentence_transformers import SentenceTransformer

    copy = Path(shutil.copytree(clip_dir, tmp_path / "pickled"))
    weights = copy / "0_CLIPModel" / "model.safetensors"
    torch.save(load_file(str(weights)), copy / "0_CLIPModel" / "pytorch_model.bin")
    weights.unlink()
    with pytest.raises(ModelLoadError, match="safetensors"):
        load_clip_teacher(str(copy))
    SentenceTransformer(str(copy), device="cpu").save(str(tmp_path / "converted"))
    converted = load_clip_teacher(str(tmp_path / "converted"))
    original = load_clip_teacher(str(clip_dir))
    np.testing.assert_allclose(converted.encode(["A dog."]), original.encode(["A dog."]),
                               rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------ distillation


def test_clip_teacher_gets_a_minilm_student_projected_to_its_width(clip_dir):
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize

    teacher, student = load_models(DistillConfig(teacher=str(clip_dir), loss="mse"))
    assert is_clip_model(teacher) and not is_clip_model(student)
    assert student.tokenizer.vocab_size == 30522  # the embedded MiniLM, not the CLIP teacher
    dense = student[len(student) - 1]
    assert isinstance(dense, Dense) and (dense.in_features, dense.out_features) == (384, CLIP_DIM)
    assert not any(isinstance(m, Normalize) for m in student)
    assert student.encode(["Ein Hund."], convert_to_numpy=True).shape == (1, CLIP_DIM)


def test_ot_loss_is_refused_with_a_clip_teacher(clip_dir, tiny_student, tmp_path):
    cfg = DistillConfig(teacher=str(clip_dir), student=tiny_student, loss="ot", data="demo")
    teacher, student = load_models(cfg)
    for loss in ("ot", "ot+mse"):
        cfg.loss = loss
        with pytest.raises(DistillError, match="use --loss mse with a CLIP teacher"):
            build_loss(cfg, student, teacher)
    with pytest.raises(DistillError, match="CLIP"):
        run_distillation(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_mse_distillation_against_a_clip_teacher(clip_run, teacher):
    from sentence_transformers import SentenceTransformer

    assert clip_run.status == "finished" and clip_run.steps == 24
    student = SentenceTransformer(str(clip_run.model_dir), device="cpu")
    assert student.get_embedding_dimension() == teacher.get_embedding_dimension() == CLIP_DIM
    losses = [v for _, v in clip_run.record["losses"]]
    print(f"MSE loss first/last 4 steps: {np.mean(losses[:4]):.5f} → {np.mean(losses[-4:]):.5f}")
    assert np.mean(losses[-4:]) < 0.8 * np.mean(losses[:4])

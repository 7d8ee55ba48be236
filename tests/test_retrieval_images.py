"""Tests of the multimodal (CLIP) path: optical_core.multimodal, MSE distillation against a
CLIP teacher and `optical retrieve-images`.

The teacher is a tiny randomly initialised CLIP built from a ``CLIPConfig`` (text and vision
towers 2 layers wide 32, images 32×32, projection 24-d). No CLIP BPE vocabulary is available
offline, so its processor pairs a ``CLIPImageProcessor`` with the MiniLM WordPiece tokenizer
(the text tower pools at the first [SEP]). It is saved in the sentence-transformers layout of
``sentence-transformers/clip-ViT-B-32`` (``modules.json`` naming ``CLIPModel`` in
``0_CLIPModel/``), with safetensors weights. Images are drawn with PIL into a tiny fake
Multi30k folder named like Flickr30k files.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from _distill_models import make_tiny_model

from optical_core import cli
from optical_core import multimodal as M
from optical_core.distill import (
    DistillConfig,
    DistillError,
    build_loss,
    load_models,
    run_distillation,
)
from optical_core.encoders import ModelLoadError

CLIP_DIM = 24
NAMES = ["1000092795.jpg", "10002456.jpg", "1000268201.jpg", "1000344755.jpg",
         "1000366164.jpg", "1000523639.jpg"]
EN = ["A red square on a white wall.", "A blue circle in the sky.", "A green field at noon.",
      "A yellow stripe across the road.", "A black dog on the grass.", "A grey cat by the door."]
DE = ["Ein rotes Quadrat an einer weißen Wand.", "Ein blauer Kreis am Himmel.",
      "Ein grünes Feld am Mittag.", "Ein gelber Streifen über der Straße.",
      "Ein schwarzer Hund auf dem Gras.", "Eine graue Katze an der Tür."]
SPLIT = "test_2016_flickr"


def make_tiny_clip(folder: Path, seed: int = 0) -> Path:
    """A random tiny CLIP as a sentence-transformers folder (safetensors weights)."""
    from transformers import AutoTokenizer, CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from optical_core.encoders import default_model_path

    tok = AutoTokenizer.from_pretrained(default_model_path())
    torch.manual_seed(seed)
    tower = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
             "num_attention_heads": 2}
    cfg = CLIPConfig(
        text_config={**tower, "vocab_size": tok.vocab_size, "max_position_embeddings": 64,
                     "bos_token_id": tok.cls_token_id, "eos_token_id": tok.sep_token_id,
                     "pad_token_id": tok.pad_token_id},
        vision_config={**tower, "image_size": 32, "patch_size": 8},
        projection_dim=CLIP_DIM,
    )
    sub = folder / "0_CLIPModel"
    CLIPModel(cfg).save_pretrained(sub, safe_serialization=True)
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=images, tokenizer=tok).save_pretrained(sub)
    (folder / "modules.json").write_text(json.dumps(
        [{"idx": 0, "name": "0", "path": "0_CLIPModel",
          "type": "sentence_transformers.models.CLIPModel"}]))
    return folder


def _draw(path: Path, k: int) -> None:
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(k)
    back, front = (tuple(int(c) for c in rng.integers(0, 255, 3)) for _ in range(2))
    img = Image.new("RGB", (48 + 4 * k, 40), back)
    ImageDraw.Draw(img).ellipse((4 + k, 4, 30, 30 - k), fill=front)
    img.save(path, quality=90)


def make_fake_multi30k(root: Path, names=NAMES) -> Path:
    """``root/multi30k/task1/{raw,image_splits}`` for test_2016_flickr (en, de)."""
    raw = root / "multi30k" / "task1" / "raw"
    splits = root / "multi30k" / "task1" / "image_splits"
    raw.mkdir(parents=True)
    splits.mkdir(parents=True)
    for lang, lines in (("en", EN), ("de", DE)):
        with gzip.open(raw / f"{SPLIT}.{lang}.gz", "wt", encoding="utf-8") as f:
            f.write("\n".join(lines[: len(names)]) + "\n")
    (splits / f"{SPLIT}.txt").write_text("\n".join(names) + "\n")
    return root


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    return make_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


@pytest.fixture(scope="module")
def teacher(clip_dir):
    return M.load_clip_teacher(str(clip_dir))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return make_fake_multi30k(tmp_path_factory.mktemp("m30k"))


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("flickr30k-images")
    for k, name in enumerate(NAMES):
        _draw(folder / name, k)
    return folder


@pytest.fixture(scope="module")
def tiny_student(tmp_path_factory) -> str:
    return make_tiny_model(tmp_path_factory.mktemp("student") / "tiny", seed=0)


@pytest.fixture(scope="module")
def clip_run(tmp_path_factory, clip_dir, tiny_student):
    cfg = DistillConfig(lang="de", data="demo", loss="mse", teacher=str(clip_dir),
                        student=tiny_student, pairs=64, batch_size=8, max_steps=24, lr=3e-3,
                        warmup_ratio=0.0, evaluate=False, probe_every=0, save_steps=1000)
    return run_distillation(cfg, tmp_path_factory.mktemp("runs") / "de-clip")


# ------------------------------------------------------------------------- loading


def test_tiny_clip_loads_through_the_safe_loader(clip_dir, teacher):
    assert M.is_clip_model(teacher)
    assert teacher.get_embedding_dimension() == CLIP_DIM
    text = teacher.encode(["A dog runs."], convert_to_numpy=True)
    assert text.shape == (1, CLIP_DIM) and np.isfinite(text).all()


def test_a_text_only_model_is_not_a_clip_teacher(tiny_student):
    from sentence_transformers import SentenceTransformer

    assert not M.is_clip_model(SentenceTransformer(tiny_student, device="cpu"))
    with pytest.raises(M.MultimodalError, match="not a CLIP-family model"):
        M.load_clip_teacher(tiny_student)


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
        M.load_clip_teacher(str(copy))
    SentenceTransformer(str(copy), device="cpu").save(str(tmp_path / "converted"))
    converted = M.load_clip_teacher(str(tmp_path / "converted"))
    original = M.load_clip_teacher(str(clip_dir))
    np.testing.assert_allclose(converted.encode(["A dog."]), original.encode(["A dog."]),
                               rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------- images


def test_image_corpus_maps_each_caption_to_its_image(image_dir, data_root):
    corpus = M.image_corpus(image_dir, SPLIT, data_root)
    assert corpus.names == tuple(NAMES) and corpus.n_expected == 6 and not corpus.missing
    assert corpus.note == ""
    assert all(p.parent == image_dir.resolve() for p in corpus.paths)
    captions, rel = M.caption_queries(corpus, "de", data_root)
    assert captions == DE
    assert [corpus.names[r] for r in rel] == NAMES


def test_missing_images_leave_their_captions_out(image_dir, tmp_path):
    # Two entries are not served: one absent, one naming a real file outside the folder.
    folder = Path(shutil.copytree(image_dir, tmp_path / "imgs"))
    (tmp_path / "outside.jpg").write_bytes((image_dir / NAMES[0]).read_bytes())
    root = make_fake_multi30k(tmp_path / "data", NAMES[:4] + ["999.jpg", "../outside.jpg"])
    corpus = M.image_corpus(folder, SPLIT, root)
    assert corpus.names == tuple(NAMES[:4])
    assert corpus.missing == ("999.jpg", "../outside.jpg")
    assert "found 4 of 6 images" in corpus.note and "2 captions" in corpus.note
    captions, rel = M.caption_queries(corpus, "en", root)
    assert captions == EN[:4] and rel == [0, 1, 2, 3]


def test_wrong_image_folder_gives_a_clear_message(tmp_path, data_root):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(M.MultimodalError) as err:
        M.image_corpus(empty, SPLIT, data_root)
    msg = str(err.value)
    assert f"found 0 of 6 images of {SPLIT}" in msg and "Flickr30k" in msg and "README" in msg
    with pytest.raises(M.MultimodalError, match="does not exist"):
        M.image_corpus(tmp_path / "nope", SPLIT, data_root)


def test_encode_images_reports_unreadable_files(teacher, image_dir, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image at all")
    paths = [image_dir / NAMES[0], bad, image_dir / NAMES[1], tmp_path / "gone.jpg"]
    emb = M.encode_images(teacher, paths, batch_size=2)
    assert emb.kept == [0, 2] and emb.names == [NAMES[0], NAMES[1]]
    assert [name for name, _ in emb.failed] == ["broken.jpg", "gone.jpg"]
    assert emb.vectors.shape == (2, CLIP_DIM)
    np.testing.assert_allclose(np.linalg.norm(emb.vectors, axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(emb.vectors[0], emb.vectors[1])  # different pictures, different vectors
    with pytest.raises(M.MultimodalError, match="could be read"):
        M.encode_images(teacher, [bad])


# ------------------------------------------------------------------------- retrieval


def test_rank_images_perfect_match_scores_one():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(8, 16))
    rel = [3, 0, 7, 7, 1]
    captions = images[rel] + 0.01 * rng.normal(size=(5, 16))
    res = M.rank_images(captions, images, rel, n_boot=50)
    assert res.n_queries == 5 and res.n_images == 8
    for m in M.IMAGE_METRICS:
        assert res.summary.mean[m] == pytest.approx(1.0)


def test_rank_images_relevant_image_second_gives_mrr_half():
    images = np.eye(6, 8)
    rel = [0, 1, 2, 3, 4, 5]
    # Each caption points mostly at the next image and a little at its own: rank 2.
    captions = np.stack([0.9 * images[(r + 1) % 6] + 0.4 * images[r] for r in rel])
    res = M.rank_images(captions, images, rel, n_boot=50)
    assert res.summary.mean["mrr@10"] == pytest.approx(0.5)
    assert res.summary.mean["recall@1"] == pytest.approx(0.0)
    assert res.summary.mean["recall@5"] == pytest.approx(1.0)
    assert (res.ranking.order[:, 1] == np.array(rel)).all()


def test_caption_to_image_end_to_end(teacher, image_dir, data_root):
    corpus = M.image_corpus(image_dir, SPLIT, data_root)
    captions, rel = M.caption_queries(corpus, "en", data_root)
    res = M.caption_to_image(teacher, teacher, captions, list(corpus.paths), rel, lang="en",
                             n_boot=200)
    assert res.n_queries == 6 and res.n_images == 6 and res.notes == []
    for m in M.IMAGE_METRICS:
        lo, hi = res.summary.ci[m]
        assert 0.0 <= lo <= res.summary.mean[m] <= hi <= 1.0
    # MRR@10 over 6 images: every reciprocal rank is at least 1/6.
    assert res.summary.mean["mrr@10"] >= 1 / 6
    assert res.summary.mean["recall@10"] == pytest.approx(1.0)
    assert sorted(res.ranking.order[0].tolist()) == list(range(6))


def test_unreadable_image_drops_its_caption_with_a_note(teacher, image_dir, data_root, tmp_path):
    folder = Path(shutil.copytree(image_dir, tmp_path / "imgs"))
    (folder / NAMES[2]).write_bytes(b"\xff\xd8 truncated")
    corpus = M.image_corpus(folder, SPLIT, data_root)
    captions, rel = M.caption_queries(corpus, "en", data_root)
    res = M.caption_to_image(teacher, teacher, captions, list(corpus.paths), rel, n_boot=50)
    assert res.n_queries == 5 and res.n_images == 5
    assert any(NAMES[2] in n for n in res.notes)
    assert any("1 captions left out" in n for n in res.notes)


def test_caption_model_of_another_width_is_refused(teacher, tiny_student, image_dir):
    from sentence_transformers import SentenceTransformer

    student = SentenceTransformer(tiny_student, device="cpu")
    with pytest.raises(M.MultimodalError, match="distil the model against this teacher"):
        M.caption_to_image(student, teacher, ["A dog."], [image_dir / NAMES[0]], [0])


# ------------------------------------------------------------------------- distillation


def test_clip_teacher_gets_a_minilm_student_projected_to_its_width(clip_dir):
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize

    teacher, student = load_models(DistillConfig(teacher=str(clip_dir), loss="mse"))
    assert M.is_clip_model(teacher) and not M.is_clip_model(student)
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


# ------------------------------------------------------------------------- CLI


def _cli(argv, capsys):
    rc = cli.main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_retrieve_images_with_a_distilled_student(clip_run, clip_dir, image_dir, data_root,
                                                      capsys):
    rc, out, err = _cli(["retrieve-images", "--model", str(clip_run.run_dir), "--teacher",
                         str(clip_dir), "--images", str(image_dir), "--lang", "de", "--split",
                         SPLIT, "--data-dir", str(data_root), "--bootstrap", "50", "-q"], capsys)
    assert rc == 0, err
    assert "de caption → image" in out and "6 captions × 6 images" in out
    assert "MRR@10" in out and "R@10" in out


def test_cli_retrieve_images_json(clip_dir, image_dir, data_root, capsys):
    rc, out, err = _cli(["retrieve-images", "--teacher", str(clip_dir), "--images",
                         str(image_dir), "--lang", "en", "--data-dir", str(data_root),
                         "--bootstrap", "50", "--json", "-q"], capsys)
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["n_queries"] == 6 and doc["n_images"] == 6
    assert 0.0 <= doc["mean"]["mrr@10"] <= 1.0 and doc["mean"]["recall@10"] == 1.0


def test_cli_retrieve_images_errors_are_one_line(clip_dir, tiny_student, image_dir, data_root,
                                                 tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    base = ["retrieve-images", "--teacher", str(clip_dir), "--data-dir", str(data_root), "-q"]
    rc, _, err = _cli(base + ["--images", str(empty)], capsys)
    assert rc == cli.EXIT_ERROR and err.count("\n") == 1
    assert "found 0 of 6 images" in err and "Traceback" not in err
    rc, _, err = _cli(base + ["--images", str(image_dir), "--model", tiny_student], capsys)
    assert rc == cli.EXIT_ERROR and err.count("\n") == 1 and "32-d" in err
    rc, _, err = _cli(["retrieve-images", "--teacher", tiny_student, "--images", str(image_dir),
                       "--data-dir", str(data_root), "-q"], capsys)
    assert rc == cli.EXIT_ERROR and "not a CLIP-family model" in err

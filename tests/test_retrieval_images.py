"""optical_core.retrieval.images: caption → image retrieval with a CLIP teacher (image
corpus, missing and unreadable images, ranking and metrics).

The tiny random CLIP teacher and the fake Multi30k folder with Flickr30k-named images are
described in tests/_clip_fixture.py; their fixtures are in conftest.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from _clip_fixture import CLIP_DIM, DE, EN, NAMES, SPLIT, make_fake_multi30k

from optical_core.retrieval.images import (
    IMAGE_METRICS,
    MultimodalError,
    caption_queries,
    caption_to_image,
    encode_images,
    image_corpus,
    rank_images,
)

# ------------------------------------------------------------------------------ images


def test_image_corpus_maps_each_caption_to_its_image(image_dir, data_root):
    corpus = image_corpus(image_dir, SPLIT, data_root)
    assert corpus.names == tuple(NAMES) and corpus.n_expected == 6 and not corpus.missing
    assert corpus.note == ""
    assert all(p.parent == image_dir.resolve() for p in corpus.paths)
    captions, rel = caption_queries(corpus, "de", data_root)
    assert captions == DE
    assert [corpus.names[r] for r in rel] == NAMES


def test_missing_images_leave_their_captions_out(image_dir, tmp_path):
    # Two entries are not served: one absent, one naming a real file outside the folder.
    folder = Path(shutil.copytree(image_dir, tmp_path / "imgs"))
    (tmp_path / "outside.jpg").write_bytes((image_dir / NAMES[0]).read_bytes())
    root = make_fake_multi30k(tmp_path / "data", NAMES[:4] + ["999.jpg", "../outside.jpg"])
    corpus = image_corpus(folder, SPLIT, root)
    assert corpus.names == tuple(NAMES[:4])
    assert corpus.missing == ("999.jpg", "../outside.jpg")
    assert "found 4 of 6 images" in corpus.note and "2 captions" in corpus.note
    captions, rel = caption_queries(corpus, "en", root)
    assert captions == EN[:4] and rel == [0, 1, 2, 3]


def test_wrong_image_folder_gives_a_clear_message(tmp_path, data_root):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MultimodalError) as err:
        image_corpus(empty, SPLIT, data_root)
    msg = str(err.value)
    assert f"found 0 of 6 images of {SPLIT}" in msg and "Flickr30k" in msg and "README" in msg
    with pytest.raises(MultimodalError, match="does not exist"):
        image_corpus(tmp_path / "nope", SPLIT, data_root)


def test_encode_images_reports_unreadable_files(teacher, image_dir, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image at all")
    paths = [image_dir / NAMES[0], bad, image_dir / NAMES[1], tmp_path / "gone.jpg"]
    emb = encode_images(teacher, paths, batch_size=2)
    assert emb.kept == [0, 2] and emb.names == [NAMES[0], NAMES[1]]
    assert [name for name, _ in emb.failed] == ["broken.jpg", "gone.jpg"]
    assert emb.vectors.shape == (2, CLIP_DIM)
    np.testing.assert_allclose(np.linalg.norm(emb.vectors, axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(emb.vectors[0], emb.vectors[1])  # different pictures, different vectors
    with pytest.raises(MultimodalError, match="could be read"):
        encode_images(teacher, [bad])


# --------------------------------------------------------------------------- retrieval


def test_rank_images_perfect_match_scores_one():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(8, 16))
    rel = [3, 0, 7, 7, 1]
    captions = images[rel] + 0.01 * rng.normal(size=(5, 16))
    res = rank_images(captions, images, rel, n_boot=50)
    assert res.n_queries == 5 and res.n_images == 8
    for m in IMAGE_METRICS:
        assert res.summary.mean[m] == pytest.approx(1.0)


def test_rank_images_relevant_image_second_gives_mrr_half():
    images = np.eye(6, 8)
    rel = [0, 1, 2, 3, 4, 5]
    # Each caption points mostly at the next image and a little at its own: rank 2.
    captions = np.stack([0.9 * images[(r + 1) % 6] + 0.4 * images[r] for r in rel])
    res = rank_images(captions, images, rel, n_boot=50)
    assert res.summary.mean["mrr@10"] == pytest.approx(0.5)
    assert res.summary.mean["recall@1"] == pytest.approx(0.0)
    assert res.summary.mean["recall@5"] == pytest.approx(1.0)
    assert (res.ranking.order[:, 1] == np.array(rel)).all()


def test_caption_to_image_end_to_end(teacher, image_dir, data_root):
    corpus = image_corpus(image_dir, SPLIT, data_root)
    captions, rel = caption_queries(corpus, "en", data_root)
    res = caption_to_image(teacher, teacher, captions, list(corpus.paths), rel, lang="en",
                             n_boot=200)
    assert res.n_queries == 6 and res.n_images == 6 and res.notes == []
    for m in IMAGE_METRICS:
        lo, hi = res.summary.ci[m]
        assert 0.0 <= lo <= res.summary.mean[m] <= hi <= 1.0
    # MRR@10 over 6 images: every reciprocal rank is at least 1/6.
    assert res.summary.mean["mrr@10"] >= 1 / 6
    assert res.summary.mean["recall@10"] == pytest.approx(1.0)
    assert sorted(res.ranking.order[0].tolist()) == list(range(6))


def test_unreadable_image_drops_its_caption_with_a_note(teacher, image_dir, data_root, tmp_path):
    folder = Path(shutil.copytree(image_dir, tmp_path / "imgs"))
    (folder / NAMES[2]).write_bytes(b"\xff\xd8 truncated")
    corpus = image_corpus(folder, SPLIT, data_root)
    captions, rel = caption_queries(corpus, "en", data_root)
    res = caption_to_image(teacher, teacher, captions, list(corpus.paths), rel, n_boot=50)
    assert res.n_queries == 5 and res.n_images == 5
    assert any(NAMES[2] in n for n in res.notes)
    assert any("1 captions left out" in n for n in res.notes)


def test_caption_model_of_another_width_is_refused(teacher, tiny_student, image_dir):
    from sentence_transformers import SentenceTransformer

    student = SentenceTransformer(tiny_student, device="cpu")
    with pytest.raises(MultimodalError, match="distil the model against this teacher"):
        caption_to_image(student, teacher, ["A dog."], [image_dir / NAMES[0]], [0])

"""optical_core.encoders.transformer: token and sentence embeddings of the real embedded
MiniLM, and the safe loader (safetensors only, clear errors) on a tiny randomly initialised
BERT."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from optical_core.encoders.base import ModelLoadError, TruncationWarning
from optical_core.encoders.registry import load_encoder

# -------------------------------------------------------------------------- embeddings


def test_default_model_token_embeddings_and_word_ids(default_encoder):
    te = default_encoder.embed("Ein Hund läuft am Strand entlang.")
    assert te.embeddings.shape == (len(te.tokens), 384)
    assert te.embeddings.dtype == np.float32
    assert "[CLS]" not in te.tokens and "[SEP]" not in te.tokens
    assert te.words == ["Ein", "Hund", "läuft", "am", "Strand", "entlang", "."]
    assert te.word_ids == sorted(te.word_ids)  # subwords come in word order
    assert set(te.word_ids) == set(range(len(te.words)))
    # "entlang" is split into several subwords that all point at word 5.
    assert te.word_ids.count(5) >= 2
    for (s, e), tok in zip(te.offsets, te.tokens):
        assert te.text[s:e].lower().replace("ä", "a") == tok.removeprefix("##")


def test_sentence_embedding_equals_mean_of_token_embeddings(default_encoder):
    text = "A dog runs along the beach."
    sent = default_encoder.sentence_embeddings([text])[0]
    assert np.linalg.norm(sent) == pytest.approx(1.0, abs=1e-5)
    # MiniLM pools the mean over all tokens, [CLS]/[SEP] included, so only close.
    te = default_encoder.embed(text)
    mean = te.embeddings.mean(0)
    cos = float(mean @ sent / np.linalg.norm(mean))
    assert cos > 0.95


def test_paraphrases_are_closer_than_unrelated(default_encoder):
    emb = default_encoder.sentence_embeddings(
        ["A dog runs along the beach.", "A puppy is running on the sand.",
         "Two men play chess indoors."]
    )
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.2


def test_pretokenised_words_fix_segmentation(default_encoder):
    te = default_encoder.embed("l'homme est-il là ?", words=["l'", "homme", "est-il", "là", "?"])
    assert te.words == ["l'", "homme", "est-il", "là", "?"]


def test_truncation_warns_and_flags(default_encoder):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        te = default_encoder.embed("word " * 5000)
    assert te.truncated and te.n_dropped > 4000
    assert len(te) <= default_encoder.max_length
    assert any(issubclass(w.category, TruncationWarning) for w in caught)


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_is_a_clear_error(default_encoder, text):
    with pytest.raises(ValueError, match="empty"):
        default_encoder.embed(text)


def test_emoji_only_text_still_embeds(default_encoder):
    te = default_encoder.embed("🐶🏖️")
    assert len(te) >= 1 and np.all(np.isfinite(te.embeddings))


# ----------------------------------------------------------------------------- loading


def test_tiny_random_bert_from_a_config(tiny_bert_dir):
    enc = load_encoder(str(tiny_bert_dir))
    assert enc.dim == 32
    te = enc.embed("A dog runs along the beach.")
    assert te.embeddings.shape == (len(te.tokens), 32)
    assert te.words[-1] == "."
    sent = enc.sentence_embeddings(["a b", "c"])
    assert sent.shape == (2, 32)


def test_unknown_model_id_fails_fast_with_advice():
    with pytest.raises(ModelLoadError, match="offline by default"):
        load_encoder("no-such-org/no-such-model")


def test_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelLoadError, match="not a model folder"):
        load_encoder(str(tmp_path))


def test_missing_folder(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_encoder(str(tmp_path / "nope"))


def test_pickle_only_checkpoint_is_refused(tiny_bert_dir, tmp_path):
    import shutil

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_bert_dir, folder)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(ModelLoadError, match="safetensors"):
        load_encoder(str(folder))


def test_corrupt_safetensors_is_a_clear_error(tiny_bert_dir, tmp_path):
    import shutil

    folder = tmp_path / "corrupt"
    shutil.copytree(tiny_bert_dir, folder)
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ModelLoadError, match="could not load the model folder"):
        load_encoder(str(folder))


def test_a_distillation_run_folder_loads_its_model(tiny_bert_dir, tmp_path):
    import shutil

    run = tmp_path / "my-run"
    shutil.copytree(tiny_bert_dir, run / "model")
    (run / "run.json").write_text("{}")
    enc = load_encoder(str(run))
    assert enc.dim == 32

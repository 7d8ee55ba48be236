"""optical_core.distill.teacher_cache: the teacher's embeddings computed once, reused, and
never half-read; the loss gives the same value from the cache as with the teacher online.

A tiny random BERT (the ``tiny`` fixture) is the teacher; the texts are demo captions.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file, save_file

from optical_core.distill import teacher_cache as tc
from optical_core.distill.config import TRAINING_OT, DistillError
from optical_core.distill.loss import OpticalLoss, OpticalLossConfig
from optical_core.encoders.transformer import load_sentence_transformer

TEXTS = [
    "A dog runs along the beach.",
    "Two men are playing chess in a park .",
    "A woman in a red dress rides a bicycle down a busy city street at night.",
    "Kids.",
    "[SEP]",  # a sentence of a special token only keeps its real tokens
]


@pytest.fixture(scope="module")
def teacher(tiny):
    model = load_sentence_transformer(tiny, "cpu")
    model.max_seq_length = 16
    return model.eval()  # no dropout: the values are compared


def online(teacher, texts):
    """The content tokens and sentence embeddings of a plain no-grad forward pass."""
    feats = teacher.preprocess(texts)
    with torch.no_grad():
        out = teacher(dict(feats))
    mask = tc.content_mask(feats["input_ids"], feats["attention_mask"],
                           tc.special_ids(teacher.tokenizer))
    tokens = [out["token_embeddings"][i][mask[i]] for i in range(len(texts))]
    return tokens, out["sentence_embedding"]


def test_the_cache_holds_what_the_teacher_gives(teacher, tmp_path):
    emb = tc.teacher_cache(teacher, TEXTS, root=tmp_path)
    tokens, sentence = online(teacher, TEXTS)
    assert len(emb) == len(TEXTS) and not emb.reused
    for i, want in enumerate(tokens):
        got = emb.tokens[emb.offsets[i]:emb.offsets[i + 1]].float()
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, atol=2e-3, rtol=2e-3)  # float16 storage
    torch.testing.assert_close(emb.sentence, sentence, atol=1e-5, rtol=1e-5)
    # The special-token-only sentence keeps its real tokens ([CLS] [SEP] [SEP]).
    assert int(emb.offsets[-1] - emb.offsets[-2]) == 3


def test_batch_pads_to_the_longest_row(teacher, tmp_path):
    emb = tc.teacher_cache(teacher, TEXTS, root=tmp_path)
    tok, mask, sent = emb.batch(torch.tensor([3, 2]))
    lengths = (emb.offsets[1:] - emb.offsets[:-1])[[3, 2]]
    assert tok.shape == (2, int(lengths.max()), emb.tokens.shape[1])
    assert mask.sum(1).tolist() == lengths.tolist()
    assert float(tok[~mask].abs().sum()) == 0.0  # padding holds zeros, never a neighbour's row
    torch.testing.assert_close(sent, emb.sentence[[3, 2]])


def test_a_second_call_reuses_the_entry(teacher, tmp_path):
    first = tc.teacher_cache(teacher, TEXTS, root=tmp_path)
    second = tc.teacher_cache(teacher, TEXTS, root=tmp_path)
    assert second.reused and second.path == first.path
    assert torch.equal(first.tokens, second.tokens)


@pytest.mark.parametrize("change", ["texts", "order", "max_tokens", "weights"])
def test_a_changed_key_builds_a_new_entry(teacher, tiny_other, tmp_path, change):
    base = tc.teacher_cache(teacher, TEXTS, root=tmp_path)
    texts, model = list(TEXTS), teacher
    if change == "texts":
        texts[0] = "A cat runs along the beach."
    elif change == "order":
        texts = texts[::-1]
    elif change == "max_tokens":
        saved = teacher.max_seq_length
        teacher.max_seq_length = 8
    else:
        model = load_sentence_transformer(tiny_other, "cpu")
        model.max_seq_length = 16
    try:
        other = tc.teacher_cache(model, texts, root=tmp_path)
    finally:
        if change == "max_tokens":
            teacher.max_seq_length = saved
    assert not other.reused and other.path != base.path


@pytest.mark.parametrize("damage", ["truncate", "meta", "shape", "nan", "missing"])
def test_a_damaged_entry_is_rebuilt_not_read(teacher, tmp_path, damage):
    good = tc.teacher_cache(teacher, TEXTS, root=tmp_path)
    path = good.path / tc.EMBEDDINGS_FILE
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "meta":
        (good.path / tc.META_FILE).write_text("{not json")
    elif damage == "shape":
        arrays = load_file(path)
        arrays["offsets"] = arrays["offsets"][:-1].contiguous()
        save_file(arrays, path)
    elif damage == "nan":
        arrays = load_file(path)
        arrays["sentence"][0, 0] = float("nan")
        save_file(arrays, path)
    else:
        path.unlink()
    again = tc.teacher_cache(teacher, TEXTS, root=tmp_path)
    assert not again.reused
    torch.testing.assert_close(again.tokens.float(), good.tokens.float())
    assert tc.teacher_cache(teacher, TEXTS, root=tmp_path).reused  # the rebuilt entry is whole


def test_a_later_rank_waits_for_rank_0(teacher, tmp_path, monkeypatch):
    monkeypatch.setattr(tc, "WAIT_FOR_BUILD_S", 30.0)
    got = {}
    waiter = threading.Thread(
        target=lambda: got.setdefault(
            "emb", tc.teacher_cache(teacher, TEXTS, root=tmp_path, rank=1)))
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive() and "emb" not in got  # rank 1 never builds
    tc.teacher_cache(teacher, TEXTS, root=tmp_path, rank=0)
    waiter.join(timeout=30)
    assert got["emb"].reused


def test_a_later_rank_gives_up_with_a_clear_error(teacher, tmp_path, monkeypatch):
    monkeypatch.setattr(tc, "WAIT_FOR_BUILD_S", 0.6)
    with pytest.raises(DistillError, match="waited .* for rank 0"):
        tc.teacher_cache(teacher, TEXTS, root=tmp_path, rank=1)


@pytest.mark.parametrize("weights", [(1.0, 0.0), (1.0, 1.0)], ids=["ot", "ot+mse"])
def test_the_loss_is_the_same_from_the_cache(tiny, tiny_other, tmp_path, weights):
    teacher = load_sentence_transformer(tiny, "cpu")
    student = load_sentence_transformer(tiny_other, "cpu").eval()  # no dropout between the calls
    foreign = ["Ein Hund läuft am Strand entlang.", "Zwei Männer spielen Schach.",
               "Eine Frau fährt Rad.", "Kinder.", "Hallo"]
    emb = tc.teacher_cache(teacher, TEXTS, root=tmp_path)
    terms = OpticalLossConfig(ot=replace(TRAINING_OT, epsilon=0.05), ot_weight=weights[0],
                              mse_weight=weights[1])
    with_cache = OpticalLoss(student, teacher, terms, teacher_embeddings=emb)
    without = OpticalLoss(student, teacher, terms)
    feats = [dict(student.preprocess(TEXTS)), dict(student.preprocess(foreign))]
    index = torch.arange(len(TEXTS))
    a = with_cache([dict(f) for f in feats], index)
    b = without([dict(f) for f in feats], None)
    torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3)
    with pytest.raises(DistillError, match="index into the cache"):
        with_cache([dict(f) for f in feats], None)


def test_a_zeroed_entry_is_rebuilt_and_says_so(teacher, tmp_path):
    """Token vectors overwritten with zeros (shapes intact) must not be reused: the loss
    against zero targets sat at 1.0."""
    from optical_core.fingerprint import CacheRebuiltWarning

    good = tc.teacher_cache(teacher, TEXTS, root=tmp_path)
    path = good.path / tc.EMBEDDINGS_FILE
    arrays = load_file(path)
    arrays["tokens"] = torch.zeros_like(arrays["tokens"])
    save_file(arrays, path)
    with pytest.warns(CacheRebuiltWarning, match="checksum"):
        again = tc.teacher_cache(teacher, TEXTS, root=tmp_path)
    assert not again.reused
    torch.testing.assert_close(again.tokens.float(), good.tokens.float())
    assert tc.teacher_cache(teacher, TEXTS, root=tmp_path).reused


def test_a_zeroed_entry_without_a_checksum_is_rebuilt(teacher, tmp_path):
    import json

    good = tc.teacher_cache(teacher, TEXTS, root=tmp_path)
    meta = json.loads((good.path / tc.META_FILE).read_text())
    del meta["checksum"]  # an entry written before checksums existed stays valid
    (good.path / tc.META_FILE).write_text(json.dumps(meta))
    assert tc.teacher_cache(teacher, TEXTS, root=tmp_path).reused
    arrays = load_file(good.path / tc.EMBEDDINGS_FILE)
    arrays["tokens"][arrays["offsets"][1]] = 0.0  # one content token zeroed
    save_file(arrays, good.path / tc.EMBEDDINGS_FILE)
    again = tc.teacher_cache(teacher, TEXTS, root=tmp_path)
    assert not again.reused
    torch.testing.assert_close(again.tokens.float(), good.tokens.float())


def test_the_entry_key_is_unchanged(teacher):
    """Existing caches stay valid: the key of a teacher is what it was before the
    fingerprint helpers moved (the tag that starts every weights fingerprint)."""
    from optical_core.fingerprint import WEIGHTS_TAG

    assert WEIGHTS_TAG == "optical-retrieval-cache-v1"
    assert len(tc.cache_key(teacher, TEXTS)) == 32

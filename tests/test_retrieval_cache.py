"""optical_core.retrieval.cache: the content-addressed embedding cache (round trip,
invalidation by documents and weights, repair of damaged files) and its folder."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np

from optical_core.retrieval.cache import embedding_cache_dir, model_fingerprint
from optical_core.retrieval.corpus import demo_corpus
from optical_core.retrieval.index import build_index


def test_cache_round_trip_and_invalidation(encoder, tmp_path):
    from optical_core.encoders.transformer import Encoder

    corpus = demo_corpus()
    first = build_index(encoder, corpus, tokens=True, cache_dir=tmp_path)
    assert first.from_cache == {"sentence": False, "tokens": False}
    entries = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1
    files = sorted(p.relative_to(entries[0]).as_posix() for p in entries[0].rglob("*.npy"))
    assert files == ["sentence/sentence.npy", "tokens/token_offsets.npy",
                     "tokens/token_strings.npy", "tokens/token_vectors.npy"]
    for f in entries[0].rglob("*.npy"):
        np.load(f, allow_pickle=False)  # plain arrays, no pickles
    assert not list(tmp_path.rglob(".tmp-*"))  # nothing half-written left behind

    again = build_index(encoder, corpus, tokens=True, cache_dir=tmp_path)
    assert again.from_cache == {"sentence": True, "tokens": True}
    np.testing.assert_array_equal(first.sentence, again.sentence)
    np.testing.assert_array_equal(first.token_vectors, again.token_vectors)
    assert first.doc_tokens(3)[1] == again.doc_tokens(3)[1]

    # other documents -> another entry
    other = build_index(encoder, demo_corpus(task2=True), tokens=False, cache_dir=tmp_path)
    assert other.from_cache == {"sentence": False}
    assert other.cache_path != first.cache_path

    # other weights (same architecture and name) -> another entry
    clone = copy.deepcopy(encoder.model)
    with __import__("torch").no_grad():
        next(clone.parameters()).add_(1e-3)
    changed = Encoder(clone, name=encoder.name)
    assert model_fingerprint(changed) != model_fingerprint(encoder)
    assert build_index(changed, corpus, tokens=False, cache_dir=tmp_path).from_cache == {
        "sentence": False}

    # a damaged file is detected, recomputed and repaired
    (first.cache_path / "sentence" / "sentence.npy").write_bytes(b"not an array")
    fixed = build_index(encoder, corpus, tokens=False, cache_dir=tmp_path)
    assert fixed.from_cache == {"sentence": False}
    np.testing.assert_allclose(fixed.sentence, first.sentence, atol=1e-6)
    assert build_index(encoder, corpus, tokens=False, cache_dir=tmp_path).from_cache == {
        "sentence": True}
    # a meta file of another model at this path is not trusted
    meta = first.cache_path / "tokens" / "meta.json"
    m = json.loads(meta.read_text())
    m["model"] = "0" * 32
    meta.write_text(json.dumps(m))
    idx = build_index(encoder, corpus, tokens=True, cache_dir=tmp_path)
    assert idx.from_cache == {"sentence": True, "tokens": False}

    off = build_index(encoder, corpus, tokens=False, cache=False)
    assert off.cache_path is None and off.from_cache == {"sentence": False}


def test_cache_dir_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("OPTICAL_CACHE_DIR", str(tmp_path))
    assert embedding_cache_dir() == tmp_path / "embeddings"
    monkeypatch.delenv("OPTICAL_CACHE_DIR")
    assert embedding_cache_dir() == Path.home() / ".cache" / "optical-explorer" / "embeddings"


def test_a_changed_vector_fails_the_checksum_and_is_rebuilt(encoder, tmp_path):
    import pytest

    from optical_core.fingerprint import CacheRebuiltWarning

    corpus = demo_corpus()
    first = build_index(encoder, corpus, tokens=True, cache_dir=tmp_path)
    meta = json.loads((first.cache_path / "sentence" / "meta.json").read_text())
    assert len(meta["checksum"]) == 32
    # one vector changed in place: shapes, dtype and finiteness are intact
    path = first.cache_path / "sentence" / "sentence.npy"
    arr = np.load(path)
    arr[2] = arr[3]
    np.save(path, arr)
    with pytest.warns(CacheRebuiltWarning, match="checksum"):
        fixed = build_index(encoder, corpus, tokens=False, cache_dir=tmp_path)
    assert fixed.from_cache == {"sentence": False}
    np.testing.assert_allclose(fixed.sentence, first.sentence, atol=1e-6)
    assert build_index(encoder, corpus, tokens=False, cache_dir=tmp_path).from_cache == {
        "sentence": True}


def test_a_zeroed_entry_without_a_checksum_is_rebuilt(encoder, tmp_path):
    corpus = demo_corpus()
    first = build_index(encoder, corpus, tokens=True, cache_dir=tmp_path)
    part = first.cache_path / "tokens"
    meta = json.loads((part / "meta.json").read_text())
    del meta["checksum"]  # an entry written before checksums existed
    (part / "meta.json").write_text(json.dumps(meta))
    assert build_index(encoder, corpus, tokens=True, cache_dir=tmp_path).from_cache == {
        "sentence": True, "tokens": True}  # still valid: old entries stay usable
    vec = np.load(part / "token_vectors.npy")
    np.save(part / "token_vectors.npy", np.zeros_like(vec))
    again = build_index(encoder, corpus, tokens=True, cache_dir=tmp_path)
    assert again.from_cache == {"sentence": True, "tokens": False}
    np.testing.assert_allclose(again.token_vectors, first.token_vectors, atol=1e-6)

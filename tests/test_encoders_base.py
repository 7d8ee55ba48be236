"""optical_core.encoders.base: word spans, and word-level pooling of token embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from optical_core.encoders.base import word_spans


def test_word_level_pools_subwords(default_encoder):
    te = default_encoder.embed("Ein Hund läuft am Strand entlang.")
    words = te.word_level()
    assert words.tokens == te.words
    ids = np.asarray(te.word_ids)
    assert np.allclose(words.embeddings[5], te.embeddings[ids == 5].mean(0), atol=1e-6)


def test_word_spans_default_and_given():
    assert word_spans("Hi, you!") == [(0, 2), (2, 3), (4, 7), (7, 8)]
    with pytest.raises(ValueError, match="not found"):
        word_spans("a b", ["a", "c"])

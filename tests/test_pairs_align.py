"""optical_core.pairs.align: one pair end to end with the real default model, and AER on real
gold data."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from optical_core import alignment as al
from optical_core.ot.config import OTConfig
from optical_core.pairs.align import align_embeddings, align_texts, score_pair

SRC = "A dog runs along the beach."
PARA = "A puppy is running on the sand."


def _word_pairs(result):
    return {(result.src_words[i], result.tgt_words[j]) for i, j in result.word_links}


@pytest.mark.parametrize("method", ["ot", "argmax", "itermax"])
def test_paraphrase_links_dog_puppy_and_beach_sand(default_encoder, method):
    result = align_texts(default_encoder, SRC, PARA, level="word", link_method=method)
    assert {("dog", "puppy"), ("beach", "sand")} <= _word_pairs(result)
    assert result.plan.shape == (7, 8)
    assert result.ot.converged


def test_subword_level_maps_links_back_to_words(default_encoder):
    result = align_texts(default_encoder, SRC, "Ein Hund läuft am Strand entlang.",
                         level="subword", config=OTConfig(solver="exact"))
    assert len(result.src_tokens) == len(result.src_word_ids)
    assert len(result.tgt_tokens) > len(result.tgt_words)  # German splits into subwords
    for i, j in result.word_links:
        assert 0 <= i < len(result.src_words) and 0 <= j < len(result.tgt_words)


def test_partial_transport_reports_unaligned_mass(default_encoder):
    src, tgt = default_encoder.token_embeddings([SRC, "Ein Hund läuft am Strand entlang."])
    result = align_embeddings(src, tgt, config=OTConfig(solver="partial", mass=0.8),
                              level="word")
    assert result.ot.transported_mass == pytest.approx(0.8, abs=1e-6)
    assert result.ot.unaligned_target.sum() == pytest.approx(0.2, abs=1e-6)


def test_epsilon_blurs_the_plan(default_encoder):
    src, tgt = default_encoder.token_embeddings([SRC, PARA])
    sharp = align_embeddings(src, tgt, config=OTConfig(epsilon=0.01), level="word").plan
    blurred = align_embeddings(src, tgt, config=OTConfig(epsilon=1.0), level="word").plan
    assert sharp.max() > 2 * blurred.max()


def test_norm_weighting_changes_the_marginals(default_encoder):
    src, tgt = default_encoder.token_embeddings([SRC, PARA])
    result = align_embeddings(src, tgt, weighting="norm")
    assert not np.allclose(result.a, result.a[0])
    assert result.a.sum() == pytest.approx(1.0)


def test_truncated_text_gets_a_note(default_encoder):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = align_texts(default_encoder, "dog " * 400, "cat")
    assert any("cut at the model's limit" in note for note in result.notes)


def test_gold_pair_scoring_uses_gold_tokens(default_encoder):
    src_words = ["A", "dog", "runs", "."]
    tgt_words = ["Ein", "Hund", "läuft", "."]
    result = align_texts(default_encoder, " ".join(src_words), " ".join(tgt_words),
                         src_words=src_words, tgt_words=tgt_words, level="word",
                         config=OTConfig(solver="exact"))
    scores = score_pair(result, {(3, 3)}, {(3, 3), (0, 0)})
    assert 0.0 <= scores.aer <= 1.0
    assert result.src_words == src_words and result.tgt_words == tgt_words


def test_default_model_aer_on_real_enfr_gold(default_encoder, shared_data):
    """DESIGN.md's sanity figure: argmax intersection, word level, all 200 pairs: AER 47.0.
    A subset of 60 pairs must land near it (and beat the diagonal baseline)."""
    from optical_core.gold import load_gold

    gold = load_gold("enfr", shared_data)[:60]
    texts = [t for g in gold for t in (" ".join(g.src_tokens), " ".join(g.tgt_tokens))]
    words = [w for g in gold for w in (g.src_tokens, g.tgt_tokens)]
    embs = default_encoder.token_embeddings(texts, words)
    preds = [align_embeddings(embs[2 * k], embs[2 * k + 1], level="word",
                              link_method="argmax").word_links for k in range(len(gold))]
    model = al.score_corpus(preds, gold)
    diagonal = al.score_corpus(
        [al.diagonal_links(len(g.src_tokens), len(g.tgt_tokens)) for g in gold], gold)
    assert 0.38 < model.aer < 0.56
    assert model.aer < diagonal.aer

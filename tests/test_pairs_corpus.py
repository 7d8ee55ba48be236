"""optical_core.pairs.corpus: reading a corpus file, per-sentence scores of one model and
the sentences where two models differ most."""

from __future__ import annotations

import numpy as np
import pytest

from optical_core import alignment as al
from optical_core.demo_set import load_demo
from optical_core.ot.config import OTConfig
from optical_core.pairs.align import align_texts
from optical_core.pairs.corpus import (
    CorpusError,
    CorpusPair,
    SentenceScore,
    compare_sentences,
    diagonal_mass,
    from_gold,
    parse_corpus,
    sentence_scores,
)


def test_parse_with_and_without_gold():
    pairs = parse_corpus("a dog runs ||| ein Hund läuft\r\n\n the cat ||| die Katze\n")
    assert [p.src_words for p in pairs] == [("a", "dog", "runs"), ("the", "cat")]
    assert pairs[1].tgt == "die Katze" and pairs[0].sure is None
    gold = parse_corpus(b"a dog ||| ein Hund ||| 0-0 1-1\nthe cat . ||| die Katze ||| 0-0 1p1\n")
    assert gold[0].sure == {(0, 0), (1, 1)} and gold[1].sure == {(0, 0)}
    assert gold[1].possible == {(0, 0), (1, 1)}
    empty_gold = parse_corpus("a ||| b |||\n")  # a third field with no link: gold, none sure
    assert empty_gold[0].sure == frozenset()


@pytest.mark.parametrize("text, match", [
    ("a dog ein Hund\n", "line 1: expected 'source ||| target'"),
    ("a ||| b\n ||| c\n", "line 2: the source side is empty"),
    ("a b ||| c ||| 0-5\n", "line 1: .*out of range"),
    ("a b ||| c ||| x\n", "line 1: malformed link"),
    ("a ||| b ||| 0-0\nc ||| d\n", "some lines have gold links"),
    ("\n\n", "no sentence pair"),
    ("a ||| b ||| c ||| d\n", "found 3"),
])
def test_bad_files_say_where_and_what(text, match):
    with pytest.raises(CorpusError, match=match) as err:
        parse_corpus(text, name="my.txt")
    assert str(err.value).startswith("my.txt")


def test_limits():
    with pytest.raises(CorpusError, match="at most 100"):
        parse_corpus("a ||| b\n" * 50, name="f", max_bytes=100)
    with pytest.raises(CorpusError, match="at most 3: keep the first 3"):
        parse_corpus("a ||| b\n" * 4, max_pairs=3)
    with pytest.raises(CorpusError, match="not UTF-8"):
        parse_corpus(b"a ||| \xff\xfe\n")
    with pytest.raises(CorpusError, match="201 words"):
        parse_corpus("w " * 201 + "||| b")


def test_diagonal_mass():
    assert diagonal_mass(np.eye(4) / 4) == pytest.approx(1.0)
    assert diagonal_mass(np.full((3, 3), 1 / 9)) == pytest.approx(1 / 3)
    assert diagonal_mass(np.fliplr(np.eye(3)) / 3) == pytest.approx(1 / 3)  # the centre only
    assert diagonal_mass(np.zeros((2, 2))) == 0.0


def test_scores_agree_with_the_alignment_page(default_encoder):
    demo = [p.to_gold() for p in load_demo("de") if p.has_gold][:3]
    pairs = from_gold(demo)
    scores = sentence_scores(default_encoder, pairs)
    assert [s.index for s in scores] == [0, 1, 2]
    for g, s in zip(demo, scores):
        one = align_texts(default_encoder, " ".join(g.src_tokens), " ".join(g.tgt_tokens),
                          src_words=g.src_tokens, tgt_words=g.tgt_tokens, level="word",
                          config=OTConfig(epsilon=0.05))
        assert s.aer == pytest.approx(al.score_alignment(one.word_links, g.sure,
                                                         g.possible).aer)
        assert 0.0 <= s.entropy <= 1.0 and 0.0 <= s.diagonal <= 1.0


def test_a_model_aligns_a_sentence_with_itself_on_the_diagonal(default_encoder):
    text = "the red car stops at the old bridge ||| the red car stops at the old bridge"
    same = parse_corpus(f"{text} ||| 0-0 1-1 2-2 3-3 4-4 5-5 6-6 7-7\n"
                        f"{text} ||| 0-7 1-6 2-5 3-4 4-3 5-2 6-1 7-0\n")
    right, wrong = sentence_scores(default_encoder, same)
    assert right.aer == 0.0 and right.diagonal > 0.9 and right.entropy < 0.2
    assert wrong.aer > 0.8  # the same plan against reversed gold links
    (only,) = sentence_scores(default_encoder, parse_corpus(text))
    assert only.aer is None and only.diagonal == pytest.approx(right.diagonal)


def _s(k, aer, entropy):
    return SentenceScore(k, aer, entropy, 0.5)


def test_compare_sorts_by_the_difference():
    first = [_s(0, 0.5, 0.2), _s(1, 0.1, 0.2), _s(2, 0.3, 0.9)]
    second = [_s(0, 0.4, 0.9), _s(1, 0.9, 0.2), _s(2, 0.3, 0.1)]
    diffs = compare_sentences(first, second)
    assert [d.index for d in diffs] == [1, 0, 2] and diffs[0].delta == pytest.approx(0.8)
    assert {d.metric for d in diffs} == {"aer"}
    no_gold = compare_sentences([_s(0, None, 0.2), _s(1, None, 0.5)],
                                [_s(0, None, 0.6), _s(1, None, 0.5)])
    assert [(d.index, d.metric) for d in no_gold] == [(0, "entropy"), (1, "entropy")]
    assert no_gold[0].delta == pytest.approx(0.4)
    with pytest.raises(ValueError, match="same corpus"):
        compare_sentences(first, second[:2])


def test_corpus_pair_text():
    p = CorpusPair(("a", "b"), ("c",))
    assert (p.src, p.tgt, p.sure) == ("a b", "c", None)

"""``optical score --corpus``: the Corpus page's per-sentence scores for a whole file."""

from __future__ import annotations

import pytest
from _distill_models import make_tiny_model

from optical_core.cli.entry import main
from optical_core.encoders.registry import load_encoder
from optical_core.ot.config import OTConfig
from optical_core.pairs.corpus import compare_sentences, parse_corpus, sentence_scores

GOLD = (
    "the cat sleeps ||| le chat dort ||| 0-0 1-1 2-2\n"
    "a dog runs on the beach ||| un chien court sur la plage ||| 0-0 1-1 2-2 3-3 4p4 5-5\n"
    "two children play ||| deux enfants jouent ||| 0-0 1-1 2-2\n"
)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return make_tiny_model(root / "a", seed=0), make_tiny_model(root / "b", seed=1)


def _run(argv, capsys):
    code = main(["-q", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_one_model_prints_the_pages_scores_for_every_pair(tmp_path, models, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text(GOLD, encoding="utf-8")
    code, out, err = _run(["score", "--corpus", str(corpus), "--model", models[0]], capsys)
    assert code == 0, err
    rows = [line.split("\t") for line in out.strip().splitlines()]
    assert rows[0] == ["pair", "AER", "row_entropy", "diagonal_mass"]
    want = sentence_scores(load_encoder(models[0]), parse_corpus(GOLD), OTConfig(epsilon=0.05))
    assert [r[0] for r in rows[1:]] == ["1", "2", "3"]
    for row, s in zip(rows[1:], want):
        assert float(row[1]) == pytest.approx(s.aer, abs=1e-4)
        assert float(row[2]) == pytest.approx(s.entropy, abs=1e-4)
        assert float(row[3]) == pytest.approx(s.diagonal, abs=1e-4)
    assert "mean AER" in err


def test_two_models_are_sorted_by_how_much_they_differ(tmp_path, models, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text(GOLD, encoding="utf-8")
    code, out, err = _run(["score", "--corpus", str(corpus), "--model", models[0],
                           "--second-model", models[1]], capsys)
    assert code == 0, err
    rows = [line.split("\t") for line in out.strip().splitlines()][1:]
    pairs = parse_corpus(GOLD)
    cfg = OTConfig(epsilon=0.05)
    diffs = compare_sentences(sentence_scores(load_encoder(models[0]), pairs, cfg),
                              sentence_scores(load_encoder(models[1]), pairs, cfg))
    assert [int(r[0]) for r in rows] == [d.index + 1 for d in diffs]
    assert [float(r[4]) for r in rows] == pytest.approx([d.delta for d in diffs], abs=1e-4)
    deltas = [abs(float(r[4])) for r in rows]
    assert deltas == sorted(deltas, reverse=True)


def test_a_bad_corpus_line_is_one_line_naming_the_file(tmp_path, models, capsys):
    corpus = tmp_path / "bad.txt"
    corpus.write_text("no separator here\n", encoding="utf-8")
    code, out, err = _run(["score", "--corpus", str(corpus), "--model", models[0]], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "bad.txt" in err and "line 1" in err


@pytest.mark.parametrize("argv, says", [
    ([], "give --gold and --pred"),
    (["--gold", "g.txt"], "give --gold and --pred"),
    (["--corpus", "c.txt", "--gold", "g.txt"], "one or the other"),
    (["--corpus", "c.txt", "--epsilon", "nan"], "--epsilon"),
])
def test_modes_are_named_when_mixed_or_missing(argv, says, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(["score", *argv], capsys)
    assert code == 2 and says in err
    assert len(err.strip().splitlines()) == 1

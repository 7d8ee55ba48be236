"""AppTest of the Corpus page: a gold set or an uploaded file of sentence pairs, both
models' per-sentence scores, the pairs sorted by how much they differ, and the link that
opens a pair on the Alignment page."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from _helpers import ok
from streamlit.testing.v1 import AppTest

from optical_core.pairs.corpus import MAX_CORPUS_BYTES

ROOT = Path(__file__).resolve().parents[1]

PAGE = str(ROOT / "pages" / "5_Corpus.py")
TIMEOUT = 900
GOOD = ("a dog runs on the beach ||| ein Hund läuft am Strand ||| 0-0 1-1 2-2 5-4\n"
        "the red car ||| das rote Auto ||| 0-0 1-1 2-2\n"
        "two children play ||| zwei Kinder spielen ||| 0-0 1-1 2-2\n").encode()


@pytest.fixture(autouse=True)
def _isolated_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTICAL_RUNS_DIR", str(tmp_path / "runs"))


def _upload(name: str, data: bytes) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.session_state["co_source"] = "file"
    ok(at.run())
    at.get("file_uploader")[0].set_value((name, data, "text/plain"))
    return ok(at.run())


def _table(at: AppTest):
    return at.dataframe[0].value


def test_an_uploaded_file_is_scored_and_sorted(tiny_bert_dir, monkeypatch):
    monkeypatch.setenv("OPTICAL_MODELS_DIR", str(Path(tiny_bert_dir).parent))
    at = _upload("pairs.txt", GOOD)
    assert not at.error, [e.value for e in at.error]
    table = _table(at)
    assert sorted(table["line"]) == [1, 2, 3]
    assert list(table["Δ"]) == [0.0, 0.0, 0.0]  # the same model twice
    assert any("so every Δ is 0" in i.value for i in at.info)  # and the page says why
    # Short metric labels that fit at 1,000 px; the models are named in the line above.
    assert [m.label for m in at.metric][:2] == ["Mean AER (1)", "Mean AER (2)"]
    assert set(table.columns) >= {"AER 1", "AER 2", "source", "target", "open"}
    # A second model: a tiny random BERT aligns worse; rows sorted by |Δ|, largest first.
    at.selectbox(key="_w_optical_model_id__corpus_choice").set_value("__other__").run()
    at.text_input(key="_w_optical_model_id__corpus_text").set_value(str(tiny_bert_dir)).run()
    assert not ok(at).error, [e.value for e in at.error]
    assert not any("so every Δ is 0" in i.value for i in at.info)
    table = _table(at)
    deltas = [abs(d) for d in table["Δ"]]
    assert deltas == sorted(deltas, reverse=True) and deltas[0] > 0
    # Each row links to the pair, typed, on the Alignment page.
    link = urlsplit(table["open"].iloc[0])
    q = parse_qs(link.query)
    row = table.iloc[0]
    assert link.path == "Alignment" and q["pair"] == ["typed"]
    assert q["src"] == [row["source"]] and q["tgt"] == [row["target"]]
    assert q["tokens"] == ["word"] and q["model"] == ["default"]


def test_a_file_without_gold_is_scored_by_entropy():
    at = _upload("nogold.txt", b"a dog runs ||| ein Hund l\xc3\xa4uft\nthe car ||| das Auto\n")
    table = _table(at)
    assert {"row entropy 1", "row entropy 2", "diagonal 1"} <= set(table.columns)
    assert "No gold links" in "\n".join(str(c.value) for c in at.caption)


@pytest.mark.parametrize("data, message", [
    (b"a dog runs, ein Hund laeuft\n", "bad.txt, line 1: expected 'source ||| target'"),
    (b"a ||| b ||| 0-7\n", "bad.txt, line 1: link '0-7': target index out of range"),
    (b"\xff\xfe ||| x\n", "bad.txt is not UTF-8"),
    (b"a ||| b\n" * (MAX_CORPUS_BYTES // 8 + 1), "the corpus view reads at most"),
])
def test_bad_and_too_big_files_get_one_line(data, message):
    at = _upload("bad.txt", data)
    errors = [str(e.value) for e in at.error]
    assert len(errors) == 1 and message in errors[0], errors
    assert "Traceback" not in errors[0] and not at.dataframe


def test_a_gold_set_links_each_sentence(shared_data):
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.session_state["co_n"] = 4
    ok(at.run())
    assert at.radio(key="co_source").value == "gold"
    table = _table(at)
    assert sorted(table["line"]) == [1, 2, 3, 4] and "AER 1" in table.columns
    q = parse_qs(urlsplit(table["open"].iloc[0]).query)
    assert q["pair"] == ["gold"] and q["gold"] == ["enfr"]
    assert q["sentence"] == [str(table["line"].iloc[0])]

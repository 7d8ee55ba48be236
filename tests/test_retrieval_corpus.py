"""optical_core.retrieval.corpus: the packaged demo corpus and Multi30k test_2016_flickr
(skipped when absent), with the task2 option."""

from __future__ import annotations

import pytest
from _helpers import needs_m30k

from optical_core import data as D
from optical_core.retrieval.corpus import demo_corpus, load_corpus


def test_demo_corpus():
    c = demo_corpus()
    assert c.is_demo and c.n_docs == c.n_images == 24
    assert set(c.queries) == {"de", "fr", "cs", "en"}
    q = c.query_set("cs")
    assert len(q) == 24 and q.relevant[5] == (5,)
    c2 = demo_corpus(task2=True)
    assert c2.n_docs > 24 and any(len(r) > 1 for r in c2.query_set("de").relevant)
    with pytest.raises(ValueError, match="no 'ro' queries"):
        c.query_set("ro")


@needs_m30k
def test_multi30k_corpus_and_task2_option():
    c = load_corpus("test_2016_flickr")
    assert c.n_docs == 1000 and c.query_set("de").relevant[7] == (7,)
    assert c.doc_texts[0] == D.load_multi30k("test_2016_flickr", "en")[0]
    try:
        c2 = load_corpus("test_2016_flickr", task2=True)
    except D.DataNotFoundError:
        pytest.skip("task2 captions not found")
    rel = c2.query_set("de").relevant
    assert all(len(r) == 5 for r in rel[:50])  # task1 line + 4 new task2 captions
    assert c2.n_docs == 5000
    for r in rel[:50]:
        texts = [c2.doc_texts[j] for j in r]
        assert len(set(texts)) == len(texts)  # the task1 line is not added twice
    with pytest.raises(ValueError, match="task2"):
        load_corpus("test_2017_flickr", task2=True)

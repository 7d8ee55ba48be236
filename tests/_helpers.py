"""Plain helpers shared by several test files (the shared fixtures are in conftest.py).

Imports of ``optical_core`` stay inside the helpers, so a test file pulls in only the
package it tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from optical_core import data as D

if TYPE_CHECKING:  # pragma: no cover
    from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------- the app: test_app_*.py


def ok(at: AppTest) -> AppTest:
    """``at`` after a run of its script, failing the test on any exception the script raised
    (AppTest records them instead of raising)."""
    assert not at.exception, [e.value for e in at.exception]
    return at


# ---------------------------------- ot: test_ot_solve.py, test_ot_*batch.py


def random_cost(rng, n, m, d=8):
    from optical_core.ot.costs import cost_matrix

    return cost_matrix(rng.normal(size=(n, d)), rng.normal(size=(m, d)))


def ragged_costs(seed, count=12, lo=1, hi=15):
    """``count`` random cosine costs of random shapes, each side ``lo`` to ``hi - 1`` tokens."""
    rng = np.random.default_rng(seed)
    return [random_cost(rng, int(rng.integers(lo, hi)), int(rng.integers(lo, hi)))
            for _ in range(count)]


# ------------------------------------------------------------------- test_pairs_*.py


def token_emb(tokens, vecs, word_ids=None, words=None):
    from optical_core.encoders.base import TokenEmbeddings

    word_ids = list(range(len(tokens))) if word_ids is None else word_ids
    words = list(tokens) if words is None else words
    text = " ".join(words)
    return TokenEmbeddings(
        text=text, tokens=list(tokens), embeddings=np.asarray(vecs, dtype=np.float32),
        offsets=[(0, 0)] * len(tokens), word_ids=word_ids, words=words,
        word_spans=[(0, 0)] * len(words),
    )


# --------------------------------------------------------------- test_retrieval_*.py

M30K = D.multi30k_available(splits=("test_2016_flickr",), langs=("en", "de"), image_splits=False)
needs_m30k = pytest.mark.skipif(not M30K, reason="Multi30k test_2016_flickr not found")


def toy():
    """5 documents of 4 images (image 1 has two captions); 3 queries with hand rankings."""
    from optical_core.retrieval.corpus import Corpus
    from optical_core.retrieval.scorers import Ranking

    corpus = Corpus(
        name="toy", doc_ids=("d0", "d1", "d1.t2.1", "d2", "d3"),
        doc_texts=("a", "b", "b2", "c", "d"), doc_images=(0, 1, 1, 2, 3),
        queries={"de": ("A", "B", "C", "D")}, image_names=("i0", "i1", "i2", "i3"),
    )
    qset = corpus.query_set("de", limit=3)
    order = np.array([
        [3, 0, 1, 2, 4],  # q0: relevant d0 (index 0) at rank 2
        [1, 4, 0, 2, 3],  # q1: relevant d1 (1) at rank 1 and d1.t2.1 (2) at rank 4
        [0, 1, 2, 4, 3],  # q2: relevant d2 (3) at rank 5
    ])
    scores = np.tile(np.linspace(1, 0, 5), (3, 1))
    return corpus, qset, Ranking("dense", list(qset.ids), order, scores)


# ---------------------------------------- test_distill_train.py, test_distill_jobs.py


def distill_cfg(teacher: str, **kw):
    from optical_core.distill.config import DistillConfig

    base = dict(lang="de", pairs=48, loss="ot", batch_size=8, lr=1e-3, teacher=teacher,
                data="demo", max_tokens=32, probe_every=2, save_steps=1000, warmup_ratio=0.0)
    base.update(kw)
    return DistillConfig.from_options(**base)

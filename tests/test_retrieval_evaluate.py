"""Tests for optical_core.retrieval: corpus, scorers, metrics, statistics, cache, CLI.

The CER of the noise itself is tested in tests/test_perturb.py
(``test_measured_cer_tracks_target``: mean measured CER within ±20 % of the target on 200
Multi30k val sentences per language and kind); here only the retrieval wrapper around it
(query seeds, the ``typo`` alias) is checked.

Heavier checks use the real default MiniLM: the demo corpus (24 captions) for the scorers
and the cache, and Multi30k test_2016_flickr (skipped when absent) for DESIGN's sanity
figure (de→en dense MRR@10 28.0) and the effect of noise.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from optical_core import data as D
from optical_core import retrieval as R
from optical_core.ot import OTConfig, cost_matrix, solve

M30K = D.multi30k_available(splits=("test_2016_flickr",), langs=("en", "de"), image_splits=False)
needs_m30k = pytest.mark.skipif(not M30K, reason="Multi30k test_2016_flickr not found")
USER_CACHE = R.embedding_cache_dir()  # read before any fixture points the env elsewhere


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    """An isolated embedding cache (env var, so every code path uses it)."""
    root = tmp_path_factory.mktemp("optical-cache")
    old = os.environ.get("OPTICAL_CACHE_DIR")
    os.environ["OPTICAL_CACHE_DIR"] = str(root)
    yield root
    if old is None:
        os.environ.pop("OPTICAL_CACHE_DIR", None)
    else:
        os.environ["OPTICAL_CACHE_DIR"] = old


@pytest.fixture(scope="module")
def encoder():
    from optical_core.encoders import load_encoder

    return load_encoder()


@pytest.fixture(scope="module")
def demo():
    return R.demo_corpus()


@pytest.fixture(scope="module")
def demo_index(encoder, demo, cache_root):
    return R.build_index(encoder, demo, tokens=True)


# --------------------------------------------------------------------------- toy metrics


def toy():
    """5 documents of 4 images (image 1 has two captions); 3 queries with hand rankings."""
    corpus = R.Corpus(
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
    return corpus, qset, R.Ranking("dense", list(qset.ids), order, scores)


def test_toy_relevance():
    # (The qrels handed to ranx are checked through the hand-computed metrics below:
    # q1's MAP and nDCG depend on its second relevant document.)
    _, qset, _ = toy()
    assert qset.relevant == ((0,), (1, 2), (3,))
    assert qset.ids == ("q0", "q1", "q2")


def test_metrics_match_hand_computation():
    corpus, qset, ranking = toy()
    got = R.per_query_metrics(ranking, qset, corpus)
    lg = math.log2
    hand = {
        # reciprocal rank of the first relevant document
        "mrr@10": [1 / 2, 1 / 1, 1 / 5],
        # share of the relevant documents in the top k
        "recall@1": [0, 1 / 2, 0],
        "recall@5": [1, 1, 1],
        "recall@10": [1, 1, 1],
        # mean of precision at each relevant document
        "map": [1 / 2, (1 / 1 + 2 / 4) / 2, 1 / 5],
        # DCG / ideal DCG with gain 1 and discount log2(rank + 1)
        "ndcg@10": [
            (1 / lg(3)) / 1,
            (1 / lg(2) + 1 / lg(5)) / (1 / lg(2) + 1 / lg(3)),
            (1 / lg(6)) / 1,
        ],
    }
    for m, values in hand.items():
        np.testing.assert_allclose(got[m], values, rtol=1e-9, err_msg=m)
    summary = R.evaluate_ranking(ranking, qset, corpus, n_boot=200)
    assert summary.mean["mrr@10"] == pytest.approx(np.mean(hand["mrr@10"]))
    assert summary.n_queries == 3


def test_relevant_ranks_shifts_and_labels():
    corpus, qset, clean = toy()
    noisy_order = np.array([[0, 3, 1, 2, 4], [4, 0, 3, 1, 2], [0, 1, 2, 4, 3]])
    noisy = R.Ranking("dense", list(qset.ids), noisy_order, clean.scores.copy())
    np.testing.assert_array_equal(R.relevant_ranks(clean, qset), [2, 1, 5])
    np.testing.assert_array_equal(R.relevant_ranks(noisy, qset), [1, 4, 5])
    sh = R.rank_shifts(clean, noisy, qset, k=3)
    np.testing.assert_array_equal(sh.shift, [1, -3, 0])
    assert sh.delta_mrr == pytest.approx(np.mean([1 - 0.5, 0.25 - 1, 0]))
    assert sh.tau[2] == pytest.approx(1.0)  # same order
    # labels of the noisy top 3 of q0 against the clean top 3: d0 ↑1, d3 ↓1, d1 =
    assert R.rank_change_labels(clean.order[0], noisy_order[0], depth=3) == ["↑1", "↓1", "="]
    assert R.rank_change_labels(clean.order[1], noisy_order[1], depth=3) == ["↑1", "↑1", "new"]
    rows = sh.rows()
    assert rows[1]["clean_rank"] == 1 and rows[1]["noisy_rank"] == 4


def test_kendall_tau_at_k_definition():
    a = np.arange(20)
    assert R.kendall_tau_at_k(a, a, 10) == pytest.approx(1.0)
    # the top 10 in reverse, the rest unchanged: the union is the top 10, fully reversed
    b = np.concatenate([a[:10][::-1], a[10:]])
    assert R.kendall_tau_at_k(a, b, 10) == pytest.approx(-1.0)
    # disjoint top-k lists: each list's top sits low in the other -> negative
    c = np.concatenate([a[10:], a[:10]])
    assert R.kendall_tau_at_k(a, c, 10) < 0
    assert math.isnan(R.kendall_tau_at_k(np.array([0]), np.array([0]), 10))


# --------------------------------------------------------------------------- statistics


def test_bootstrap_ci_contains_estimate_and_narrows():
    rng = np.random.default_rng(1)
    small = rng.binomial(1, 0.3, size=100).astype(float)
    large = rng.binomial(1, 0.3, size=2000).astype(float)
    lo_s, hi_s = R.bootstrap_ci(small, n_boot=1000, seed=0)
    lo_l, hi_l = R.bootstrap_ci(large, n_boot=1000, seed=0)
    assert lo_s <= small.mean() <= hi_s
    assert lo_l <= large.mean() <= hi_l
    assert (hi_l - lo_l) < 0.5 * (hi_s - lo_s)  # ~ 1/sqrt(n): 20x the queries, 4.5x narrower
    cont = rng.random(100)
    assert R.bootstrap_ci(cont, seed=0) == R.bootstrap_ci(cont, seed=0)  # seeded
    assert R.bootstrap_ci(cont, seed=1) != R.bootstrap_ci(cont, seed=0)
    assert all(math.isnan(x) for x in R.bootstrap_ci([]))
    assert R.bootstrap_ci([0.5] * 10) == (0.5, 0.5)


def test_compare_runs_p_values():
    corpus = R.Corpus(
        name="toy", doc_ids=tuple(f"d{i}" for i in range(40)), doc_texts=("x",) * 40,
        doc_images=tuple(range(40)), queries={"de": ("y",) * 40},
        image_names=tuple(map(str, range(40))),
    )
    qset = corpus.query_set("de")
    perfect = np.array([[i] + [j for j in range(40) if j != i] for i in range(40)])
    worse = np.array([[j for j in range(40) if j != i][:5] + [i]
                      + [j for j in range(40) if j != i][5:] for i in range(40)])
    s = np.zeros((40, 40))
    a = R.Ranking("dense", list(qset.ids), perfect, s)
    b = R.Ranking("dense", list(qset.ids), worse, s)
    p_same = R.compare_runs(a, a, qset, corpus, ("mrr@10",))
    assert p_same["mrr@10"] == pytest.approx(1.0)
    p_t = R.compare_runs(a, b, qset, corpus, ("mrr@10", "ndcg@10"))
    assert p_t["mrr@10"] < 1e-6 and p_t["ndcg@10"] < 1e-6
    p_f = R.compare_runs(a, b, qset, corpus, ("mrr@10",), stat_test="fisher", seed=3)
    assert p_f["mrr@10"] < 0.01
    with pytest.raises(ValueError, match="unknown test"):
        R.compare_runs(a, b, qset, corpus, stat_test="magic")


# --------------------------------------------------------------------------- corpus + noise


def test_demo_corpus():
    c = R.demo_corpus()
    assert c.is_demo and c.n_docs == c.n_images == 24
    assert set(c.queries) == {"de", "fr", "cs", "en"}
    q = c.query_set("cs")
    assert len(q) == 24 and q.relevant[5] == (5,)
    c2 = R.demo_corpus(task2=True)
    assert c2.n_docs > 24 and any(len(r) > 1 for r in c2.query_set("de").relevant)
    with pytest.raises(ValueError, match="no 'ro' queries"):
        c.query_set("ro")


@needs_m30k
def test_multi30k_corpus_and_task2_option():
    c = R.load_corpus("test_2016_flickr")
    assert c.n_docs == 1000 and c.query_set("de").relevant[7] == (7,)
    assert c.doc_texts[0] == D.load_multi30k("test_2016_flickr", "en")[0]
    try:
        c2 = R.load_corpus("test_2016_flickr", task2=True)
    except D.DataNotFoundError:
        pytest.skip("task2 captions not found")
    rel = c2.query_set("de").relevant
    assert all(len(r) == 5 for r in rel[:50])  # task1 line + 4 new task2 captions
    assert c2.n_docs == 5000
    for r in rel[:50]:
        texts = [c2.doc_texts[j] for j in r]
        assert len(set(texts)) == len(texts)  # the task1 line is not added twice
    with pytest.raises(ValueError, match="task2"):
        R.load_corpus("test_2017_flickr", task2=True)


def test_noise_alias_and_seeds():
    assert R.resolve_noise("typo") == "keyboard"
    with pytest.raises(ValueError, match="unknown noise kind"):
        R.resolve_noise("gremlins")
    c = R.demo_corpus()
    full = R.perturb_queries(c.query_set("de"), "typo", 0.2, seed=4)
    part = R.perturb_queries(c.query_set("de", limit=5), "typo", 0.2, seed=4)
    assert [p.text for p in part] == [p.text for p in full[:5]]  # limit does not change noise
    one = R.perturb_query(c.queries["de"][3], "typo", 0.2, 4, "de", index=3)
    assert one.text == full[3].text


@needs_m30k
def test_query_noise_cer_tracks_target():
    # The wrapper's seeds and alias must not bias the rate (see test_perturb.py for kinds).
    qset = R.load_corpus("test_2016_flickr", langs=("de",)).query_set("de", limit=200)
    for kind in ("typo", "random_char"):
        for cer in (0.05, 0.1, 0.2):
            mean = np.mean([p.measured_cer for p in R.perturb_queries(qset, kind, cer, seed=0)])
            assert abs(mean - cer) <= 0.2 * cer, (kind, cer, mean)


# --------------------------------------------------------------------------- scorers


def test_ot_rerank_matches_pot_per_pair(encoder, demo, demo_index):
    qset = demo.query_set("de")
    cfg = R.ScorerConfig("ot", rerank_depth=8, epsilon=0.05, tol=1e-9, max_iter=5000)
    q = R.encode_queries(encoder, qset.texts[:3], tokens=True)
    ot_rank = R.rank(q, demo_index, cfg, query_ids=qset.ids[:3])
    dense = R.rank(q, demo_index, R.ScorerConfig("dense"), query_ids=qset.ids[:3])
    for r in range(3):
        top = dense.order[r, :8]
        assert set(ot_rank.order[r, :8]) == set(top)  # the top k is re-ordered, not replaced
        np.testing.assert_array_equal(ot_rank.order[r, 8:], dense.order[r, 8:])
        assert np.all(np.diff(ot_rank.scores[r, :8]) <= 1e-12)
        assert ot_rank.scores[r, 7] > ot_rank.scores[r, 8]  # below-k scores sit under
        for pos in (0, 5):  # a couple of candidates: POT on the same vectors
            j = int(ot_rank.order[r, pos])
            cost = cost_matrix(q.tokens[r].astype(np.float64),
                               demo_index.doc_tokens(j)[0].astype(np.float64))
            res = solve(cost, config=OTConfig("sinkhorn", epsilon=0.05, tol=1e-10,
                                              max_iter=20000))
            assert ot_rank.scores[r, pos] == pytest.approx(-res.cost, abs=1e-6)


def test_maxsim_matches_brute_force(encoder, demo, demo_index):
    q = R.encode_queries(encoder, demo.queries["fr"][:4], tokens=True, sentence=False)
    got = R.maxsim_scores(q, demo_index, chunk_tokens=16)  # several chunks
    for i in range(4):
        for j in range(demo.n_docs):
            d = demo_index.doc_tokens(j)[0]
            want = (q.tokens[i] @ d.T).max(axis=1).mean()
            assert got[i, j] == pytest.approx(want, abs=1e-5)
    # English query = its own document: MaxSim is 1 for it and maximal
    qe = R.encode_queries(encoder, demo.queries["en"][:3], tokens=True)
    r = R.rank(qe, demo_index, R.ScorerConfig("maxsim"))
    assert list(r.order[:, 0]) == [0, 1, 2]
    assert r.scores[0, 0] == pytest.approx(1.0, abs=1e-5)


def test_dense_english_queries_find_themselves(encoder, demo, demo_index):
    ranking, q = R.search(encoder, demo_index, demo.queries["en"][4])
    assert ranking.order[0, 0] == 4 and ranking.scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert q.tokens is None
    with pytest.raises(ValueError, match="empty"):
        R.search(encoder, demo_index, "   ")


def test_scorer_config_validation():
    with pytest.raises(ValueError, match="unknown scorer"):
        R.ScorerConfig("bm25")
    with pytest.raises(ValueError, match="epsilon"):
        R.ScorerConfig("ot", epsilon=0)
    assert R.ScorerConfig("ot").needs_tokens and R.ScorerConfig("ot").needs_sentence
    assert not R.ScorerConfig("maxsim").needs_sentence


# --------------------------------------------------------------------------- cache


def test_cache_round_trip_and_invalidation(encoder, tmp_path):
    from optical_core.encoders import Encoder

    corpus = R.demo_corpus()
    first = R.build_index(encoder, corpus, tokens=True, cache_dir=tmp_path)
    assert first.from_cache == {"sentence": False, "tokens": False}
    entries = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1
    files = sorted(p.relative_to(entries[0]).as_posix() for p in entries[0].rglob("*.npy"))
    assert files == ["sentence/sentence.npy", "tokens/token_offsets.npy",
                     "tokens/token_strings.npy", "tokens/token_vectors.npy"]
    for f in entries[0].rglob("*.npy"):
        np.load(f, allow_pickle=False)  # plain arrays, no pickles
    assert not list(tmp_path.rglob(".tmp-*"))  # nothing half-written left behind

    again = R.build_index(encoder, corpus, tokens=True, cache_dir=tmp_path)
    assert again.from_cache == {"sentence": True, "tokens": True}
    np.testing.assert_array_equal(first.sentence, again.sentence)
    np.testing.assert_array_equal(first.token_vectors, again.token_vectors)
    assert first.doc_tokens(3)[1] == again.doc_tokens(3)[1]

    # other documents -> another entry
    other = R.build_index(encoder, R.demo_corpus(task2=True), tokens=False, cache_dir=tmp_path)
    assert other.from_cache == {"sentence": False}
    assert other.cache_path != first.cache_path

    # other weights (same architecture and name) -> another entry
    clone = copy.deepcopy(encoder.model)
    with __import__("torch").no_grad():
        next(clone.parameters()).add_(1e-3)
    changed = Encoder(clone, name=encoder.name)
    assert R.model_fingerprint(changed) != R.model_fingerprint(encoder)
    assert R.build_index(changed, corpus, tokens=False, cache_dir=tmp_path).from_cache == {
        "sentence": False}

    # a damaged file is detected, recomputed and repaired
    (first.cache_path / "sentence" / "sentence.npy").write_bytes(b"not an array")
    fixed = R.build_index(encoder, corpus, tokens=False, cache_dir=tmp_path)
    assert fixed.from_cache == {"sentence": False}
    np.testing.assert_allclose(fixed.sentence, first.sentence, atol=1e-6)
    assert R.build_index(encoder, corpus, tokens=False, cache_dir=tmp_path).from_cache == {
        "sentence": True}
    # a meta file of another model at this path is not trusted
    meta = first.cache_path / "tokens" / "meta.json"
    m = json.loads(meta.read_text())
    m["model"] = "0" * 32
    meta.write_text(json.dumps(m))
    idx = R.build_index(encoder, corpus, tokens=True, cache_dir=tmp_path)
    assert idx.from_cache == {"sentence": True, "tokens": False}

    off = R.build_index(encoder, corpus, tokens=False, cache=False)
    assert off.cache_path is None and off.from_cache == {"sentence": False}


def test_cache_dir_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("OPTICAL_CACHE_DIR", str(tmp_path))
    assert R.embedding_cache_dir() == tmp_path / "embeddings"
    monkeypatch.delenv("OPTICAL_CACHE_DIR")
    assert R.embedding_cache_dir() == Path.home() / ".cache" / "optical-explorer" / "embeddings"


# --------------------------------------------------------------------------- experiments


def test_evaluate_noise_table_and_run_files(encoder, demo, demo_index, tmp_path):
    from ranx import Run

    ev = R.evaluate_noise(encoder, demo, "de", "ot", "random_char", 0.3, seed=1,
                          index=demo_index, n_boot=200)
    assert ev.n_queries == 24 and ev.n_docs == 24 and ev.noisy is not None
    assert 0.2 < ev.measured_cer < 0.4
    rows = ev.rows()
    assert [r["key"] for r in rows] == list(R.METRICS)
    for r in rows:
        assert r["clean_ci"][0] <= r["clean"] <= r["clean_ci"][1]
        assert r["delta"] == pytest.approx(r["noisy"] - r["clean"])
        assert 0 <= r["p"] <= 1
    assert ev.shifts.delta_mrr == pytest.approx(ev.noisy.mean["mrr@10"] - ev.clean.mean["mrr@10"])
    text = R.format_table(ev)
    for label in ("MRR@10", "R@1", "R@5", "R@10", "MAP", "nDCG@10", "ΔMRR@10", "Kendall"):
        assert label in text
    json.dumps(ev.to_dict())  # JSON-ready

    trec = R.write_run(ev.noisy_ranking, demo, tmp_path / "run.trec", name="t")
    first = trec.read_text().splitlines()[0].split()
    assert first[:2] == ["q0", "Q0"] and first[3] == "1" and first[5] == "t"
    assert len(trec.read_text().splitlines()) == 24 * 24
    js = R.write_run(ev.noisy_ranking, demo, tmp_path / "run.json")
    back = Run.from_file(str(js))
    got = sorted(back.to_dict()["q3"].items(), key=lambda kv: -kv[1])
    assert [d for d, _ in got] == [demo.doc_ids[j] for j in ev.noisy_ranking.order[3]]

    clean_only = R.evaluate_noise(encoder, demo, "de", "dense", "typo", 0.0, index=demo_index,
                                  n_boot=100)
    assert clean_only.noisy is None and "noisy" not in R.format_table(clean_only)


def test_noise_curve_rows(encoder, demo, demo_index):
    rows = R.noise_curve(encoder, demo, "fr", "random_char", (0, 0.2), "dense",
                         index=demo_index, n_boot=100, metrics=("mrr@10", "recall@5"))
    assert [(r["level"], r["metric"]) for r in rows] == [
        (0.0, "mrr@10"), (0.0, "recall@5"), (0.2, "mrr@10"), (0.2, "recall@5")]
    assert rows[0]["measured_cer"] == 0 and rows[2]["measured_cer"] > 0.1
    from optical_core.retrieval_figures import noise_curve_figure

    fig = noise_curve_figure({"a": rows, "b": rows}, metrics=("mrr@10", "recall@5"))
    assert fig.layout.meta["kind"] == "noise_curve" and len(fig.data) == 4


def test_explain_match_follows_document_tokens(encoder):
    ex = R.explain_match(encoder, "Ein Hund läuft am Strand entlang.",
                         "Ein Hnud läuft am Stxrnd entlang.", "A dog runs along the beach.")
    assert ex.doc_tokens == ["a", "dog", "runs", "along", "the", "beach", "."]
    assert ex.clean.plan.shape[1] == ex.noisy.plan.shape[1] == 7
    assert len(ex.rows) == 7 and {r["status"] for r in ex.rows} <= {"lost", "kept", "gained"}
    assert all(-1 <= r["clean_cos"] <= 1 for r in ex.rows)
    assert ex.score_clean == pytest.approx(-(ex.clean.plan * ex.clean.cost).sum())
    same = R.explain_match(encoder, "A dog.", "A dog.", "A dog runs.")
    assert same.lost == [] and same.score_clean == pytest.approx(same.score_noisy)
    assert "dog" in same.still_matched(0.5)
    broken = R.explain_match(encoder, "A dog runs.", "A xqz runs.", "A dog runs.")
    assert "dog" in broken.lost and "dog" not in broken.still_matched(0.5)


# --------------------------------------------------------------------------- Multi30k sanity


@needs_m30k
def test_default_model_de_mrr_and_noise(encoder):
    """DESIGN: untrained MiniLM de→en dense MRR@10 = 28.0 on test_2016_flickr (1000 × 1000).
    Noise lowers it monotonically over 0/5/10/20 % CER (first 300 queries)."""
    corpus = R.load_corpus("test_2016_flickr", langs=("en", "de"))
    # The user's embedding cache (content-addressed and validated, so sharing it is safe):
    # the 1,000 captions are embedded once, not on every test run.
    index = R.build_index(encoder, corpus, tokens=False, cache_dir=USER_CACHE)
    t0 = time.perf_counter()
    qset = corpus.query_set("de")
    cfg = R.ScorerConfig("dense")
    clean_q = R.encode_queries(encoder, qset.texts)
    clean = R.rank(clean_q, index, cfg, query_ids=qset.ids)
    mrr = R.per_query_metrics(clean, qset, corpus, ("mrr@10",))["mrr@10"]
    print(f"\nde→en dense MRR@10, default model, 1000 queries: {100 * mrr.mean():.1f} "
          f"(DESIGN 28.0), {time.perf_counter() - t0:.1f} s")
    assert 26.0 <= 100 * mrr.mean() <= 30.0

    n = 300
    sub = corpus.query_set("de", limit=n)
    curve = {0.0: float(mrr[:n].mean())}
    for level in R.BATCH_LEVELS[1:]:
        texts = [p.text for p in R.perturb_queries(sub, "random_char", level, seed=0)]
        rk = R.rank(R.encode_queries(encoder, texts), index, cfg, query_ids=sub.ids)
        curve[level] = float(R.per_query_metrics(rk, sub, corpus, ("mrr@10",))["mrr@10"].mean())
    print(f"MRR@10 vs random_char CER ({n} queries, seed 0): "
          + ", ".join(f"{lv:.0%}: {100 * v:.1f}" for lv, v in curve.items()))
    values = [curve[lv] for lv in R.BATCH_LEVELS]
    assert all(a > b for a, b in zip(values, values[1:])), values
    assert values[-1] < 0.5 * values[0]


# --------------------------------------------------------------------------- CLI


def test_cli_evaluate_demo(tmp_path, capsys, cache_root):
    from optical_core.cli import main

    out = tmp_path / "run.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(["evaluate", "--demo", "--lang", "cs", "--scorer", "maxsim", "--noise",
                   "random_char", "--cer", "0.2", "--bootstrap", "100", "--run-file", str(out),
                   "-q"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "MRR@10" in text and "demo: cs→en, 24 queries × 24 documents" in text
    assert out.is_file() and (tmp_path / "run.clean.json").is_file()
    assert set(json.loads(out.read_text())) == {f"q{i}" for i in range(24)}

    rc = main(["evaluate", "--demo", "--cer", "0", "--json", "-q", "--bootstrap", "50"])
    summary = json.loads(capsys.readouterr().out)
    assert rc == 0 and summary["rows"][0]["metric"] == "MRR@10"
    assert "noisy" not in summary["rows"][0]

    rc = main(["evaluate", "--demo", "--cer", "1.5", "-q"])
    assert rc == 2 and "--cer must lie in [0, 1]" in capsys.readouterr().err
    rc = main(["evaluate", "--demo", "-q", "--run-file", str(tmp_path / "nope" / "r.trec")])
    assert rc == 2 and "does not exist" in capsys.readouterr().err

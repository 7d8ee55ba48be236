"""optical_core.pairs.figures: plotly figures of aligned pairs (plan heatmap, cost, diff,
transport diagram, PNG export); no model needed.

The ``sharp`` and ``blurry`` pairs are fixtures in conftest.py.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from optical_core.ot.config import OTConfig
from optical_core.pairs.align import align_embeddings
from optical_core.pairs.figures import (
    MAX_AXIS_LABELS,
    _height,
    _labels,
    _token_axis,
    cost_figure,
    diff_figure,
    figure_png,
    one_to_one_mass,
    plan_figure,
    transport_diagram,
)
from optical_core.pairs.summary import all_links, unknown_tokens


def test_plan_figure_hover_overlays_and_labels(sharp):
    p = align_embeddings(*sharp, config=OTConfig("sinkhorn", epsilon=0.05))
    links = all_links(p)
    fig = plan_figure(p, links=links["ot"], other_links=links["argmax"],
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
    assert np.allclose(bars["received"].y, p.plan.sum(0))
    assert np.allclose(bars["source weight a"].x, p.a)
    assert fig.layout.meta["kind"] == "plan"
    plain = plan_figure(p, marginals=False)
    assert len(plain.data) == 1 and list(plain.layout.yaxis.ticktext) == ["a", "dog", "runs", "."]


def test_plan_colour_scale_is_anchored_at_a_one_to_one_link(sharp, blurry):
    cfg = OTConfig("sinkhorn", epsilon=1.0)
    blur = align_embeddings(*blurry, config=cfg)  # 5 × 5, nearly uniform: 0.04 per cell
    heat = plan_figure(blur).data[0]
    assert heat.zmax == pytest.approx(one_to_one_mass(5, 5))
    assert np.asarray(heat.z).max() < 0.3 * heat.zmax  # pale, not dark
    sharp_plan = align_embeddings(*sharp, config=OTConfig("exact"))
    assert np.asarray(plan_figure(sharp_plan).data[0].z).max() == pytest.approx(
        one_to_one_mass(4, 4))  # a sharp plan reaches the top


@pytest.mark.parametrize("delta", [0.0, 2e-3, 0.05, 0.4])
def test_diff_colour_bar_ticks_read_differently(delta):
    # Identical plans once gave a colour bar of -0.001, -0.001, +0.000, +0.001, +0.001.
    p1 = np.full((3, 3), 1 / 9)
    p2 = p1.copy()
    p2[0, 0] += delta
    heat = diff_figure(p1, p2, list("abc"), list("xyz")).data[0]
    fmt = heat.colorbar.tickformat.lstrip("+")
    lim = heat.zmax
    ticks = [format(v, fmt) for v in (-lim, -lim / 2, 0.0, lim / 2, lim)]
    assert len(set(ticks)) == 5, ticks


def test_cost_diff_and_transport_figures(sharp):
    p = align_embeddings(*sharp)
    c = cost_figure(p)
    assert np.allclose(np.asarray(c.data[0].z), p.cost)
    assert c.layout.xaxis.tickangle == -90  # narrow column: slanted labels overprinted
    d = diff_figure(p.plan, p.plan * 0, p.src_tokens, p.tgt_tokens)
    assert d.data[0].zmid == 0 and np.allclose(np.asarray(d.data[0].z), -p.plan)
    t = transport_diagram(p.src_tokens, p.tgt_tokens, p.plan)
    assert t.layout.meta["kind"] == "transport" and len(t.data) >= 2 + 4


def test_long_labels_are_shortened_and_height_is_bounded():
    assert _labels(["x" * 40])[0].endswith("…") and len(_labels(["x" * 40])[0]) == 14
    assert 340 <= _height(1) and _height(1000) == 1100
    # A 256-token text labels every 7th token instead of overprinting 256 labels.
    axis = _token_axis([f"t{k}" for k in range(256)])
    assert len(axis["ticktext"]) <= MAX_AXIS_LABELS and axis["tickvals"][:2] == [0, 7]
    assert axis["ticktext"][1] == "t7"
    assert _token_axis(list("abc"))["ticktext"] == ["a", "b", "c"]


def test_unknown_tokens_and_figure_png_never_raises(sharp):
    assert unknown_tokens(["[UNK]", "a", "<unk>"]) == 2
    fig = plan_figure(align_embeddings(*sharp), marginals=False)
    out = figure_png(fig)
    assert out is None or out[:8] == b"\x89PNG\r\n\x1a\n"

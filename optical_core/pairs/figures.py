"""Plotly figures of aligned pairs (pure functions, torch-free, no Streamlit).

The plan heatmap with its marginals, the cost matrix, the difference of two plans, and the
"alignment as transport" diagram of the home page.

Heatmaps use numeric axes with the tokens as tick labels, because plotly merges repeated
category names ("a", "the", ".") on a categorical axis. Rows are source tokens (top to
bottom), columns target tokens. Every plan heatmap's hover shows both tokens, the mass
moved and the cost.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from optical_core.pairs.summary import (
    COST_COLORSCALE,
    DIFF_COLORSCALE,
    GOLD_COLOR,
    LINK_COLOR,
    OTHER_LINK_COLOR,
    PLAN_COLORSCALE,
)

if TYPE_CHECKING:  # torch-free import: the home page draws a figure without loading torch
    from optical_core.pairs.align import PairAlignment


# ======================================================================== figures


def _labels(tokens: Sequence[str], max_len: int = 14) -> list[str]:
    return [t if len(t) <= max_len else t[: max_len - 1] + "…" for t in tokens]


def _height(n: int, extra: int = 0) -> int:
    return int(min(1100, max(340, 150 + 24 * n + extra)))


def _pair_text(src: Sequence[str], tgt: Sequence[str]) -> np.ndarray:
    """``(n, m)`` hover labels ``"src → tgt"`` (bold), built without a Python loop."""
    s = np.asarray([f"<b>{t}</b>" for t in src], dtype=object)[:, None]
    t = np.asarray([f"<b>{x}</b>" for x in tgt], dtype=object)[None, :]
    return (s + " → " + t).astype(str)


#: Most token labels an axis shows; a longer text labels every k-th token (hover names
#: every cell), since the figure's height is bounded and the labels would overprint.
MAX_AXIS_LABELS = 40


def _token_axis(tokens: Sequence[str], **kw) -> dict:
    """A numeric axis labelled with tokens (repeated tokens stay apart)."""
    step = math.ceil(len(tokens) / MAX_AXIS_LABELS) if tokens else 1
    ticks = list(range(0, len(tokens), step))
    labels = _labels(tokens)
    return dict(tickmode="array", tickvals=ticks, ticktext=[labels[k] for k in ticks],
                showgrid=False, zeroline=False, automargin=True, **kw)


def _marker_trace(cells, name, symbol, color, size, width=2.0, **axes) -> dict:
    cells = sorted(cells)
    return dict(
        type="scatter", x=[j for _, j in cells], y=[i for i, _ in cells], mode="markers",
        name=name, hoverinfo="skip", showlegend=True,
        marker=dict(symbol=symbol, color=color, size=size, line=dict(color=color, width=width)),
        **axes,
    )


def _title(text: str | None) -> dict | None:
    # 13 px: a quick student's name fits a plan in half of a 1,000 px window
    return dict(text=text, x=0.0, font=dict(size=13)) if text else None


def one_to_one_mass(n: int, m: int) -> float:
    """Mass of one link of a one-to-one plan between ``n`` and ``m`` uniform tokens."""
    return 1.0 / max(n, m, 1)


def plan_figure(
    pair: PairAlignment,
    links: Iterable[tuple[int, int]] | None = None,
    links_name: str = "links",
    other_links: Iterable[tuple[int, int]] | None = None,
    other_name: str = "other method",
    gold_sure: Iterable[tuple[int, int]] | None = None,
    gold_possible: Iterable[tuple[int, int]] | None = None,
    title: str | None = None,
    marginals: bool = True,
) -> go.Figure:
    """Heatmap of the transport plan with optional overlays and marginal bars.

    Args:
        pair: the aligned pair (plan, cost, marginals, tokens).
        links: cells to outline (orange squares), e.g. the chosen method's links.
        other_links: a second link set drawn as red crosses; where a square has no cross or
            a cross no square the two methods disagree.
        gold_sure, gold_possible: gold cells on the displayed grid (see :func:`gold_cells`),
            drawn as green dots / open circles.
        title: figure title; a ``<br>`` starts a second line (the margin grows for it).
        marginals: add bars of the target marginal (top) and source marginal (right), with
            the mass actually transported filled and the marginal as an outline.

    The figure is built in one pass from plain dicts (no ``make_subplots``, no repeated
    ``update_layout``), which keeps a 30 × 30 plan well under 50 ms. Its layout carries
    ``meta = {"kind": "plan", "n": n, "m": m}`` so tests and the browser can find it.
    """
    P = np.asarray(pair.plan, dtype=np.float64)
    n, m = P.shape
    src, tgt = list(pair.src_tokens), list(pair.tgt_tokens)
    cell = max(6, min(22, int(560 / max(n, m, 1))))
    data = [
        plan_heatmap(P, np.asarray(pair.cost, dtype=np.float64), src, tgt),
        *plan_overlays(cell, links, links_name, other_links, other_name, gold_sure,
                       gold_possible),
    ]
    lines = 1 + (title or "").count("<br>")
    layout = dict(
        title=_title(title), height=_height(n, (80 if marginals else 0) + 18 * (lines - 1)),
        margin=dict(l=10, r=10, t=(22 + 20 * lines) if title else 20, b=10),
        plot_bgcolor="white", meta=dict(kind="plan", n=n, m=m),
    )
    if marginals:
        bars, axes = marginal_bars(P, np.asarray(pair.a), np.asarray(pair.b), src, tgt)
        data += bars
        layout.update(axes)
    else:
        layout.update(
            xaxis=_token_axis(tgt, tickangle=-45, range=[-0.5, m - 0.5]),
            yaxis=_token_axis(src, autorange="reversed"),
        )
    # Legend at the very bottom of the figure, below the token labels (the top right is
    # where plotly's toolbar appears on hover).
    layout["legend"] = dict(orientation="h", yref="container", y=0.0, yanchor="bottom",
                            x=0.0, xanchor="left", font=dict(size=11))
    return go.Figure(data=data, layout=layout)


def plan_heatmap(P: np.ndarray, C: np.ndarray, src: Sequence[str],
                 tgt: Sequence[str]) -> dict:
    """The heatmap trace of an ``(n, m)`` plan ``P`` whose hover names both tokens, the
    mass (absolute and in % of ``ΣP``) and the cost ``C[i, j]``."""
    n, m = P.shape
    total = float(P.sum()) or 1.0
    # The scale tops out at a confident one-to-one link's mass (1/max(n, m) for uniform
    # weights), not at the plan's own maximum: a blurred plan then looks pale, as it is,
    # instead of as dark as a sharp one.
    zmax = max(float(P.max()) if P.size else 0.0, one_to_one_mass(n, m))
    return dict(
        type="heatmap", z=P, x=np.arange(m), y=np.arange(n), name="plan",
        text=_pair_text(src, tgt), customdata=np.dstack([C, P / total * 100.0]),
        colorscale=PLAN_COLORSCALE, zmin=0.0, zmax=zmax,
        colorbar=dict(title=dict(text="mass", side="right"), thickness=12, len=0.6, y=0.4,
                      yanchor="middle"),
        hovertemplate=(
            "%{text}<br>mass %{z:.4f} (%{customdata[1]:.1f} % of all)<br>"
            "cost %{customdata[0]:.3f}<extra></extra>"
        ),
    )


def plan_overlays(
    cell: float,
    links: Iterable[tuple[int, int]] | None = None,
    links_name: str = "links",
    other_links: Iterable[tuple[int, int]] | None = None,
    other_name: str = "other method",
    gold_sure: Iterable[tuple[int, int]] | None = None,
    gold_possible: Iterable[tuple[int, int]] | None = None,
) -> list[dict]:
    """Marker traces over a plan whose cells are ``cell`` pixels wide: links as orange
    squares, a second method's as red crosses, gold links as green dots (sure) and open
    circles (possible). Drawn in this order, so the small gold dots end up on top."""
    overlays = []
    if links is not None:
        overlays.append(_marker_trace(links, links_name, "square-open", LINK_COLOR, cell * 0.95))
    if other_links is not None:
        overlays.append(_marker_trace(other_links, other_name, "x-thin-open", OTHER_LINK_COLOR,
                                      cell * 0.6, width=2.5))
    if gold_possible:
        overlays.append(
            _marker_trace(gold_possible, "gold possible", "circle-open", GOLD_COLOR, cell * 0.5)
        )
    if gold_sure:
        overlays.append(_marker_trace(gold_sure, "gold sure", "circle", GOLD_COLOR, cell * 0.4,
                                      width=1.0))
    return overlays


def marginal_bars(P: np.ndarray, a: np.ndarray, b: np.ndarray, src: Sequence[str],
                  tgt: Sequence[str]) -> tuple[list[dict], dict]:
    """Bars of the token weights ``a`` (right) and ``b`` (top) as outlines, with the mass
    each token actually sends (``P𝟙``) or receives (``Pᵀ𝟙``) filled; and the layout's
    axes that place them beside an ``(n, m)`` plan heatmap."""
    n, m = P.shape
    split = 0.86  # heatmap share of width and height; the bars take the rest
    outline = dict(color="rgba(0,0,0,0)", line=dict(color="#555", width=1))
    filled = dict(color="#6baed6")
    bars = [
        dict(type="bar", x=np.arange(m), y=b, name="target weight b", showlegend=False,
             marker=outline, customdata=tgt, xaxis="x", yaxis="y2",
             hovertemplate="%{customdata}: weight %{y:.3f}<extra></extra>"),
        dict(type="bar", x=np.arange(m), y=P.sum(0), name="received", showlegend=False,
             marker=filled, customdata=tgt, xaxis="x", yaxis="y2",
             hovertemplate="%{customdata}: received %{y:.3f}<extra></extra>"),
        dict(type="bar", y=np.arange(n), x=a, orientation="h", name="source weight a",
             showlegend=False, marker=outline, customdata=src, xaxis="x2", yaxis="y",
             hovertemplate="%{customdata}: weight %{x:.3f}<extra></extra>"),
        dict(type="bar", y=np.arange(n), x=P.sum(1), orientation="h", name="sent",
             showlegend=False, marker=filled, customdata=src, xaxis="x2", yaxis="y",
             hovertemplate="%{customdata}: sent %{x:.3f}<extra></extra>"),
    ]
    axes = dict(
        xaxis=_token_axis(tgt, tickangle=-45, range=[-0.5, m - 0.5], domain=[0.0, split],
                          anchor="y"),
        yaxis=_token_axis(src, autorange="reversed", domain=[0.0, split], anchor="x"),
        xaxis2=dict(domain=[split + 0.012, 1.0], anchor="y", showticklabels=False,
                    showgrid=False, zeroline=False,
                    title=dict(text="source<br>weight", font=dict(size=10))),
        yaxis2=dict(domain=[split + 0.012, 1.0], anchor="x", showticklabels=False,
                    showgrid=False, zeroline=False,
                    title=dict(text="target<br>weight", font=dict(size=10))),
        barmode="overlay", bargap=0.15,
    )
    return bars, axes


def cost_figure(pair: PairAlignment, title: str = "Cost matrix C") -> go.Figure:
    """Heatmap of the cost matrix (low cost = similar tokens = dark)."""
    C = np.asarray(pair.cost, dtype=np.float64)
    n, m = C.shape
    src, tgt = list(pair.src_tokens), list(pair.tgt_tokens)
    heat = dict(
        type="heatmap", z=C, x=np.arange(m), y=np.arange(n), text=_pair_text(src, tgt),
        colorscale=COST_COLORSCALE,
        colorbar=dict(title=dict(text="cost", side="right"), thickness=12),
        hovertemplate="%{text}<br>cost %{z:.3f}<extra></extra>",
    )
    layout = dict(
        # Upright labels: the cost matrix sits in a third of the page beside the plan, where
        # slanted target tokens overprinted each other at 1,000 px.
        title=_title(title), xaxis=_token_axis(tgt, tickangle=-90),
        yaxis=_token_axis(src, autorange="reversed"), height=_height(n),
        margin=dict(l=10, r=10, t=40, b=10), meta=dict(kind="cost"),
    )
    return go.Figure(data=[heat], layout=layout)


def diff_figure(
    plan1: np.ndarray, plan2: np.ndarray, src_labels: Sequence[str], tgt_labels: Sequence[str],
    title: str = "Plan 2 − plan 1",
) -> go.Figure:
    """Diverging heatmap of ``P2 − P1``: red where the second plan moves more mass."""
    p1, p2 = np.asarray(plan1, dtype=np.float64), np.asarray(plan2, dtype=np.float64)
    D = p2 - p1
    n, m = D.shape
    # at least ±0.001 on the colour bar, so identical plans show white, not amplified noise
    lim = max(float(np.abs(D).max()) if D.size else 0.0, 1e-3)
    # Enough decimals that the colour bar's ticks (about lim / 2 apart) read differently.
    decimals = max(2, 1 - math.floor(math.log10(lim / 2)))
    heat = dict(
        type="heatmap", z=D, x=np.arange(m), y=np.arange(n),
        text=_pair_text(src_labels, tgt_labels),
        customdata=np.dstack([p1, p2]), colorscale=DIFF_COLORSCALE, reversescale=True,
        zmid=0.0, zmin=-lim, zmax=lim,
        colorbar=dict(title=dict(text="Δ mass", side="right"), thickness=12,
                      tickformat=f"+.{decimals}f"),
        hovertemplate=(
            "%{text}<br>plan 1 %{customdata[0]:.4f}<br>plan 2 %{customdata[1]:.4f}"
            "<br>Δ %{z:+.4f}<extra></extra>"
        ),
    )
    layout = dict(
        title=_title(title), xaxis=_token_axis(tgt_labels, tickangle=-45),
        yaxis=_token_axis(src_labels, autorange="reversed"), height=_height(n),
        margin=dict(l=10, r=10, t=40, b=10), meta=dict(kind="diff"), plot_bgcolor="white",
    )
    return go.Figure(data=[heat], layout=layout)


def transport_diagram(
    src_tokens: Sequence[str], tgt_tokens: Sequence[str], plan: np.ndarray,
    min_share: float = 0.04, title: str | None = None,
) -> go.Figure:
    """"Alignment as transport": source tokens on top, target tokens below, and a line for
    every flow of mass whose width is the mass moved (flows below ``min_share`` of the
    largest are left out)."""
    P = np.asarray(plan, dtype=np.float64)
    n, m = P.shape
    width = max(n, m) - 1 or 1
    xs = [i * width / max(n - 1, 1) for i in range(n)]
    xt = [j * width / max(m - 1, 1) for j in range(m)]
    top = P.max() or 1.0
    fig = go.Figure()
    for i in range(n):
        for j in range(m):
            share = P[i, j] / top
            if share < min_share:
                continue
            fig.add_trace(go.Scatter(
                x=[xs[i], xt[j]], y=[1, 0], mode="lines", hoverinfo="text",
                text=f"{src_tokens[i]} → {tgt_tokens[j]}: mass {P[i, j]:.3f}",
                line=dict(width=0.5 + 9 * share,
                          color=f"rgba(33,113,181,{0.15 + 0.75 * share:.2f})"),
                showlegend=False,
            ))
    fig.add_trace(go.Scatter(
        x=xs, y=[1] * n, mode="markers+text", text=list(src_tokens), textposition="top center",
        marker=dict(size=10 + 40 * P.sum(1) / max(P.sum(1).max(), 1e-12) * 0.3, color="#08519c"),
        hoverinfo="skip", showlegend=False, textfont=dict(size=14),
    ))
    fig.add_trace(go.Scatter(
        x=xt, y=[0] * m, mode="markers+text", text=list(tgt_tokens), textposition="bottom center",
        marker=dict(size=10 + 40 * P.sum(0) / max(P.sum(0).max(), 1e-12) * 0.3, color="#a63603"),
        hoverinfo="skip", showlegend=False, textfont=dict(size=14),
    ))
    fig.update_layout(
        title=dict(text=title, x=0.0) if title else None,
        xaxis=dict(visible=False, range=[-0.8, width + 0.8]),
        yaxis=dict(visible=False, range=[-0.45, 1.45]),
        height=260, margin=dict(l=10, r=10, t=30 if title else 5, b=5), plot_bgcolor="white",
        meta=dict(kind="transport"),
    )
    return fig


def figure_png(fig: go.Figure, scale: float = 2.0) -> bytes | None:
    """PNG bytes of ``fig`` through kaleido, or ``None`` when kaleido (or the Chrome it
    drives) is not available. Never raises."""
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return None
    try:
        return fig.to_image(format="png", scale=scale)
    except Exception:  # kaleido missing Chrome, sandbox trouble, timeouts …
        return None

"""Plotly figures of the Retrieval page (pure functions, no Streamlit).

The query↔document plans reuse :func:`optical_core.pairs.figures.plan_figure` on one shared
colour scale (:func:`plan_pair_figures`); this module adds the batch view's metric-vs-noise
curves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from optical_core.pairs.figures import one_to_one_mass, plan_figure
from optical_core.retrieval.metrics import METRIC_LABELS, METRICS

if TYPE_CHECKING:  # pragma: no cover
    from optical_core.pairs.align import PairAlignment

COLORS = ("#2171b5", "#d94801", "#238b45", "#6a51a3")


def plan_pair_figures(
    pairs: Sequence[PairAlignment], titles: Sequence[str]
) -> list[go.Figure]:
    """The plans of the clean and the noisy query, on one colour scale.

    Each is :func:`optical_core.pairs.figures.plan_figure` without marginals; the heatmaps
    share ``zmin = 0`` and ``zmax`` = the largest of each plan's own top (``max(max P,
    1/max(n, m))``, see ``plan_figure``), so the same shade means the same mass in both.
    """
    top = max(max(float(np.max(p.plan)) if np.size(p.plan) else 0.0,
                  one_to_one_mass(*np.shape(p.plan))) for p in pairs)
    figs = [plan_figure(p, title=t, marginals=False) for p, t in zip(pairs, titles)]
    for fig in figs:
        fig.update_traces(zmin=0.0, zmax=top, selector=dict(type="heatmap"))
    return figs


def noise_curve_figure(
    curves: Mapping[str, Sequence[Mapping[str, Any]]],
    metrics: Sequence[str] = METRICS,
    title: str | None = None,
) -> go.Figure:
    """Each metric (in %) against the target noise level, one line per model.

    Args:
        curves: model label → rows of :func:`optical_core.retrieval.evaluate.noise_curve`.
        metrics: which metrics to draw (one panel each, three per row).
        title: figure title.

    Error bars are the 95 % bootstrap intervals; hovering a point shows the measured CER.
    """
    present = {r["metric"] for rows in curves.values() for r in rows}
    metrics = [m for m in metrics if m in present]
    ncols = min(3, max(1, len(metrics)))
    nrows = max(1, -(-len(metrics) // ncols))
    fig = make_subplots(
        rows=nrows, cols=ncols, subplot_titles=[METRIC_LABELS.get(m, m) for m in metrics],
        horizontal_spacing=0.07, vertical_spacing=0.16,
    )
    for k, (label, rows) in enumerate(curves.items()):
        color = COLORS[k % len(COLORS)]
        for i, m in enumerate(metrics):
            pts = sorted((r for r in rows if r["metric"] == m), key=lambda r: r["level"])
            x = [100 * r["level"] for r in pts]
            y = np.array([100 * r["mean"] for r in pts])
            lo = np.array([100 * r["low"] for r in pts])
            hi = np.array([100 * r["high"] for r in pts])
            fig.add_trace(
                go.Scatter(
                    x=x, y=y, mode="lines+markers", name=label, legendgroup=label,
                    showlegend=i == 0, line=dict(color=color, width=2),
                    error_y=dict(type="data", symmetric=False, array=hi - y, arrayminus=y - lo,
                                 color=color, thickness=1.2, width=4),
                    customdata=[[100 * r["measured_cer"], r["n_queries"], 100 * r["low"],
                                 100 * r["high"]] for r in pts],
                    hovertemplate=(
                        f"<b>{label}</b><br>target CER %{{x:.0f}} % (measured "
                        "%{customdata[0]:.1f} %)<br>" + METRIC_LABELS.get(m, m)
                        + " %{y:.1f} [%{customdata[2]:.1f}, %{customdata[3]:.1f}]<br>"
                        "%{customdata[1]} queries<extra></extra>"
                    ),
                ),
                row=i // ncols + 1, col=i % ncols + 1,
            )
    fig.update_xaxes(title_text="noise (target CER, %)", ticksuffix="", dtick=5)
    fig.update_yaxes(rangemode="tozero")
    fig.update_layout(
        height=300 * nrows + 120, margin=dict(l=10, r=10, t=70 if title else 40, b=40),
        title=dict(text=title, x=0.0) if title else None,
        legend=dict(orientation="h", yanchor="top", y=-0.1, x=0.0),
        plot_bgcolor="white", meta=dict(kind="noise_curve", metrics=list(metrics)),
    )
    fig.update_xaxes(showgrid=True, gridcolor="#eee")
    fig.update_yaxes(showgrid=True, gridcolor="#eee")
    return fig

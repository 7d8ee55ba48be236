"""Plotly figures and plain-number summaries of aligned pairs (pure functions, no Streamlit).

The Alignment page, notebooks and the CLI share these so that a figure or a number on the
page can be reproduced from Python. Two groups:

* **Summaries** (numpy only): plan entropy and diffuseness, tokens that kept mass back,
  link agreement, the mass moved between two plans, the plan as CSV, gold links mapped to
  the displayed cells, and diagnostics written out in plain words.
* **Figures** (plotly): the plan heatmap with its marginals, the cost matrix, the
  difference of two plans, and the "alignment as transport" diagram of the home page.

Heatmaps use numeric axes with the tokens as tick labels, because plotly merges repeated
category names ("a", "the", ".") on a categorical axis. Rows are source tokens (top to
bottom), columns target tokens. Every plan heatmap's hover shows both tokens, the mass
moved and the cost.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from . import alignment as al

if TYPE_CHECKING:  # torch-free import: the home page draws a figure without loading torch
    from .ot import OTConfig
    from .pairs import PairAlignment

#: Mean normalised row entropy of the reference plan above which a plan counts as diffuse.
#: Calibrated on the demo set with the default MiniLM at ε = 0.05: English paraphrases
#: score 0.25–0.59, German / French / Czech translations 0.62–0.95 (subword level).
DIFFUSE_ENTROPY = 0.6
#: Between this and :data:`DIFFUSE_ENTROPY` the plan is "somewhat diffuse".
SHARP_ENTROPY = 0.45
#: ε of the reference plan used to judge the model rather than the chosen ε.
REFERENCE_EPSILON = 0.05
#: A token is reported as holding mass back when it keeps at least this share of its own.
UNALIGNED_SHARE = 0.2

PLAN_COLORSCALE = "Blues"
COST_COLORSCALE = "Viridis"  # dark = low cost = similar, like the plan's dark = much mass
DIFF_COLORSCALE = "RdBu"
LINK_COLOR = "#ff7f0e"
OTHER_LINK_COLOR = "#d62728"
GOLD_COLOR = "#2ca02c"

LINK_METHOD_NAMES = {"ot": "OT threshold", "argmax": "argmax", "itermax": "itermax"}


# ====================================================================== summaries


def plan_entropy(plan: np.ndarray) -> float:
    """Mass-weighted mean over rows of the normalised entropy of ``P[i] / P[i].sum()``.

    0 means every source token sends its mass to a single target token (one-to-one); 1 means
    every row is spread evenly over all ``m`` columns. A single column gives 0. Rows with no
    mass are ignored; an all-zero plan gives 0.
    """
    p = np.asarray(plan, dtype=np.float64)
    if p.ndim != 2 or p.size == 0 or p.shape[1] < 2:
        return 0.0
    rows = p.sum(1)
    total = rows.sum()
    if total <= 0:
        return 0.0
    q = p / np.where(rows > 0, rows, 1.0)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(q > 0, q * np.log(q), 0.0).sum(1) / math.log(p.shape[1])
    return float(np.clip((h * rows).sum() / total, 0.0, 1.0))


def peak_share(plan: np.ndarray) -> float:
    """Mass-weighted mean over rows of ``max_j P[i, j] / P[i].sum()``: the share of its mass
    a source token sends to its best match (1 for a one-to-one plan, ``1/m`` when blurred)."""
    p = np.asarray(plan, dtype=np.float64)
    if p.ndim != 2 or p.size == 0:
        return 0.0
    rows = p.sum(1)
    total = rows.sum()
    if total <= 0:
        return 0.0
    top = p.max(1) / np.where(rows > 0, rows, 1.0)
    return float((top * rows).sum() / total)


def reference_plan(pair: PairAlignment, epsilon: float = REFERENCE_EPSILON) -> np.ndarray:
    """The balanced Sinkhorn plan of ``pair``'s cost and marginals at a fixed ``epsilon``.

    Diffuseness is judged on this plan, so that a large chosen ε (which blurs any plan) or
    the exact solver (whose plan is always sparse) does not hide what the *model* does.
    """
    from .ot import OTConfig, solve

    cfg = OTConfig(solver="sinkhorn", epsilon=epsilon, tol=1e-4, max_iter=300)
    return solve(pair.cost, pair.a, pair.b, cfg).plan


@dataclass(frozen=True)
class Diffuseness:
    """How blurred a pair's alignment is.

    Attributes:
        entropy: :func:`plan_entropy` of the plan shown.
        peak: :func:`peak_share` of the plan shown.
        reference_entropy: :func:`plan_entropy` of :func:`reference_plan` (ε = 0.05).
        level: ``"sharp"``, ``"somewhat diffuse"`` or ``"diffuse"`` (from the reference).
        blurred_by_epsilon: the plan shown is diffuse but the reference is not, so the
            chosen ε (not the model) blurs it.
    """

    entropy: float
    peak: float
    reference_entropy: float
    level: str
    blurred_by_epsilon: bool

    @property
    def diffuse(self) -> bool:
        return self.level == "diffuse"


def diffuseness(pair: PairAlignment, reference: np.ndarray | None = None) -> Diffuseness:
    """Judge whether the model separates the tokens of ``pair`` (see :class:`Diffuseness`)."""
    ref = reference_plan(pair) if reference is None else reference
    h_ref = plan_entropy(ref)
    h = plan_entropy(pair.plan)
    if h_ref > DIFFUSE_ENTROPY:
        level = "diffuse"
    elif h_ref > SHARP_ENTROPY:
        level = "somewhat diffuse"
    else:
        level = "sharp"
    return Diffuseness(
        entropy=h, peak=peak_share(pair.plan), reference_entropy=h_ref, level=level,
        blurred_by_epsilon=h > DIFFUSE_ENTROPY and h_ref <= DIFFUSE_ENTROPY,
    )


@dataclass(frozen=True)
class HeldBack:
    """A token that kept part of its mass (unbalanced / partial transport)."""

    side: str  # "source" or "target"
    index: int
    token: str
    mass: float  # mass not transported
    share: float  # of the token's own marginal
    word: str = ""  # the word the (sub)word token belongs to

    @property
    def label(self) -> str:
        """``“##g” (in “entlang”)`` for a subword, ``“entlang”`` for a whole word."""
        if self.word and self.word != self.token:
            return f"“{self.token}” (in “{self.word}”)"
        return f"“{self.token}”"


def held_back(pair: PairAlignment, min_share: float = UNALIGNED_SHARE) -> list[HeldBack]:
    """Tokens that kept at least ``min_share`` of their marginal back, largest share first."""
    out: list[HeldBack] = []
    for side, left, marg, toks, ids, words in (
        ("source", pair.ot.unaligned_source, pair.a, pair.src_tokens, pair.src_word_ids,
         pair.src_words),
        ("target", pair.ot.unaligned_target, pair.b, pair.tgt_tokens, pair.tgt_word_ids,
         pair.tgt_words),
    ):
        for k, (u, w) in enumerate(zip(left, marg)):
            share = float(u / w) if w > 0 else 0.0
            if share >= min_share and u > 1e-9:
                word = words[ids[k]] if k < len(ids) and 0 <= ids[k] < len(words) else ""
                out.append(HeldBack(side, k, toks[k], float(u), share, word))
    out.sort(key=lambda h: (-h.share, h.side, h.index))
    return out


def all_links(
    pair: PairAlignment, threshold: float = al.DEFAULT_OT_THRESHOLD
) -> dict[str, al.Links]:
    """Links of every method (``ot``, ``argmax``, ``itermax``) on the displayed level."""
    from .pairs import links_from

    return {m: links_from(pair.plan, pair.cost, m, threshold) for m in al.LINK_METHODS}


def agreement(links: Mapping[str, Iterable[tuple[int, int]]]) -> dict[tuple[str, str], float]:
    """Jaccard agreement of every pair of link sets, keyed ``(method_a, method_b)`` with
    ``method_a`` before ``method_b`` in the mapping's order."""
    names = list(links)
    return {
        (a, b): al.jaccard(links[a], links[b])
        for k, a in enumerate(names) for b in names[k + 1:]
    }


def mass_moved(p1: np.ndarray, p2: np.ndarray) -> float:
    """``½·‖P1 − P2‖₁``: the transported mass that the second plan puts elsewhere
    (0 for equal plans, 1 for balanced plans with disjoint supports)."""
    a, b = np.asarray(p1, dtype=np.float64), np.asarray(p2, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"plans of different shapes {a.shape} and {b.shape}; compare word plans")
    return float(0.5 * np.abs(a - b).sum())


def word_plan(pair: PairAlignment) -> np.ndarray:
    """The plan summed over the subwords of each word: ``(W_src, W_tgt)``."""
    if len(pair.src_tokens) == len(pair.src_words) and pair.src_word_ids == list(
        range(len(pair.src_words))
    ) and pair.tgt_word_ids == list(range(len(pair.tgt_words))):
        return np.asarray(pair.plan, dtype=np.float64)
    return al.pool_to_words(pair.plan, pair.src_word_ids, pair.tgt_word_ids, how="sum")


@dataclass
class PlanComparison:
    """Two plans of the same pair, made comparable.

    Attributes:
        plan1, plan2: on a common grid (the displayed tokens when both models tokenise the
            pair alike, else words).
        src_labels, tgt_labels: labels of that grid.
        level: ``"subword"`` / ``"word"`` (the grid), and whether it was forced to words.
        mass_moved: :func:`mass_moved` of the two.
        forced_word_level: the tokenisations differed, so both were pooled to words.
    """

    plan1: np.ndarray
    plan2: np.ndarray
    src_labels: list[str]
    tgt_labels: list[str]
    mass_moved: float
    forced_word_level: bool


def compare_plans(pair1: PairAlignment, pair2: PairAlignment) -> PlanComparison:
    """Bring two alignments of the same texts onto one grid and measure the mass moved.

    Raises:
        ValueError: the two pairs do not have the same words (different texts).
    """
    same = pair1.src_tokens == pair2.src_tokens and pair1.tgt_tokens == pair2.tgt_tokens
    if same:
        p1, p2 = pair1.plan, pair2.plan
        src, tgt = list(pair1.src_tokens), list(pair1.tgt_tokens)
    else:
        if pair1.src_words != pair2.src_words or pair1.tgt_words != pair2.tgt_words:
            raise ValueError("the two alignments are not of the same sentence pair")
        p1, p2 = word_plan(pair1), word_plan(pair2)
        src, tgt = list(pair1.src_words), list(pair1.tgt_words)
    return PlanComparison(
        plan1=np.asarray(p1, dtype=np.float64), plan2=np.asarray(p2, dtype=np.float64),
        src_labels=src, tgt_labels=tgt, mass_moved=mass_moved(p1, p2),
        forced_word_level=not same,
    )


def _csv_cell(text: str) -> str:
    if any(ch in text for ch in ',"\n\r') or text != text.strip():
        return '"' + text.replace('"', '""') + '"'
    return text


def plan_csv(
    plan: np.ndarray, src_tokens: Sequence[str], tgt_tokens: Sequence[str], digits: int = 6
) -> str:
    """The plan as CSV: a header of ``j:target`` labels, then one row per source token
    labelled ``i:source``. Indices keep repeated tokens apart; cells are the mass moved."""
    p = np.asarray(plan, dtype=np.float64)
    if p.shape != (len(src_tokens), len(tgt_tokens)):
        raise ValueError(f"plan shape {p.shape} does not match {len(src_tokens)}×{len(tgt_tokens)} tokens")
    lines = [",".join(["source\\target"] + [_csv_cell(f"{j}:{t}") for j, t in enumerate(tgt_tokens)])]
    for i, s in enumerate(src_tokens):
        lines.append(",".join([_csv_cell(f"{i}:{s}")] + [f"{v:.{digits}g}" for v in p[i]]))
    return "\n".join(lines) + "\n"


def gold_cells(
    pair: PairAlignment, sure: Iterable[tuple[int, int]], possible: Iterable[tuple[int, int]] | None,
) -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
    """Word-level gold links as cells of the displayed grid: ``(sure, possible-only)``.

    At subword level a word link covers every pair of the two words' subwords.
    """
    sure = set(sure)
    maybe = (set(possible) if possible is not None else set()) - sure
    src_rows: dict[int, list[int]] = {}
    tgt_cols: dict[int, list[int]] = {}
    for k, w in enumerate(pair.src_word_ids):
        src_rows.setdefault(w, []).append(k)
    for k, w in enumerate(pair.tgt_word_ids):
        tgt_cols.setdefault(w, []).append(k)

    def cells(links: set[tuple[int, int]]) -> set[tuple[int, int]]:
        return {(r, c) for i, j in links for r in src_rows.get(i, ()) for c in tgt_cols.get(j, ())}

    s = cells(sure)
    return s, cells(maybe) - s


def unknown_tokens(tokens: Sequence[str]) -> int:
    """How many tokens are the tokenizer's unknown token (``[UNK]``, ``<unk>``)."""
    return sum(1 for t in tokens if t in ("[UNK]", "<unk>", "<UNK>"))


def describe(pair: PairAlignment, config: OTConfig) -> list[str]:
    """The solver's diagnostics of ``pair`` as plain-language sentences."""
    r = pair.ot
    out = []
    if r.iterations:
        out.append(
            f"The {r.solver} solver ran {r.iterations} iterations"
            + (" and converged." if r.converged else f" and stopped before the tolerance {config.tol:g}.")
        )
    elif config.solver in ("exact", "partial"):
        out.append(f"The {r.solver} solver is exact (a linear program): no iterations, no blur.")
    else:
        out.append(
            f"The {r.solver} solver needed no iterations: its first plan already met the "
            "tolerance (with a single token on a side, the token weights fix the plan)."
        )
    if r.solver != config.solver:
        out.append(f"Fallback: {config.solver} ran into numerical trouble, so {r.solver} was used.")
    if config.solver in ("sinkhorn",):
        out.append(
            f"Marginal error {r.marginal_error:.1e}: the plan's row and column sums miss the "
            "token weights by this much mass in total"
            + (" (negligible)." if r.marginal_error < 1e-3 else " (visible: raise ε or the iterations).")
        )
    mass = r.transported_mass
    if mass < 0.999:
        out.append(
            f"{mass:.0%} of the mass was transported; {1 - mass:.0%} stays unaligned "
            "(null alignment): those tokens have no good partner at this price."
        )
    elif mass > 1.001:
        out.append(
            f"{mass:.2f} units of mass were transported (more than 1): unbalanced transport "
            "creates mass on cheap links rather than pay the marginal penalty."
        )
    else:
        out.append("All mass was transported: every token is aligned to something.")
    out.extend(r.messages)
    return out


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
    return dict(text=text, x=0.0, font=dict(size=15)) if text else None


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
        title: figure title.
        marginals: add bars of the target marginal (top) and source marginal (right), with
            the mass actually transported filled and the marginal as an outline.

    The figure is built in one pass from plain dicts (no ``make_subplots``, no repeated
    ``update_layout``), which keeps a 30 × 30 plan well under 50 ms. Its layout carries
    ``meta = {"kind": "plan", "n": n, "m": m}`` so tests and the browser can find it.
    """
    P = np.asarray(pair.plan, dtype=np.float64)
    C = np.asarray(pair.cost, dtype=np.float64)
    n, m = P.shape
    total = float(P.sum()) or 1.0
    src, tgt = list(pair.src_tokens), list(pair.tgt_tokens)
    # The scale tops out at a confident one-to-one link's mass (1/max(n, m) for uniform
    # weights), not at the plan's own maximum: a blurred plan then looks pale, as it is,
    # instead of as dark as a sharp one.
    zmax = max(float(P.max()) if P.size else 0.0, one_to_one_mass(n, m))
    heat = dict(
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
    cell = max(6, min(22, int(560 / max(n, m, 1))))
    overlays = []  # drawn in this order: the small gold dots end up on top
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
    layout = dict(
        title=_title(title), height=_height(n, 80 if marginals else 0),
        margin=dict(l=10, r=10, t=40 if title else 20, b=10), plot_bgcolor="white",
        meta=dict(kind="plan", n=n, m=m),
    )
    data = [heat, *overlays]
    if marginals:
        split = 0.86  # heatmap share of width and height; the bars take the rest
        x_tok = _token_axis(tgt, tickangle=-45, range=[-0.5, m - 0.5], domain=[0.0, split],
                            anchor="y")
        y_tok = _token_axis(src, autorange="reversed", domain=[0.0, split], anchor="x")
        outline = dict(color="rgba(0,0,0,0)", line=dict(color="#555", width=1))
        filled = dict(color="#6baed6")
        data += [
            dict(type="bar", x=np.arange(m), y=np.asarray(pair.b), name="target weight b",
                 showlegend=False, marker=outline, customdata=tgt, xaxis="x", yaxis="y2",
                 hovertemplate="%{customdata}: weight %{y:.3f}<extra></extra>"),
            dict(type="bar", x=np.arange(m), y=P.sum(0), name="received", showlegend=False,
                 marker=filled, customdata=tgt, xaxis="x", yaxis="y2",
                 hovertemplate="%{customdata}: received %{y:.3f}<extra></extra>"),
            dict(type="bar", y=np.arange(n), x=np.asarray(pair.a), orientation="h",
                 name="source weight a", showlegend=False, marker=outline, customdata=src,
                 xaxis="x2", yaxis="y",
                 hovertemplate="%{customdata}: weight %{x:.3f}<extra></extra>"),
            dict(type="bar", y=np.arange(n), x=P.sum(1), orientation="h", name="sent",
                 showlegend=False, marker=filled, customdata=src, xaxis="x2", yaxis="y",
                 hovertemplate="%{customdata}: sent %{x:.3f}<extra></extra>"),
        ]
        layout.update(
            xaxis=x_tok, yaxis=y_tok,
            xaxis2=dict(domain=[split + 0.012, 1.0], anchor="y", showticklabels=False,
                        showgrid=False, zeroline=False,
                        title=dict(text="source<br>weight", font=dict(size=10))),
            yaxis2=dict(domain=[split + 0.012, 1.0], anchor="x", showticklabels=False,
                        showgrid=False, zeroline=False,
                        title=dict(text="target<br>weight", font=dict(size=10))),
            barmode="overlay", bargap=0.15,
        )
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
        title=_title(title), xaxis=_token_axis(tgt, tickangle=-45),
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
        type="heatmap", z=D, x=np.arange(m), y=np.arange(n), text=_pair_text(src_labels, tgt_labels),
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
                line=dict(width=0.5 + 9 * share, color=f"rgba(33,113,181,{0.15 + 0.75 * share:.2f})"),
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


def epsilon_scale(src, tgt, metric: str = "cosine", level: str = "subword") -> float:
    """Cost units per unit of the page's *relative* ε.

    Cosine costs span [0, 2] and ε is used as is (scale 1). Squared-Euclidean costs of raw
    token vectors span hundreds of units, where any ε in 0.01…1 would give an exact plan, so
    the page multiplies ε by ``max(C) / 2`` to mean the same blur on both costs. Pass the
    result times ε as ``OTConfig.epsilon`` (the CLI takes ε in cost units).

    Args:
        src, tgt: :class:`~optical_core.encoders.TokenEmbeddings` of the two texts.
        metric: ``cosine`` or ``sqeuclidean``.
        level: ``subword`` or ``word`` (word vectors are subword means).
    """
    if metric == "cosine":
        return 1.0
    from .ot import cost_matrix
    from .pairs import level_view

    s, t = level_view(src, level), level_view(tgt, level)
    c = cost_matrix(s.embeddings.astype(np.float64), t.embeddings.astype(np.float64), metric)
    top = float(np.max(c)) if c.size else 0.0
    return top / 2.0 if top > 0 and math.isfinite(top) else 1.0

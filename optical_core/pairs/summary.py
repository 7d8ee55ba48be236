"""Plain-number summaries of aligned pairs (numpy only, no torch, no Streamlit).

Plan entropy and diffuseness, tokens that kept mass back, link agreement, the mass moved
between two plans, the plan as CSV, gold links mapped to the displayed cells, and
diagnostics written out in plain words.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from optical_core import alignment as al

if TYPE_CHECKING:  # torch-free import: the home page draws a figure without loading torch
    from optical_core.ot.config import OTConfig
    from optical_core.pairs.align import PairAlignment


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
    from optical_core.ot.config import OTConfig
    from optical_core.ot.solve import solve

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
    from optical_core.pairs.align import links_from

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
        raise ValueError(f"plan shape {p.shape} does not match "
                         f"{len(src_tokens)}×{len(tgt_tokens)} tokens")
    header = [_csv_cell(f"{j}:{t}") for j, t in enumerate(tgt_tokens)]
    lines = [",".join(["source\\target", *header])]
    for i, s in enumerate(src_tokens):
        lines.append(",".join([_csv_cell(f"{i}:{s}")] + [f"{v:.{digits}g}" for v in p[i]]))
    return "\n".join(lines) + "\n"


def gold_cells(
    pair: PairAlignment, sure: Iterable[tuple[int, int]],
    possible: Iterable[tuple[int, int]] | None,
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
            + (" and converged." if r.converged
               else f" and stopped before the tolerance {config.tol:g}.")
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
            + (" (negligible)." if r.marginal_error < 1e-3
               else " (visible: raise ε or the iterations).")
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


def epsilon_scale(src, tgt, metric: str = "cosine", level: str = "subword") -> float:
    """Cost units per unit of the page's *relative* ε.

    Cosine costs span [0, 2] and ε is used as is (scale 1). Squared-Euclidean costs of raw
    token vectors span hundreds of units, where any ε in 0.01…1 would give an exact plan, so
    the page multiplies ε by ``max(C) / 2`` to mean the same blur on both costs. Pass the
    result times ε as ``OTConfig.epsilon`` (the CLI takes ε in cost units).

    Args:
        src, tgt: :class:`~optical_core.encoders.base.TokenEmbeddings` of the two texts.
        metric: ``cosine`` or ``sqeuclidean``.
        level: ``subword`` or ``word`` (word vectors are subword means).
    """
    if metric == "cosine":
        return 1.0
    from optical_core.ot.costs import cost_matrix
    from optical_core.pairs.align import level_view

    s, t = level_view(src, level), level_view(tgt, level)
    c = cost_matrix(s.embeddings.astype(np.float64), t.embeddings.astype(np.float64), metric)
    top = float(np.max(c)) if c.size else 0.0
    return top / 2.0 if top > 0 and math.isfinite(top) else 1.0

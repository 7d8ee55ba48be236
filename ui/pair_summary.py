"""What the Alignment page computes besides drawing: the transport settings of its sidebar,
the pair it aligns, and the sentences and tables it shows. No Streamlit here (these
belong in ``optical_core.pairs``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from optical_core import alignment as al
from optical_core.encoders.base import TokenEmbeddings
from optical_core.gold import GoldPair
from optical_core.ot.config import OTConfig
from optical_core.pairs.align import PairAlignment, align_embeddings
from optical_core.pairs.summary import (
    LINK_METHOD_NAMES,
    Diffuseness,
    agreement,
    describe,
    epsilon_scale,
    held_back,
)

SOLVER_NAMES = {
    "exact": "exact (network simplex)",
    "sinkhorn": "Sinkhorn (entropic)",
    "unbalanced": "unbalanced Sinkhorn",
    "partial": "partial (mass < 1)",
}

#: The values of the ε slider (relative to the cost range) and of the τ slider.
EPS_OPTIONS = (0.01, 0.015, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.5, 0.7, 1.0)
TAU_OPTIONS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0)

Links = set[tuple[int, int]]


@dataclass(frozen=True)
class Transport:
    """The transport problem the sidebar describes (ε relative to the cost range)."""

    metric: str
    solver: str
    eps: float
    tau: float
    mass: float
    weighting: str
    level: str

    @property
    def entropic(self) -> bool:
        """Whether ε applies (the Sinkhorn solvers)."""
        return self.solver in ("sinkhorn", "unbalanced")

    def config(self, src: TokenEmbeddings, tgt: TokenEmbeddings) -> tuple[OTConfig, float]:
        """The solver config for this pair, and the cost units per unit of relative ε.

        Raises:
            ValueError: parameters the solver rejects.
        """
        scale = epsilon_scale(src, tgt, self.metric, self.level)
        return OTConfig(solver=self.solver, epsilon=self.eps * scale, tau=self.tau,
                        mass=self.mass), scale

    def align(self, src: TokenEmbeddings, tgt: TokenEmbeddings, config: OTConfig,
              link_method: str, threshold: float) -> PairAlignment:
        """The aligned pair (raises ``ValueError`` for a problem the solver cannot take)."""
        return align_embeddings(src, tgt, config=config, metric=self.metric, level=self.level,
                                weighting=self.weighting, link_method=link_method,
                                threshold=threshold)

    def title(self, model: str, role: str | None = None) -> str:
        """The plan figure's title: ``Plan · model`` (or ``role: model``, e.g. ``after:``
        beside a second plan) on the first line, cut at :data:`TITLE_CHARS`; the solver
        and the parameters that apply on a second, smaller one. Short enough for a plan
        drawn in half of a 1,000 px window."""
        head = f"{role}: {model}" if role else f"Plan · {model}"
        if len(head) > TITLE_CHARS:
            head = head[: TITLE_CHARS - 1] + "…"
        params = ([f"ε = {self.eps:g}"] if self.entropic else []) + (
            [f"τ = {self.tau:g}"] if self.solver == "unbalanced" else []) + (
            [f"mass = {self.mass:g}"] if self.solver == "partial" else [])
        return (f"{head}<br><sup>{SOLVER_NAMES[self.solver]}"
                + "".join(f", {p}" for p in params) + "</sup>")


#: Longest first line of a plan's title: ``after: de-quick-20261208-001552`` (a quick
#: student's name) fits a half-width plan at 1,000 px.
TITLE_CHARS = 31


@dataclass
class PairInput:
    """The sentence pair to align, with its words and gold links when it has them."""

    src: str
    tgt: str
    src_words: list[str] | None = None
    tgt_words: list[str] | None = None
    sure: set | None = None
    possible: set | None = None
    langs: tuple[str | None, str | None] = (None, None)
    label: str = ""
    notes: list[str] = field(default_factory=list)

    def empty_sides(self) -> list[str]:
        """``"source"`` and/or ``"target"``: the sides without a word."""
        return [side for side, t in (("source", self.src), ("target", self.tgt)) if not t.strip()]

    def clip(self, max_chars: int) -> None:
        """Cut each text to ``max_chars`` characters, with a note for each cut."""
        for side, name in (("src", "source"), ("tgt", "target")):
            if len(getattr(self, side)) > max_chars:
                setattr(self, side, getattr(self, side)[:max_chars])
                self.notes.append(f"The {name} text was cut to {max_chars:,} characters "
                                  "before encoding.")


def epsilon_note(eps: float) -> str:
    """What a relative ε does to the plan, in one sentence."""
    return f"ε = {eps:g}: " + (
        "nearly one-to-one, each token sends its mass to its best match." if eps <= 0.02
        else "a soft alignment: a token's mass spreads over its good matches." if eps <= 0.2
        else "a blur: the mass spreads over almost every token.")


def first_full_sentence(gold: Sequence[GoldPair], min_words: int = 6) -> int:
    """The 1-based line of the first sentence with ``min_words`` words a side (else 1),
    because the first lines of the Hansards sets are fragments such as ``2 . ↔ 2 .``."""
    return next((k + 1 for k, s in enumerate(gold)
                 if min(len(s.src_tokens), len(s.tgt_tokens)) >= min_words), 1)


def solver_lines(pair: PairAlignment, config: OTConfig, transport: Transport, eps_scale: float,
                 diff: Diffuseness) -> list[str]:
    """What the solver did, as sentences: diagnostics, the ε in cost units, tokens that
    kept mass back, and the plan's sharpness."""
    lines = describe(pair, config)
    if eps_scale != 1.0 and transport.entropic:
        lines.append(
            f"Squared-Euclidean costs here reach {2 * eps_scale:.0f}, so ε = {transport.eps:g} "
            f"is applied as {config.epsilon:.3g} cost units (ε × max cost / 2)."
        )
    held = held_back(pair)
    if held:
        shown = ", ".join(f"{h.label} ({h.side}, {h.share:.0%} of its weight)" for h in held[:8])
        lines.append(f"Tokens that kept mass back: {shown}" + (" …" if len(held) > 8 else "."))
    lines.append(
        f"Plan sharpness: row entropy {diff.entropy:.2f} (0 = one partner per token, "
        f"1 = even spread); a token sends on average {diff.peak:.0%} of its mass to its best match."
    )
    return lines


#: The agreement column of :func:`link_rows`: short, because the table shares half the
#: page's width and "Jaccard vs OT threshold" pushed the numbers out of sight at 1,000 px;
#: its tooltip names the method it compares with.
JACCARD = "Jaccard"


def link_rows(pair: PairAlignment, links: Mapping[str, Links], link_method: str, level: str,
              gold: PairInput | None = None) -> list[dict[str, object]]:
    """One row per link method: its number of links, its Jaccard agreement with
    ``link_method`` (column :data:`JACCARD`) and, given a pair with gold links, its
    word-level AER."""
    agree = agreement(links)
    column = JACCARD
    rows = []
    for m in al.LINK_METHODS:
        row: dict[str, object] = {"method": LINK_METHOD_NAMES[m], "links": len(links[m])}
        key = (link_method, m) if (link_method, m) in agree else (m, link_method)
        row[column] = 1.0 if m == link_method else round(agree[key], 2)
        if gold is not None:
            wl = links[m] if level == "word" else al.word_links(links[m], pair.src_word_ids,
                                                                pair.tgt_word_ids)
            row["AER"] = round(al.score_alignment(wl, gold.sure, gold.possible).aer, 3)
        rows.append(row)
    return rows


def cells_text(pair: PairAlignment, cells: Sequence[tuple[int, int]], limit: int = 10) -> str:
    """``src→tgt`` token pairs of the first ``limit`` cells, or ``none``."""
    txt = ", ".join(f"{pair.src_tokens[i]}→{pair.tgt_tokens[j]}" for i, j in cells[:limit])
    return (txt + (" …" if len(cells) > limit else "")) or "none"

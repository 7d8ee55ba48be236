"""Per-sentence alignment scores of a corpus, and where two models differ most.

A checkpoint check: align every pair of a gold set (or of a ``source ||| target`` file)
with two models and sort the sentences by how differently they do. With gold links the
score is the word-level AER; without, the plan's row entropy (how diffuse it is) and its
mass on the diagonal (how much it follows word order).

A corpus file has one pair a line, words separated by spaces:
``source words ||| target words`` or ``source words ||| target words ||| 0-0 1-2 2p3``,
the third field the gold links in the Pharaoh format the Alignment page exports
(0-indexed ``i-j`` sure, ``ipj`` possible). Either every line has gold links or none has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from optical_core import alignment as al
from optical_core.encoders.transformer import Encoder
from optical_core.gold import GoldPair, parse_gold_line
from optical_core.ot.config import OTConfig
from optical_core.pairs.align import align_texts
from optical_core.pairs.summary import plan_entropy

#: Largest corpus file read (bytes) and most pairs aligned: a check, not an evaluation.
MAX_CORPUS_BYTES = 200_000
MAX_CORPUS_PAIRS = 500
#: Longest side of a pair (words): longer sentences are not word-aligned pairs.
MAX_PAIR_WORDS = 200


class CorpusError(ValueError):
    """A corpus file that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class CorpusPair:
    """One sentence pair of a corpus, its words and (optionally) gold links.

    ``sure`` / ``possible`` are 0-indexed ``(source word, target word)`` links,
    ``possible ⊇ sure``; ``None`` without gold links.
    """

    src_words: tuple[str, ...]
    tgt_words: tuple[str, ...]
    sure: frozenset[tuple[int, int]] | None = None
    possible: frozenset[tuple[int, int]] | None = None

    @property
    def src(self) -> str:
        return " ".join(self.src_words)

    @property
    def tgt(self) -> str:
        return " ".join(self.tgt_words)


def from_gold(gold: Sequence[GoldPair]) -> list[CorpusPair]:
    """The pairs of a gold set (:func:`optical_core.gold.load_gold`)."""
    return [CorpusPair(tuple(g.src_tokens), tuple(g.tgt_tokens), frozenset(g.sure),
                       frozenset(g.possible)) for g in gold]


def parse_corpus(data: bytes | str, name: str = "the file",
                 max_bytes: int = MAX_CORPUS_BYTES,
                 max_pairs: int = MAX_CORPUS_PAIRS) -> list[CorpusPair]:
    """The pairs of a corpus file (format in the module's docstring). Blank lines are
    skipped; a ``\\r\\n`` line end is fine.

    Raises:
        CorpusError: over ``max_bytes`` or ``max_pairs``, not UTF-8, no pair, a line
            without ``|||``, an empty side, a side over :data:`MAX_PAIR_WORDS` words, a
            bad or out-of-range link, or gold links on some lines only. The message names
            ``name`` and the line, and says what to do.
    """
    size = len(data.encode("utf-8") if isinstance(data, str) else data)
    if size > max_bytes:
        raise CorpusError(f"{name} has {size:,} bytes; the corpus view reads at most "
                          f"{max_bytes:,} (about {max_pairs} pairs): split the file")
    try:
        text = data if isinstance(data, str) else data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CorpusError(f"{name} is not UTF-8 text; save it as UTF-8") from None
    pairs = [_parse_line(line, name, k) for k, line in enumerate(text.splitlines(), 1)
             if line.strip()]
    if not pairs:
        raise CorpusError(f"{name} has no sentence pair; write one pair a line as "
                          "'source ||| target'")
    if len(pairs) > max_pairs:
        raise CorpusError(f"{name} has {len(pairs):,} pairs; the corpus view aligns at most "
                          f"{max_pairs}: keep the first {max_pairs}")
    with_gold = {p.sure is not None for p in pairs}
    if len(with_gold) > 1:
        raise CorpusError(f"{name}: some lines have gold links and some do not; give every "
                          "line a third field 'i-j …' (it may be empty) or none")
    return pairs


def _parse_line(line: str, name: str, lineno: int) -> CorpusPair:
    fields = line.split("|||")
    where = f"{name}, line {lineno}"
    if len(fields) not in (2, 3):
        raise CorpusError(f"{where}: expected 'source ||| target' or 'source ||| target ||| "
                          f"links', found {len(fields) - 1} '|||'")
    src, tgt = tuple(fields[0].split()), tuple(fields[1].split())
    for side, words in (("source", src), ("target", tgt)):
        if not words:
            raise CorpusError(f"{where}: the {side} side is empty")
        if len(words) > MAX_PAIR_WORDS:
            raise CorpusError(f"{where}: the {side} side has {len(words)} words; at most "
                              f"{MAX_PAIR_WORDS} (one sentence a line)")
    if len(fields) == 2:
        return CorpusPair(src, tgt)
    try:
        sure, possible = parse_gold_line(fields[2], len(src), len(tgt), one_indexed=False)
    except ValueError as exc:
        raise CorpusError(f"{where}: {exc} (links are 0-indexed source-target pairs: "
                          "'0-0 1-2', 'ipj' for a possible link)") from None
    return CorpusPair(src, tgt, frozenset(sure), frozenset(possible))


# ------------------------------------------------------------------------ scores


@dataclass(frozen=True)
class SentenceScore:
    """One pair aligned by one model, at word level.

    Attributes:
        index: the pair's 0-based position in the corpus.
        aer: word-level AER against the pair's gold links (0 … 1, lower is better), or
            ``None`` without gold.
        entropy: :func:`~optical_core.pairs.summary.plan_entropy` of the plan (0 = one
            partner per word, 1 = even spread).
        diagonal: the plan's mass on the diagonal (:func:`diagonal_mass`, 0 … 1).
    """

    index: int
    aer: float | None
    entropy: float
    diagonal: float


def diagonal_mass(plan: np.ndarray) -> float:
    """Share of an ``(n, m)`` plan's mass on the cells of
    :func:`optical_core.alignment.diagonal_links` (word ``i`` ↔ word ``round(i·(m−1)/(n−1))``):
    1 when the plan follows word order exactly; 0 for an empty plan."""
    p = np.asarray(plan, dtype=np.float64)
    total = float(p.sum())
    if p.ndim != 2 or p.size == 0 or total <= 0:
        return 0.0
    cells = al.diagonal_links(*p.shape)
    return float(sum(p[i, j] for i, j in cells) / total)


def sentence_scores(encoder: Encoder, pairs: Sequence[CorpusPair],
                    config: OTConfig | None = None, link_method: str = "ot",
                    threshold: float = al.DEFAULT_OT_THRESHOLD) -> list[SentenceScore]:
    """Align each pair with ``encoder`` on its own words (subword vectors averaged per
    word, so link indices match the gold links) and score it.

    Args:
        encoder: the model.
        pairs: the corpus (:func:`parse_corpus`, :func:`from_gold`).
        config: the OT solver (default Sinkhorn, ε = 0.05).
        link_method, threshold: how links are read off for AER (as on the Alignment page).

    Returns:
        One :class:`SentenceScore` per pair, in corpus order.
    """
    cfg = config or OTConfig(epsilon=0.05)
    out = []
    for k, p in enumerate(pairs):
        aligned = align_texts(encoder, p.src, p.tgt, src_words=list(p.src_words),
                              tgt_words=list(p.tgt_words), level="word", config=cfg,
                              link_method=link_method, threshold=threshold)
        aer = None if p.sure is None else al.score_alignment(
            aligned.word_links, p.sure, p.possible).aer
        out.append(SentenceScore(k, aer, plan_entropy(aligned.plan), diagonal_mass(aligned.plan)))
    return out


@dataclass(frozen=True)
class SentenceDiff:
    """How two models score one pair: ``delta = second − first`` of ``metric`` (``"aer"``
    with gold links, else ``"entropy"``; lower is better for both)."""

    index: int
    first: SentenceScore
    second: SentenceScore
    metric: str
    delta: float


def compare_sentences(first: Sequence[SentenceScore],
                      second: Sequence[SentenceScore]) -> list[SentenceDiff]:
    """The pairs sorted by how much the two models differ, most first (ties in corpus
    order): by AER when both have it, else by row entropy.

    Raises:
        ValueError: the two lists do not score the same pairs.
    """
    if [s.index for s in first] != [s.index for s in second]:
        raise ValueError("the two score lists are not of the same corpus")
    diffs = []
    for s1, s2 in zip(first, second):
        metric = "aer" if s1.aer is not None and s2.aer is not None else "entropy"
        delta = getattr(s2, metric) - getattr(s1, metric)
        diffs.append(SentenceDiff(s1.index, s1, s2, metric, float(delta)))
    return sorted(diffs, key=lambda d: (-abs(d.delta), d.index))

"""Word alignment from transport plans and similarity matrices, and its AER.

Conventions (shared with :mod:`optical_core.ot`):

* ``S`` is an ``(n, m)`` score matrix, rows are source tokens, columns target tokens. It is
  either a transport plan (non-negative, total mass ≤ 1) or a similarity matrix (larger is
  more similar). Never pass a *cost* matrix: negate it or use ``1 - C`` first.
* A link ``(i, j)`` is a 0-indexed (source, target) pair; a set of links is :data:`Links`.
* Gold alignments have *sure* links ``S`` and *possible* links ``P ⊇ S`` (Och & Ney 2003).
  Everywhere in this module the possible set returned or used includes the sure links.

Everything here is a pure function over numpy arrays and Python sets (no model, no I/O;
the Pharaoh link format is :mod:`optical_core.pharaoh`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Links = set[tuple[int, int]]
"""A set of 0-indexed ``(source, target)`` links."""

Direction = Literal["intersection", "forward", "backward", "union"]
DIRECTIONS: tuple[str, ...] = ("intersection", "forward", "backward", "union")
LinkMethod = Literal["ot", "argmax", "itermax"]
LINK_METHODS: tuple[str, ...] = ("ot", "argmax", "itermax")
Pooling = Literal["mean", "sum", "max"]
POOLINGS: tuple[str, ...] = ("mean", "sum", "max")

DEFAULT_OT_THRESHOLD = 0.5
"""Default cut-off on ``P * max(n, m)`` for :func:`threshold_links`.

With uniform marginals a source token that sends all its mass to one target scores 1; a
token that splits its mass evenly between two targets scores 0.5 on each, so 0.5 keeps
one-to-one links and even one-to-two splits, and drops the diffuse tail of an entropic
plan (a fully blurred ``n × n`` plan scores ``1/n`` everywhere).
"""


# ----------------------------------------------------------------------- helpers


def _as_matrix(S: Any, name: str = "S") -> np.ndarray:
    """Validate a 2-D finite score matrix and return it as float64 (may have an empty side)."""
    s = np.asarray(S, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (n, m) matrix, got shape {s.shape}")
    if s.size and not np.all(np.isfinite(s)):
        bad = np.argwhere(~np.isfinite(s))[0]
        raise ValueError(
            f"{name} has NaN/inf entries (first at row {bad[0]}, column {bad[1]}); "
            "links cannot be read from it"
        )
    return s


def _to_links(mask: np.ndarray) -> Links:
    return {(int(i), int(j)) for i, j in np.argwhere(mask)}


def _forward_backward(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-hot ``(n, m)`` matrices of row argmaxes and column argmaxes (first index on ties)."""
    n, m = s.shape
    fwd = np.zeros((n, m), dtype=bool)
    bwd = np.zeros((n, m), dtype=bool)
    fwd[np.arange(n), s.argmax(axis=1)] = True
    bwd[s.argmax(axis=0), np.arange(m)] = True
    return fwd, bwd


def links_to_matrix(links: Iterable[tuple[int, int]], n: int, m: int) -> np.ndarray:
    """``(n, m)`` boolean matrix with ``True`` at each link (for overlays).

    Raises:
        ValueError: a link outside ``[0, n) × [0, m)``.
    """
    out = np.zeros((n, m), dtype=bool)
    for i, j in links:
        if not (0 <= i < n and 0 <= j < m):
            raise ValueError(f"link ({i}, {j}) lies outside a {n}×{m} matrix")
        out[i, j] = True
    return out


def check_link(link: Any) -> tuple[int, int]:
    """A link as a pair of non-negative Python ints.

    Raises:
        ValueError: not a pair, a non-integer index or a negative one (the message shows it).
    """
    try:
        i, j = link
    except (TypeError, ValueError):
        raise ValueError(f"a link must be a pair (i, j), got {link!r}") from None
    if isinstance(i, bool) or isinstance(j, bool) or not all(
        isinstance(x, (int, np.integer)) for x in (i, j)
    ):
        raise ValueError(f"link indices must be integers, got {link!r}")
    if i < 0 or j < 0:
        raise ValueError(f"link {link!r} has a negative index")
    return int(i), int(j)


# -------------------------------------------------------------- link extraction


def argmax_links(S: Any, direction: Direction = "intersection") -> Links:
    """Links from row / column argmaxes of a score matrix.

    Args:
        S: ``(n, m)`` plan or similarity matrix.
        direction: ``forward`` links each source row to its argmax column; ``backward``
            links each target column to its argmax row; ``intersection`` keeps the links
            both agree on (SimAlign "ArgMax", one-to-one by construction); ``union`` keeps
            either. Ties go to the lowest index (``numpy.argmax``).

    Returns:
        The links; empty when a side has no tokens.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}; choose one of {DIRECTIONS}")
    s = _as_matrix(S)
    if 0 in s.shape:
        return set()
    fwd, bwd = _forward_backward(s)
    mask = {
        "forward": fwd,
        "backward": bwd,
        "intersection": fwd & bwd,
        "union": fwd | bwd,
    }[direction]
    return _to_links(mask)


def itermax_links(S: Any, max_iter: int = 2, alpha: float = 0.9) -> Links:
    """SimAlign's IterMax (Jalili Sabet et al., Findings of EMNLP 2020).

    Reproduces ``SentenceAligner.iter_max`` of https://github.com/cisnlp/simalign
    (``simalign/simalign.py``), with its ``max_count`` as ``max_iter`` and its hard-coded
    ``alpha_ratio = 0.9`` as ``alpha``:

    1. Start from the argmax intersection.
    2. If ``min(n, m) <= 2`` stop there.
    3. Each further round re-weights the scores: a cell whose row *and* column are both
       already aligned gets weight 0 and cannot be linked; a cell with exactly one of the
       two aligned gets ``alpha``; a cell with neither gets ``min(2·alpha, 1)``. The
       argmax intersection of the re-weighted matrix, restricted to cells not in an aligned
       row *and* an aligned column, is added. So a new link may attach to a token that is
       already aligned (many-to-one), but only if its partner is not.
    4. Stop after ``max_iter`` rounds in total (the first argmax round counts), when a
       round adds nothing, or when every row or every column is aligned.

    The weights multiply the scores, so ``S`` should be non-negative (SimAlign uses the
    similarity ``(cos + 1) / 2``; transport plans are non-negative). With negative scores
    a masked cell (weight 0) can win an argmax, which blocks that row as in SimAlign.

    Args:
        S: ``(n, m)`` non-negative plan or similarity matrix.
        max_iter: total rounds, ≥ 1 (SimAlign's default 2).
        alpha: weight of cells with one aligned side, in ``[0, 1]`` (SimAlign: 0.9).

    Returns:
        The links; empty when a side has no tokens.
    """
    if max_iter < 1:
        raise ValueError("max_iter must be at least 1")
    if not (0.0 <= alpha <= 1.0):
        raise ValueError("alpha must lie in [0, 1]")
    s = _as_matrix(S)
    n, m = s.shape
    if 0 in s.shape:
        return set()
    fwd, bwd = _forward_backward(s)
    inter = fwd & bwd
    if min(n, m) <= 2:
        return _to_links(inter)
    count = 1
    while count < max_iter:
        row_free = ~inter.any(axis=1)  # (n,) source token not yet aligned
        col_free = ~inter.any(axis=0)  # (m,) target token not yet aligned
        if not row_free.any() or not col_free.any():
            break  # SimAlign zeroes both masks here, so the round adds nothing
        mask_x = np.broadcast_to(row_free[:, None], (n, m)).astype(np.float64)
        mask_y = np.broadcast_to(col_free[None, :], (n, m)).astype(np.float64)
        weight = np.clip(alpha * mask_x + alpha * mask_y, 0.0, 1.0)
        allowed = row_free[:, None] | col_free[None, :]  # SimAlign's mask_zeros
        f, b = _forward_backward(s * weight)
        new = f & b & allowed
        if not (new & ~inter).any():
            break
        inter = inter | new
        count += 1
    return _to_links(inter)


def threshold_links(
    P: Any,
    threshold: float = DEFAULT_OT_THRESHOLD,
    scale: Literal["max", "none"] = "max",
    relative: bool = False,
) -> Links:
    """Links where a transport plan moves enough mass.

    Args:
        P: ``(n, m)`` non-negative transport plan.
        threshold: keep ``(i, j)`` whose score reaches it (``>=``, with 1e-12 slack for
            rounding). Default :data:`DEFAULT_OT_THRESHOLD` = 0.5.
        scale: ``"max"`` scores ``P * max(n, m)``, so a confident one-to-one link under
            uniform marginals scores about 1 whatever the sentence lengths; ``"none"`` uses
            the raw mass. Ignored when ``relative`` is true.
        relative: score ``P / P.max()`` instead, so ``threshold`` is a fraction of the
            largest entry (useful for unbalanced / partial plans whose total mass is below
            1, or for similarity matrices in ``[0, 1]``). An all-zero plan gives no links.

    Returns:
        The links; empty when a side has no tokens.
    """
    if not math.isfinite(threshold):
        raise ValueError("threshold must be a finite number")
    if scale not in ("max", "none"):
        raise ValueError(f"unknown scale {scale!r}; choose 'max' or 'none'")
    p = _as_matrix(P, "P")
    if 0 in p.shape:
        return set()
    if relative:
        top = p.max()
        if top <= 0:
            return set()
        score = p / top
    elif scale == "max":
        score = p * max(p.shape)
    else:
        score = p
    return _to_links(score >= threshold - 1e-12)


def extract_links(S: Any, method: LinkMethod = "ot", **kw: Any) -> Links:
    """Dispatch to :func:`threshold_links` (``"ot"``), :func:`argmax_links` or
    :func:`itermax_links`; keyword arguments go to the chosen function.

    Args:
        S: ``(n, m)`` plan or similarity matrix.
        method: one of :data:`LINK_METHODS`.
    """
    if method == "ot":
        return threshold_links(S, **kw)
    if method == "argmax":
        return argmax_links(S, **kw)
    if method == "itermax":
        return itermax_links(S, **kw)
    raise ValueError(f"unknown link method {method!r}; choose one of {LINK_METHODS}")


def diagonal_links(n: int, m: int) -> Links:
    """Position-only baseline: source word ``i`` links to target ``round(i·(m−1)/(n−1))``.

    The first words and the last words are linked to each other and the rest spread
    evenly between them (one link per source word). Python's ``round`` (half to even) is
    used; with it this baseline scores AER 52.9 on ``gold_alignments/enfr``, the figure
    in the design note (``round(i·m/n)`` scores 54.1 there). ``n == 1`` links to target 0.
    """
    if n < 0 or m < 0:
        raise ValueError("sentence lengths must be non-negative")
    if n == 0 or m == 0:
        return set()
    if n == 1:
        return {(0, 0)}
    return {(i, round(i * (m - 1) / (n - 1))) for i in range(n)}


# ---------------------------------------------------------------- subword → word


def _check_word_ids(word_ids: Sequence[int | None], size: int, side: str) -> list[int | None]:
    ids = list(word_ids)
    if len(ids) != size:
        what = "rows" if side == "source" else "columns"
        raise ValueError(
            f"{side} word_ids has {len(ids)} entries but the matrix has {size} {what}"
        )
    seen: set[int] = set()
    for k, w in enumerate(ids):
        if w is None:
            continue
        if isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 0:
            raise ValueError(
                f"{side} word_ids[{k}] = {w!r}: word ids must be non-negative integers or None"
            )
        seen.add(int(w))
    if seen:
        missing = sorted(set(range(max(seen) + 1)) - seen)
        if missing:
            raise ValueError(
                f"{side} words {missing[:10]} have no subwords; word ids must cover "
                f"0..{max(seen)} without gaps"
            )
    return [None if w is None else int(w) for w in ids]


def word_links(
    subword_links: Iterable[tuple[int, int]],
    src_word_ids: Sequence[int | None],
    tgt_word_ids: Sequence[int | None],
) -> Links:
    """Lift subword links to word links: two words are linked if any of their subwords are
    (the SimAlign / awesome-align convention).

    Args:
        subword_links: 0-indexed ``(i, j)`` subword links.
        src_word_ids: length ``n``, the word of each source subword; ``None`` marks a
            subword that belongs to no word (special token), whose links are dropped.
        tgt_word_ids: length ``m``, likewise for the target.

    Raises:
        ValueError: a link index outside the word-id lists, or a bad word id.
    """
    src = list(src_word_ids)
    tgt = list(tgt_word_ids)
    out: Links = set()
    for i, j in subword_links:
        if not (0 <= i < len(src) and 0 <= j < len(tgt)):
            raise ValueError(
                f"subword link ({i}, {j}) is outside {len(src)} source / {len(tgt)} target "
                "subwords"
            )
        wi, wj = src[i], tgt[j]
        if wi is None or wj is None:
            continue
        if wi < 0 or wj < 0:
            raise ValueError(f"negative word id in link ({i}, {j})")
        out.add((int(wi), int(wj)))
    return out


def pool_to_words(
    S: Any,
    src_word_ids: Sequence[int | None],
    tgt_word_ids: Sequence[int | None],
    how: Pooling = "mean",
) -> np.ndarray:
    """Aggregate a subword matrix to a word matrix.

    Args:
        S: ``(n, m)`` subword plan or similarity matrix.
        src_word_ids: length ``n``: word index of each source subword, covering
            ``0..W_src−1`` with no gaps; ``None`` drops that subword.
        tgt_word_ids: length ``m``, likewise (``0..W_tgt−1``).
        how: ``sum`` for transport plans (the word plan keeps the total mass and its
            marginals are the word sums of the subword marginals); ``mean`` for
            similarities (the average over the ``|w_i|·|w_j|`` subword pairs); ``max`` for
            the best subword pair.

    Returns:
        ``(W_src, W_tgt)`` float64 matrix (``(0, 0)``-sided if a side has no word).
    """
    if how not in POOLINGS:
        raise ValueError(f"unknown pooling {how!r}; choose one of {POOLINGS}")
    s = _as_matrix(S)
    n, m = s.shape
    src = _check_word_ids(src_word_ids, n, "source")
    tgt = _check_word_ids(tgt_word_ids, m, "target")
    rows = np.array([k for k, w in enumerate(src) if w is not None], dtype=np.int64)
    cols = np.array([k for k, w in enumerate(tgt) if w is not None], dtype=np.int64)
    wr = np.array([w for w in src if w is not None], dtype=np.int64)
    wc = np.array([w for w in tgt if w is not None], dtype=np.int64)
    n_w = int(wr.max()) + 1 if wr.size else 0
    m_w = int(wc.max()) + 1 if wc.size else 0
    if n_w == 0 or m_w == 0:
        return np.zeros((n_w, m_w))
    sub = s[np.ix_(rows, cols)]
    ri = np.repeat(wr, len(wc))
    ci = np.tile(wc, len(wr))
    vals = sub.ravel()
    if how == "max":
        out = np.full((n_w, m_w), -np.inf)
        np.maximum.at(out, (ri, ci), vals)
        return out
    out = np.zeros((n_w, m_w))
    np.add.at(out, (ri, ci), vals)
    if how == "mean":
        out /= np.outer(np.bincount(wr, minlength=n_w), np.bincount(wc, minlength=m_w))
    return out


# ------------------------------------------------------------------------ scoring


@dataclass(frozen=True)
class AlignmentScores:
    """Alignment quality against sure / possible gold (Och & Ney 2003).

    With ``A`` the predicted links, ``S`` the sure and ``P ⊇ S`` the possible gold links:
    precision ``|A∩P|/|A|``, recall ``|A∩S|/|S|``, F1 their harmonic mean and
    AER ``1 − (|A∩S| + |A∩P|)/(|A| + |S|)``. All in ``[0, 1]``.

    Empty denominators are vacuous rather than errors: precision is 1 when nothing is
    predicted (no wrong link), recall is 1 when there is no sure link (none missed), and
    AER is 0 when both ``A`` and ``S`` are empty. So an empty prediction against a
    non-empty gold scores P 1, R 0, F1 0, AER 1. (SimAlign's ``calc_align_score.py``
    reports 0 for an empty denominator instead; awesome-align's ``aer.py`` divides by
    zero. Neither case arises at corpus level on the bundled gold sets.)

    Attributes:
        precision, recall, f1, aer: the scores.
        n_pred: ``|A|``.  n_sure: ``|S|``.  n_possible: ``|P|`` (sure included).
        n_pred_sure: ``|A∩S|``.  n_pred_possible: ``|A∩P|``.
        n_sentences: sentences summed (1 for :func:`score_alignment`).
    """

    precision: float
    recall: float
    f1: float
    aer: float
    n_pred: int
    n_sure: int
    n_possible: int
    n_pred_sure: int
    n_pred_possible: int
    n_sentences: int = 1

    @classmethod
    def from_counts(
        cls,
        n_pred: int,
        n_sure: int,
        n_possible: int,
        n_pred_sure: int,
        n_pred_possible: int,
        n_sentences: int = 1,
    ) -> AlignmentScores:
        """Scores from the five counts (see the class docstring for empty denominators)."""
        precision = n_pred_possible / n_pred if n_pred else 1.0
        recall = n_pred_sure / n_sure if n_sure else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
        denom = n_pred + n_sure
        aer = 1.0 - (n_pred_sure + n_pred_possible) / denom if denom else 0.0
        return cls(
            precision=precision,
            recall=recall,
            f1=f1,
            aer=aer,
            n_pred=n_pred,
            n_sure=n_sure,
            n_possible=n_possible,
            n_pred_sure=n_pred_sure,
            n_pred_possible=n_pred_possible,
            n_sentences=n_sentences,
        )

    def as_dict(self) -> dict[str, float | int]:
        """Plain dict (for JSON, tables)."""
        return dict(self.__dict__)


def _counts(pred: Iterable, sure: Iterable, possible: Iterable | None) -> tuple[int, ...]:
    a = {check_link(x) for x in pred}
    s = {check_link(x) for x in sure}
    p = {check_link(x) for x in possible} | s if possible is not None else set(s)
    return len(a), len(s), len(p), len(a & s), len(a & p)


def score_alignment(
    pred: Iterable[tuple[int, int]],
    sure: Iterable[tuple[int, int]],
    possible: Iterable[tuple[int, int]] | None = None,
) -> AlignmentScores:
    """Score one sentence pair.

    Args:
        pred: predicted links ``A``.
        sure: sure gold links ``S``.
        possible: possible gold links; ``S`` is added to them so ``P ⊇ S`` always holds.
            ``None`` means ``P = S``.
    """
    return AlignmentScores.from_counts(*_counts(pred, sure, possible))


def _gold_pair(gold: Any) -> tuple[Iterable, Iterable | None]:
    if hasattr(gold, "sure"):
        return gold.sure, getattr(gold, "possible", None)
    try:
        sure, possible = gold
    except (TypeError, ValueError):
        raise ValueError(
            "each gold item must be a (sure, possible) pair or have .sure/.possible"
        ) from None
    return sure, possible


def score_corpus(
    preds: Sequence[Iterable[tuple[int, int]]], golds: Sequence[Any]
) -> AlignmentScores:
    """Micro-averaged scores over a corpus: the counts are summed over sentences and the
    scores computed once from the sums, as awesome-align's ``tools/aer.py`` and SimAlign's
    ``scripts/calc_align_score.py`` do (not a mean of per-sentence AERs).

    Args:
        preds: per sentence, the predicted links.
        golds: per sentence, ``(sure, possible)`` or an object with ``.sure`` and
            ``.possible`` (such as :func:`optical_core.gold.load_gold` items).

    Raises:
        ValueError: ``preds`` and ``golds`` differ in length.
    """
    if len(preds) != len(golds):
        raise ValueError(f"{len(preds)} predicted alignments but {len(golds)} gold ones")
    tot = [0, 0, 0, 0, 0]
    for pred, gold in zip(preds, golds):
        sure, possible = _gold_pair(gold)
        for k, c in enumerate(_counts(pred, sure, possible)):
            tot[k] += c
    return AlignmentScores.from_counts(*tot, n_sentences=len(preds))


def jaccard(l1: Iterable[tuple[int, int]], l2: Iterable[tuple[int, int]]) -> float:
    """Agreement ``|l1 ∩ l2| / |l1 ∪ l2|`` between two link sets; 1.0 for two empty sets."""
    a, b = set(l1), set(l2)
    union = a | b
    return len(a & b) / len(union) if union else 1.0


__all__ = [
    "DEFAULT_OT_THRESHOLD",
    "DIRECTIONS",
    "LINK_METHODS",
    "POOLINGS",
    "AlignmentScores",
    "Links",
    "argmax_links",
    "check_link",
    "diagonal_links",
    "extract_links",
    "itermax_links",
    "jaccard",
    "links_to_matrix",
    "pool_to_words",
    "score_alignment",
    "score_corpus",
    "threshold_links",
    "word_links",
]

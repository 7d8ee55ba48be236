"""Word-level noise kinds and whole-word case changes: words visited in random order,
each edit taken while it fits the target ``cer * n`` (see :mod:`optical_core.perturb.kinds`).
"""

from __future__ import annotations

import random
from typing import Callable

from optical_core.perturb.cer import levenshtein
from optical_core.perturb.kinds import Edit
from optical_core.perturb.text import Doc

# --------------------------------------------------------------------------
# Word kinds
# --------------------------------------------------------------------------

_JOINERS = set("'\u2019-\u2010")


def _words(doc: Doc) -> list[tuple[int, int]]:
    """Word spans as (first_unit, end_unit): runs of letter/digit units, with
    single internal apostrophes/hyphens (l'homme, Ost-West) kept inside."""
    spans = []
    n = doc.n_units
    i = 0
    while i < n:
        if not doc.is_alnum[i]:
            i += 1
            continue
        j = i + 1
        while j < n:
            if doc.is_alnum[j]:
                j += 1
            elif doc.units[j] in _JOINERS and j + 1 < n and doc.is_alnum[j + 1]:
                j += 2
            else:
                break
        spans.append((i, j))
        i = j
    return spans


def _select(
    rng: random.Random,
    target: float,
    cands: list,
    cost_of: Callable[[object], int | None],
    accept: Callable[[object], None],
) -> None:
    """Randomised greedy fill of ``target`` edit-distance units (see module
    docstring).  ``cost_of`` returns None for a candidate that conflicts with
    what was already accepted."""
    if target <= 0 or not cands:
        return
    cands = list(cands)
    rng.shuffle(cands)
    spent = 0
    taken = [False] * len(cands)
    for k, c in enumerate(cands):
        cost = cost_of(c)
        if not cost:
            continue
        if spent + cost <= target + 1e-9:
            accept(c)
            taken[k] = True
            spent += cost
    rem = target - spent
    if rem <= 1e-9:
        return
    best = None
    for k, c in enumerate(cands):
        if taken[k]:
            continue
        cost = cost_of(c)
        if cost and (best is None or cost < best[0]):
            best = (cost, c)
    if best is not None and rng.random() < rem / best[0]:
        accept(best[1])


Ops = list[tuple[int, int, str]]


def _case_ops(text: str, spans: list[tuple[int, int]], kind: str, target: float,
              rng: random.Random) -> Ops:
    """``lowercase`` / ``uppercase``: whole words converted."""
    conv = str.lower if kind == "lowercase" else str.upper
    done: set[int] = set()
    ops: Ops = []

    def cost(k):
        s, e = spans[k]
        return None if k in done else levenshtein(text[s:e], conv(text[s:e]))

    def accept(k):
        done.add(k)
        s, e = spans[k]
        ops.append((s, e, conv(text[s:e])))

    _select(rng, target, list(range(len(spans))), cost, accept)
    return ops


def _repeat_ops(text: str, spans: list[tuple[int, int]], target: float,
                rng: random.Random) -> Ops:
    """``word_repeat``: a word written twice (a space and the word inserted after it)."""
    done: set[int] = set()
    ops: Ops = []

    def cost(k):
        s, e = spans[k]
        return None if k in done else e - s + 1

    def accept(k):
        done.add(k)
        s, e = spans[k]
        ops.append((e, e, " " + text[s:e]))

    _select(rng, target, list(range(len(spans))), cost, accept)
    return ops


def _shuffle_ops(text: str, spans: list[tuple[int, int]], target: float,
                 rng: random.Random) -> Ops:
    """``word_shuffle``: two neighbouring words swapped (each word in one swap at most)."""
    used: set[int] = set()
    ops: Ops = []

    def swapped(k):
        (s1, e1), (s2, e2) = spans[k], spans[k + 1]
        return text[s2:e2] + text[e1:s2] + text[s1:e1]

    def cost(k):
        if k in used or k + 1 in used:
            return None
        return levenshtein(text[spans[k][0]:spans[k + 1][1]], swapped(k))

    def accept(k):
        used.update((k, k + 1))
        ops.append((spans[k][0], spans[k + 1][1], swapped(k)))

    _select(rng, target, list(range(len(spans) - 1)), cost, accept)
    return ops


def _drop_ops(text: str, spans: list[tuple[int, int]], target: float,
              rng: random.Random) -> Ops:
    """``word_drop``: words removed with their whitespace, never all of them; one op per
    contiguous removed span (adjacent drops merge), in text order."""
    removed = [False] * len(text)
    dropped: set[int] = set()

    def drop_set(k) -> list[int]:
        s, e = spans[k]
        # The whitespace right after the word, else the whitespace before it, as seen in
        # the text with earlier drops already applied.
        ws = []
        j = e
        while j < len(text) and (removed[j] or text[j].isspace()):
            if not removed[j]:
                ws.append(j)
            j += 1
        if not ws:
            j = s - 1
            while j >= 0 and (removed[j] or text[j].isspace()):
                if not removed[j]:
                    ws.append(j)
                j -= 1
        return list(range(s, e)) + ws

    def cost(k):
        if k in dropped or len(dropped) >= len(spans) - 1:
            return None
        return len(drop_set(k))

    def accept(k):
        dropped.add(k)
        for x in drop_set(k):
            removed[x] = True

    _select(rng, target, list(range(len(spans))), cost, accept)
    ops: Ops = []
    x = 0
    while x < len(text):
        if removed[x]:
            y = x
            while y < len(text) and removed[y]:
                y += 1
            ops.append((x, y, ""))
            x = y
        else:
            x += 1
    return ops


def word_kind(doc: Doc, kind: str, cer: float, rng: random.Random) -> tuple[Ops, list[Edit]]:
    """The ops of a word kind in the order they were drawn (``word_drop``: text order), and
    one :class:`Edit` per op, aligned with them."""
    text = doc.text
    spans = [(doc.offsets[a], doc.offsets[b]) for a, b in _words(doc)]
    target = cer * len(text)
    if kind in ("lowercase", "uppercase"):
        ops = _case_ops(text, spans, kind, target, rng)
    elif kind == "word_repeat":
        ops = _repeat_ops(text, spans, target, rng)
    elif kind == "word_shuffle":
        ops = _shuffle_ops(text, spans, target, rng)
    elif kind == "word_drop":
        ops = _drop_ops(text, spans, target, rng)
    else:  # pragma: no cover
        raise AssertionError(kind)
    return ops, [Edit(kind, s, text[s:e], new) for s, e, new in ops]

"""Word-level noise kinds and whole-word case changes: words visited in random order,
each edit taken while it fits the target ``cer * n`` (see :mod:`optical_core.perturb.kinds`).
"""

from __future__ import annotations

import random
from typing import Callable

from optical_core.perturb.cer import levenshtein
from optical_core.perturb.kinds import Edit
from optical_core.perturb.text import _Doc

# --------------------------------------------------------------------------
# Word kinds
# --------------------------------------------------------------------------

_JOINERS = set("'\u2019-\u2010")


def _words(doc: _Doc) -> list[tuple[int, int]]:
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


def _word_kind(doc: _Doc, kind: str, cer: float, rng: random.Random):
    text = doc.text
    off = doc.offsets
    spans = [(off[a], off[b]) for a, b in _words(doc)]
    target = cer * len(text)
    ops: list[tuple[int, int, str]] = []
    edits: list[Edit] = []

    if kind in ("lowercase", "uppercase"):
        conv = str.lower if kind == "lowercase" else str.upper

        def cost_case(k):
            if k in done:
                return None
            s, e = spans[k]
            w = text[s:e]
            return levenshtein(w, conv(w))

        def acc_case(k):
            done.add(k)
            s, e = spans[k]
            w = text[s:e]
            ops.append((s, e, conv(w)))
            edits.append(Edit(kind, s, w, conv(w)))

        done: set[int] = set()
        _select(rng, target, list(range(len(spans))), cost_case, acc_case)

    elif kind == "word_repeat":
        done = set()

        def cost_rep(k):
            if k in done:
                return None
            s, e = spans[k]
            return e - s + 1

        def acc_rep(k):
            done.add(k)
            s, e = spans[k]
            ins = " " + text[s:e]
            ops.append((e, e, ins))
            edits.append(Edit(kind, e, "", ins))

        _select(rng, target, list(range(len(spans))), cost_rep, acc_rep)

    elif kind == "word_shuffle":
        used: set[int] = set()

        def swapped(k):
            (s1, e1), (s2, e2) = spans[k], spans[k + 1]
            return text[s2:e2] + text[e1:s2] + text[s1:e1]

        def cost_sh(k):
            if k in used or k + 1 in used:
                return None
            s1, e2 = spans[k][0], spans[k + 1][1]
            return levenshtein(text[s1:e2], swapped(k))

        def acc_sh(k):
            used.update((k, k + 1))
            s1, e2 = spans[k][0], spans[k + 1][1]
            new = swapped(k)
            ops.append((s1, e2, new))
            edits.append(Edit(kind, s1, text[s1:e2], new))

        _select(rng, target, list(range(len(spans) - 1)), cost_sh, acc_sh)

    elif kind == "word_drop":
        removed = [False] * len(text)
        dropped: set[int] = set()

        def drop_set(k) -> list[int]:
            s, e = spans[k]
            idx = list(range(s, e))
            # The whitespace right after the word, else the whitespace before
            # it, as seen in the text with earlier drops already applied.
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
            return idx + ws

        def cost_drop(k):
            if k in dropped or len(dropped) >= len(spans) - 1:
                return None
            return len(drop_set(k))

        def acc_drop(k):
            dropped.add(k)
            for x in drop_set(k):
                removed[x] = True

        _select(rng, target, list(range(len(spans))), cost_drop, acc_drop)
        x = 0
        while x < len(text):
            if removed[x]:
                y = x
                while y < len(text) and removed[y]:
                    y += 1
                ops.append((x, y, ""))
                # one edit per contiguous removed span (adjacent drops merge)
                edits.append(Edit(kind, x, text[x:y], ""))
                x = y
            else:
                x += 1
    else:  # pragma: no cover
        raise AssertionError(kind)
    edits.sort(key=lambda e: e.position)
    return ops, edits

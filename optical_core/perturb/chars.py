"""Character-level noise kinds: each proposes non-overlapping edits until the edit budget
``stochastic_round(cer * n)`` is spent (see :mod:`optical_core.perturb.kinds`).
"""

from __future__ import annotations

import random
import unicodedata
from typing import Callable, Iterable

from optical_core.perturb.cer import levenshtein
from optical_core.perturb.kinds import NEIGHBOURS, OCR_BY_FIRST, Edit
from optical_core.perturb.text import (
    Doc,
    guess_lang,
    own_script_alphabet,
    stochastic_round,
    strip_unit,
)

# --------------------------------------------------------------------------
# Character kinds
# --------------------------------------------------------------------------


class _CharState:
    def __init__(self, doc: Doc):
        self.doc = doc
        self.used_units: set[int] = set()
        self.used_gaps: set[int] = set()
        self.remaining = list(doc.token_size)
        self.ops: list[tuple[int, int, str]] = []
        self.edits: list[Edit] = []

    def unit_free(self, i: int) -> bool:
        return (
            i not in self.used_units and i not in self.used_gaps and (i + 1) not in self.used_gaps
        )

    def gap_ok(self, g: int) -> bool:
        d = self.doc
        if g in self.used_gaps or (g - 1) in self.used_units or g in self.used_units:
            return False
        left = g - 1 >= 0 and d.is_letter[g - 1]
        right = g < d.n_units and d.is_letter[g]
        if not (left or right):
            return False
        if g < d.n_units and unicodedata.category(d.units[g][0]).startswith("M"):
            return False
        return True

    def replace(self, kind: str, i: int, j: int, new: str) -> None:
        d = self.doc
        start, end = d.offsets[i], d.offsets[j]
        self.ops.append((start, end, new))
        self.edits.append(Edit(kind, start, d.text[start:end], new))
        self.used_units.update(range(i, j))

    def insert(self, kind: str, g: int, new: str) -> None:
        pos = self.doc.offsets[g]
        self.ops.append((pos, pos, new))
        self.edits.append(Edit(kind, pos, "", new))
        self.used_gaps.add(g)


def _match_case(template: str, letter: str) -> str | None:
    if template.isupper():
        up = letter.upper()
        return up if len(up) == 1 else None
    return letter


def _pick_letter(rng: random.Random, alphabet: str, avoid: str, upper: bool) -> str | None:
    avoid_l = avoid.lower()
    for _ in range(8):
        c = alphabet[rng.randrange(len(alphabet))]
        if c == avoid_l:
            continue
        if upper:
            up = c.upper()
            if len(up) != 1 or up == avoid:
                continue
            return up
        return c
    cands = [c for c in alphabet if c != avoid_l]
    if upper:
        cands = [c.upper() for c in cands if len(c.upper()) == 1 and c.upper() != avoid]
    return rng.choice(cands) if cands else None


# A proposal is (cost, apply) or None; proposers are tried on shuffled
# candidates.  Each proposer gets (state, rng, candidate) and returns a
# proposal or None when the candidate is not usable.
_Proposal = tuple[int, Callable[[], None]]


def _prop_delete(st: _CharState, rng, i, kind="delete"):
    d = st.doc
    if not (d.is_letter[i] and st.unit_free(i)) or st.remaining[d.token[i]] < 2:
        return None

    def do():
        st.replace(kind, i, i + 1, "")
        st.remaining[d.token[i]] -= 1

    return len(d.units[i]), do


def _prop_substitute(st: _CharState, rng, i, alphabet: str, kind="substitute"):
    d = st.doc
    if not (d.is_letter[i] and st.unit_free(i)):
        return None
    u = d.units[i]
    new = _pick_letter(rng, alphabet, u, u.isupper())
    if new is None or new == u:
        return None
    return levenshtein(u, new), lambda: st.replace(kind, i, i + 1, new)


def _prop_insert(st: _CharState, rng, g, alphabet: str, kind="insert"):
    d = st.doc
    if not st.gap_ok(g):
        return None
    left = d.units[g - 1] if g > 0 else ""
    right = d.units[g] if g < d.n_units else ""
    right_ok = not right or right.isupper() or not right[0].isalpha()
    upper = bool(left) and left.isupper() and right_ok
    new = _pick_letter(rng, alphabet, "", upper)
    if new is None:
        return None
    return 1, lambda: st.insert(kind, g, new)


def _prop_swap(st: _CharState, rng, i):
    d = st.doc
    j = i + 1
    if j >= d.n_units or not (d.is_letter[i] and d.is_letter[j]):
        return None
    if not (st.unit_free(i) and st.unit_free(j)) or d.units[i] == d.units[j]:
        return None
    a, b = d.units[i], d.units[j]
    return levenshtein(a + b, b + a), lambda: st.replace("swap", i, j + 1, b + a)


def _prop_keyboard(st: _CharState, rng, i, lang: str):
    d = st.doc
    if not (d.is_letter[i] and st.unit_free(i)):
        return None
    u = d.units[i]
    nbs = NEIGHBOURS[lang].get(u.lower())
    if not nbs:
        return None
    order = list(nbs)
    rng.shuffle(order)
    for n in order:
        new = _match_case(u, n)
        if new is not None and new != u:
            return 1, lambda: st.replace("keyboard", i, i + 1, new)
    return None


def _prop_ocr(st: _CharState, rng, cand):
    i, src, dst = cand
    d = st.doc
    m = len(src)
    if any(not (d.is_alnum[k] and st.unit_free(k)) for k in range(i, i + m)):
        return None
    return levenshtein(src, dst), lambda: st.replace("ocr", i, i + m, dst)


def _prop_case(st: _CharState, rng, i):
    d = st.doc
    if not (d.is_letter[i] and st.unit_free(i)):
        return None
    u = d.units[i]
    f = u.swapcase()
    if f == u or len(f) != len(u) or f.swapcase() != u:
        return None
    return levenshtein(u, f), lambda: st.replace("case_flip", i, i + 1, f)


def _prop_strip(st: _CharState, rng, i):
    d = st.doc
    if not (d.is_letter[i] and st.unit_free(i)):
        return None
    u = d.units[i]
    s = strip_unit(u)
    if not s or s == u:
        return None
    return levenshtein(u, s), lambda: st.replace("strip_diacritics", i, i + 1, s)


def _run_budget(budget: int, rng: random.Random, next_proposal: Callable[[], _Proposal | None]):
    """Take proposals until their summed cost reaches ``budget``; an
    overshooting proposal is taken with probability remaining/cost (then stop)."""
    spent = 0
    while spent < budget:
        prop = next_proposal()
        if prop is None:
            return
        cost, do = prop
        if cost <= 0:
            continue
        rem = budget - spent
        if cost <= rem:
            do()
            spent += cost
        else:
            if rng.random() < rem / cost:
                do()
            return


def _pool(rng: random.Random, items: Iterable, propose: Callable) -> Callable[[], _Proposal | None]:
    """Iterate over shuffled candidates, returning the next usable proposal."""
    items = list(items)
    rng.shuffle(items)
    it = iter(items)

    def nxt():
        for c in it:
            p = propose(c)
            if p is not None:
                return p
        return None

    return nxt


def char_kind(
    doc: Doc, kind: str, cer: float, rng: random.Random, lang: str | None
) -> _CharState:
    st = _CharState(doc)
    budget = stochastic_round(cer * len(doc.text), rng)
    if budget <= 0:
        return st
    units = range(doc.n_units)
    gaps = range(doc.n_units + 1)
    layout_lang = lang if lang is not None else guess_lang(doc.text)
    if kind in ("insert", "substitute", "random_char"):
        alphabet = own_script_alphabet(doc, lang)

    if kind == "delete":
        nxt = _pool(rng, units, lambda i: _prop_delete(st, rng, i))
    elif kind == "substitute":
        nxt = _pool(rng, units, lambda i: _prop_substitute(st, rng, i, alphabet))
    elif kind == "insert":
        nxt = _pool(rng, gaps, lambda g: _prop_insert(st, rng, g, alphabet))
    elif kind == "swap":
        nxt = _pool(rng, units, lambda i: _prop_swap(st, rng, i))
    elif kind == "keyboard":
        nxt = _pool(rng, units, lambda i: _prop_keyboard(st, rng, i, layout_lang))
    elif kind == "case_flip":
        nxt = _pool(rng, units, lambda i: _prop_case(st, rng, i))
    elif kind == "strip_diacritics":
        nxt = _pool(rng, units, lambda i: _prop_strip(st, rng, i))
    elif kind == "ocr":
        cands = []
        for i, u in enumerate(doc.units):
            for src, dst in OCR_BY_FIRST.get(u, ()):
                m = len(src)
                if i + m <= doc.n_units and "".join(doc.units[i : i + m]) == src:
                    cands.append((i, src, dst))
        nxt = _pool(rng, cands, lambda c: _prop_ocr(st, rng, c))
    elif kind == "random_char":
        pools = {
            "delete": _pool(rng, units, lambda i: _prop_delete(st, rng, i)),
            "substitute": _pool(rng, units, lambda i: _prop_substitute(st, rng, i, alphabet)),
            "insert": _pool(rng, gaps, lambda g: _prop_insert(st, rng, g, alphabet)),
        }
        live = ["delete", "substitute", "insert"]

        def nxt():
            while live:
                op = live[rng.randrange(len(live))]
                p = pools[op]()
                if p is not None:
                    return p
                live.remove(op)
            return None

    else:  # pragma: no cover - guarded by check_kind
        raise AssertionError(kind)
    _run_budget(budget, rng, nxt)
    return st

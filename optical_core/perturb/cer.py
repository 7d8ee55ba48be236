"""Levenshtein distance and character error rate (code points of the NFC text).
"""

from __future__ import annotations

# --------------------------------------------------------------------------
# Levenshtein
# --------------------------------------------------------------------------


def _levenshtein_dp(a: str, b: str) -> int:
    """Reference O(len(a)*len(b)) dynamic programme (used by the tests)."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def levenshtein(a: str, b: str) -> int:
    """Unit-cost Levenshtein distance (insert/delete/substitute) between two
    strings, counted in code points.

    Exact; uses Myers/Hyyrö bit-parallel dynamic programming over Python
    integers (same result as the O(nm) table, ~len(a) big-int operations)."""
    if a == b:
        return 0
    # Common prefix/suffix never change the distance.
    p = 0
    lim = min(len(a), len(b))
    while p < lim and a[p] == b[p]:
        p += 1
    a, b = a[p:], b[p:]
    s = 0
    lim = min(len(a), len(b))
    while s < lim and a[-1 - s] == b[-1 - s]:
        s += 1
    if s:
        a, b = a[:-s], b[:-s]
    if len(a) < len(b):
        a, b = b, a
    m = len(b)
    if m == 0:
        return len(a)
    peq: dict[str, int] = {}
    for i, c in enumerate(b):
        peq[c] = peq.get(c, 0) | (1 << i)
    full = (1 << m) - 1
    high = 1 << (m - 1)
    pv = full
    mv = 0
    score = m
    for c in a:
        eq = peq.get(c, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = mv | (~(xh | pv) & full)
        mh = pv & xh
        if ph & high:
            score += 1
        elif mh & high:
            score -= 1
        ph = ((ph << 1) | 1) & full
        mh = (mh << 1) & full
        pv = mh | (~(xv | ph) & full)
        mv = ph & xv
    return score


def character_error_rate(reference: str, hypothesis: str) -> float:
    """``levenshtein(reference, hypothesis) / len(reference)``; 0.0 for an
    empty reference."""
    if not reference:
        return 0.0
    return levenshtein(reference, hypothesis) / len(reference)

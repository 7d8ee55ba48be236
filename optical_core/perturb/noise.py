"""The public calls of the noise: :func:`perturb`, :func:`compose`, :func:`perturb_many`,
:func:`perturb_levels`.

Deterministic given ``seed``; the global :mod:`random` state is never touched.
"""

from __future__ import annotations

import itertools
import random
import unicodedata
from typing import Iterable, Sequence

from optical_core.perturb.cer import character_error_rate, levenshtein
from optical_core.perturb.chars import char_kind
from optical_core.perturb.kinds import CHAR_KINDS, Edit, Perturbation, check_lang
from optical_core.perturb.text import (
    Doc,
    apply_ops,
    check_cer,
    check_kind,
    check_seed,
    check_text,
    derive_seed,
    guess_lang,
)
from optical_core.perturb.words import word_kind

# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def _draw(text: str, kind: str, cer: float, seed: int, lang: str | None
          ) -> tuple[list[tuple[int, int, str]], list[Edit]]:
    """The ops ``(start, end, replacement)`` on ``text`` and one edit per op, aligned, in
    the order the draw took them (``word_drop``: its merged spans in text order)."""
    if not text.strip() or cer == 0.0:
        return [], []
    rng = random.Random(seed)
    doc = Doc(text)
    if kind in CHAR_KINDS:
        st = char_kind(doc, kind, cer, rng, lang)
        return st.ops, st.edits
    return word_kind(doc, kind, cer, rng)


def _result(text: str, ops: list[tuple[int, int, str]], edits: list[Edit], kind: str,
            cer: float, seed: int, lang: str | None) -> Perturbation:
    noisy = unicodedata.normalize("NFC", apply_ops(text, ops))
    return Perturbation(noisy, text, sorted(edits, key=lambda e: e.position),
                        character_error_rate(text, noisy), kind, cer, seed, lang)


def _perturb_nfc(text: str, kind: str, cer: float, seed: int, lang: str | None) -> Perturbation:
    return _result(text, *_draw(text, kind, cer, seed, lang), kind, cer, seed, lang)


def perturb(
    text: str, kind: str, cer: float, seed: int, lang: str | None = None
) -> Perturbation:
    """Add noise of one ``kind`` (see :data:`NOISE_KINDS`) at target
    character error rate ``cer`` in [0, 1].

    ``lang`` (en/de/fr/cs) selects the keyboard layout and the alphabet used
    for inserted/substituted letters; ``None`` guesses it from the text
    (:func:`guess_lang`), and for mostly non-Latin text draws letters from the
    text itself.  Empty/whitespace-only text and ``cer=0`` return the (NFC)
    text unchanged with no edits.  Raises ``ValueError`` for an unknown kind,
    a ``cer`` outside [0, 1] or an unsupported ``lang``.
    """
    kind = check_kind(kind)
    cer = check_cer(cer)
    seed = check_seed(seed)
    lg = None if lang is None else check_lang(lang)
    return _perturb_nfc(check_text(text), kind, cer, seed, lg)


def compose(
    text: str,
    steps: Sequence[tuple[str, float]],
    seed: int,
    lang: str | None = None,
) -> Perturbation:
    """Apply several ``(kind, cer)`` steps in order, step ``i`` seeded with
    ``derive_seed(seed, i)``.  Each step's ``cer`` is relative to the text it
    receives.  ``lang`` is guessed once from the original text when ``None``
    (so e.g. stripping diacritics first does not switch the keyboard layout).
    The result's ``edits`` concatenate the steps' edits (positions relative
    to each step's input) and ``measured_cer`` compares the final text with
    the original."""
    checked = []
    for step in steps:
        try:
            k, c = step
        except (TypeError, ValueError):
            raise ValueError(f"each step must be a (kind, cer) pair (got {step!r})") from None
        checked.append((check_kind(k), check_cer(c)))
    seed = check_seed(seed)
    original = check_text(text)
    if lang is not None:
        lg: str | None = check_lang(lang)
    else:
        lg = guess_lang(original) if original.strip() else None
    cur = original
    edits: list[Edit] = []
    for i, (k, c) in enumerate(checked):
        p = _perturb_nfc(cur, k, c, derive_seed(seed, i), lg)
        edits.extend(p.edits)
        cur = p.text
    name = "+".join(k for k, _ in checked)
    total = sum(c for _, c in checked)
    return Perturbation(
        cur, original, edits, character_error_rate(original, cur), name, min(total, 1.0), seed, lg
    )


def perturb_many(
    texts: Iterable[str], kind: str, cer: float, seed: int, lang: str | None = None
) -> list[Perturbation]:
    """Perturb each text independently; item ``i`` uses seed
    ``derive_seed(seed, i)``, so its result depends only on (text, kind,
    cer, seed, i) and not on the other texts or on the order of computation."""
    kind = check_kind(kind)
    cer = check_cer(cer)
    seed = check_seed(seed)
    lg = None if lang is None else check_lang(lang)
    return [
        _perturb_nfc(check_text(t), kind, cer, derive_seed(seed, i), lg)
        for i, t in enumerate(texts)
    ]


def perturb_levels(
    text: str, kind: str, cers: Sequence[float], seed: int, lang: str | None = None
) -> list[Perturbation]:
    """Nested noise: one :class:`Perturbation` per target CER in ``cers`` (any order), where
    a higher CER keeps every edit of a lower one and adds more.

    One draw at ``max(cers)`` (the text of :func:`perturb` at that level) fixes the order of
    its edits; the level ``c`` keeps the longest prefix of that order whose summed edit
    cost (Levenshtein distance of each edit) is at most ``round(c · len(text))``. So the
    measured CER grows with the level, unlike independent draws per level (what
    :func:`perturb` and the experiment grids do), where each level has its own edits and a
    query can look better at a higher level. (``word_drop`` keeps its dropped spans in text
    order, so its lower levels drop the leftmost of the top level's words.) Arguments and
    errors as :func:`perturb`.
    """
    kind = check_kind(kind)
    levels = [check_cer(c) for c in cers]
    seed = check_seed(seed)
    lg = None if lang is None else check_lang(lang)
    text = check_text(text)
    top = max(levels, default=0.0)
    ops, edits = _draw(text, kind, top, seed, lg)
    spent = list(itertools.accumulate(levenshtein(text[s:e], new) for s, e, new in ops))
    out = []
    for c in levels:
        k = len(ops) if c == top else sum(1 for x in spent if x <= round(c * len(text)))
        out.append(_result(text, ops[:k], edits[:k], kind, c, seed, lg))
    return out

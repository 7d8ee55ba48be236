"""The public calls of the noise: :func:`perturb`, :func:`compose`, :func:`perturb_many`.

Deterministic given ``seed``; the global :mod:`random` state is never touched.
"""

from __future__ import annotations

import random
import unicodedata
from typing import Iterable, Sequence

from optical_core.perturb.cer import character_error_rate
from optical_core.perturb.chars import _char_kind
from optical_core.perturb.kinds import CHAR_KINDS, Edit, Perturbation, _check_lang
from optical_core.perturb.text import (
    _apply_ops,
    _check_cer,
    _check_kind,
    _check_seed,
    _check_text,
    _Doc,
    derive_seed,
    guess_lang,
)
from optical_core.perturb.words import _word_kind

# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def _perturb_nfc(text: str, kind: str, cer: float, seed: int, lang: str | None) -> Perturbation:
    if not text.strip() or cer == 0.0:
        return Perturbation(text, text, [], 0.0, kind, cer, seed, lang)
    rng = random.Random(seed)
    doc = _Doc(text)
    if kind in CHAR_KINDS:
        st = _char_kind(doc, kind, cer, rng, lang)
        ops, edits = st.ops, sorted(st.edits, key=lambda e: e.position)
    else:
        ops, edits = _word_kind(doc, kind, cer, rng)
    noisy = unicodedata.normalize("NFC", _apply_ops(text, ops))
    return Perturbation(
        noisy, text, edits, character_error_rate(text, noisy), kind, cer, seed, lang
    )


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
    kind = _check_kind(kind)
    cer = _check_cer(cer)
    seed = _check_seed(seed)
    lg = None if lang is None else _check_lang(lang)
    return _perturb_nfc(_check_text(text), kind, cer, seed, lg)


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
        checked.append((_check_kind(k), _check_cer(c)))
    seed = _check_seed(seed)
    original = _check_text(text)
    if lang is not None:
        lg: str | None = _check_lang(lang)
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
    kind = _check_kind(kind)
    cer = _check_cer(cer)
    seed = _check_seed(seed)
    lg = None if lang is None else _check_lang(lang)
    return [
        _perturb_nfc(_check_text(t), kind, cer, derive_seed(seed, i), lg)
        for i, t in enumerate(texts)
    ]

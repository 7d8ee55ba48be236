"""The text model of the noise: seeds, language guess, argument checks and units.

A *unit* approximates an extended grapheme cluster (a base code point with its combining
marks, ZWJ continuations, regional-indicator pairs, CRLF); edits never split one.
"""

from __future__ import annotations

import hashlib
import math
import operator
import random
import unicodedata

from optical_core.perturb.kinds import ALPHABETS, LANG_MARKERS, NOISE_KINDS, STROKES

# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def derive_seed(seed: int, index: int) -> int:
    """Stable 63-bit seed for item ``index`` of a batch seeded with ``seed``
    (independent of PYTHONHASHSEED, platform and batch composition)."""
    h = hashlib.blake2b(f"optical-perturb:{int(seed)}:{int(index)}".encode(), digest_size=8)
    return int.from_bytes(h.digest(), "big") >> 1


def guess_lang(text: str) -> str:
    """Crude guess among ``en/de/fr/cs`` from language-specific letters
    (ěščřžůťďň → cs, äöüß → de, éèêàçœ… → fr, otherwise en)."""
    counts = {lg: 0 for lg in LANG_MARKERS}
    for ch in text:
        for lg, marks in LANG_MARKERS.items():
            if ch in marks:
                counts[lg] += 1
    if counts["cs"]:
        return "cs"
    if counts["de"] or counts["fr"]:
        return "de" if counts["de"] >= counts["fr"] else "fr"
    return "en"


def strip_unit(u: str) -> str:
    d = unicodedata.normalize("NFD", u)
    base = "".join(STROKES.get(c, c) for c in d if not unicodedata.category(c).startswith("M"))
    return unicodedata.normalize("NFC", base)


def strip_diacritics(text: str) -> str:
    """Remove every diacritic (see module docs: ß, æ, œ are kept, ł/ø/đ/ħ are
    mapped to their base letter).  Whitespace, digits, emoji are untouched."""
    text = unicodedata.normalize("NFC", text)
    units = _segment(text)
    return unicodedata.normalize(
        "NFC", "".join(strip_unit(u) if u[:1].isalpha() else u for u in units)
    )




def check_kind(kind: object) -> str:
    if not isinstance(kind, str) or kind not in NOISE_KINDS:
        raise ValueError(f"unknown noise kind {kind!r}; valid kinds: {', '.join(NOISE_KINDS)}")
    return kind


def check_cer(cer: object) -> float:
    try:
        c = float(cer)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"cer must be a number in [0, 1] (got {cer!r})") from None
    if isinstance(cer, bool) or not (0.0 <= c <= 1.0) or math.isnan(c):
        raise ValueError(f"cer must be in [0, 1] (got {cer!r})")
    return c


def check_seed(seed: object) -> int:
    try:
        return operator.index(seed)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"seed must be an int (got {type(seed).__name__})") from None


def check_text(text: object) -> str:
    if not isinstance(text, str):
        raise TypeError(f"text must be str (got {type(text).__name__})")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        raise ValueError("text contains lone surrogate code points (not valid Unicode)")
    return unicodedata.normalize("NFC", text)


# --------------------------------------------------------------------------
# Segmentation
# --------------------------------------------------------------------------

_ZWJ = "\u200d"


def _is_ri(c: str) -> bool:
    return 0x1F1E6 <= ord(c) <= 0x1F1FF


def _is_extend(c: str) -> bool:
    return unicodedata.category(c) in ("Mn", "Mc", "Me") or 0x1F3FB <= ord(c) <= 0x1F3FF


def _segment(text: str) -> list[str]:
    """Split into grapheme-ish units (see module docstring)."""
    units: list[str] = []
    n = len(text)
    i = 0
    while i < n:
        j = i + 1
        c = text[i]
        if c == "\r" and j < n and text[j] == "\n":
            j += 1
        elif _is_ri(c) and j < n and _is_ri(text[j]):
            j += 1
        while j < n:
            d = text[j]
            if _is_extend(d):
                j += 1
            elif d == _ZWJ:
                j += 1
                if j < n and not text[j].isspace():
                    j += 1
            else:
                break
        units.append(text[i:j])
        i = j
    return units


class Doc:
    """NFC text split into units with per-unit metadata."""

    def __init__(self, text: str):
        self.text = text
        self.units = _segment(text)
        self.offsets: list[int] = []
        off = 0
        for u in self.units:
            self.offsets.append(off)
            off += len(u)
        self.offsets.append(off)
        self.n_units = len(self.units)
        self.is_letter = [u[0].isalpha() for u in self.units]
        self.is_alnum = [u[0].isalnum() for u in self.units]
        self.is_space = [u[0].isspace() for u in self.units]
        # token id (whitespace-delimited) per unit, -1 for whitespace
        self.token: list[int] = []
        tok = -1
        prev_space = True
        for sp in self.is_space:
            if sp:
                self.token.append(-1)
            else:
                if prev_space:
                    tok += 1
                self.token.append(tok)
            prev_space = sp
        self.token_size = [0] * (tok + 1)
        for t in self.token:
            if t >= 0:
                self.token_size[t] += 1


def apply_ops(text: str, ops: list[tuple[int, int, str]]) -> str:
    """Apply non-overlapping (start, end, replacement) code-point spans."""
    out = []
    pos = 0
    for start, end, new in sorted(ops, key=lambda o: (o[0], o[1])):
        out.append(text[pos:start])
        out.append(new)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def stochastic_round(x: float, rng: random.Random) -> int:
    f = math.floor(x)
    return int(f) + (1 if rng.random() < x - f else 0)


def own_script_alphabet(doc: Doc, lang: str | None) -> str:
    """Alphabet for insert/substitute.  Explicit ``lang`` wins; otherwise a
    mostly non-Latin text draws from its own distinct letters, a Latin text
    from the guessed language's alphabet."""
    if lang is not None:
        return ALPHABETS[lang]
    letters = [u for u, ok in zip(doc.units, doc.is_letter) if ok and len(u) == 1]
    non_latin = [c for c in letters if not unicodedata.name(c, "").startswith("LATIN")]
    if letters and len(non_latin) * 2 > len(letters):
        own = sorted({c.lower() if len(c.lower()) == 1 else c for c in non_latin})
        if len(own) >= 2:
            return "".join(own)
    return ALPHABETS[guess_lang(doc.text)]

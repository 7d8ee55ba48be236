"""Seeded, Unicode-safe text noise for robustness experiments.

Pure Python, standard library only.  Every function here is deterministic
given its ``seed`` and never touches the global :mod:`random` state (each call
builds its own :class:`random.Random`).

Text model
----------
* Input is NFC-normalised first; ``Perturbation.original`` is that NFC form
  and all ``Edit.position`` values are code-point offsets into it.  The noisy
  text is NFC-normalised again before it is returned.
* Edits operate on *units*, a light approximation of extended grapheme
  clusters: a base code point together with any following combining marks
  (categories Mn/Mc/Me, which includes variation selectors), emoji skin-tone
  modifiers, ZWJ-joined continuations, regional-indicator pairs and CRLF.  A
  unit is never split, so a base letter never loses or swaps its accent by
  accident and no surrogate or half of a cluster is ever produced.
* Character kinds only touch *letter units* (first code point
  ``str.isalpha()``); whitespace, punctuation and emoji are never edited, and
  ``insert`` only inserts into gaps next to a letter.  The OCR kind also
  touches digits (``0``↔``O``, ``1``↔``l``).  ``delete`` never removes the
  last remaining unit of a whitespace-delimited token, so character kinds
  never change the number of tokens.
* Lone surrogates in the input are rejected with ``ValueError``: such a
  string is not valid Unicode and cannot be encoded as UTF-8.

The ``cer`` knob
----------------
``cer`` is the target character error rate, ``levenshtein(original, noisy) /
len(original)`` (code points of the NFC text, whitespace included).

* Character kinds draw an edit budget ``k = stochastic_round(cer * n)``
  (``floor`` plus one with probability equal to the fractional part, drawn
  from the seeded RNG) and then apply non-overlapping edits at random
  positions until their summed edit-distance cost reaches ``k``.  Most edits
  cost 1, so the number of edits is ``k``; a ``swap`` of two different letters
  costs 2 (plain Levenshtein has no transposition) and multi-character OCR
  confusions such as ``m``→``rn`` cost 2, so those kinds make about ``k / 2``
  edits.  When the next edit would overshoot the remaining budget ``r`` it is
  taken with probability ``r / cost`` (and the loop stops either way), which
  keeps the *expected* distance equal to ``cer * n``.
* Word kinds and ``lowercase``/``uppercase`` edit whole words.  Their target
  is ``T = cer * n`` edit-distance units: words are visited in random order
  and every edit that still fits (``cost <= T - spent``) is taken; finally
  the cheapest remaining edit is taken with probability ``remaining / cost``.
  The expected distance is therefore close to ``T`` and each text stays
  within one word's cost of it.  ``word_drop`` and ``word_repeat`` costs are
  exact (pure deletions/insertions), ``word_shuffle`` uses the local edit
  distance of the swapped span.
* If the text does not offer enough targets (e.g. few accented letters for
  ``strip_diacritics``, few capitals for ``lowercase``) the kind saturates:
  ``cer=1`` means "every possible edit of this kind".

Diacritic stripping removes all combining marks after NFD (é→e, č→c, ů→u,
ñ→n, Å→A) and also maps the stroke letters ł/Ł, ø/Ø, đ/Đ, ħ/Ħ to l/L, o/O,
d/D, h/H.  ``ß`` is left unchanged: it is a letter of its own, not a letter
plus a mark (use a transliteration step for ß→ss if that is wanted).  The
ligatures æ/œ are likewise kept.

Public API: :func:`perturb`, :func:`compose`, :func:`perturb_many`,
:data:`NOISE_KINDS`, :class:`Perturbation`, :class:`Edit`, plus the helpers
:func:`levenshtein`, :func:`character_error_rate`, :func:`strip_diacritics`,
:func:`keyboard_neighbours`, :func:`guess_lang`, :func:`derive_seed`,
:data:`ALPHABETS`, :data:`KEYBOARD_LAYOUTS`, :data:`OCR_CONFUSIONS`.
"""

from __future__ import annotations

import hashlib
import math
import operator
import random
import unicodedata
from dataclasses import asdict, dataclass
from typing import Callable, Iterable, Sequence

__all__ = [
    "ALPHABETS",
    "CHAR_KINDS",
    "Edit",
    "KEYBOARD_LAYOUTS",
    "LANGS",
    "NOISE_KINDS",
    "OCR_CONFUSIONS",
    "Perturbation",
    "WORD_KINDS",
    "character_error_rate",
    "compose",
    "derive_seed",
    "guess_lang",
    "keyboard_neighbours",
    "levenshtein",
    "perturb",
    "perturb_many",
    "strip_diacritics",
]

# --------------------------------------------------------------------------
# Kinds
# --------------------------------------------------------------------------

NOISE_KINDS: dict[str, str] = {
    "swap": "Transpose two adjacent letters (teh for the).",
    "insert": "Insert a random letter of the language's alphabet next to a letter.",
    "delete": "Delete a random letter.",
    "substitute": "Replace a letter by a random letter of the language's alphabet (case kept).",
    "random_char": "Random character noise: a mix of delete, substitute and insert, a third each.",
    "keyboard": "Fat-finger typo: replace a letter by a physically adjacent key "
    "(QWERTY en, QWERTZ de/cs, AZERTY fr), case kept.",
    "ocr": "OCR confusions such as rn<->m, l<->1<->I, O<->0, e<->c, cl<->d, u<->v.",
    "strip_diacritics": "Drop accents (\u00e9\u2192e, \u010d\u2192c, \u016f\u2192u; "
    "\u00df is kept); the ceiling is the share of accented letters.",
    "case_flip": "Flip the case of random letters.",
    "lowercase": "Lower-case whole words (cer=1: the whole text in lower case).",
    "uppercase": "Upper-case whole words (cer=1: the whole text in upper case).",
    "word_drop": "Drop whole words (at least one word is kept).",
    "word_shuffle": "Local word-order noise: swap adjacent words.",
    "word_repeat": "Repeat a word right after itself (a stutter).",
}

CHAR_KINDS: tuple[str, ...] = (
    "swap",
    "insert",
    "delete",
    "substitute",
    "random_char",
    "keyboard",
    "ocr",
    "strip_diacritics",
    "case_flip",
)
WORD_KINDS: tuple[str, ...] = (
    "lowercase",
    "uppercase",
    "word_drop",
    "word_shuffle",
    "word_repeat",
)
assert set(CHAR_KINDS) | set(WORD_KINDS) == set(NOISE_KINDS)

LANGS: tuple[str, ...] = ("en", "de", "fr", "cs")

_BASE_ALPHABET = "abcdefghijklmnopqrstuvwxyz"
ALPHABETS: dict[str, str] = {
    "en": _BASE_ALPHABET,
    "de": _BASE_ALPHABET + "\u00e4\u00f6\u00fc\u00df",  # äöüß
    # àâæçéèêëîïôœùûüÿ
    "fr": _BASE_ALPHABET
    + "\u00e0\u00e2\u00e6\u00e7\u00e9\u00e8\u00ea\u00eb"
    + "\u00ee\u00ef\u00f4\u0153\u00f9\u00fb\u00fc\u00ff",
    # áčďéěíňóřšťúůýž
    "cs": _BASE_ALPHABET
    + "\u00e1\u010d\u010f\u00e9\u011b\u00ed\u0148\u00f3\u0159\u0161\u0165\u00fa\u016f\u00fd\u017e",
}

# Unshifted characters of the four main rows (number row first) of each
# layout, ISO physical geometry.  Non-letters are kept so that the geometry is
# right; they are never produced as typos (only letters are).
KEYBOARD_LAYOUTS: dict[str, tuple[str, str, str, str]] = {
    "en": ("`1234567890-=", "qwertyuiop[]\\", "asdfghjkl;'", "zxcvbnm,./"),
    "de": (
        "^1234567890\u00df\u00b4",
        "qwertzuiop\u00fc+",
        "asdfghjkl\u00f6\u00e4#",
        "<yxcvbnm,.-",
    ),
    "cs": (
        ";+\u011b\u0161\u010d\u0159\u017e\u00fd\u00e1\u00ed\u00e9=\u00b4",
        "qwertzuiop\u00fa)",
        "asdfghjkl\u016f\u00a7\u00a8",
        "\\yxcvbnm,.-",
    ),
    "fr": (
        "\u00b2&\u00e9\"'(-\u00e8_\u00e7\u00e0)=",
        "azertyuiop^$",
        "qsdfghjklm\u00f9*",
        "<wxcvbn,;:!",
    ),
}
# x offset (in key widths) of the first key of each row: number row, top
# letter row (after Tab), home row (after Caps Lock), bottom row.  For the
# ISO layouts the bottom row starts with the extra key left of Z/Y/W.
_ROW_OFFSETS = {
    "en": (0.0, 1.5, 1.75, 2.25),
    "de": (0.0, 1.5, 1.75, 1.25),
    "cs": (0.0, 1.5, 1.75, 1.25),
    "fr": (0.0, 1.5, 1.75, 1.25),
}


def _build_neighbours(lang: str) -> dict[str, tuple[str, ...]]:
    rows = KEYBOARD_LAYOUTS[lang]
    offs = _ROW_OFFSETS[lang]
    pos: list[tuple[str, int, float]] = []
    for r, (row, off) in enumerate(zip(rows, offs)):
        for j, ch in enumerate(row):
            pos.append((ch, r, off + j))
    out: dict[str, tuple[str, ...]] = {}
    for ch, r, x in pos:
        if not ch.isalpha():
            continue
        nb = []
        for ch2, r2, x2 in pos:
            if ch2 == ch or not ch2.isalpha():
                continue
            if (r2 == r and abs(x2 - x) == 1.0) or (abs(r2 - r) == 1 and abs(x2 - x) < 1.0):
                nb.append(ch2)
        out[ch] = tuple(sorted(nb))
    return out


_NEIGHBOURS: dict[str, dict[str, tuple[str, ...]]] = {lg: _build_neighbours(lg) for lg in LANGS}


def keyboard_neighbours(char: str, lang: str = "en") -> tuple[str, ...]:
    """Letters on physically adjacent keys of ``char`` (case-insensitive) on
    the layout for ``lang`` (en QWERTY, de/cs QWERTZ, fr AZERTY).  Lower-case
    results; empty if the letter has no key of its own on that layout."""
    lang = _check_lang(lang)
    return _NEIGHBOURS[lang].get(char.lower(), ())


# (source, replacement) pairs; case-sensitive.  Multi-letter sources must be
# plain single-code-point letters/digits.
OCR_CONFUSIONS: tuple[tuple[str, str], ...] = (
    ("rn", "m"), ("m", "rn"),
    ("cl", "d"), ("d", "cl"),
    ("vv", "w"), ("w", "vv"),
    ("ri", "n"), ("li", "h"),
    ("l", "1"), ("1", "l"), ("l", "I"), ("I", "l"), ("1", "I"), ("I", "1"),
    ("i", "l"), ("l", "i"), ("i", "1"),
    ("O", "0"), ("0", "O"), ("o", "0"), ("o", "O"),
    ("e", "c"), ("c", "e"), ("u", "v"), ("v", "u"),
    ("n", "h"), ("h", "b"), ("b", "h"), ("a", "o"), ("o", "a"),
    ("t", "f"), ("f", "t"), ("g", "q"), ("q", "g"), ("g", "9"),
    ("S", "5"), ("5", "S"), ("s", "5"), ("B", "8"), ("8", "B"), ("Z", "2"), ("2", "Z"),
    ("E", "F"), ("F", "E"), ("C", "G"), ("G", "C"),
    ("\u00e9", "e"), ("\u00e8", "e"), ("\u00e1", "a"), ("\u00fc", "u"), ("\u00f6", "o"),
    ("\u00e4", "a"), ("\u010d", "c"), ("\u0159", "r"), ("\u016f", "u"), ("\u017e", "z"),
    ("\u0161", "s"), ("\u00ed", "i"), ("\u00fd", "y"), ("\u011b", "e"),
)
_OCR_BY_FIRST: dict[str, list[tuple[str, str]]] = {}
for _src, _dst in OCR_CONFUSIONS:
    _OCR_BY_FIRST.setdefault(_src[0], []).append((_src, _dst))

_STROKES = {
    "\u0142": "l", "\u0141": "L",  # ł Ł
    "\u00f8": "o", "\u00d8": "O",  # ø Ø
    "\u0111": "d", "\u0110": "D",  # đ Đ
    "\u0127": "h", "\u0126": "H",  # ħ Ħ
}

_LANG_MARKERS = {
    "cs": set("\u011b\u0161\u010d\u0159\u017e\u016f\u0165\u010f\u0148"  # ěščřžůťďň
              "\u011a\u0160\u010c\u0158\u017d\u016e\u0164\u010e\u0147"),
    "de": set("\u00e4\u00f6\u00fc\u00df\u00c4\u00d6\u00dc"),
    "fr": set("\u00e0\u00e2\u00e7\u00e8\u00ea\u00eb\u00ee\u00ef\u00f4\u0153\u00f9\u00fb\u00ff"
              "\u00e9\u00c0\u00c2\u00c7\u00c8\u00c9\u00ca\u00cb"
              "\u00ce\u00cf\u00d4\u0152\u00d9\u00db"),
}


# --------------------------------------------------------------------------
# Data classes
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Edit:
    """One edit.  ``position`` is a code-point offset into the text the edit
    was applied to (``Perturbation.original`` for :func:`perturb`; for
    :func:`compose`, the output of the previous step).  ``before`` is the
    replaced span (empty for insertions), ``after`` its replacement (empty
    for deletions).  ``kind`` is the concrete operation, e.g. ``random_char``
    records ``delete``/``substitute``/``insert``.  ``word_drop`` emits one
    edit per contiguous removed span (a dropped word with its whitespace;
    adjacent dropped words merge into one span)."""

    kind: str
    position: int
    before: str
    after: str


@dataclass(frozen=True)
class Perturbation:
    """Result of a perturbation.  ``measured_cer`` is
    ``levenshtein(original, text) / len(original)`` (0 for empty text)."""

    text: str
    original: str
    edits: list[Edit]
    measured_cer: float
    kind: str = ""
    target_cer: float = 0.0
    seed: int = 0
    lang: str | None = None

    @property
    def n_edits(self) -> int:
        return len(self.edits)

    @property
    def distance(self) -> int:
        """Character edit distance between ``original`` and ``text``."""
        return levenshtein(self.original, self.text)

    def to_dict(self) -> dict:
        return asdict(self)


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
    counts = {lg: 0 for lg in _LANG_MARKERS}
    for ch in text:
        for lg, marks in _LANG_MARKERS.items():
            if ch in marks:
                counts[lg] += 1
    if counts["cs"]:
        return "cs"
    if counts["de"] or counts["fr"]:
        return "de" if counts["de"] >= counts["fr"] else "fr"
    return "en"


def _strip_unit(u: str) -> str:
    d = unicodedata.normalize("NFD", u)
    base = "".join(_STROKES.get(c, c) for c in d if not unicodedata.category(c).startswith("M"))
    return unicodedata.normalize("NFC", base)


def strip_diacritics(text: str) -> str:
    """Remove every diacritic (see module docs: ß, æ, œ are kept, ł/ø/đ/ħ are
    mapped to their base letter).  Whitespace, digits, emoji are untouched."""
    text = unicodedata.normalize("NFC", text)
    units = _segment(text)
    return unicodedata.normalize(
        "NFC", "".join(_strip_unit(u) if u[:1].isalpha() else u for u in units)
    )


def _check_lang(lang: str | None) -> str:
    if not isinstance(lang, str):
        raise ValueError(f"lang must be one of {', '.join(LANGS)} (got {lang!r})")
    lg = lang.strip().lower().replace("_", "-").split("-")[0]
    if lg not in LANGS:
        raise ValueError(f"unsupported lang {lang!r}; valid languages: {', '.join(LANGS)}")
    return lg


def _check_kind(kind: object) -> str:
    if not isinstance(kind, str) or kind not in NOISE_KINDS:
        raise ValueError(f"unknown noise kind {kind!r}; valid kinds: {', '.join(NOISE_KINDS)}")
    return kind


def _check_cer(cer: object) -> float:
    try:
        c = float(cer)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"cer must be a number in [0, 1] (got {cer!r})") from None
    if isinstance(cer, bool) or not (0.0 <= c <= 1.0) or math.isnan(c):
        raise ValueError(f"cer must be in [0, 1] (got {cer!r})")
    return c


def _check_seed(seed: object) -> int:
    try:
        return operator.index(seed)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"seed must be an int (got {type(seed).__name__})") from None


def _check_text(text: object) -> str:
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


class _Doc:
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


def _apply_ops(text: str, ops: list[tuple[int, int, str]]) -> str:
    """Apply non-overlapping (start, end, replacement) code-point spans."""
    out = []
    pos = 0
    for start, end, new in sorted(ops, key=lambda o: (o[0], o[1])):
        out.append(text[pos:start])
        out.append(new)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _stochastic_round(x: float, rng: random.Random) -> int:
    f = math.floor(x)
    return int(f) + (1 if rng.random() < x - f else 0)


def _own_script_alphabet(doc: _Doc, lang: str | None) -> str:
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


# --------------------------------------------------------------------------
# Character kinds
# --------------------------------------------------------------------------


class _CharState:
    def __init__(self, doc: _Doc):
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
    nbs = _NEIGHBOURS[lang].get(u.lower())
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
    s = _strip_unit(u)
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


def _char_kind(
    doc: _Doc, kind: str, cer: float, rng: random.Random, lang: str | None
) -> _CharState:
    st = _CharState(doc)
    budget = _stochastic_round(cer * len(doc.text), rng)
    if budget <= 0:
        return st
    units = range(doc.n_units)
    gaps = range(doc.n_units + 1)
    layout_lang = lang if lang is not None else guess_lang(doc.text)
    if kind in ("insert", "substitute", "random_char"):
        alphabet = _own_script_alphabet(doc, lang)

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
            for src, dst in _OCR_BY_FIRST.get(u, ()):
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

    else:  # pragma: no cover - guarded by _check_kind
        raise AssertionError(kind)
    _run_budget(budget, rng, nxt)
    return st


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

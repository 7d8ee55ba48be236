"""The noise kinds, their tables (alphabets, keyboards, OCR confusions) and records.

Seeded, Unicode-safe text noise for robustness experiments.

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

from dataclasses import asdict, dataclass

from optical_core.perturb.cer import levenshtein

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


NEIGHBOURS: dict[str, dict[str, tuple[str, ...]]] = {lg: _build_neighbours(lg) for lg in LANGS}


def keyboard_neighbours(char: str, lang: str = "en") -> tuple[str, ...]:
    """Letters on physically adjacent keys of ``char`` (case-insensitive) on
    the layout for ``lang`` (en QWERTY, de/cs QWERTZ, fr AZERTY).  Lower-case
    results; empty if the letter has no key of its own on that layout."""
    lang = check_lang(lang)
    return NEIGHBOURS[lang].get(char.lower(), ())


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
OCR_BY_FIRST: dict[str, list[tuple[str, str]]] = {}
for _src, _dst in OCR_CONFUSIONS:
    OCR_BY_FIRST.setdefault(_src[0], []).append((_src, _dst))

STROKES = {
    "\u0142": "l", "\u0141": "L",  # ł Ł
    "\u00f8": "o", "\u00d8": "O",  # ø Ø
    "\u0111": "d", "\u0110": "D",  # đ Đ
    "\u0127": "h", "\u0126": "H",  # ħ Ħ
}

LANG_MARKERS = {
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

def check_lang(lang: str | None) -> str:
    if not isinstance(lang, str):
        raise ValueError(f"lang must be one of {', '.join(LANGS)} (got {lang!r})")
    lg = lang.strip().lower().replace("_", "-").split("-")[0]
    if lg not in LANGS:
        raise ValueError(f"unsupported lang {lang!r}; valid languages: {', '.join(LANGS)}")
    return lg


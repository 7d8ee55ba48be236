"""optical_core.perturb.noise: ``perturb``, ``compose`` and ``perturb_many`` (seeded
Unicode-safe text noise) on every kind: measured CER against the target, edits, determinism,
and hypothesis checks on awkward Unicode."""

from __future__ import annotations

import gzip
import math
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optical_core.perturb.cer import character_error_rate
from optical_core.perturb.kinds import (
    ALPHABETS,
    CHAR_KINDS,
    NOISE_KINDS,
    OCR_CONFUSIONS,
    WORD_KINDS,
    Edit,
    Perturbation,
    keyboard_neighbours,
)
from optical_core.perturb.noise import compose, perturb, perturb_levels, perturb_many
from optical_core.perturb.text import derive_seed, guess_lang, strip_diacritics

RAW = Path("/work/shared/data/multi30k/task1/raw")
LANGS = ("de", "cs", "fr")
N_SENT = 200
# Kinds whose edit supply is (practically) unlimited, so the mean measured CER
# must track the target.
CER_KINDS = (
    "swap", "insert", "delete", "substitute", "random_char", "keyboard", "ocr", "case_flip"
)

NFC = lambda s: unicodedata.normalize("NFC", s)  # noqa: E731


@pytest.fixture(scope="module")
def multi30k() -> dict[str, list[str]]:
    out = {}
    for lg in LANGS:
        p = RAW / f"val.{lg}.gz"
        if not p.exists():
            pytest.skip(f"Multi30k raw data not found at {p}")
        with gzip.open(p, "rt", encoding="utf-8") as f:
            lines = [ln.strip() for ln in f if ln.strip()]
        out[lg] = lines[:N_SENT]
    return out


def _reapply(original: str, edits: list[Edit]) -> str:
    """Rebuild the noisy text from the edit list (single-call edits are
    non-overlapping and refer to ``original``)."""
    out, pos = [], 0
    for e in sorted(edits, key=lambda e: (e.position, len(e.before))):
        assert original[e.position : e.position + len(e.before)] == e.before
        assert e.position >= pos
        out.append(original[pos : e.position])
        out.append(e.after)
        pos = e.position + len(e.before)
    out.append(original[pos:])
    return NFC("".join(out))


# -------------------------------------------------------------------------- validation


def test_invalid_arguments():
    with pytest.raises(ValueError, match="valid kinds:.*swap.*word_drop"):
        perturb("Ein Hund.", "typo", 0.1, 0)
    for bad in (-0.01, 1.01, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="cer"):
            perturb("Ein Hund.", "swap", bad, 0)
    with pytest.raises(ValueError, match="valid languages"):
        perturb("Ein Hund.", "keyboard", 0.1, 0, lang="xx")
    with pytest.raises(ValueError, match="valid kinds"):
        compose("Ein Hund.", [("swap", 0.1), ("nope", 0.1)], 0)
    with pytest.raises(ValueError, match="cer"):
        perturb_many(["a"], "swap", 2, 0)
    with pytest.raises(ValueError, match="surrogate"):
        perturb("ab\ud800", "swap", 0.1, 0)
    # lang codes are normalised
    assert perturb("Ein Hund", "keyboard", 0.5, 0, lang="de-DE").lang == "de"


@pytest.mark.parametrize("kind", list(NOISE_KINDS))
@pytest.mark.parametrize("text", ["", " ", " \t\n ", "\u3000"])
def test_empty_or_blank_text_unchanged(kind, text):
    p = perturb(text, kind, 0.5, 3)
    assert p.text == p.original == text
    assert p.edits == [] and p.measured_cer == 0.0


# ------------------------------------------------------------------------ CER accuracy


@pytest.mark.parametrize("kind", CER_KINDS)
def test_measured_cer_tracks_target(multi30k, kind):
    for lg, sents in multi30k.items():
        for cer in (0.05, 0.1, 0.2):
            ps = perturb_many(sents, kind, cer, seed=7, lang=lg)
            mean = sum(p.measured_cer for p in ps) / len(ps)
            assert abs(mean - cer) <= 0.2 * cer, (kind, lg, cer, mean)
            for p in ps[:20]:
                assert p.measured_cer == character_error_rate(p.original, p.text)


@pytest.mark.parametrize("kind", WORD_KINDS[2:] + ("uppercase",))
def test_word_kinds_cer_tracks_target(multi30k, kind):
    sents = multi30k["de"]
    for cer in (0.05, 0.1, 0.2):
        ps = perturb_many(sents, kind, cer, seed=11)
        mean = sum(p.measured_cer for p in ps) / len(ps)
        assert abs(mean - cer) <= 0.2 * cer, (kind, cer, mean)


def test_strip_diacritics_cer_and_saturation(multi30k):
    cs = multi30k["cs"]
    ps = perturb_many(cs, "strip_diacritics", 0.05, seed=1, lang="cs")
    mean = sum(p.measured_cer for p in ps) / len(ps)
    assert abs(mean - 0.05) <= 0.01
    # cer=1 strips everything there is, and no more
    for s in cs[:50]:
        p = perturb(s, "strip_diacritics", 1.0, 0)
        assert p.text == strip_diacritics(s)
        assert p.measured_cer <= 0.5


def test_edits_reconstruct_and_respect_whitespace(multi30k):
    for kind in NOISE_KINDS:
        for lg, sents in multi30k.items():
            for i, s in enumerate(sents[:25]):
                p = perturb(s, kind, 0.15, i, lang=lg)
                assert _reapply(p.original, p.edits) == p.text, (kind, s)
                if kind in CHAR_KINDS:
                    assert p.text.split().__len__() == s.split().__len__()
                    for e in p.edits:
                        assert not any(c.isspace() for c in e.before + e.after), (kind, e)


def test_stochastic_rounding_is_unbiased():
    text = "abcdefghij" * 5  # 50 chars, cer 0.05 -> 2.5 edits
    counts = [len(perturb(text, "substitute", 0.05, s).edits) for s in range(400)]
    assert set(counts) == {2, 3}
    assert abs(sum(counts) / len(counts) - 2.5) < 0.15


def test_random_char_mixes_three_operations(multi30k):
    ps = perturb_many(multi30k["de"], "random_char", 0.1, seed=5, lang="de")
    kinds = [e.kind for p in ps for e in p.edits]
    assert set(kinds) == {"delete", "substitute", "insert"}
    for op in ("delete", "substitute", "insert"):
        assert 0.25 < kinds.count(op) / len(kinds) < 0.42, op


# ------------------------------------------------------------------------- determinism


def test_seed_determinism(multi30k):
    long_text = " ".join(multi30k["cs"][:20])
    for kind in NOISE_KINDS:
        a = perturb(long_text, kind, 0.01, 123)
        b = perturb(long_text, kind, 0.01, 123)
        c = perturb(long_text, kind, 0.01, 124)
        assert a == b, kind
        assert a.text != c.text, kind


def test_global_random_state_untouched():
    import random

    random.seed(99)
    expected = random.random()
    random.seed(99)
    perturb("Ein Hund läuft über die Wiese.", "random_char", 0.3, 1)
    assert random.random() == expected


def test_perturb_many_is_order_independent(multi30k):
    texts = multi30k["fr"][:30]
    batch = perturb_many(texts, "keyboard", 0.1, seed=42)
    # item i depends only on (text_i, seed, i): same as a single call ...
    for i in (0, 7, 29):
        assert batch[i] == perturb(texts[i], "keyboard", 0.1, derive_seed(42, i))
    # ... and on no other item: change the rest of the batch
    other = ["Autre chose."] * 30
    other[7] = texts[7]
    assert perturb_many(other, "keyboard", 0.1, seed=42)[7] == batch[7]
    # computing the indices in reverse order gives the same items
    rev = [perturb(texts[i], "keyboard", 0.1, derive_seed(42, i)) for i in reversed(range(30))]
    assert rev[::-1] == batch
    assert derive_seed(42, 0) != derive_seed(42, 1) != derive_seed(43, 1)


# ------------------------------------------------------------------------------- kinds


def test_diacritic_stripping():
    assert perturb("Žluťoučký kůň", "strip_diacritics", 1.0, 0).text == "Zlutoucky kun"
    assert perturb("Ça été", "strip_diacritics", 1.0, 0).text == "Ca ete"
    assert strip_diacritics("Straße, Łódź, Øre, Ærø") == "Straße, Lodz, Ore, Æro"
    # decomposed input is handled the same way
    nfd = unicodedata.normalize("NFD", "Ça été")
    assert perturb(nfd, "strip_diacritics", 1, 0).text == "Ca ete"
    # partial: each edit removes exactly one accent
    p = perturb("Žluťoučký kůň úpěl ďábelské ódy", "strip_diacritics", 0.1, 4)
    assert 0 < len(p.edits) < 12
    for e in p.edits:
        assert e.after == strip_diacritics(e.before) != e.before


def test_keyboard_typos_are_neighbours(multi30k):
    for lg, sents in multi30k.items():
        for p in perturb_many(sents[:60], "keyboard", 0.2, seed=3, lang=lg):
            assert p.edits
            for e in p.edits:
                assert e.after.lower() in keyboard_neighbours(e.before, lg), (lg, e)
                assert e.before.isupper() == e.after.isupper(), e
    # default lang is guessed from the text (Czech letters -> QWERTZ cs)
    p = perturb("Žluťoučký kůň úpěl ďábelské ódy", "keyboard", 0.3, 1)
    assert p.lang is None and guess_lang(p.original) == "cs"
    assert all(e.after.lower() in keyboard_neighbours(e.before, "cs") for e in p.edits)


def test_ocr_substitute_insert_swap_case_details(multi30k):
    sents = multi30k["cs"][:60]
    table = set(OCR_CONFUSIONS)
    for p in perturb_many(sents, "ocr", 0.2, 1):
        assert all((e.before, e.after) in table for e in p.edits)
    assert perturb("modern", "ocr", 1.0, 0).text != "modern"
    alphabet = set(ALPHABETS["cs"])
    for p in perturb_many(sents, "substitute", 0.2, 1, lang="cs"):
        for e in p.edits:
            assert e.after.lower() in alphabet and e.after != e.before
            assert e.before.isupper() == e.after.isupper()
    for p in perturb_many(sents, "insert", 0.2, 1, lang="cs"):
        assert all(e.before == "" and e.after.lower() in alphabet for e in p.edits)
    for p in perturb_many(sents, "swap", 0.2, 1):
        assert all(e.after == e.before[::-1] and len(e.before) == 2 for e in p.edits)
    for p in perturb_many(sents, "case_flip", 0.2, 1):
        assert all(e.after == e.before.swapcase() for e in p.edits)
    # non-Latin text draws inserted letters from its own script
    p = perturb("Собака бежит по траве", "insert", 0.3, 2)
    assert all(unicodedata.name(e.after).startswith("CYRILLIC") for e in p.edits)


def test_casing_kinds():
    s = "Ein Hund läuft über die Wiese. Ça été"
    assert perturb(s, "lowercase", 1.0, 0).text == s.lower()
    assert perturb(s, "uppercase", 1.0, 0).text == s.upper()
    p = perturb(s, "uppercase", 0.2, 0)
    assert p.text != s and p.text.lower() == s.lower()


def test_word_kinds(multi30k):
    sents = multi30k["de"][:60]
    for s, p in zip(sents, perturb_many(sents, "word_drop", 0.2, 1)):
        orig, new = s.split(), p.text.split()
        assert 1 <= len(new) <= len(orig)
        assert len(p.edits) >= 1 or len(orig) <= 2
    one = perturb("Hund", "word_drop", 1.0, 0)
    assert one.text == "Hund"  # the last word is never dropped
    p = perturb("Ein Hund läuft über die Wiese.", "word_drop", 1.0, 0)
    assert len(p.text.split()) == 1 and p.text.endswith(".")
    for s, p in zip(sents, perturb_many(sents, "word_shuffle", 0.2, 1)):
        strip = lambda t: sorted(w.strip(".,;!?") for w in t.split())  # noqa: E731
        assert strip(p.text) == strip(s)
    for s, p in zip(sents, perturb_many(sents, "word_repeat", 0.2, 1)):
        assert len(p.text.split()) == len(s.split()) + len(p.edits)
        for e in p.edits:
            word = e.after[1:]
            assert p.original[e.position - len(word) : e.position] == word


def test_compose():
    s = "Žluťoučký kůň úpěl ďábelské ódy na zelené louce."
    steps = [("strip_diacritics", 1.0), ("keyboard", 0.1), ("word_drop", 0.1)]
    p = compose(s, steps, seed=9)
    assert p == compose(s, steps, seed=9)
    assert p.kind == "strip_diacritics+keyboard+word_drop"
    assert {e.kind for e in p.edits} == {"strip_diacritics", "keyboard", "word_drop"}
    assert p.original == s and p.lang == "cs"
    assert p.measured_cer == character_error_rate(s, p.text)
    # same as chaining perturb with derived seeds and the language guessed once
    cur = s
    for i, (k, c) in enumerate(steps):
        cur = perturb(cur, k, c, derive_seed(9, i), lang="cs").text
    assert cur == p.text
    assert all(
        e.after.lower() in keyboard_neighbours(e.before, "cs")
        for e in p.edits
        if e.kind == "keyboard"
    )
    assert compose(s, [], 1).text == s
    assert compose("", steps, 1).text == ""


# -------------------------------------------------------------------------- hypothesis


PIECES = [
    "é", "e\u0301", "č", "ß", "Ž", "ů", "ň", "Ç", "œ", "İ", "ŉ", "ǅ", "ﬁ", "Ω", "Σ",
    "\u0301", "x\u0308\u0301", "😀", "👨\u200d👩\u200d👧", "🇨🇿", "👍🏽",
    "❤\ufe0f",
    "한", "\u1100", "\u1161", "\u2000", "\u3000", " ", "\t", "\n", "\r\n", "rn", "cl",
    "l1I", "O0", "Hund", "kůň", "été", ".", ",", "'", "-", "\u200d",
]
texts = st.lists(
    st.one_of(
        st.sampled_from(PIECES),
        st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=6),
    ),
    max_size=12,
).map("".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=texts,
    kind=st.sampled_from(list(NOISE_KINDS)),
    cer=st.floats(0, 1),
    seed=st.integers(-(2**40), 2**40),
    lang=st.sampled_from([None, "en", "de", "fr", "cs"]),
)
def test_any_text_gives_valid_nfc(text, kind, cer, seed, lang):
    p = perturb(text, kind, cer, seed, lang)
    assert isinstance(p, Perturbation) and isinstance(p.text, str)
    p.text.encode("utf-8")
    assert unicodedata.is_normalized("NFC", p.text)
    assert p.original == NFC(text)
    assert 0.0 <= p.measured_cer and not math.isnan(p.measured_cer)
    assert p.measured_cer == character_error_rate(p.original, p.text)
    if kind in CHAR_KINDS:
        assert len(p.text.split()) == len(p.original.split())
        assert all(not any(c.isspace() for c in e.before + e.after) for e in p.edits)
    assert perturb(text, kind, cer, seed, lang) == p


@settings(max_examples=150, deadline=None)
@given(text=texts, kind=st.sampled_from(list(NOISE_KINDS)), seed=st.integers())
def test_zero_cer_is_identity(text, kind, seed):
    p = perturb(text, kind, 0.0, seed)
    assert p.text == p.original == NFC(text)
    assert p.edits == [] and p.measured_cer == 0.0


@settings(max_examples=100, deadline=None)
@given(
    items=st.lists(texts, max_size=5),
    kind=st.sampled_from(list(NOISE_KINDS)),
    cer=st.floats(0, 1),
    seed=st.integers(0, 2**32),
)
def test_perturb_many_matches_single_calls(items, kind, cer, seed):
    batch = perturb_many(items, kind, cer, seed)
    assert len(batch) == len(items)
    for i, t in enumerate(items):
        assert batch[i] == perturb(t, kind, cer, derive_seed(seed, i))


# ------------------------------------------------------------ nested levels


@settings(max_examples=150, deadline=None)
@given(
    text=st.text(alphabet="abcdeäöü ßxyz.,", min_size=1, max_size=60),
    kind=st.sampled_from(["keyboard", "random_char", "delete", "substitute", "insert",
                           "swap", "ocr", "word_drop", "word_repeat", "lowercase"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_nested_levels_keep_the_lower_levels_edits(text, kind, seed):
    """For one text and seed, the edits at CER 0.2 contain those at 0.1 (and at 0.05):
    noise that grows, where independent draws per level need not."""
    lo, mid, hi = perturb_levels(text, kind, [0.05, 0.1, 0.2], seed, "de")
    key = [(e.kind, e.position, e.before, e.after) for e in hi.edits]
    assert {(e.kind, e.position, e.before, e.after) for e in mid.edits} <= set(key)
    assert {(e.kind, e.position, e.before, e.after) for e in lo.edits} <= {
        (e.kind, e.position, e.before, e.after) for e in mid.edits}
    assert len(lo.edits) <= len(mid.edits) <= len(hi.edits)
    for p in (lo, mid, hi):  # each level's edits are the ones that made its text
        out, pos = [], 0
        for e in p.edits:
            out += [p.original[pos:e.position], e.after]
            pos = e.position + len(e.before)
        assert unicodedata.normalize("NFC", "".join(out) + p.original[pos:]) == p.text
    assert hi.text == perturb(text, kind, 0.2, seed, "de").text
    assert [p.target_cer for p in (lo, mid, hi)] == [0.05, 0.1, 0.2]
    again = perturb_levels(text, kind, [0.1], seed, "de")[0]  # its own top: the plain draw
    assert again.text == perturb(text, kind, 0.1, seed, "de").text


def test_nested_levels_grow_on_a_real_sentence():
    text = "Ein Mann mit einem orangefarbenen Hut starrt auf etwas."
    levels = perturb_levels(text, "keyboard", [0.0, 0.1, 0.2, 0.3], 7, "de")
    assert levels[0].text == text and levels[0].edits == []
    measured = [p.measured_cer for p in levels]
    assert measured == sorted(measured) and measured[-1] > 0.2
    assert abs(levels[1].measured_cer - 0.1) < 0.04  # the prefix is sized to the level

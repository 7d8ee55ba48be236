"""Tests of optical_core.demo_set: the packaged demo pairs, their scenes, text and gold."""

from __future__ import annotations

import unicodedata

from optical_core import demo_set as DS


def test_demo_sizes_and_langs() -> None:
    demo = DS.load_demo()
    assert {p.lang for p in demo} == set(DS.DEMO_LANGS)
    for lang in ("de", "fr", "cs"):
        pairs = DS.load_demo(lang)
        assert len(pairs) >= 20 and all(p.lang == lang for p in pairs)
        assert len({p.scene for p in pairs}) >= 20
        assert sum(p.has_gold for p in pairs) >= 3
    assert DS.load_demo("en-para") and sum(p.has_gold for p in DS.load_demo("en-para")) >= 3
    assert len({p.id for p in demo}) == len(demo)
    texts = {(p.lang, p.src, p.tgt) for p in demo}
    assert ("de", "A dog runs along the beach.", "Ein Hund läuft am Strand entlang.") in texts
    assert ("en-para", "A dog runs along the beach.", "A puppy is running on the sand.") in texts


def test_demo_scenes_are_parallel() -> None:
    by_scene: dict[str, set[str]] = {}
    for p in DS.load_demo():
        by_scene.setdefault(p.scene, set()).add(p.src)
    assert all(len(srcs) == 1 for srcs in by_scene.values())  # one English caption per scene
    english = [next(iter(s)) for s in by_scene.values()]
    assert len(set(english)) == len(english) >= 20


def test_demo_text_quality() -> None:
    for p in DS.load_demo():
        for s in (p.src, p.tgt):
            assert s == s.strip() and s == unicodedata.normalize("NFC", s)
            assert s[0].isupper() and s[-1] in ".!?"
    cs = " ".join(p.tgt for p in DS.load_demo("cs"))
    assert all(ch in cs for ch in "ěščřžýáíéůú")
    de = " ".join(p.tgt for p in DS.load_demo("de"))
    assert all(ch in de for ch in "äüß")


def test_demo_gold_within_range() -> None:
    n_gold = 0
    for p in DS.load_demo():
        if not p.has_gold:
            assert p.src_tokens is None and p.possible is None
            continue
        n_gold += 1
        assert p.src_tokens == DS.simple_tokenize(p.src)
        assert p.tgt_tokens == DS.simple_tokenize(p.tgt)
        assert p.sure and p.possible is not None and p.sure <= p.possible
        n, m = len(p.src_tokens), len(p.tgt_tokens)
        assert all(0 <= i < n and 0 <= j < m for i, j in p.possible)
        g = p.to_gold()
        assert g.sure == p.sure and g.src_tokens == p.src_tokens
    assert n_gold >= 12
    de01 = next(p for p in DS.load_demo("de") if p.tgt == "Ein Hund läuft am Strand entlang.")
    assert de01.tgt_tokens == ["Ein", "Hund", "läuft", "am", "Strand", "entlang", "."]
    assert (1, 1) in de01.sure and (3, 5) in de01.sure  # dog-Hund, along-entlang


def test_simple_tokenize() -> None:
    assert DS.simple_tokenize("A baby is in her mother's arms.") == [
        "A", "baby", "is", "in", "her", "mother's", "arms", "."
    ]
    assert DS.simple_tokenize("At the market, a vendor.") == [
        "At", "the", "market", ",", "a", "vendor", "."
    ]
    assert DS.simple_tokenize("au-dessus de l'étang!") == ["au-dessus", "de", "l'étang", "!"]

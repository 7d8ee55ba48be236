"""optical_core.perturb.kinds: the documented noise kinds and the keyboard neighbour tables
(the kinds in action, through ``perturb``, are in test_perturb_noise.py)."""

from __future__ import annotations

from optical_core.perturb.kinds import CHAR_KINDS, NOISE_KINDS, WORD_KINDS, keyboard_neighbours


def test_noise_kinds_documented():
    assert set(NOISE_KINDS) == set(CHAR_KINDS) | set(WORD_KINDS)
    assert "random_char" in NOISE_KINDS
    for k, desc in NOISE_KINDS.items():
        assert isinstance(desc, str) and desc and "\n" not in desc, k


def test_keyboard_neighbour_tables():
    assert set(keyboard_neighbours("f", "en")) == set("dgrtcv")
    assert set(keyboard_neighbours("q", "en")) == set("wa")
    assert set(keyboard_neighbours("z", "de")) == set("tugh")
    assert set(keyboard_neighbours("y", "de")) == set("asx")
    assert "ü" in keyboard_neighbours("p", "de")
    assert set(keyboard_neighbours("a", "fr")) == set("zqé")
    assert set(keyboard_neighbours("m", "fr")) == set("lùp^") - {"^"}
    assert set(keyboard_neighbours("ř", "cs")) == set("čžrt")
    assert keyboard_neighbours("ö", "fr") == ()

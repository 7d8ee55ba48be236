"""optical_core.perturb.cer: Levenshtein distance and the character error rate."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from optical_core.perturb.cer import _levenshtein_dp, character_error_rate, levenshtein


def test_levenshtein_known_values():
    assert levenshtein("", "") == 0
    assert levenshtein("abc", "") == 3
    assert levenshtein("", "abc") == 3
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("flaw", "lawn") == 2
    assert levenshtein("ab", "ba") == 2  # no transposition op
    assert levenshtein("kůň", "kun") == 2
    assert levenshtein("a" * 100 + "b", "a" * 100 + "c") == 1
    assert character_error_rate("", "x") == 0.0
    assert character_error_rate("abcd", "abce") == 0.25


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="abcč é", max_size=90), st.text(alphabet="abcč é", max_size=90))
def test_levenshtein_matches_dp(a, b):
    assert levenshtein(a, b) == _levenshtein_dp(a, b) == levenshtein(b, a)

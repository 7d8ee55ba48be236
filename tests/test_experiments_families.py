"""Held-out noise families: which evaluation kinds a method trained on, and the in-family
and held-out retention of the grid's pooled and robustness tables, against hand
computations over hand-made per-query scores."""

from __future__ import annotations

import numpy as np
import pytest

from optical_core.experiments.cells import GridModel
from optical_core.experiments.config import GridConfig
from optical_core.experiments.families import (
    NO_NOISE,
    method_families,
    split_families,
    training_families,
)
from optical_core.experiments.stats import grid_tables

KINDS = ["random_char", "keyboard", "ocr"]
SEEDS = [42, 43]
NQ = 40


def _grid(trained_on: str = "random_char") -> GridConfig:
    return GridConfig(
        name="fam", methods=["mse", "ot@aug"], langs=["cs"], pairs=[100], seeds=SEEDS,
        noise_kinds=KINDS, cer_levels=[0.0, 0.1, 0.2], n_boot=300, gold=False,
        variants={"aug": {"noise_p": 0.5, "noise_max_cer": 0.2, "noise_kind": trained_on}},
    ).validate()


def _evals(rng: np.random.Generator) -> tuple[list[dict], dict]:
    """Cells of both methods on hand-made per-query MRR@10: each (method, seed, kind, cer)
    its own uniform draw, so every kind keeps a different share."""
    evals, scores = [], {}
    for method in ("mse", "ot@aug"):
        for seed in SEEDS:
            mdl = GridModel(method, "cs", 100, seed, doc_encoder="teacher")
            for kind, cer in [("clean", 0.0), *((k, c) for k in KINDS for c in (0.1, 0.2))]:
                top = 1.0 - cer * (1 + KINDS.index(kind)) if kind != "clean" else 1.0
                v = rng.uniform(0.0, top, NQ)
                scores[(method, seed, kind, cer)] = v
                evals.append({"model": mdl, "lang": "cs", "split": "test_2016_flickr",
                              "kind": kind, "cer": cer, "scorer": "dense",
                              "meta": {"measured_cer": cer, "n_queries": NQ},
                              "per_query": {"mrr@10": v, "recall@1": v, "recall@10": v}})
    return evals, scores


def _hand_retention(scores: dict, method: str, kinds: list[str], cer: float) -> float:
    """mean over ``kinds`` of (mean over seeds and queries of the noisy MRR@10) ÷ (the same
    of the clean MRR@10)."""
    clean = np.mean([scores[(method, s, "clean", 0.0)] for s in SEEDS])
    return float(np.mean([np.mean([scores[(method, s, k, cer)] for s in SEEDS]) / clean
                          for k in kinds]))


def test_training_families_are_the_noise_kinds_of_an_augmented_run():
    assert training_families({"noise_p": 0.5, "noise_kind": "random_char"}) == ("random_char",)
    assert training_families({"noise_p": 0.5, "noise_kind": "typo, ocr"}) == ("keyboard", "ocr")
    assert training_families({"noise_kind": "keyboard"}) == ()  # noise_p 0: clean training
    assert training_families({"subword_dropout": 0.1}) == ()
    g = _grid()
    assert method_families(g, "ot@aug") == ("random_char",)
    assert method_families(g, "mse") == () and method_families(g, "none") == ()


def test_split_families_holds_out_what_the_method_never_saw():
    assert split_families(("random_char",), KINDS) == (["random_char"], ["keyboard", "ocr"])
    assert split_families((), KINDS) == ([], KINDS)
    assert split_families(("keyboard",), ["typo", "ocr"]) == (["typo"], ["ocr"])


def test_heldout_retention_is_the_mean_over_the_kinds_never_trained_on():
    g = _grid()
    evals, scores = _evals(np.random.default_rng(0))
    pooled = grid_tables(g, evals)["pooled"]
    for cer in (0.1, 0.2):
        rows = {(r["method"], r["kind"]): r for r in pooled if r["cer"] == cer}
        ot = rows[("ot@aug", "keyboard")]
        assert ot["trained_on"] == "random_char" and ot["heldout_kinds"] == "keyboard;ocr"
        assert ot["held_out"] and not rows[("ot@aug", "random_char")]["held_out"]
        assert ot["heldout_retention"] == pytest.approx(
            _hand_retention(scores, "ot@aug", ["keyboard", "ocr"], cer))
        # the mean of the per-kind retentions of the same table
        assert ot["heldout_retention"] == pytest.approx(np.mean(
            [rows[("ot@aug", k)]["retention"] for k in ("keyboard", "ocr")]))
        assert ot["infamily_retention"] == pytest.approx(rows[("ot@aug", "random_char")]
                                                         ["retention"])
        # one kind in the family: exactly that kind's retention and interval
        assert (ot["infamily_retention_low"], ot["infamily_retention_high"]) == pytest.approx(
            (rows[("ot@aug", "random_char")]["retention_low"],
             rows[("ot@aug", "random_char")]["retention_high"]))
        assert ot["heldout_retention_low"] < ot["heldout_retention"] \
            < ot["heldout_retention_high"]
        mse = rows[("mse", "random_char")]
        assert mse["trained_on"] == NO_NOISE and mse["held_out"]
        assert mse["heldout_kinds"] == ";".join(KINDS) and mse["infamily_kinds"] == ""
        assert "infamily_retention" not in mse
        assert mse["heldout_retention"] == pytest.approx(_hand_retention(scores, "mse", KINDS,
                                                                         cer))
    clean = [r for r in pooled if r["cer"] == 0]
    assert clean and all("held_out" not in r for r in clean)


def test_robustness_rows_carry_the_top_level_family_retention():
    g = _grid()
    evals, scores = _evals(np.random.default_rng(1))
    tables = grid_tables(g, evals)
    rob = [r for r in tables["robustness"] if r["method"] == "ot@aug"]
    assert len(rob) == len(SEEDS) * len(KINDS)
    for r in rob:
        assert r["retention_cer"] == 0.2 and r["trained_on"] == "random_char"
        assert r["held_out"] == (r["kind"] != "random_char")
        assert r["heldout_retention"] == pytest.approx(
            _hand_retention(scores, "ot@aug", ["keyboard", "ocr"], 0.2))


def test_a_missing_seed_of_a_held_out_kind_leaves_the_mean_out():
    g = _grid()
    evals, _ = _evals(np.random.default_rng(2))
    evals = [e for e in evals if not (e["kind"] == "ocr" and e["model"].seed == 43)]
    pooled = grid_tables(g, evals)["pooled"]
    ot = [r for r in pooled if r["method"] == "ot@aug" and r["kind"] == "keyboard"]
    assert ot and all("heldout_retention" not in r for r in ot)
    assert all("infamily_retention" in r for r in ot)


def _folder(tmp_path, trained_on: str = "random_char"):
    """A results folder of the hand-made cells: the grid's CSVs, as the runner writes them."""
    from optical_core.experiments.config import write_csv
    from optical_core.experiments.results import load_results

    evals, scores = _evals(np.random.default_rng(3))
    for m in evals:  # the runner's cells name their run
        m["model"].run = f"run-{m['model'].method}-{m['model'].seed}"
    out = tmp_path / "fam"
    out.mkdir()
    for name, rows in grid_tables(_grid(trained_on), evals).items():
        write_csv(out / f"{name}.csv", rows)
    return load_results(out), scores


def test_the_report_headline_and_section_carry_the_held_out_retention(tmp_path):
    from optical_core.experiments.formatting import format_interval, pct
    from optical_core.experiments.heldout import heldout_headline, heldout_table
    from optical_core.experiments.report import report_markdown

    res, scores = _folder(tmp_path)
    row = res.pooled[(res.pooled["method"] == "ot@aug") & (res.pooled["cer"] == 0.2)
                     & (res.pooled["kind"] == "keyboard")].iloc[0]
    assert row["heldout_retention"] == pytest.approx(
        _hand_retention(scores, "ot@aug", ["keyboard", "ocr"], 0.2))
    held = format_interval(row["heldout_retention"], row["heldout_retention_low"],
                           row["heldout_retention_high"])
    said = {n: f"{pct(row[f'{n}_retention'])} % [{pct(row[f'{n}_retention_low'])}, "
               f"{pct(row[f'{n}_retention_high'])}]" for n in ("heldout", "infamily")}
    line = heldout_headline(res)
    assert line.startswith("**Held-out noise**") and "20 % CER" in line
    assert (f"`ot@aug` (cs, trained on random_char) keeps {said['infamily']} on its training "
            f"noise (random_char) and {said['heldout']} on noise it never saw (keyboard, ocr)"
            ) in line
    assert "`mse` (cs, trained on clean text) keeps" in line
    table = heldout_table(res, "test_2016_flickr")
    ot = table[table["method"] == "ot@aug"].iloc[0]
    assert ot["held out, CER 20 %"] == held and ot["held out"] == "keyboard, ocr"
    md = report_markdown(res)
    assert md.index(line) < md.index("## Setting") and "## Held-out noise" in md


def test_the_answer_says_what_a_method_keeps_on_noise_it_never_trained_on(tmp_path):
    from optical_core.experiments.answer import comparison_sentence, comparisons
    from optical_core.experiments.formatting import pct as answer_pct

    res, _ = _folder(tmp_path)
    p = res.pooled[(res.pooled["kind"].isin(["clean", "random_char"]))]
    found = [c for c in comparisons(p, 0.2) if c.method == "ot@aug"]
    assert found
    text = comparison_sentence(found[0], "random_char")
    row = found[0].noisy
    assert "on noise it never trained on" in text
    assert f"{answer_pct(row['heldout_retention'])} %" in text and "(keyboard, ocr)" in text


def test_a_method_trained_on_every_family_has_none_held_out(tmp_path):
    from optical_core.experiments.heldout import heldout_headline

    res, _ = _folder(tmp_path, ",".join(KINDS))
    ot = res.pooled[(res.pooled["method"] == "ot@aug") & (res.pooled["cer"] > 0)]
    assert (ot["heldout_kinds"] == "").all() and ot["heldout_retention"].isna().all()
    assert not ot["held_out"].any() and ot["infamily_retention"].notna().all()
    line = heldout_headline(res)
    assert ("(random_char, keyboard, ocr); it has no held-out family in this grid") in line

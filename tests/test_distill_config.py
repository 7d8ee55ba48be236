"""optical_core.distill.config: the robustness options default to off, so old runs and
the grid's run names and reuse stay as they were; the robust recipe and the merge of a
recipe with explicit values."""

from __future__ import annotations

from dataclasses import fields

import pytest

from optical_core.distill.config import (
    RECIPES,
    ROBUST_FIELDS,
    DistillConfig,
    DistillError,
    cooc_recipe,
    recipe_options,
    robust_recipe,
)


def test_robustness_options_default_to_off():
    d = DistillConfig()
    assert set(ROBUST_FIELDS) <= {f.name for f in fields(DistillConfig)}
    assert not d.augments() and not d.needs_clean()
    assert d.noise_p == 0 and d.subword_dropout == 0 and d.cooc_weight == 0
    assert d.consistency_weight == 0 and d.self_teach_weight == 0 and d.kd_input == "noisy"


def test_old_runs_keep_their_names_and_reuse():
    """A stored config from before these options reads as the same run (the grid's
    ``same_config``) with the same name (``run_hash``)."""
    from optical_core.experiments.config import run_hash, same_config

    today = DistillConfig(lang="cs", loss="ot+mse", lr=1e-3).to_dict()
    old = {k: v for k, v in today.items() if k not in ROBUST_FIELDS}
    assert DistillConfig.from_dict(old) == DistillConfig.from_dict(today)
    assert same_config(old, today) and run_hash(old) == run_hash(today)
    robust = DistillConfig.from_options(**{**today, **robust_recipe()}).validate().to_dict()
    assert not same_config(old, robust) and run_hash(old) != run_hash(robust)


def test_the_recipes_are_the_cooccurrence_cost_and_it_with_augmentation_for_the_ot_losses():
    assert RECIPES == {"cooc": cooc_recipe, "robust": robust_recipe}
    for name, augments in (("cooc", False), ("robust", True)):
        values = RECIPES[name]()
        assert set(values) <= set(ROBUST_FIELDS)
        for loss in ("ot", "ot+mse"):
            cfg = DistillConfig(loss=loss, **values).validate()
            assert cfg.cooc_weight > 0 and bool(cfg.augments()) == augments
        # the co-occurrence cost shapes the OT plan: MSE-KD has none, and says so
        with pytest.raises(DistillError, match="co-occurrence cost shapes the OT plan"):
            DistillConfig(loss="mse", **values).validate()
    assert robust_recipe() == {**cooc_recipe(), "noise_p": 0.5, "noise_max_cer": 0.2,
                               "noise_kind": "random_char"}


def test_recipe_options_lays_explicit_values_over_the_recipe():
    assert recipe_options(None, {}) == {}
    assert recipe_options(None, {"noise_p": 0.3}) == {"noise_p": 0.3}
    assert recipe_options("robust", {}) == robust_recipe()
    assert recipe_options("robust", {"noise_p": 0.3, "kd_input": "clean"}) == \
        {**robust_recipe(), "noise_p": 0.3, "kd_input": "clean"}
    explicit = {"noise_p": 0.3}
    recipe_options("robust", explicit)
    assert explicit == {"noise_p": 0.3}  # the caller's values are not changed
    with pytest.raises(DistillError, match="unknown recipe 'smooth'; choose one of"):
        recipe_options("smooth", {})

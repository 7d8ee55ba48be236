"""optical_core.distill.config: the robustness options default to off, so old runs and
the grid's run names and reuse stay as they were; the robust recipe and the merge of a
recipe with explicit values."""

from __future__ import annotations

from dataclasses import fields

import pytest

from optical_core.distill.config import DistillConfig, DistillError
from optical_core.distill.recipes import (
    RECIPES,
    ROBUST_FIELDS,
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


def test_self_teaching_place_and_temperature_default_to_the_first_form():
    """At their defaults the two options name the same run as before they existed (run
    names and reuse of shipped runs unchanged) and give the loss the first form's term."""
    from optical_core.distill.config import SELF_TEACH_ON, option_named
    from optical_core.distill.models import loss_config
    from optical_core.experiments.config import run_hash, same_config

    d = DistillConfig()
    assert (d.self_teach_on, d.self_teach_temperature) == ("pooled", 0.05)
    assert SELF_TEACH_ON == ("pooled", "tokens", "scores")
    new = ("self_teach_on", "self_teach_temperature")
    robust = {**robust_recipe(), "self_teach_weight": 1.0}
    today = DistillConfig.from_options(lang="cs", **robust).validate().to_dict()
    old = {k: v for k, v in today.items() if k not in new}
    assert same_config(old, today) and run_hash(old) == run_hash(today)
    moved = DistillConfig.from_options(**{**today, "self_teach_on": "tokens"}).validate()
    assert run_hash(moved.to_dict()) != run_hash(today)
    terms = loss_config(moved)
    assert (terms.self_teach_on, terms.self_teach_temperature) == ("tokens", 0.05)
    # the CLI's flag and the page's label come from the option's metadata
    assert option_named("self_teach_on").flag == "--self-teach-on"
    assert option_named("self_teach_on").choices == SELF_TEACH_ON
    assert option_named("self_teach_temperature").label == "Self-Teaching temperature"


@pytest.mark.parametrize(("values", "message"), [
    ({"self_teach_on": "cls"}, "unknown self_teach_on 'cls'; choose one of"),
    ({"self_teach_temperature": 0.0}, "self_teach_temperature must be > 0 and finite, got 0.0"),
    ({"self_teach_temperature": -1.0}, "self_teach_temperature must be > 0 and finite"),
    ({"self_teach_temperature": float("nan")}, "self_teach_temperature must be > 0 and finite"),
    ({"self_teach_temperature": float("inf")}, "self_teach_temperature must be > 0 and finite"),
    ({"self_teach_temperature": "hot"}, "self_teach_temperature must be a number"),
])
def test_bad_self_teaching_options_get_one_line_messages(values, message):
    cfg = {**robust_recipe(), "self_teach_weight": 0.1, **values}
    with pytest.raises(DistillError, match=message) as err:
        DistillConfig.from_options(**cfg).validate()
    assert "\n" not in str(err.value)


def test_self_teaching_place_without_its_weight_is_refused():
    for values in ({"self_teach_on": "scores"}, {"self_teach_temperature": 0.1}):
        with pytest.raises(DistillError, match="give self_teach_weight > 0"):
            DistillConfig.from_options(**robust_recipe(), **values).validate()

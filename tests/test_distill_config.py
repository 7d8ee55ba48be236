"""optical_core.distill.config: the robustness options default to off, so old runs and
the grid's run names and reuse stay as they were; the robust recipe."""

from __future__ import annotations

from dataclasses import fields

from optical_core.distill.config import RECIPES, DistillConfig, robust_recipe

#: The options of issue 15 (noise, WordPiece dropout, consistency, Self-Teaching,
#: co-occurrence cost).
ROBUST = ("noise_p", "noise_max_cer", "noise_kind", "subword_dropout", "kd_input",
          "consistency_weight", "self_teach_weight", "cooc_weight", "cooc_measure")


def test_robustness_options_default_to_off():
    d = DistillConfig()
    assert set(ROBUST) <= {f.name for f in fields(DistillConfig)}
    assert not d.augments() and not d.needs_clean()
    assert d.noise_p == 0 and d.subword_dropout == 0 and d.cooc_weight == 0
    assert d.consistency_weight == 0 and d.self_teach_weight == 0 and d.kd_input == "noisy"


def test_old_runs_keep_their_names_and_reuse():
    """A stored config from before these options reads as the same run (the grid's
    ``same_config``) with the same name (``run_hash``)."""
    from optical_core.experiments.config import run_hash, same_config

    today = DistillConfig(lang="cs", loss="ot+mse", lr=1e-3).to_dict()
    old = {k: v for k, v in today.items() if k not in ROBUST}
    assert DistillConfig.from_dict(old) == DistillConfig.from_dict(today)
    assert same_config(old, today) and run_hash(old) == run_hash(today)
    robust = DistillConfig(**{**today, **robust_recipe()}).validate().to_dict()
    assert not same_config(old, robust) and run_hash(old) != run_hash(robust)


def test_robust_recipe_is_valid_for_every_loss():
    assert RECIPES["robust"] is robust_recipe
    values = robust_recipe()
    assert set(values) <= set(ROBUST)
    for loss in ("ot", "mse", "ot+mse"):
        cfg = DistillConfig(loss=loss, **values).validate()
        assert cfg.augments() and cfg.needs_clean()

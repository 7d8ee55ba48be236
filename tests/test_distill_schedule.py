"""The training recipe of optical_core.distill: lr schedule, warm-up, clipping, weight decay,
precision and device as DistillConfig fields, what older run.json files mean, and that
the trainer really follows them (a tiny random BERT on the demo pairs)."""

from __future__ import annotations

import pytest
import torch
from _helpers import distill_cfg

from optical_core.distill.config import LEGACY_DEFAULTS, DistillConfig, DistillError
from optical_core.distill.train import (
    cpu_has_fast_bf16,
    resolve_device,
    run_distillation,
    use_bf16,
)
from optical_core.experiments.config import same_config


@pytest.mark.parametrize("field, value, message", [
    ("lr_schedule", "step", "unknown lr schedule"),
    ("device", "tpu", "unknown device"),
    ("precision", "fp8", "unknown precision"),
    ("max_grad_norm", -1.0, "max_grad_norm must be >= 0"),
    ("max_grad_norm", float("nan"), "max_grad_norm must be >= 0"),
    ("weight_decay", 1.5, "weight_decay must lie in"),
])
def test_bad_recipe_values_are_refused(field, value, message):
    with pytest.raises(DistillError, match=message):
        DistillConfig.from_options(**{field: value}).validate()


def test_an_older_run_reads_as_what_it_was_trained_with():
    old = DistillConfig().to_dict()
    for key in LEGACY_DEFAULTS:
        old.pop(key)
    cfg = DistillConfig.from_dict(old)
    assert (cfg.lr_schedule, cfg.max_grad_norm, cfg.group_by_length) == ("linear", 1.0, False)
    # ...so the grid does not mistake it for a run of today's recipe
    assert not same_config(old, DistillConfig().to_dict())
    assert same_config(old, DistillConfig.from_options(**LEGACY_DEFAULTS).to_dict())
    # a stored value always wins over the legacy one
    assert DistillConfig.from_dict({**old, "lr_schedule": "cosine"}).lr_schedule == "cosine"


def test_device_and_precision_resolve_on_this_machine():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(DistillError, match="sees no GPU"):
            resolve_device("cuda")
    assert use_bf16("auto", "cpu") is cpu_has_fast_bf16()
    assert use_bf16("bf16", "cpu") is True and use_bf16("fp32", "cuda") is False


def learning_rates(tiny, tmp_path, **kw) -> list[float]:
    seen: list[float] = []
    run_distillation(distill_cfg(tiny, max_steps=6, evaluate=False, probe_every=0, **kw),
                     tmp_path / "run", progress=lambda ev: ev.get("kind") == "loss"
                     and seen.append(float(ev["lr"])))
    return seen


def test_the_trainer_follows_the_schedule(tiny, tmp_path):
    constant = learning_rates(tiny, tmp_path / "c", lr_schedule="constant", lr=1e-3)
    assert constant == pytest.approx([1e-3] * 6)
    linear = learning_rates(tiny, tmp_path / "l", lr_schedule="linear", lr=1e-3)
    assert linear[0] == pytest.approx(1e-3) and all(a > b for a, b in zip(linear, linear[1:]))
    warm = learning_rates(tiny, tmp_path / "w", lr_schedule="constant", lr=1e-3,
                          warmup_ratio=0.5)
    assert warm[0] < warm[1] < warm[-1] == pytest.approx(1e-3)


def test_bf16_autocast_trains_on_the_cpu(tiny, tmp_path):
    res = run_distillation(distill_cfg(tiny, max_steps=2, evaluate=False, probe_every=1,
                                       precision="bf16"), tmp_path / "run")
    assert res.status == "finished" and all(torch.isfinite(torch.tensor(line[1]))
                                            for line in res.record["losses"])


@pytest.mark.parametrize("lang", ["de", "fr", "cs"])
def test_the_quick_student_is_a_short_ot_run_with_the_cooc_recipe(lang):
    from optical_core.distill.recipes import QUICK_PAIRS, cooc_recipe, quick_student

    cfg = quick_student(lang)
    assert (cfg.lang, cfg.loss, cfg.pairs, cfg.epochs) == (lang, "ot", QUICK_PAIRS, 1.0)
    assert cooc_recipe() and all(getattr(cfg, k) == v for k, v in cooc_recipe().items())
    assert cfg.cooc_weight > 0 and cfg.noise_p == 0  # clean accuracy: no augmentation
    defaults = DistillConfig()
    assert (cfg.lr, cfg.lr_schedule, cfg.warmup_ratio) == (defaults.lr, defaults.lr_schedule,
                                                           defaults.warmup_ratio)
    with pytest.raises(DistillError, match="unknown language"):
        quick_student("xx")

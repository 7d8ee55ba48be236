"""optical_core.experiments.stats: robustness summaries of a noise curve, paired tests and
the seeds × queries bootstrap, on hand cases and random ones."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optical_core.experiments.stats import paired_test, robustness


def test_robustness_of_a_flat_curve_is_zero_slope_and_the_level():
    v = np.full((50, 3), 0.7)
    r = robustness([0.0, 0.1, 0.2], v, n_boot=200)
    assert r["slope"] == pytest.approx(0.0, abs=1e-12)
    assert r["auc"] == pytest.approx(0.7)
    assert r["auc_low"] == pytest.approx(0.7) and r["auc_high"] == pytest.approx(0.7)


def test_robustness_slope_and_area_of_a_linear_curve():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.5, 1.0, size=(200, 1))
    levels = np.array([0.0, 0.05, 0.1, 0.2])
    v = base - 2.0 * levels  # every query loses 2 MRR per unit CER
    r = robustness(levels, v, n_boot=300)
    assert r["slope"] == pytest.approx(-2.0)
    # trapezoid mean over [0, 0.2] of a line = its value at the middle, 0.1
    assert r["auc"] == pytest.approx(base.mean() - 0.2)
    assert r["slope_low"] <= r["slope"] <= r["slope_high"]
    assert r["auc_low"] < r["auc"] < r["auc_high"]


def test_robustness_rejects_a_single_level():
    with pytest.raises(ValueError):
        robustness([0.0], np.ones((5, 1)))


@pytest.mark.parametrize("test", ["student", "fisher"])
def test_paired_test_detects_a_shift_and_not_identity(test):
    rng = np.random.default_rng(1)
    a = rng.uniform(0, 1, 300)
    assert paired_test(a, a.copy(), test) == 1.0
    assert paired_test(a, a + 0.05 + rng.normal(0, 0.02, 300), test) < 0.01
    noise = rng.normal(0, 0.2, 300)
    assert paired_test(a, a + noise - noise.mean(), test) > 0.5


# ------------------------------------------------------------------ seeds × queries bootstrap


def test_seed_query_bootstrap_with_one_seed_is_the_per_query_bootstrap():
    from optical_core.experiments.stats import seed_query_bootstrap
    from optical_core.retrieval.metrics import bootstrap_ci

    v = np.random.default_rng(1).random(400)
    b = seed_query_bootstrap(v[None, :], n_boot=2000, seed=0)
    lo, hi = bootstrap_ci(v, n_boot=2000, seed=0)
    assert b["mean"] == pytest.approx(v.mean())
    assert b["low"] == pytest.approx(lo, abs=0.01) and b["high"] == pytest.approx(hi, abs=0.01)
    assert math.isnan(b["p"])


def test_seed_query_bootstrap_widens_with_the_spread_between_seeds():
    from optical_core.experiments.stats import seed_query_bootstrap

    q = np.random.default_rng(2).random(300)
    same = np.stack([q, q, q])
    spread = np.stack([q - 0.1, q, q + 0.1])
    a = seed_query_bootstrap(same, n_boot=1000)
    b = seed_query_bootstrap(spread, n_boot=1000)
    assert a["mean"] == pytest.approx(b["mean"])
    assert b["high"] - b["low"] > 2 * (a["high"] - a["low"])


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.integers(5, 60), st.integers(0, 10_000))
def test_seed_query_bootstrap_interval_holds_the_mean(n_seeds, n_queries, seed):
    from optical_core.experiments.stats import seed_query_bootstrap

    v = np.random.default_rng(seed).random((n_seeds, n_queries))
    b = seed_query_bootstrap(v, n_boot=300, seed=seed)
    assert v.min() - 1e-12 <= b["low"] <= b["high"] <= v.max() + 1e-12
    assert b["mean"] == pytest.approx(v.mean())


def test_seed_query_bootstrap_ratio_and_difference():
    from optical_core.experiments.stats import seed_query_bootstrap

    rng = np.random.default_rng(3)
    clean = rng.random((3, 500))
    r = seed_query_bootstrap(clean / 2, reference=clean, ratio=True)
    assert r["mean"] == pytest.approx(0.5) and r["low"] == pytest.approx(0.5)  # same draws
    assert r["high"] == pytest.approx(0.5)
    same = seed_query_bootstrap(clean, reference=clean)
    assert same["mean"] == pytest.approx(0.0) and same["p"] > 0.2
    better = seed_query_bootstrap(clean + 0.05, reference=clean)
    assert better["low"] > 0 and better["p"] < 0.01
    with pytest.raises(ValueError, match="same queries"):
        seed_query_bootstrap(clean, reference=clean[:, :10])
    with pytest.raises(ValueError, match="same seeds"):
        seed_query_bootstrap(clean, reference=clean[:2], ratio=True)

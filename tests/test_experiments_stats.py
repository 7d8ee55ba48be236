"""optical_core.experiments.stats: robustness summaries of a noise curve and paired tests,
on hand cases."""

from __future__ import annotations

import numpy as np
import pytest

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

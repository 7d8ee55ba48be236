"""optical_core.ot.costs: cost matrices and marginals, and clear errors on bad input."""

from __future__ import annotations

import numpy as np
import ot as pot
import pytest
import torch

from optical_core.ot.config import OTInputError
from optical_core.ot.costs import cost_matrix, weighted_marginal

# ------------------------------------------------------------------------------- costs


def test_cosine_cost_range_and_identity():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 7))
    c = cost_matrix(x, x)
    assert c.shape == (5, 5)
    assert np.allclose(np.diag(c), 0.0, atol=1e-6)
    assert c.min() >= 0.0 and c.max() <= 2.0
    assert np.allclose(cost_matrix(x, -x).diagonal(), 2.0, atol=1e-6)


def test_sqeuclidean_matches_pot_dist():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(4, 3)), rng.normal(size=(6, 3))
    assert np.allclose(cost_matrix(x, y, "sqeuclidean"), pot.dist(x, y), atol=1e-9)


def test_torch_cost_is_differentiable_and_batched():
    x = torch.randn(2, 3, 4, requires_grad=True)
    y = torch.randn(2, 5, 4)
    c = cost_matrix(x, y)
    assert c.shape == (2, 3, 5)
    c.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_unknown_metric_is_a_clear_error():
    with pytest.raises(OTInputError, match="unknown cost metric"):
        cost_matrix(np.ones((2, 2)), np.ones((2, 2)), "manhattan")


# --------------------------------------------------------------------------- marginals


def test_weighted_marginal_normalises_and_rejects_bad_weights():
    assert np.allclose(weighted_marginal([1, 3]), [0.25, 0.75])
    for bad in ([], [0, 0], [1, -1], [np.nan, 1]):
        with pytest.raises(OTInputError):
            weighted_marginal(bad)

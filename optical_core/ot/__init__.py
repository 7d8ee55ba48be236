"""Optimal transport between token sets.

* :mod:`~optical_core.ot.costs`: cost matrices (cosine, squared Euclidean) and marginals;
* :mod:`~optical_core.ot.solve`: one pair through POT (exact, Sinkhorn, unbalanced, partial);
* :mod:`~optical_core.ot.batch`: many pairs at once, a batched torch Sinkhorn.

The base layer: imports nothing else of the package.
"""

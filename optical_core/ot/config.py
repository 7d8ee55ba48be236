"""How to solve one transport problem (:class:`OTConfig`) and the error for inputs no solver
can use (:class:`OTInputError`).

A module of its own, free of torch and POT, because every layer holds an :class:`OTConfig`:
the distillation config that the home page reads, the retrieval scorers, the alignment
pages. Importing it costs nothing; :mod:`optical_core.ot.solve` runs it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Solver = Literal["exact", "sinkhorn", "unbalanced", "partial"]
SOLVERS: tuple[str, ...] = ("exact", "sinkhorn", "unbalanced", "partial")


class OTInputError(ValueError):
    """Raised for inputs no solver can use (NaN/inf costs, an empty side, bad marginals)."""


@dataclass(frozen=True)
class OTConfig:
    """How to solve one transport problem.

    Attributes:
        solver: ``exact`` (network simplex, sparse plan), ``sinkhorn`` (entropic),
            ``unbalanced`` (entropic with KL-relaxed marginals) or ``partial`` (exact, only
            ``mass`` of the total is moved, so a token may stay unaligned).
        epsilon: entropic regularisation in cost units (cosine costs span [0, 2]).
            Small ε → nearly one-to-one plan; large ε → blurred plan.
        tau: marginal relaxation of ``unbalanced``; large τ → close to balanced.
        mass: total mass moved by ``partial``, in (0, 1].
        max_iter: iteration budget of the iterative solvers.
        tol: stop when the marginal error falls below this.
    """

    solver: Solver = "sinkhorn"
    epsilon: float = 0.05
    tau: float = 1.0
    mass: float = 0.8
    max_iter: int = 1000
    tol: float = 1e-6

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise OTInputError(f"unknown solver {self.solver!r}; choose one of {SOLVERS}")
        if self.solver in ("sinkhorn", "unbalanced") and not (
            math.isfinite(self.epsilon) and self.epsilon > 0
        ):
            raise OTInputError(
                "ε must be a finite number > 0 for the entropic solvers (e.g. 0.05 for "
                "cosine costs); for the ε → 0 limit use the exact solver"
            )
        if self.solver == "unbalanced" and not (math.isfinite(self.tau) and self.tau > 0):
            raise OTInputError("τ must be a finite number > 0")
        if self.solver == "partial" and not (0 < self.mass <= 1):
            raise OTInputError("the transported mass must lie in (0, 1]")
        if self.max_iter < 1:
            raise OTInputError("max_iter must be at least 1")
        if not (math.isfinite(self.tol) and self.tol >= 0):
            raise OTInputError("tol must be a finite number >= 0")

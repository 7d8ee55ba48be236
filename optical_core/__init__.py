"""OPTICAL Explorer: optimal-transport token alignment and OT knowledge distillation.

The names most users need, importable from here; each lives in the module named beside it.
They load on first use (PEP 562), so ``import optical_core.ot.costs`` stays light and the
home page draws its figure without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "OTConfig": "optical_core.ot.solve",
    "solve": "optical_core.ot.solve",
    "cost_matrix": "optical_core.ot.costs",
    "sinkhorn_batch": "optical_core.ot.batch",
    "load_encoder": "optical_core.encoders.registry",
    "align_texts": "optical_core.pairs.align",
    "align_embeddings": "optical_core.pairs.align",
    "perturb": "optical_core.perturb.noise",
    "evaluate_noise": "optical_core.retrieval.evaluate",
    "OpticalLoss": "optical_core.distill.loss",
    "OpticalLossConfig": "optical_core.distill.loss",
    "DistillConfig": "optical_core.distill.config",
    "run_distillation": "optical_core.distill.train",
}
__all__ = [
    "DistillConfig", "OTConfig", "OpticalLoss", "OpticalLossConfig", "align_embeddings",
    "align_texts", "cost_matrix", "evaluate_noise", "load_encoder", "perturb", "run_distillation",
    "sinkhorn_batch", "solve",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from optical_core.distill.config import DistillConfig
    from optical_core.distill.loss import OpticalLoss, OpticalLossConfig
    from optical_core.distill.train import run_distillation
    from optical_core.encoders.registry import load_encoder
    from optical_core.ot.batch import sinkhorn_batch
    from optical_core.ot.config import OTConfig
    from optical_core.ot.costs import cost_matrix
    from optical_core.ot.solve import solve
    from optical_core.pairs.align import align_embeddings, align_texts
    from optical_core.perturb.noise import perturb
    from optical_core.retrieval.evaluate import evaluate_noise


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'optical_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])

"""Noise kinds by the names users type: an alias (``typo``) or a kind of
:data:`optical_core.perturb.kinds.NOISE_KINDS`, resolved to the kind, or refused with the
valid names. The CLI, the grid's config, the distillation's augmentation and the retrieval
evaluation all resolve through :func:`resolve_noise`.
"""

from __future__ import annotations

from optical_core.perturb.kinds import NOISE_KINDS

#: ``typo`` is the fat-finger keyboard noise of :mod:`optical_core.perturb`.
NOISE_ALIASES: dict[str, str] = {"typo": "keyboard"}


def resolve_noise(kind: str) -> str:
    """A noise kind of :data:`optical_core.perturb.kinds.NOISE_KINDS`, or an alias (``typo``)
    resolved to its kind; ``ValueError`` naming the valid names for anything else."""
    k = NOISE_ALIASES.get(kind, kind)
    if k not in NOISE_KINDS:
        valid = ", ".join([*NOISE_ALIASES, *NOISE_KINDS])
        raise ValueError(f"unknown noise kind {kind!r}; valid: {valid}")
    return k

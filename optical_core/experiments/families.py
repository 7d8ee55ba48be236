"""Noise families seen in training and held out at evaluation.

A method that was trained on noisy queries (its runs' ``noise_p`` > 0) saw the kinds of its
``noise_kind``; scoring it on those kinds measures how well it learnt its own training
noise, not how robust it is. For each method of a grid this module says which of the
grid's evaluation ``noise_kinds`` are **in family** (it trained on them) and which are
**held out** (it never saw them). A method trained on clean text (or an untrained model)
has every evaluation kind held out. Kinds are compared after alias resolution
(``typo`` = ``keyboard``).
"""

from __future__ import annotations

from typing import Any

from optical_core.experiments.tables import is_trained

#: How the tables spell "trained on clean text only".
NO_NOISE = "none"


def canonical_kind(kind: str) -> str:
    """``kind`` with its alias resolved (``typo`` → ``keyboard``); unknown names unchanged
    (a results folder may hold a kind this version no longer knows)."""
    from optical_core.perturb.resolve import NOISE_ALIASES

    return NOISE_ALIASES.get(kind, kind)


def training_families(options: dict[str, Any]) -> tuple[str, ...]:
    """The noise kinds a run with these ``DistillConfig`` options trained on.

    Args:
        options: ``DistillConfig`` overrides (a grid method's :meth:`GridConfig.options`).

    Returns:
        The kinds of ``noise_kind`` (aliases resolved, in order) when ``noise_p`` > 0, else
        ``()`` (subword dropout alone perturbs no characters of a noise family).
    """
    from optical_core.distill.config import DistillConfig

    cfg = DistillConfig.from_options(**options)
    return cfg.noise_kinds() if cfg.noise_p > 0 else ()


def method_families(grid, method: str) -> tuple[str, ...]:
    """The noise kinds ``method`` of ``grid`` (a :class:`GridConfig`) trained on; ``()`` for
    an untrained model or clean training."""
    return training_families(grid.options(method)) if is_trained(method) else ()


def families_text(kinds: tuple[str, ...] | list[str]) -> str:
    """``("random_char", "ocr")`` → ``"random_char;ocr"``; no kind → :data:`NO_NOISE`."""
    return ";".join(kinds) if kinds else NO_NOISE


def split_families(trained_on: tuple[str, ...] | list[str],
                   eval_kinds: list[str]) -> tuple[list[str], list[str]]:
    """``(in_family, held_out)``: the evaluation kinds ``trained_on`` holds, and the rest,
    each in the order of ``eval_kinds`` (the grid's spelling kept)."""
    seen = {canonical_kind(k) for k in trained_on}
    inside = [k for k in eval_kinds if canonical_kind(k) in seen]
    return inside, [k for k in eval_kinds if canonical_kind(k) not in seen]

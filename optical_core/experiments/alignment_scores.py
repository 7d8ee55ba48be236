"""The grid's word-alignment scores: AER / precision / recall / F1 of each model on the
gold set that matches a language's bitext (en–fr → ``enfr``), one task per (gold set,
model), each kept in the cache as ``align-*.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from optical_core import runs as runs_mod
from optical_core.experiments.cells import GridModel, align_path, aligned_models, gold_sets
from optical_core.experiments.context import GridContext
from optical_core.experiments.models import GridModels
from optical_core.experiments.shards import Task


class AlignmentScores:
    """Scores the grid's models on the gold alignments and reads the scores back."""

    def __init__(self, ctx: GridContext, models: GridModels) -> None:
        self.ctx = ctx
        self.models = models
        self._gold: dict[str, list] | None = None

    def gold(self) -> dict[str, list]:
        """Gold sets of the grid's languages (``gold_limit`` sentences), by name; read
        once (the done checks of every training and alignment task ask for them)."""
        if self._gold is None:
            self._gold = gold_sets(self.ctx.grid, self.ctx.data_dir, self.ctx.note)
        return self._gold

    def aligned(self) -> list[tuple[str, str, GridModel]]:
        """``(lang, gold set, model)`` of every score the grid wants."""
        return aligned_models(self.models.models(), self.ctx.grid.langs)

    def score_file(self, name: str, mdl: GridModel) -> Path:
        """The cache file of ``mdl``'s score on gold set ``name`` (named with its size)."""
        return align_path(self.ctx.cache, name, mdl, len(self.gold()[name]))

    def tasks(self) -> list[Task]:
        """One task per (gold set, model) whose gold set is on disk."""
        from optical_core.encoders.registry import load_encoder
        from optical_core.pairs.align import score_gold

        gold = self.gold()
        tasks = []
        for _, name, mdl in self.aligned():
            if name not in gold:
                continue

            def run(mdl=mdl, name=name) -> None:
                self.models.locate(mdl)
                s = score_gold(load_encoder(mdl.model), gold[name])
                runs_mod.write_json_atomic(self.score_file(name, mdl), {
                    "aer": s.aer, "precision": s.precision, "recall": s.recall, "f1": s.f1})

            tasks.append(Task(
                f"align-{name}-{mdl.tag}", "alignment",
                lambda mdl=mdl, name=name: self.models.identify(mdl)
                and self.score_file(name, mdl).is_file(), run))
        return tasks

    def cached(self, tag: str) -> bool:
        """Whether every score of the models with query-model tag ``tag`` is cached."""
        gold = self.gold()
        return all(self.models.identify(mdl) and self.score_file(name, mdl).is_file()
                   for _, name, mdl in self.aligned() if name in gold and mdl.tag == tag)

    def finished(self) -> list[dict[str, Any]]:
        """The ``alignment`` table: one row per cached score."""
        gold = self.gold()
        out = []
        for lang, name, mdl in self.aligned():
            if name not in gold or not self.models.identify(mdl):
                continue
            f = self.score_file(name, mdl)
            if f.is_file():
                out.append({"method": mdl.method, "lang": lang, "pairs": mdl.pairs,
                            "seed": mdl.seed, "gold": name, **json.loads(f.read_text()),
                            "n_sentences": len(gold[name])})
        return out

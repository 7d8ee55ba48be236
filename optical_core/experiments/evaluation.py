"""The grid's evaluation: one task per (query model, query set) that encodes the queries
once and measures the cells of every document encoder and scorer of that model, each
stored in the cache as per-query metrics (``.npz``); and the finished cells read back.

The teacher's document index per split is built once and shared by every student (in
memory here, and on disk through the embedding cache of
:func:`optical_core.retrieval.index.build_index`).
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import numpy as np

from optical_core.experiments.cells import GridModel, measure
from optical_core.experiments.config import ExperimentError
from optical_core.experiments.context import GridContext
from optical_core.experiments.folder import record_written
from optical_core.experiments.models import GridModels
from optical_core.experiments.shards import Task
from optical_core.experiments.tables import CELL_METRICS


class Evaluation:
    """Measures and reads back the grid's cells (see the module docstring)."""

    def __init__(self, ctx: GridContext, models: GridModels) -> None:
        self.ctx = ctx
        self.models = models
        self._indexes: dict[tuple[str, str], Any] = {}
        self._corpora: dict[str, Any] = {}

    def tasks(self) -> list[Task]:
        """One task per (query model, query set): it encodes the queries once and fills
        the cells of every document encoder and scorer of that model."""
        tasks = []
        for group in self.models.groups():
            lead = group[0]
            for split, lang, kind, cer in self.models.query_sets(lead):
                cell = (split, lang, kind, cer)
                tasks.append(Task(
                    f"eval-{lead.tag}-{split}-{lang}-{kind}-{cer:g}", "evaluate",
                    lambda group=group, cell=cell: not self.missing(group, *cell),
                    lambda group=group, cell=cell: self.evaluate(group, *cell)))
        return tasks

    def missing(self, group: list[GridModel], split: str, lang: str, kind: str,
                cer: float) -> list[tuple[GridModel, str]]:
        """``(model, scorer)`` of the group's cells not cached yet (all of them while the
        models cannot be named)."""
        models = self.models
        if not all(models.identify(m) for m in group):
            return [(m, s) for m in group for s in models.scorers(m)]
        return [(m, s) for m in group for s in models.scorers(m)
                if not models.cell_file(m, lang, split, kind, cer, s).is_file()]

    def corpus(self, split: str):
        """The retrieval corpus of ``split`` in the grid's languages (read once)."""
        from optical_core.retrieval.corpus import load_corpus

        if split not in self._corpora:
            self._corpora[split] = load_corpus(split, self.ctx.data_dir, langs=self.ctx.grid.langs)
        return self._corpora[split]

    def _queries(self, group: list[GridModel], texts: list[str],
                 missing: list[tuple[GridModel, str]]):
        """The group's query encoder and the encoded queries: token vectors only when a
        MaxSim cell is missing, sentence vectors only when a dense one is."""
        from optical_core.encoders.base import ModelLoadError
        from optical_core.encoders.registry import load_encoder
        from optical_core.retrieval.index import encode_queries

        try:
            encoder = load_encoder(group[0].model)
            queries = encode_queries(encoder, texts,
                                     tokens=any(s != "dense" for _, s in missing),
                                     sentence=any(s == "dense" for _, s in missing))
        except (ModelLoadError, ValueError) as exc:
            raise ExperimentError(f"{group[0].method}: {exc}") from None
        return encoder, queries

    def _index(self, mdl: GridModel, split: str, encoder, scorer: str):
        """The document index of ``mdl``'s document model on ``split`` (kept per
        document model and split), with token vectors when ``scorer`` needs them."""
        from optical_core.encoders.base import ModelLoadError
        from optical_core.encoders.registry import load_encoder
        from optical_core.retrieval.index import build_index, check_comparable

        key = (mdl.doc_model, split)
        try:
            doc_encoder = encoder if mdl.doc_model == mdl.model else load_encoder(mdl.doc_model)
            check_comparable(encoder, doc_encoder)
            if key not in self._indexes:
                self._indexes[key] = build_index(doc_encoder, self.corpus(split), tokens=False)
            if scorer != "dense":
                self._indexes[key].ensure_tokens(doc_encoder)
        except (ModelLoadError, ValueError) as exc:
            raise ExperimentError(f"{mdl.method}: {exc}") from None
        return self._indexes[key]

    def evaluate(self, group: list[GridModel], split: str, lang: str, kind: str,
                 cer: float) -> None:
        """Measure the missing cells of one query set for a group of models that share
        the query encoder, and store their per-query metrics in the cache.

        Noisy queries are one draw per (query, noise kind, CER level) from
        ``noise_seed`` (:func:`optical_core.retrieval.noise.perturb_queries`), the same
        draw for every model."""
        from optical_core.retrieval.noise import perturb_queries

        missing = self.missing(group, split, lang, kind, cer)
        for mdl in group:
            self.models.locate(mdl)
        g = self.ctx.grid
        corpus = self.corpus(split)
        qset = corpus.query_set(lang, g.query_limit or None)
        texts, measured = list(qset.texts), 0.0
        if cer > 0:
            perts = perturb_queries(qset, kind, cer, g.noise_seed)
            texts = [p.text for p in perts]
            measured = float(np.mean([p.measured_cer for p in perts]))
        encoder, queries = self._queries(group, texts, missing)
        for mdl, scorer in missing:
            index = self._index(mdl, split, encoder, scorer)
            pq, notes = measure(queries, index, corpus, qset, scorer)
            meta = {"measured_cer": measured, "n_queries": len(qset), "notes": notes,
                    "doc_model": mdl.doc_model, "scorer": scorer}
            self._store(self.models.cell_file(mdl, lang, split, kind, cer, scorer), meta, pq)

    def _store(self, f, meta: dict[str, Any], pq: dict[str, np.ndarray]) -> None:
        """Write one cell atomically and list it in the results folder's index."""
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_name(f"{f.stem}.{os.getpid()}-{threading.get_ident()}.tmp.npz")
        # float32 and compressed: the cells are committed with the results
        np.savez_compressed(tmp, meta=json.dumps(meta), **pq)
        os.replace(tmp, f)
        record_written(self.ctx.out, f)

    def finished_cells(self) -> list[dict[str, Any]]:
        """Every cell whose result is in the cache, whichever shard measured it."""
        rows = []
        for mdl in self.models.models():
            if not self.models.identify(mdl):
                continue
            for (split, lang, kind, cer, scorer), f in self.models.cell_files(mdl):
                if not f.is_file():
                    continue
                with np.load(f, allow_pickle=False) as z:
                    pq = {m: z[m].astype(np.float64) for m in CELL_METRICS}
                    meta = json.loads(str(z["meta"]))
                rows.append({"model": mdl, "lang": lang, "split": split, "kind": kind,
                             "cer": cer, "scorer": scorer, "per_query": pq, "meta": meta})
        return rows

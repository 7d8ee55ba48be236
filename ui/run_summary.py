"""What the Distillation page computes besides drawing: the evaluation series of a job, the
table of runs (with each run's non-default robustness options) and the probe plan's
figure. No Streamlit here (these belong in ``optical_core.distill`` /
``optical_core.runs``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from optical_core.distill.config import DistillConfig
from optical_core.distill.recipes import ROBUST_FIELDS
from optical_core.runs import RunInfo, primary_mrr_key


def show_value(value: Any) -> str:
    """A config value as the captions write it (``0.5``, ``random_char+keyboard``)."""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).replace(",", "+")


def options_summary(config: Mapping[str, Any], names: Iterable[str]) -> str:
    """The fields ``names`` of a run's config that differ from ``DistillConfig``'s defaults,
    as ``noise_p=0.5, ...`` (the names of run.json and of the CLI's flags); "" when none."""
    default = DistillConfig().to_dict()
    return ", ".join(f"{f}={show_value(config[f])}" for f in names
                     if f in config and config[f] != default.get(f))


def robust_summary(config: Mapping[str, Any]) -> str:
    """The robustness options of a run's config that differ from the defaults
    (``noise_p=0.5, noise_kind=random_char+keyboard``); "" when none."""
    return options_summary(config, ROBUST_FIELDS)


def eval_series(evals: Sequence[Mapping[str, Any]], metric: str | None) -> tuple[list, list]:
    """``(steps, values)`` of the evaluations that measured ``metric`` (none if ``None``)."""
    kept = [e for e in evals if metric is not None and metric in e["metrics"]]
    return [e["step"] for e in kept], [e["metrics"][metric] for e in kept]


def runs_table(found: Sequence[RunInfo]) -> list[dict[str, Any]]:
    """One row per run: status, setting (with its non-default robustness options, which
    change what the student reads), steps and MRR@10 before and after training (%)."""
    rows = []
    for r in found:
        ev = r.evals
        key = primary_mrr_key(ev[-1]["metrics"] if ev else {})
        rows.append({
            "run": r.name, "status": r.status, "lang": r.config.get("lang"),
            "loss": r.config.get("loss"), "pairs": r.config.get("pairs"),
            "robustness": robust_summary(r.config),
            "steps": r.record.get("step"),
            "MRR@10 before": round(100 * ev[0]["metrics"][key], 1) if key and ev else None,
            "MRR@10 after": round(100 * ev[-1]["metrics"][key], 1) if key and len(ev) > 1 else None,
            "updated": r.record.get("updated"),
            "note": r.record.get("note"),
        })
    return rows


def probe_plan_figure(plan: Sequence[Sequence[float]], src_tokens: Sequence[str],
                      en_tokens: Sequence[str], step: int) -> go.Figure:
    """The probe pair's plan at one step, scaled so that a one-to-one link is 1."""
    arr = np.asarray(plan, dtype=float)
    fig = go.Figure(go.Heatmap(z=arr * max(arr.shape), x=en_tokens, y=src_tokens,
                               colorscale="Blues", zmin=0, zmax=1,
                               colorbar={"title": "P·max(n,m)"}))
    fig.update_layout(title=f"Probe plan at step {step}", height=360,
                      margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      yaxis={"autorange": "reversed"})
    return fig

"""optical_core.experiments.figures: the noise curves of a results folder (plotly and PNG).

The folder is written by tests/_results_fixture.py in the documented layout with made-up
but realistically shaped numbers: the report is under test here, not the experiment. The
``folder`` fixture (one such folder) is in conftest.py.
"""

from __future__ import annotations

import pytest

from optical_core.experiments.figures import noise_curves_figure, noise_curves_png
from optical_core.experiments.report import curves
from optical_core.experiments.results import load_results


def test_plotly_figure_has_one_panel_per_language_and_bands(folder):
    res = load_results(folder)
    fig = noise_curves_figure(curves(res), "mrr@10", "t")
    assert fig.layout.meta["kind"] == "results_curves"
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["German → English", "French → English", "Czech → English"]
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    bands = [t for t in fig.data if t.fill == "toself"]
    assert len(lines) == len(bands) == 4 * 3
    assert {t.line.dash for t in lines if t.name.startswith("multilingual-e5")} == {"dash"}
    assert {t.line.dash for t in lines if t.name.startswith("OT-KD")} == {"solid"}
    assert sum(t.showlegend for t in lines) == 4  # one legend entry per method
    ot_de = next(t for t in lines if t.name == "OT-KD" and t.xaxis == "x")
    assert list(ot_de.x) == [0, 5, 10, 20] and ot_de.y[0] == pytest.approx(86.4)
    png = noise_curves_png(curves(res), "mrr@10", "t")
    assert png[:4] == b"\x89PNG"


def test_a_method_with_both_document_encoders_gets_two_lines_and_two_rows(folder):
    import pandas as pd

    from optical_core.experiments.report import main_table

    cells = pd.read_csv(folder / "cells.csv").assign(doc_encoder="student")
    teacher = cells[cells["method"].isin(["mse", "ot"])].assign(doc_encoder="teacher")
    teacher["mrr@10"] += 0.01
    pd.concat([cells, teacher]).to_csv(folder / "cells.csv", index=False)
    res = load_results(folder)
    lines = [t for t in noise_curves_figure(curves(res), "mrr@10").data
             if t.mode == "lines+markers" and t.xaxis == "x"]
    styles = {t.name: t.line.dash for t in lines}
    assert styles["OT-KD (teacher docs)"] == "solid" and styles["OT-KD (student docs)"] == "dot"
    assert styles["none (untrained MiniLM)"] == "solid"  # one document encoder: no suffix
    t = main_table(res)
    ot = t[(t["lang"] == "de") & (t["method"] == "ot")]
    assert list(ot["docs"]) == ["teacher", "student"]  # OPTICAL's setting first
    assert float(ot["clean"].iloc[0].split()[0]) == pytest.approx(
        float(ot["clean"].iloc[1].split()[0]) + 1.0, abs=0.11)
    assert noise_curves_png(curves(res), "mrr@10")[:4] == b"\x89PNG"

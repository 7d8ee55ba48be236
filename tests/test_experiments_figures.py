"""optical_core.experiments.figures: the noise curves of a results folder (plotly and PNG).

The folder is written by tests/_results_fixture.py in the documented layout with made-up
but realistically shaped numbers: the report is under test here, not the experiment. The
``folder`` fixture (one such folder) is in conftest.py.
"""

from __future__ import annotations

import pytest

from optical_core.experiments.figures import (
    OKABE_ITO,
    answer_figure,
    noise_curves_figure,
    noise_curves_png,
)
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
    assert styles["untrained MiniLM"] == "solid"  # one document encoder: no suffix
    t = main_table(res)
    ot = t[(t["lang"] == "de") & (t["method"] == "ot")]
    assert list(ot["docs"]) == ["teacher", "student"]  # OPTICAL's setting first
    assert float(ot["clean"].iloc[0].split()[0]) == pytest.approx(
        float(ot["clean"].iloc[1].split()[0]) + 1.0, abs=0.11)
    assert noise_curves_png(curves(res), "mrr@10")[:4] == b"\x89PNG"


def test_no_colour_repeats_and_names_are_spelled_out(folder):
    import pandas as pd

    cells = pd.read_csv(folder / "cells.csv")
    extra = [cells[cells["method"] == "ot"].assign(method=f"ot@cooc_aug{k}") for k in (2, 3, 4)]
    pd.concat([cells, *extra]).to_csv(folder / "cells.csv", index=False)
    lines = [t for t in noise_curves_figure(curves(load_results(folder))).data
             if t.mode == "lines+markers" and t.showlegend]
    assert len(lines) == 7
    assert len({t.line.color for t in lines}) == 7
    assert {t.line.color for t in lines} <= set(OKABE_ITO)
    assert "OT-KD + co-occurrence + noise, 3 epochs" in {t.name for t in lines}


def test_answer_figure_adapts_to_the_grid(folder):
    res = load_results(folder)
    fig = answer_figure(curves(res), ["ot", "mse"], "mrr@10", "t")
    assert fig.layout.meta["kind"] == "results_curves"
    assert {t.name for t in fig.data if t.mode == "lines+markers"} == {"OT-KD", "MSE-KD"}
    clean = curves(res)
    clean = clean[clean["cer"] == 0]
    one = answer_figure(clean, ["ot", "mse", "none"], "mrr@10")
    assert one.layout.meta["kind"] == "results_clean"  # one level: no noise curve
    dots = [t for t in one.data if t.mode == "markers"]
    assert {t.y[0] for t in dots} == {"OT-KD", "MSE-KD", "untrained MiniLM"}
    assert len({t.marker.color for t in dots if t.xaxis == "x"}) == 3

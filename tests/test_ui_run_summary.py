"""ui/run_summary.py (no Streamlit): the runs table names each run's non-default
robustness options, so every table of runs shows what the student was trained to read."""

from __future__ import annotations

import sys
from pathlib import Path

from optical_core.distill.config import DistillConfig
from optical_core.distill.recipes import robust_recipe
from optical_core.runs import RunInfo

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the tests import the ui package from the repository root
    sys.path.insert(0, str(ROOT))

from ui.run_summary import robust_summary, runs_table  # noqa: E402


def _run(name: str, **config) -> RunInfo:
    cfg = {**DistillConfig().to_dict(), **config}
    return RunInfo(name=name, path=Path(name), status="finished",
                   record={"config": cfg, "step": 3})


def test_the_runs_table_has_a_robustness_column_after_pairs():
    augmented = {"noise_p": 0.5, "noise_kind": "random_char,keyboard", "subword_dropout": 0.1,
                 "consistency_weight": 0.5}
    rows = runs_table([_run("plain"), _run("augmented", **augmented),
                       _run("robust", **robust_recipe()),
                       RunInfo(name="old", path=Path("old"), status="failed")])
    assert list(rows[0])[list(rows[0]).index("pairs") + 1] == "robustness"
    assert [r["robustness"] for r in rows] == [
        "", robust_summary({**DistillConfig().to_dict(), **augmented}),
        robust_summary({**DistillConfig().to_dict(), **robust_recipe()}), ""]
    assert rows[1]["robustness"] == ("noise_p=0.5, noise_kind=random_char+keyboard, "
                                     "subword_dropout=0.1, consistency_weight=0.5")
    # npmi, CER up to 0.2 and random characters are the defaults, so they are not listed
    assert rows[2]["robustness"] == "noise_p=0.5, cooc_weight=0.3"

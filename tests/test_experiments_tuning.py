"""Learning-rate tuning at one size or at every size of the grid's pairs
(``tune_per_pairs``): its tasks, what it chooses from the val scores, the settings each
training gets, and the one-line errors of a config that mixes the two."""

from __future__ import annotations

import json

import pytest

from optical_core.experiments.config import ExperimentError, GridConfig, run_name
from optical_core.experiments.context import GridContext
from optical_core.experiments.training import Trainings
from optical_core.experiments.tuning import Tuning

LRS = [5e-4, 1e-3]


def _tuning(tmp_path, **kw) -> Tuning:
    grid = GridConfig(name="tune", methods=["ot"], langs=["cs"], pairs=[100, 400], seeds=[42],
                      tune_lrs=LRS, gold=False, **kw).validate()
    ctx = GridContext(grid=grid, out=tmp_path / "tune", runs_dir=tmp_path / "runs")
    return Tuning(ctx, Trainings(ctx, lambda: None))


def _score(tuning: Tuning, pairs: int, lr: float, val: float) -> None:
    """What a finished tuning run leaves in the cache: its val MRR@10 and run name."""
    cfg = tuning.trainings.config("ot", "cs", pairs, 42, lr, "constant")
    f = tuning.score_file(cfg)
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(json.dumps({"val_mrr@10": val, "run": run_name(cfg)}), encoding="utf-8")


def test_per_pairs_tuning_chooses_an_lr_at_each_size(tmp_path):
    t = _tuning(tmp_path, tune_per_pairs=True)
    ids = [task.id for task in t.tasks()]
    assert len(ids) == 4 and {i.split("-")[3] for i in ids} == {"100", "400"}
    _score(t, 100, 5e-4, 0.30)
    _score(t, 100, 1e-3, 0.20)
    _score(t, 400, 5e-4, 0.40)
    assert not t.choose()  # one run still missing: nothing chosen
    _score(t, 400, 1e-3, 0.50)
    assert t.choose()
    assert t.chosen == {("ot", 100): (5e-4, "constant"), ("ot", 400): (1e-3, "constant")}
    assert t.chosen_config("ot", "cs", 100, 43).lr == 5e-4
    assert t.chosen_config("ot", "cs", 400, 43).lr == 1e-3
    assert t.chosen_by_name() == {"ot 100": (5e-4, "constant"), "ot 400": (1e-3, "constant")}
    assert sorted((r["pairs"], r["lr"]) for r in t.rows if r["chosen"]) == [(100, 5e-4),
                                                                           (400, 1e-3)]


def test_one_tuning_size_sets_the_lr_of_every_size(tmp_path):
    t = _tuning(tmp_path, tune_pairs=100)
    assert {task.id.split("-")[3] for task in t.tasks()} == {"100"}
    _score(t, 100, 5e-4, 0.1)
    _score(t, 100, 1e-3, 0.2)
    assert t.choose() and t.chosen_by_name() == {"ot": (1e-3, "constant")}
    assert t.chosen_config("ot", "cs", 400, 42).lr == 1e-3


@pytest.mark.parametrize("kw, word", [({"tune_per_pairs": True, "tune_pairs": 100}, "tune_pairs"),
                                      ({"tune_per_pairs": True, "tune_lrs": []}, "tune_lrs")])
def test_tune_per_pairs_refuses_a_fixed_size_or_no_tuning(kw, word):
    grid = GridConfig(name="tune", methods=["ot"], langs=["cs"], pairs=[100], gold=False,
                      **{"tune_lrs": LRS, **kw})
    with pytest.raises(ExperimentError, match="tune_per_pairs") as err:
        grid.validate()
    assert word in str(err.value) and "\n" not in str(err.value)

"""grid-configs/selfteach_where.toml: Self-Teaching's place (pooled, tokens, scores) at
weights far below 1 under both losses, chosen on val; the CLI lists its tasks; its
first-form cells share their run names with the weight sweep (selfteach.toml)."""

from __future__ import annotations

from optical_core.cli.entry import main as cli_main
from optical_core.distill.config import SELF_TEACH_ON, SELF_TEACH_TEMPERATURE
from optical_core.experiments.config import PRESET_DIR, distill_config, load_config, run_name


def test_it_tries_every_place_at_two_small_weights_under_both_losses_on_val():
    grid = load_config("selfteach_where")
    assert grid.tuning and grid.tune_split == "val" and "val" not in grid.splits
    assert grid.splits == ["test_2016_flickr"] and grid.langs == ["cs"] and grid.seeds == [42]
    assert grid.pairs == [5000]
    for loss in ("mse", "ot"):
        cells = set()
        for m in (m for m in grid.trained if m.startswith(loss + "@")):
            cfg = distill_config(grid, m, "cs", 5000, 42, 5e-4)
            assert cfg.augments() and cfg.self_teach_temperature == SELF_TEACH_TEMPERATURE
            cells.add((cfg.self_teach_on, cfg.self_teach_weight))
        assert cells == {("pooled", 0.0)} | {(on, w) for on in SELF_TEACH_ON for w in (0.01, 0.1)}
    assert all(grid.baselines[m] == m.split("@")[0] + "@aug"
               for m in grid.trained if not m.endswith("@aug"))


def test_its_header_says_what_it_answers_how_to_run_it_and_how_long():
    text = (PRESET_DIR / "selfteach_where.toml").read_text(encoding="utf-8")
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    assert "--shard 1/2" in header and "--shard 2/2" in header and "--report-only" in header
    assert "test split is read once" in header and "time-*.json" in header
    assert "pooled" in header and "token vectors" in header and "centred" in header


def test_its_first_form_cells_are_the_weight_sweeps_runs():
    where, sweep = load_config("selfteach_where"), load_config("selfteach")
    for mine, theirs in (("mse@pooled001", "mse@st001"), ("ot@pooled01", "ot@st01"),
                         ("ot@aug", "ot@aug")):
        assert run_name(distill_config(where, mine, "cs", 5000, 42, 1e-3)) == \
            run_name(distill_config(sweep, theirs, "cs", 5000, 42, 1e-3))
    tokens = distill_config(where, "ot@tokens001", "cs", 5000, 42, 1e-3)
    assert run_name(tokens) != run_name(distill_config(sweep, "ot@st001", "cs", 5000, 42, 1e-3))


def test_the_cli_lists_its_tasks(capsys, tmp_path):
    assert cli_main(["experiment", "--config", "grid-configs/selfteach_where.toml",
                     "--list-cells", "--results-dir", str(tmp_path / "res"),
                     "--runs-dir", str(tmp_path / "runs")]) == 0
    ids = capsys.readouterr().out.split()
    for on in SELF_TEACH_ON:
        assert f"tune-ot_{on}001-cs-5000-lr5e-4-constant-s42" in ids
        assert f"train-mse_{on}01-cs-5000-s42" in ids
    assert sum(i.startswith("tune-") for i in ids) == 28
    assert any(i.endswith("-keyboard-0.2") for i in ids)

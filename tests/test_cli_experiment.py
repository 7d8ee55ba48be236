"""`optical experiment` (optical_core.cli.experiment): one-line errors and the dry-run plan
(the full grid through the CLI is in test_experiments_runner.py)."""

from __future__ import annotations

from optical_core.cli.entry import main as cli_main


def test_cli_reports_a_missing_config_in_one_line(capsys):
    assert cli_main(["experiment", "--config", "no-such-grid"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no config file" in err[0] and "quick" in err[0]


def test_cli_dry_run_prints_the_plan(capsys, tmp_path):
    assert cli_main(["experiment", "--quick", "--dry-run", "--results-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "train mse de 1000 pairs" in out and "tasks" in out
    assert not any(tmp_path.iterdir())  # a dry run writes nothing

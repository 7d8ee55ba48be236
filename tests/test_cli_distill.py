"""`optical distill` (optical_core.cli.distill) with a tiny random teacher (the ``tiny``
fixture in conftest.py) on the packaged demo pairs: a run, the unbalanced solver options,
the robustness options and ``--recipe robust``, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from _helpers import REPO

from optical_core.cli.distill import given_options, recipe_help
from optical_core.cli.entry import build_parser, main
from optical_core.distill.recipes import RECIPES, ROBUST_FIELDS, recipe_options, robust_recipe


def _cli(*args, env=None, timeout=180):
    return subprocess.run([sys.executable, "-m", "optical_core.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_cli_distill_runs_and_reports_errors_on_one_line(tiny, tmp_path, capsys):

    out = tmp_path / "runs" / "cli"
    r = _cli("distill", "--demo-data", "--teacher", tiny, "--pairs", "16", "--batch-size", "8",
             "--max-steps", "2", "--max-tokens", "32", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "finished: 2 steps" in r.stdout
    assert json.loads((out / "run.json").read_text())["status"] == "finished"
    capsys.readouterr()
    assert main(["distill", "--demo-data", "--teacher", tiny, "--out", str(out)]) != 0
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "already holds a run" in err
    code = main(["distill", "--teacher", str(tmp_path / "missing"), "--out", str(tmp_path / "z")])
    err = capsys.readouterr().err
    assert code != 0 and err.startswith("error:") and "does not exist" in err
    assert err.strip().count("\n") == 0



def _two_steps(tiny: str, out, *extra: str) -> list[str]:
    """``optical distill`` arguments for two steps of a tiny model on the demo pairs."""
    return ["distill", "--demo-data", "--teacher", tiny, "--pairs", "16", "--batch-size", "8",
            "--max-steps", "2", "--max-tokens", "32", "--no-eval", *extra, "--out", str(out)]


def test_cli_unbalanced_solver_and_tau(tiny, tmp_path, capsys):

    out = tmp_path / "ub"
    code = main(_two_steps(tiny, out, "--ot-solver", "unbalanced", "--tau", "0.3"))
    err = capsys.readouterr().err
    assert code == 0, err
    cfg = json.loads((out / "run.json").read_text())["config"]
    assert cfg["ot_solver"] == "unbalanced" and cfg["ot_tau"] == 0.3
    for args, msg in ((["--tau", "0.3"], "only applies to --ot-solver unbalanced"),
                      (["--ot-solver", "unbalanced", "--tau", "0"], "τ")):
        code = main(["distill", "--demo-data", "--teacher", tiny, *args,
                         "--out", str(tmp_path / "bad")])
        err = capsys.readouterr().err
        assert code != 0 and err.startswith("error:") and msg in err
        assert err.strip().count("\n") == 0
    assert not (tmp_path / "bad").exists()


def test_robust_flags_default_to_the_config_and_the_recipe_fills_the_rest():
    def robust_options(argv: list[str]) -> dict:  # what run_distill passes to DistillConfig
        args = build_parser().parse_args(["distill", "--out", "x", *argv])
        return recipe_options(args.recipe, given_options(args))

    assert robust_options([]) == {}  # no flag, no recipe: the defaults (off)
    assert robust_options(["--recipe", "robust"]) == robust_recipe()
    opts = robust_options(["--recipe", "robust", "--noise-p", "0.3",
                           "--self-teach-weight", "0.2", "--kd-input", "clean"])
    assert opts == {**robust_recipe(), "noise_p": 0.3, "self_teach_weight": 0.2,
                    "kd_input": "clean"}
    opts = robust_options(["--noise-p", "0.5", "--noise-kind", "ocr", "--subword-dropout",
                           "0.1", "--consistency-weight", "1", "--cooc-weight", "0.2",
                           "--cooc-measure", "dice"])
    assert opts == {"noise_p": 0.5, "noise_kind": "ocr", "subword_dropout": 0.1,
                    "consistency_weight": 1.0, "cooc_weight": 0.2, "cooc_measure": "dice"}
    # every robustness field has its flag, and the --recipe help says what each recipe sets
    flags = build_parser().parse_args(["distill", "--out", "x"])
    assert all(hasattr(flags, f) for f in ROBUST_FIELDS)
    assert all(f"{name}: --" in recipe_help() for name in RECIPES)
    assert "robust: --cooc-weight 0.3 --cooc-measure npmi" in recipe_help()


def test_cli_recipe_robust_trains_and_bad_robust_options_fail_on_one_line(tiny, tmp_path, capsys):
    out = tmp_path / "robust"
    code = main(_two_steps(tiny, out, "--recipe", "robust", "--noise-p", "0.8"))
    err = capsys.readouterr().err
    assert code == 0, err
    cfg = json.loads((out / "run.json").read_text())["config"]
    assert cfg["noise_p"] == 0.8 and cfg["cooc_weight"] == 0.3 and cfg["cooc_measure"] == "npmi"
    assert cfg["consistency_weight"] == 0.0 and cfg["subword_dropout"] == 0.0
    for args, msg in ((["--consistency-weight", "1"], "need --noise-p > 0"),
                      (["--noise-p", "0.5", "--noise-kind", "smudge"], "unknown noise kind"),
                      (["--loss", "mse", "--cooc-weight", "0.5"], "co-occurrence")):
        code = main(["distill", "--demo-data", "--teacher", tiny, *args,
                     "--out", str(tmp_path / "bad")])
        err = capsys.readouterr().err
        assert code != 0 and err.startswith("error:") and msg in err
        assert err.strip().count("\n") == 0
    assert not (tmp_path / "bad").exists()


def test_every_config_option_has_its_flag_from_the_field():
    """The flags are built from DistillConfig's fields (name, type, choices, help): each
    option given on the command line reaches the config under its field's name."""
    from optical_core.distill.config import DistillConfig, options

    parser = build_parser()
    sub = parser.parse_args(["distill", "--out", "x"])
    for opt in options():
        if not opt.cli:
            continue
        assert getattr(sub, opt.name) is None  # not given: the recipe or the default fills it
        if opt.type is bool or opt.name == "data":
            argv, want = [opt.flag], ("demo" if opt.name == "data" else not opt.default)
        else:
            want = opt.choices[-1] if opt.choices else {int: 3, float: 0.25, str: "x"}[opt.type]
            argv = [opt.flag, str(want)]
        args = parser.parse_args(["distill", "--out", "x", *argv])
        assert given_options(args) == {opt.name: want}, opt.name
    # the old flag names still work, and the OT ones land in DistillConfig.ot
    args = parser.parse_args(["distill", "--out", "x", "--ot-solver", "unbalanced", "--tau",
                              "0.5", "--sinkhorn-iters", "50", "--epsilon", "0.02"])
    cfg = DistillConfig.from_options(**given_options(args))
    assert (cfg.ot.solver, cfg.ot.tau, cfg.ot.max_iter, cfg.ot.epsilon) == \
        ("unbalanced", 0.5, 50, 0.02)

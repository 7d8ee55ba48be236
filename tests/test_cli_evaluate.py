"""`optical evaluate` (optical_core.cli.evaluate) on the demo corpus: tables, run files,
JSON output and one-line errors."""

from __future__ import annotations

import json
import warnings


def test_cli_evaluate_demo(tmp_path, capsys, cache_root):
    from optical_core.cli.entry import main

    out = tmp_path / "run.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(["evaluate", "--demo", "--lang", "cs", "--scorer", "maxsim", "--noise",
                   "random_char", "--cer", "0.2", "--bootstrap", "100", "--run-file", str(out),
                   "-q"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "MRR@10" in text and "demo: cs→en, 24 queries × 24 documents" in text
    assert out.is_file() and (tmp_path / "run.clean.json").is_file()
    assert set(json.loads(out.read_text())) == {f"q{i}" for i in range(24)}

    rc = main(["evaluate", "--demo", "--cer", "0", "--json", "-q", "--bootstrap", "50"])
    summary = json.loads(capsys.readouterr().out)
    assert rc == 0 and summary["rows"][0]["metric"] == "MRR@10"
    assert "noisy" not in summary["rows"][0]

    rc = main(["evaluate", "--demo", "--cer", "1.5", "-q"])
    assert rc == 2 and "--cer must lie in [0, 1]" in capsys.readouterr().err
    rc = main(["evaluate", "--demo", "-q", "--run-file", str(tmp_path / "nope" / "r.trec")])
    assert rc == 2 and "does not exist" in capsys.readouterr().err


def test_cli_evaluate_a_run_with_its_teachers_documents(tmp_path, capsys, cache_root, tiny,
                                                        tiny_other):
    """A run folder's documents are embedded by its recorded teacher unless told otherwise;
    JSON and table say which."""
    import shutil

    from optical_core.cli.entry import main
    from optical_core.runs import write_json_atomic

    run = tmp_path / "de-ot"
    shutil.copytree(tiny_other, run / "model")  # the student
    write_json_atomic(run / "run.json", {"status": "finished", "config": {"teacher": tiny}})
    base = ["evaluate", "--demo", "--model", str(run), "--scorer", "maxsim", "--cer", "0",
            "--bootstrap", "50", "-q"]
    seen = {}
    for choice in (None, "student", tiny):
        extra = [] if choice is None else ["--doc-encoder", choice]
        assert main([*base, *extra, "--json"]) == 0
        seen[choice] = json.loads(capsys.readouterr().out)
    assert (seen[None]["doc_encoder"], seen[None]["doc_model"]) == ("teacher", tiny)
    assert seen["student"]["doc_encoder"] == "student"
    assert seen["student"]["doc_model"] == seen["student"]["query_model"] == str(run / "model")
    assert seen[tiny]["rows"] == seen[None]["rows"]  # the teacher named by hand: same numbers
    assert main(base) == 0
    assert f"documents embedded by teacher ({tiny})" in capsys.readouterr().out

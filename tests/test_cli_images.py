"""`optical retrieve-images` (optical_core.cli.images) with a tiny random CLIP teacher and a
student distilled against it (fixtures in conftest.py, described in tests/_clip_fixture.py)."""

from __future__ import annotations

import json

from _clip_fixture import SPLIT

from optical_core.cli.common import EXIT_ERROR
from optical_core.cli.entry import main


def _cli(argv, capsys):
    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_retrieve_images_with_a_distilled_student(clip_run, clip_dir, image_dir, data_root,
                                                      capsys):
    rc, out, err = _cli(["retrieve-images", "--model", str(clip_run.run_dir), "--teacher",
                         str(clip_dir), "--images", str(image_dir), "--lang", "de", "--split",
                         SPLIT, "--data-dir", str(data_root), "--bootstrap", "50", "-q"], capsys)
    assert rc == 0, err
    assert "de caption → image" in out and "6 captions × 6 images" in out
    assert "MRR@10" in out and "R@10" in out


def test_cli_retrieve_images_json(clip_dir, image_dir, data_root, capsys):
    rc, out, err = _cli(["retrieve-images", "--teacher", str(clip_dir), "--images",
                         str(image_dir), "--lang", "en", "--data-dir", str(data_root),
                         "--bootstrap", "50", "--json", "-q"], capsys)
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["n_queries"] == 6 and doc["n_images"] == 6
    assert 0.0 <= doc["mean"]["mrr@10"] <= 1.0 and doc["mean"]["recall@10"] == 1.0


def test_cli_retrieve_images_errors_are_one_line(clip_dir, tiny_student, image_dir, data_root,
                                                 tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    base = ["retrieve-images", "--teacher", str(clip_dir), "--data-dir", str(data_root), "-q"]
    rc, _, err = _cli(base + ["--images", str(empty)], capsys)
    assert rc == EXIT_ERROR and err.count("\n") == 1
    assert "found 0 of 6 images" in err and "Traceback" not in err
    rc, _, err = _cli(base + ["--images", str(image_dir), "--model", tiny_student], capsys)
    assert rc == EXIT_ERROR and err.count("\n") == 1 and "32-d" in err
    rc, _, err = _cli(["retrieve-images", "--teacher", tiny_student, "--images", str(image_dir),
                       "--data-dir", str(data_root), "-q"], capsys)
    assert rc == EXIT_ERROR and "not a CLIP-family model" in err

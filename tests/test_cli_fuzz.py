"""A fuzz test of the ``optical`` command line: every subcommand, every option, edge values.

For each subcommand the options are read from the real parser (``build_parser``), so a new
option is fuzzed the day it is added. Each option gets values of every edge its type has:
numbers NaN, ±inf, negative, zero, huge, not a number at all, empty; paths to a file, a
folder, nothing, a place nobody can write (under a file, under ``/proc``), a folder of the
user's own files; choices a valid one or a bogus one. Each case runs in-process
(:func:`optical_core.cli.entry.main`) in a fresh folder and must

* exit 0 or 2, never with a traceback;
* print at most one ``error:`` line, in the user's words (no "internal error" line, which
  is what the command prints for Python's own wording);
* leave every file of the folder byte-for-byte as it was, except the output the case names
  (a new file or folder at that path); nothing else may appear.

Nothing heavy ever starts: the models are the tiny random BERT (``align``) or paths that do
not exist (``evaluate``, ``retrieve-images``, ``distill``), ``experiment`` always runs with
``--dry-run``, and ``download`` only gets destinations it must refuse. The cases of the
subcommands other engineers own that still fail are :data:`KNOWN_BAD`: they are left out of
the fuzz and each runs on its own as an ``xfail`` with its reason.

The number of cases per subcommand is printed at the end of the module (``-s`` shows it).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import itertools
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optical_core.cli.entry import build_parser, main

FLOATS = ["nan", "inf", "-inf", "-1", "-0", "0", "1e308", "1e-320", "0.5", "1", "3", "abc", ""]
INTS = ["-1", "0", "1", "2", "99999999999999999999", "-99999999999999999999", "1.5", "nan",
        "abc", ""]
PATHS = ["{file}", "{dir}", "{nothing}", "{users}", "{under_file}", "/proc/optical-fuzz/x", "",
         "{latin1}"]
WORDS = ["abc", "de", "1/2", "0/0", "../../etc/passwd", "-", ""]
#: Models: never one that would load for long or train (see the module docstring).
NO_MODELS = ["{nothing}", "{dir}", "{file}", "{users}"]

#: Options whose value is the output the case may create or replace.
OUTPUT_OPTIONS = {"-o", "--output", "--run-file", "--out", "--dest", "--results-dir",
                  "--runs-dir"}

#: Per subcommand: the values some options take instead of their type's edges.
POOLS: dict[str, dict[str, list[str]]] = {
    "align": {"input": ["{pairs}", "{blank_lines}", "{latin1}", "{file}", "{dir}",
                        "{nothing}", "-"],
              "--model": ["{tiny}", "{tiny}", *NO_MODELS]},
    "score": {name: ["{gold}", "{pred}", "{empty}", "{blank_lines}", "{latin1}", "{pairs}",
                     "{nothing}", "{dir}", "{file}"] for name in ("--gold", "--pred", "--text")}
    | {"--corpus": ["{pairs}", "{empty}", "{latin1}", "{nothing}", "{dir}", "{file}"],
       "--model": ["{tiny}", *NO_MODELS], "--second-model": ["{tiny}", *NO_MODELS]},
    "evaluate": {"--model": NO_MODELS, "--doc-encoder": [*NO_MODELS, "teacher", "student"]},
    "retrieve-images": {"--teacher": NO_MODELS, "--model": NO_MODELS},
    "download": {"--dest": ["{file}", "{users}", "{under_file}", "/proc/optical-fuzz/x"]},
    "distill": {"--teacher": NO_MODELS, "--student": NO_MODELS},
    "experiment": {},
}
#: Arguments every case of a subcommand gets (after the fuzzed ones, so they win).
FIXED: dict[str, list[str]] = {
    "evaluate": ["--model", "{nothing}"],
    "retrieve-images": ["--teacher", "{nothing}"],
    "distill": ["--teacher", "{nothing}"],
    "experiment": ["--dry-run"],
}
#: Common flags drawn for every subcommand (``-q`` is always given).
DATA_DIRS = ["{empty_dir}", "{nothing}", "{file}"]

#: (subcommand, option, value) that still fail in code other engineers are fixing now:
#: left out of the fuzz, each run on its own below as an xfail with its reason.
KNOWN_BAD: dict[tuple[str, str, str], str] = {}

MAX_EXAMPLES = {"align": 30, "score": 40, "evaluate": 40, "retrieve-images": 30,
                "download": 20, "distill": 40, "experiment": 30}
COUNTS: Counter = Counter()


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _values_for(command: str, action: argparse.Action) -> list[str] | None:
    """The values to draw for one option (``None``: a flag, present or not)."""
    name = action.option_strings[-1] if action.option_strings else action.dest
    if name in POOLS.get(command, {}):
        values = POOLS[command][name]
    elif action.nargs == 0:
        return None
    elif action.choices is not None:
        values = [*map(str, action.choices), "bogus", ""]
    elif action.type is float:
        values = FLOATS
    elif action.type is int:
        values = INTS
    else:
        values = PATHS + WORDS
    return [v for v in values if (command, name, v) not in KNOWN_BAD]


COMMON = {"--data-dir", "--quiet", "--debug"}


def _options(command: str) -> list[tuple[str, argparse.Action]]:
    parser = _subparsers()[command]
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = action.option_strings[-1] if action.option_strings else action.dest
        if name in COMMON:
            continue
        if command == "download" and name == "--dest":
            action.required = True  # only destinations it must refuse: never a download
        if command == "experiment" and name == "--dry-run":
            continue  # always given
        out.append((name, action))
    return out


@st.composite
def argv_for(draw, command: str) -> list[str]:
    """One command line: the subcommand, its required options and one to three others,
    each with an edge value, then :data:`FIXED`. Few options at a time, so that one bad
    value is not always hidden behind another that argparse already refuses."""
    argv = ["-q", command]
    options = _options(command)
    optional = [k for k, (_, action) in enumerate(options) if not action.required]
    chosen = set(draw(st.lists(st.sampled_from(optional), min_size=1, max_size=3)))
    for k, (name, action) in enumerate(options):
        values = _values_for(command, action)
        if not (action.required or k in chosen):
            continue
        if values is None:
            argv.append(name)
        elif not action.option_strings:  # the positional input
            argv.append(draw(st.sampled_from(values)))
        else:
            argv += [name, draw(st.sampled_from(values))]
    if draw(st.booleans()):
        argv += ["--data-dir", draw(st.sampled_from(DATA_DIRS))]
    return argv + FIXED.get(command, [])


# ----------------------------------------------------------------------- the folder


def _make_folder(root: Path) -> dict[str, str]:
    """The files a case can point at; returns the ``{name}`` substitutions."""
    (root / "dir").mkdir()
    (root / "empty_dir").mkdir()
    (root / "users").mkdir()
    (root / "users" / "thesis.tex").write_text("the user's own file\n")
    files = {
        "file": "some text\n",
        "pairs": "a dog runs ||| a dog runs\nthe cat ||| the cat sleeps\n",
        "blank_lines": "\na dog ||| a dog\n\n",
        "gold": "0-0 1p1\n0-0\n",
        "pred": "0-0 1-1\n0p0 1-1\n",
        "empty": "",
    }
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
    (root / "latin1").write_bytes("caf\xe9 ||| caf\xe9\n".encode("latin-1"))
    subs = {name: str(root / name) for name in [*files, "latin1", "dir", "empty_dir", "users"]}
    subs["nothing"] = str(root / "nothing")
    subs["under_file"] = str(root / "file" / "below")
    return subs


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file()
    }


def _named_outputs(argv: list[str], root: Path) -> list[Path]:
    outs = [Path(v) for k, v in itertools.pairwise(argv) if k in OUTPUT_OPTIONS and v]
    # evaluate writes the clean run beside --run-file
    outs += [p.with_name(f"{p.stem}.clean{p.suffix}") for p in outs]
    return [p if p.is_absolute() else root / p for p in outs]


def _may_change(rel: str, root: Path, outputs: list[Path], before: dict[str, str]) -> bool:
    """A file may be new or changed only as (or inside a new folder at) a named output."""
    path = root / rel
    for out in outputs:
        if path == out:
            return True
        if out in path.parents and not any(
            (root / b).is_relative_to(out) for b in before
        ):
            return True  # inside an output folder the case created
    return False


def run_case(argv: list[str], tiny: str) -> tuple[int, str, str]:
    """Run ``argv`` (with ``{name}`` placeholders) in a fresh folder and check it."""
    with tempfile.TemporaryDirectory(prefix="optical-fuzz-") as tmp:
        root = Path(tmp) / "work"
        root.mkdir()
        subs = {**_make_folder(root), "tiny": tiny}
        real = [a.format(**subs) for a in argv]
        before = _snapshot(root)
        out, err = io.StringIO(), io.StringIO()
        env = {"OPTICAL_CACHE_DIR": str(Path(tmp) / "cache"),
               "OPTICAL_RUNS_DIR": str(Path(tmp) / "runs")}
        saved = {k: os.environ.get(k) for k in env}
        cwd, stdin = os.getcwd(), sys.stdin
        os.environ.update(env)
        os.chdir(root)
        sys.stdin = io.StringIO((root / "pairs").read_text())
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = main(real)
                except SystemExit as exc:  # argparse
                    code = exc.code
        finally:
            sys.stdin = stdin
            os.chdir(cwd)
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        after = _snapshot(root)
        outputs = _named_outputs(real, root)
        changed = sorted(rel for rel in set(before) | set(after)
                         if before.get(rel) != after.get(rel)
                         and not _may_change(rel, root, outputs, before))
        stderr = err.getvalue()
        where = f"optical {' '.join(real)}\n{stderr}"
        assert code in (0, 2), where
        assert "Traceback" not in stderr, where
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert len(errors) <= 1, where
        assert code == 0 or len(errors) == 1, where
        assert "internal error" not in stderr, where
        assert changed == [], f"{where}\nchanged outside the named output: {changed}"
        return code, out.getvalue(), stderr


# ----------------------------------------------------------------------- the tests


@pytest.mark.parametrize("command", list(MAX_EXAMPLES))
def test_every_option_of_every_subcommand(command, tiny):
    @settings(max_examples=MAX_EXAMPLES[command], deadline=None, derandomize=True,
              database=None, suppress_health_check=list(HealthCheck))
    @given(argv=argv_for(command))
    def check(argv):
        COUNTS[command] += 1
        run_case(argv, tiny)

    check()
    assert COUNTS[command] >= MAX_EXAMPLES[command] // 2


def test_the_fuzz_covers_every_subcommand():
    assert set(_subparsers()) == set(MAX_EXAMPLES) == set(POOLS)


@pytest.mark.parametrize(
    "command, option, value",
    [pytest.param(*case, marks=pytest.mark.xfail(reason=why, strict=False),
                  id=f"{case[0]}{case[1]}={case[2]}")
     for case, why in KNOWN_BAD.items()] or [pytest.param("", "", "", marks=pytest.mark.skip(
         reason="no known bad case"))],
)
def test_known_bad_cases(command, option, value, tiny):
    run_case(["-q", command, option, value, *FIXED.get(command, [])], tiny)


@pytest.fixture(scope="module", autouse=True)
def _report_counts():
    yield
    print("\ncases per subcommand: " + ", ".join(f"{k} {v}" for k, v in sorted(COUNTS.items())))

"""The bad-input catalogue (issue 7): every bad input named once, on every surface it reaches.

Three tables, one test each, parametrised by case id:

* ``API_CASES`` call :mod:`optical_core` directly: a bad input raises its specific exception
  class (``OTInputError``, ``ModelLoadError``, ``RunError``, ...) with a message that says
  what to do; an input that only looks bad (emoji, a 5,000-token text, ε = 1e6) is served
  and the result is checked.
* ``CLI_CASES`` run ``optical ...`` in-process (:func:`optical_core.cli.entry.main`): an error is
  exactly one ``error: ...`` line on stderr and a non-zero exit, never a traceback; a served
  input exits 0, with one ``warning: ...`` line where there is something to say.
  :func:`test_cli_error_in_a_real_process` runs one case as a real process.
* ``APP_CASES`` drive the pages with Streamlit's ``AppTest``: an ``st.error`` (or an
  ``st.warning`` / ``st.info`` where the page simply waits for better input) and no exception
  element.

Every CLI and app case runs with a runs folder holding saved runs (a finished model, two
resumable checkpoints); its files are hashed before and after each case, so "nothing saved
is lost" is checked everywhere. The tiny random BERT of ``tests/_distill_models.py`` stands in
for a real model wherever the weights do not matter. ``docs/RELIABILITY.md`` lists every case
with its test id; :func:`test_reliability_doc_lists_every_case` keeps the two in step.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tomllib
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from _distill_models import make_tiny_model
from figure_support import figure_spec

from optical_core import data as D
from optical_core import runs as runs_mod
from optical_core.cli.entry import main
from optical_core.distill.checkpoints import validate_checkpoint
from optical_core.distill.config import CheckpointError, DistillConfig, DistillError
from optical_core.encoders.base import ModelLoadError, TruncationWarning, confine_model_path
from optical_core.encoders.registry import load_encoder
from optical_core.gold import load_gold_file
from optical_core.ot.batch import sinkhorn_batch
from optical_core.ot.config import OTConfig, OTInputError
from optical_core.ot.solve import solve
from optical_core.pairs.align import align_texts

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 90
LONG_TEXT = " ".join(["dog"] * 5000)  # 5,000 words, 5,000 tokens: far past any model limit
EMOJI = ("🐶🐶 🏖️", "😀")
# Latin, CJK and Cyrillic words; Arabic and Hebrew (right to left)
SCRIPTS = ("Hund 犬 собака dog", "مرحبا بالعالم שלום")
ZERO_WIDTH = "\u200b\u200b\u200d"  # not whitespace to str.strip, but no token either


# =========================================================================== fixtures


class _Evil:
    """Unpickling this creates a file: proof that a pickle was (or was not) executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _files(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (links followed), by relative path."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="session")
def lab(tmp_path_factory) -> dict[str, Path]:
    """Models (good and bad) and a runs folder with saved runs, built once."""
    base = tmp_path_factory.mktemp("bad-inputs")
    models = base / "models"
    tiny = Path(make_tiny_model(models / "tiny", seed=0))
    marker = base / "PICKLE-WAS-EXECUTED"

    junk = models / "not-a-model"
    junk.mkdir()
    (junk / "notes.txt").write_text("holiday photos\n")
    corrupt = models / "corrupt"
    shutil.copytree(tiny, corrupt)
    weights = (corrupt / "model.safetensors").read_bytes()
    (corrupt / "model.safetensors").write_bytes(weights[: len(weights) // 2])  # a cut-off copy
    pickle_only = models / "pickle-only"
    shutil.copytree(tiny, pickle_only)
    (pickle_only / "model.safetensors").unlink()
    torch.save({"weight": _Evil(marker)}, pickle_only / "pytorch_model.bin")
    both = models / "pickle-beside-safetensors"
    shutil.copytree(tiny, both)
    torch.save({"weight": _Evil(marker)}, both / "pytorch_model.bin")

    runs = base / "runs"
    cfg = DistillConfig(teacher=str(tiny), data="demo", pairs=8, batch_size=4, max_tokens=32)
    saved = runs / "saved-run"
    shutil.copytree(tiny, saved / "model")
    record = {"name": "saved-run", "status": "finished", "config": cfg.to_dict(), "evals": [],
              "step": 4, "updated_ts": 0}
    runs_mod.write_json_atomic(saved / "run.json", record)
    for name in ("damaged-checkpoint", "pickle-checkpoint"):
        run = runs / name
        ckpt = run / "checkpoints" / "checkpoint-2"
        ckpt.mkdir(parents=True)
        runs_mod.write_json_atomic(run / "run.json",
                                   {**record, "name": name, "status": "cancelled"})
        (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": 2}))
        shutil.copy(tiny / "modules.json", ckpt / "modules.json")
        if name == "pickle-checkpoint":
            torch.save({"weight": _Evil(marker)}, ckpt / "pytorch_model.bin")
        else:
            (ckpt / "model.safetensors").write_bytes(weights[: len(weights) // 3])
    return {"base": base, "models": models, "tiny": tiny, "runs": runs, "marker": marker,
            "junk": junk, "corrupt": corrupt, "pickle_only": pickle_only, "both": both}


@dataclass
class Ctx:
    """What a case may use: the session's models and runs and a fresh temporary folder."""

    lab: dict[str, Path]
    tmp: Path
    empty: Path  # a data folder without Multi30k or gold alignments
    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture | None = None

    def __getattr__(self, name: str) -> Path:
        try:
            return self.lab[name]
        except KeyError:
            raise AttributeError(name) from None

    def fmt(self, text: str) -> str:
        paths = {k: str(v) for k, v in self.lab.items()}
        return text.format(tmp=self.tmp, empty=self.empty, **paths)


@pytest.fixture
def ctx(lab, tmp_path, monkeypatch) -> Ctx:
    """Points the runs, models, data and cache folders at the lab; checks afterwards that
    no saved file changed and that no pickle was executed."""
    empty = tmp_path / "empty-data"
    empty.mkdir()
    monkeypatch.setenv("OPTICAL_RUNS_DIR", str(lab["runs"]))
    monkeypatch.setenv("OPTICAL_MODELS_DIR", str(lab["models"]))
    monkeypatch.setenv("OPTICAL_DATA_DIR", str(empty))  # main(--data-dir) sets it: undone here
    monkeypatch.setenv("OPTICAL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("OPTICAL_DISTILL_DEFAULTS", json.dumps({
        "teacher": str(lab["tiny"]), "data": "demo", "pairs": 8, "batch_size": 4,
        "max_tokens": 32, "max_steps": 2, "eval_limit": 4,
    }))
    before = _files(lab["runs"])
    yield Ctx(lab, tmp_path, empty, monkeypatch)
    assert _files(lab["runs"]) == before, "a saved file changed, appeared or went missing"
    assert not lab["marker"].exists(), "a pickle file was unpickled"


@pytest.fixture(scope="session")
def tiny_encoder(lab):
    return load_encoder(str(lab["tiny"]))


# ============================================================================== API


@dataclass(frozen=True)
class ApiCase:
    """``call(ctx, encoder)`` must raise ``raises`` with ``message`` in its text, or, when
    ``raises`` is None, return a value that ``check`` accepts."""

    id: str
    what: str
    call: Callable
    raises: type[BaseException] | None = None
    message: str = ""
    check: Callable | None = None
    holds: str = ""  # what happens, for the reliability table


def _valid_plan(pair) -> bool:
    p = pair.plan
    return bool(np.isfinite(p).all() and abs(p.sum() - 1) < 1e-6 and (p >= 0).all())


def _cost(scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(0).random((5, 6)) * scale


def _with_nan(c: np.ndarray) -> np.ndarray:
    c[2, 3] = np.nan
    return c


def _with_inf(c: np.ndarray) -> np.ndarray:
    c[2, 3] = np.inf
    return c


def _long_text(c, enc):
    with pytest.warns(TruncationWarning, match="cut to the model limit"):
        return align_texts(enc, LONG_TEXT, "a dog on the beach")


def _gold_files(c) -> tuple[Path, Path]:
    text, gold = c.tmp / "pairs.src-tgt", c.tmp / "pairs.gold"
    text.write_text("the cat sleeps ||| le chat dort\na dog ||| un chien\n", encoding="utf-8")
    gold.write_text("1-1 2-2 3-3\n1-1 9-2\n")  # line 2: source word 9 of 2
    return text, gold


def _checkpoint(c, run: str) -> Path:
    return c.runs / run / "checkpoints" / "checkpoint-2"


def _damaged_record(c, e):
    run = c.tmp / "runs" / "broken"
    run.mkdir(parents=True)
    (run / "run.json").write_text('{"status": "finis')  # cut off mid-write
    (run / "keep.txt").write_text("notes")
    listed = runs_mod.list_runs(c.tmp / "runs")
    assert (run / "run.json").read_text() == '{"status": "finis' and (run / "keep.txt").exists()
    return listed


API_CASES = [
    ApiCase("empty-text", "empty text", lambda c, e: e.token_embeddings([""]),
            ValueError, "is empty; give at least one word"),
    ApiCase("whitespace-only", "whitespace-only text", lambda c, e: e.token_embeddings([" \n\t "]),
            ValueError, "is empty; give at least one word"),
    ApiCase("zero-width-only", "only zero-width characters",
            lambda c, e: e.token_embeddings([ZERO_WIDTH]), ValueError, "no token"),
    ApiCase("5000-token-text", "a 5,000-token text", _long_text,
            check=lambda p: p.plan.shape[0] < 64 and _valid_plan(p)
            and "cut at the model's limit" in p.notes[0],
            holds="cut to the model limit with a TruncationWarning and a note; the rest aligned"),
    ApiCase("emoji", "emoji only", lambda c, e: align_texts(e, *EMOJI), check=_valid_plan,
            holds="aligned ([UNK] tokens); the plan is valid"),
    ApiCase("mixed-scripts-rtl", "mixed scripts and right-to-left text",
            lambda c, e: align_texts(e, *SCRIPTS),
            check=lambda p: _valid_plan(p) and len(p.src_words) == 4 and len(p.tgt_words) == 3,
            holds="aligned; words found in every script"),
    ApiCase("one-token-side", "a 1-token side", lambda c, e: align_texts(e, "dog", "A dog runs."),
            check=lambda p: p.plan.shape[0] == 1 and _valid_plan(p) and p.ot.converged,
            holds="a 1 × m plan, converged"),
    ApiCase("identical-tokens", "identical tokens",
            lambda c, e: align_texts(e, "the the the the", "the the"),
            check=lambda p: _valid_plan(p) and p.ot.converged, holds="a valid plan, converged"),
    ApiCase("nan-cost", "NaN in the cost matrix", lambda c, e: solve(_with_nan(_cost())),
            OTInputError, "NaN/inf entries (first at row 2, column 3)"),
    ApiCase("inf-cost", "inf in the cost matrix", lambda c, e: solve(_with_inf(_cost())),
            OTInputError, "check the embeddings for NaN or overflow"),
    ApiCase("nan-cost-batch", "NaN in a batched cost",
            lambda c, e: sinkhorn_batch(torch.tensor(_with_nan(_cost()))[None]),
            OTInputError, "NaN/inf entries on real tokens"),
    ApiCase("huge-cost-sinkhorn", "costs of 1e30 (Sinkhorn)", lambda c, e: solve(_cost(1e30)),
            OTInputError, "Divide the costs by their largest value"),
    ApiCase("huge-cost-unbalanced", "costs of 1e30 (unbalanced)",
            lambda c, e: solve(_cost(1e30), config=OTConfig(solver="unbalanced")),
            OTInputError, "cannot resolve that in float64"),
    ApiCase("huge-cost-batch", "costs of 1e30 (batched Sinkhorn)",
            lambda c, e: sinkhorn_batch(torch.tensor(_cost(1e30))[None]),
            OTInputError, "Divide the costs by their largest value"),
    ApiCase("huge-cost-exact", "costs of 1e30 (exact)",
            lambda c, e: solve(_cost(1e30), config=OTConfig(solver="exact")),
            check=lambda r: abs(r.plan.sum() - 1) < 1e-9 and r.marginal_error < 1e-9,
            holds="the exact solver handles them: a valid plan"),
    ApiCase("overflowing-cost-exact", "costs near 1e308 (exact)",
            lambda c, e: solve(_cost(1e308), config=OTConfig(solver="exact")),
            OTInputError, "overflow float64"),
    ApiCase("epsilon-zero", "ε = 0", lambda c, e: OTConfig(epsilon=0.0),
            OTInputError, "use the exact solver"),
    ApiCase("epsilon-zero-batch", "ε = 0 (batched)",
            lambda c, e: sinkhorn_batch(torch.tensor(_cost())[None], epsilon=0.0),
            OTInputError, "ε must be a finite number > 0"),
    ApiCase("epsilon-zero-distill", "ε = 0 (distillation)",
            lambda c, e: DistillConfig.from_options(epsilon=0.0).validate(), DistillError,
            "ε must be > 0"),
    ApiCase("epsilon-1e6", "ε = 1e6", lambda c, e: solve(_cost(), config=OTConfig(epsilon=1e6)),
            check=lambda r: np.allclose(r.plan, 1 / 30, atol=1e-6)
            and "practically the uniform coupling" in r.messages[0],
            holds="the uniform coupling, with a note saying so and to lower ε"),
    ApiCase("unknown-model-id", "unknown model id",
            lambda c, e: load_encoder("no-such-org/no-such-model-xyz"),
            ModelLoadError, "offline by default: use a local folder"),
    ApiCase("not-a-model-folder", "a folder that is not a model",
            lambda c, e: load_encoder(str(c.junk)), ModelLoadError, "is not a model folder"),
    ApiCase("model-path-is-a-file", "a file given as the model folder",
            lambda c, e: load_encoder(str(c.tiny / "config.json")), ModelLoadError,
            "point at the model's folder"),
    ApiCase("corrupt-safetensors", "corrupt safetensors",
            lambda c, e: load_encoder(str(c.corrupt)), ModelLoadError,
            "weights corrupt; re-save the model or pick another"),
    ApiCase("pickle-only-model", "a model whose weights are a pickle file",
            lambda c, e: load_encoder(str(c.pickle_only)), ModelLoadError,
            "only safetensors checkpoints are loaded"),
    ApiCase("pickle-beside-safetensors", "a pickle file next to safetensors weights",
            lambda c, e: load_encoder(str(c.both)), check=lambda enc: enc.dim == 32,
            holds="the safetensors weights load; the pickle is never opened"),
    ApiCase("checkpoint-with-pickle", "a training checkpoint with pickle weights",
            lambda c, e: validate_checkpoint(_checkpoint(c, "pickle-checkpoint")),
            CheckpointError, "holds no .safetensors weights"),
    ApiCase("damaged-checkpoint", "a training checkpoint with cut-off weights",
            lambda c, e: validate_checkpoint(_checkpoint(c, "damaged-checkpoint")),
            CheckpointError, "is not a valid safetensors file"),
    ApiCase("run-name-traversal", "path traversal in a run name",
            lambda c, e: runs_mod.run_path("../escape"), runs_mod.RunError, "invalid run name"),
    ApiCase("run-name-absolute", "an absolute path as a run name",
            lambda c, e: runs_mod.run_path("/tmp/elsewhere"), runs_mod.RunError,
            "use 1-80 letters, digits"),
    ApiCase("data-path-traversal", "path traversal under the data folder",
            lambda c, e: D.safe_join(c.empty, "..", "..", "etc"), ValueError,
            "escapes the data folder"),
    ApiCase("model-path-traversal", "path traversal in a model folder",
            lambda c, e: confine_model_path(str(c.runs) + "/../../.."), ModelLoadError,
            "outside the folders the app loads models from"),
    ApiCase("model-path-absolute", "an absolute model folder outside the allowed ones",
            lambda c, e: confine_model_path("/etc"), ModelLoadError, "OPTICAL_MODELS_DIR"),
    ApiCase("data-dir-without-multi30k", "a data folder without Multi30k",
            lambda c, e: D.load_multi30k("val", "de", data_dir=c.empty), D.DataNotFoundError,
            "optical download"),
    ApiCase("gold-out-of-range", "a gold file with out-of-range indices",
            lambda c, e: load_gold_file(*_gold_files(c)), ValueError,
            "pairs.gold:2: link '9-2': source index out of range (2 source tokens)"),
    ApiCase("damaged-run-record", "a run folder whose run.json was cut off", _damaged_record,
            check=lambda runs: [r.status for r in runs] == ["damaged"]
            and "damaged" in runs[0].problems[0],
            holds="listed as damaged with the reason; nothing is deleted"),
    ApiCase("bad-distill-config", "a distillation config out of range",
            lambda c, e: DistillConfig(max_tokens=4).validate(), DistillError,
            "max_tokens must lie in [8, 512]"),
]


@pytest.mark.parametrize("case", API_CASES, ids=[c.id for c in API_CASES])
def test_api(case: ApiCase, ctx: Ctx, tiny_encoder):
    if case.raises is None:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # no overflow / invalid value
            result = case.call(ctx, tiny_encoder)
        assert case.check(result), result
        return
    with pytest.raises(case.raises) as info:
        case.call(ctx, tiny_encoder)
    assert case.message in str(info.value)


# ============================================================================== CLI


@dataclass(frozen=True)
class CliCase:
    """``optical <argv>`` with ``stdin``: an error whose one stderr line holds ``message``,
    or (``ok``) exit 0 with ``lines`` lines on stdout and at most one ``warning:`` line
    holding ``message``. ``{tiny}``, ``{tmp}``, ``{empty}``, ``{runs}`` ... in ``argv`` name
    the lab's folders; ``files`` are written to ``{tmp}`` first."""

    id: str
    what: str
    argv: list[str]
    message: str
    stdin: str = ""
    ok: bool = False
    lines: int = 1
    files: dict[str, str] = field(default_factory=dict)
    absent: str = ""  # a path that must not exist afterwards

    @property
    def holds(self) -> str:
        if not self.ok:
            return "one `error:` line, exit 2"
        return "exit 0" + (", one `warning:` line" if self.message else "")


ALIGN = ["-q", "align", "--model", "{tiny}"]
EVAL_DEMO = ["-q", "evaluate", "--demo", "--cer", "0", "--bootstrap", "10"]
PAIR = "a dog runs on the beach ||| a puppy is on the sand\n"
TEXT = "the cat sleeps ||| le chat dort\n"

CLI_CASES = [
    CliCase("empty-side", "empty text on one side", ALIGN, "line 1: one side of the pair is empty",
            stdin=" ||| a dog\n"),
    CliCase("whitespace-only", "whitespace-only pair", ALIGN, "one side of the pair is empty",
            stdin="   |||  \t \n"),
    CliCase("no-pairs", "an input with no pairs", ALIGN, "no 'source ||| target' lines",
            stdin="\n\n"),
    CliCase("missing-separator", "a line without |||", ALIGN,
            "line 2: expected 'source ||| target'", stdin=PAIR + "just one sentence\n"),
    CliCase("zero-width-only", "only zero-width characters", ALIGN, "gives the model no token",
            stdin=f"{ZERO_WIDTH} ||| a dog\n"),
    CliCase("5000-token-text", "a 5,000-token text", ALIGN, "longer than the model limit",
            stdin=f"{LONG_TEXT} ||| a dog\n", ok=True),
    CliCase("emoji-mixed-scripts-rtl", "emoji, mixed scripts and right-to-left text", ALIGN, "",
            stdin=f"{EMOJI[0]} ||| {EMOJI[1]}\n{SCRIPTS[0]} ||| {SCRIPTS[1]}\n", ok=True, lines=2),
    CliCase("one-token-identical", "a 1-token side; identical tokens", ALIGN, "",
            stdin="dog ||| a dog runs\nthe the the ||| the the\n", ok=True, lines=2),
    CliCase("epsilon-zero", "ε = 0", [*ALIGN, "--epsilon", "0"], "use the exact solver",
            stdin=PAIR),
    CliCase("epsilon-1e6", "ε = 1e6", [*ALIGN, "--epsilon", "1e6"],
            "practically the uniform coupling", stdin=PAIR, ok=True),
    CliCase("epsilon-not-a-number", "ε that is not a number", ["align", "--epsilon", "abc"],
            "argument --epsilon: invalid float value: 'abc' (see 'optical align --help')"),
    CliCase("unknown-model-id", "unknown model id",
            ["-q", "align", "--model", "no-such-org/no-such-model-xyz"], "unknown model",
            stdin=PAIR),
    CliCase("not-a-model-folder", "a folder that is not a model",
            ["-q", "align", "--model", "{junk}"], "is not a model folder", stdin=PAIR),
    CliCase("corrupt-safetensors", "corrupt safetensors", ["-q", "align", "--model", "{corrupt}"],
            "weights corrupt", stdin=PAIR),
    CliCase("pickle-only-model", "a model whose weights are a pickle file",
            ["-q", "align", "--model", "{pickle_only}"], "has no .safetensors weights", stdin=PAIR),
    CliCase("checkpoint-with-pickle", "resuming from a checkpoint with pickle weights",
            ["-q", "distill", "--resume", "--out", "{runs}/pickle-checkpoint"],
            "holds no .safetensors weights"),
    CliCase("damaged-checkpoint", "resuming from a checkpoint with cut-off weights",
            ["-q", "distill", "--resume", "--out", "{runs}/damaged-checkpoint"],
            "is not a valid safetensors file"),
    CliCase("distill-over-saved-run", "a new run into a folder that holds a run",
            ["-q", "distill", "--demo-data", "--teacher", "{tiny}", "--out", "{runs}/saved-run"],
            "already holds a run"),
    CliCase("split-traversal", "path traversal in a split name",
            ["-q", "evaluate", "--split", "../../etc/passwd"], "argument --split: invalid choice"),
    CliCase("data-dir-without-multi30k", "a data folder without Multi30k (evaluate)",
            ["-q", "evaluate", "--model", "{tiny}", "--data-dir", "{empty}", "--limit", "5"],
            "Multi30k file not found: multi30k/task1/raw/test_2016_flickr"),
    CliCase("data-dir-without-multi30k-distill", "a data folder without Multi30k (distill)",
            ["-q", "distill", "--teacher", "{tiny}", "--data-dir", "{empty}",
             "--out", "{tmp}/new-run"],
            "--demo-data", absent="{tmp}/new-run"),
    CliCase("gold-out-of-range", "a gold file with out-of-range indices",
            ["score", "--gold", "{tmp}/g", "--pred", "{tmp}/p", "--text", "{tmp}/t",
             "--one-indexed"],
            "{tmp}/g, line 1: link 4-2 is outside the sentence (3 source, 3 target words",
            files={"t": TEXT, "g": "1-1 4-2\n", "p": "1-1\n"}),
    CliCase("pred-out-of-range", "predicted links out of range",
            ["score", "--gold", "{tmp}/g", "--pred", "{tmp}/p", "--text", "{tmp}/t"],
            "{tmp}/p, line 1: link 0-7 is outside the sentence",
            files={"t": TEXT, "g": "0-0\n", "p": "0-7\n"}),
    CliCase("gold-malformed", "a malformed gold file",
            ["score", "--gold", "{tmp}/g", "--pred", "{tmp}/p"],
            "line 1: malformed Pharaoh token '1-x'", files={"g": "1-x\n", "p": "0-0\n"}),
    CliCase("gold-line-count", "gold and predictions of different lengths",
            ["score", "--gold", "{tmp}/g", "--pred", "{tmp}/p"], "has 2 lines but",
            files={"g": "0-0\n1-1\n", "p": "0-0\n"}),
    CliCase("cer-out-of-range", "a noise level above 100 %",
            ["-q", "evaluate", "--demo", "--cer", "2"], "--cer must lie in [0, 1]"),
    CliCase("missing-input-file", "an input file that does not exist",
            ["align", "{tmp}/nope.txt"], "cannot read"),
    CliCase("doc-encoder-unknown", "a document encoder that does not load",
            [*EVAL_DEMO, "--model", "{tiny}", "--doc-encoder", "no-such-org/no-such-model-xyz"],
            "--doc-encoder no-such-org/no-such-model-xyz: unknown model"),
    CliCase("doc-encoder-teacher-of-a-model", "the teacher of a model that is not a run",
            [*EVAL_DEMO, "--model", "{tiny}", "--doc-encoder", "teacher"],
            "is not a distillation run folder (it has no run.json), so it records no teacher"),
    CliCase("run-without-teacher", "a run folder whose record names no teacher",
            [*EVAL_DEMO, "--model", "{tmp}/old-run"], "run.json records no teacher",
            files={"old-run/run.json": '{"status": "finished", "config": {}}'}),
    CliCase("doc-encoder-width", "a document encoder of another width than the student",
            [*EVAL_DEMO, "--model", "{runs}/saved-run", "--doc-encoder", "default"],
            "gives 384-d ones, which cannot be compared"),
    CliCase("shard-malformed", "a shard that is not K/N",
            ["experiment", "--quick", "--shard", "3/2"],
            "--shard: a shard is K/N with 1 <= K <= N (e.g. 1/2), got '3/2'"),
    CliCase("score-empty-files", "an empty gold and an empty prediction file",
            ["score", "--gold", "{tmp}/g", "--pred", "{tmp}/p"], "are both empty",
            files={"g": "", "p": ""}),
    CliCase("score-gold-without-links", "a gold file without any link",
            ["score", "--gold", "{tmp}/g", "--pred", "{tmp}/p"],
            "has no link on any of its 2 lines", files={"g": "\n\n", "p": "0-0\n\n"}),
    CliCase("score-possible-in-pred", "possible ('ipj') links in a prediction file",
            ["score", "--gold", "{tmp}/g", "--pred", "{tmp}/p"],
            "2 possible ('ipj') links on 1 of 1 lines", ok=True, lines=5,
            files={"g": "0-0 1-1\n", "p": "0-0 1p1 2p2\n"}),
    CliCase("align-blank-line", "a blank line between pairs", ALIGN,
            "1 blank input line got a blank output line", stdin=PAIR + "\n" + PAIR, ok=True,
            lines=3),
    CliCase("align-threshold-nan", "a threshold that is not a finite number",
            [*ALIGN, "--threshold", "nan"], "--threshold must be a finite number", stdin=PAIR),
    CliCase("align-output-folder-missing", "an output file in a folder that does not exist",
            [*ALIGN, "-o", "{tmp}/no/links.txt"], "the folder {tmp}/no does not exist",
            stdin=PAIR, absent="{tmp}/no"),
    CliCase("align-output-is-a-folder", "an output path that is a folder",
            [*ALIGN, "-o", "{tmp}"], "--output {tmp} is a folder", stdin=PAIR),
    CliCase("download-into-users-folder", "a download into a folder of the user's files",
            ["download", "--dest", "{tmp}/mine"], "already holds files that optical did not write",
            files={"mine/notes.txt": "the user's notes\n"}, absent="{tmp}/mine/multi30k"),
    CliCase("evaluate-bootstrap-huge", "a bootstrap of 10^12 resamples",
            [*EVAL_DEMO[:-1], "1000000000000"], "--bootstrap must lie in [10, 100,000]"),
]


def _cli(case: CliCase, c: Ctx) -> tuple[int, str, str]:
    for name, content in case.files.items():
        (c.tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (c.tmp / name).write_text(content, encoding="utf-8")
    c.monkeypatch.setattr(sys, "stdin", io.StringIO(case.stdin))
    try:
        code = main([c.fmt(a) for a in case.argv])
    except SystemExit as exc:  # argparse
        code = exc.code
    out = c.capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_cli(case: CliCase, ctx: Ctx, capsys):
    ctx.capsys = capsys
    code, out, err = _cli(case, ctx)
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err
    if case.ok:
        assert code == 0, err
        assert len(out.splitlines()) == case.lines
        assert all(line.startswith("warning: ") for line in lines) and len(lines) <= 1, err
        assert case.message in err
    else:
        assert code != 0
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert ctx.fmt(case.message) in lines[0]
    if case.absent:
        assert not Path(ctx.fmt(case.absent)).exists()


def test_cli_error_in_a_real_process(lab, tmp_path):
    """The console entry as a real process: imports, warnings and logging of torch and
    transformers add nothing to the one error line."""
    env = dict(os.environ, OPTICAL_CACHE_DIR=str(tmp_path), HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, "-m", "optical_core.cli", "align", "--model", str(lab["corrupt"])],
        input=PAIR, capture_output=True, text=True, timeout=300, env=env, check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: could not load the model folder"), proc.stderr
    assert proc.stdout == ""


# ============================================================================== app


@dataclass(frozen=True)
class AppCase:
    """Run ``page`` with ``state`` in the session (and ``act`` on it): the page shows an
    element of ``kind`` holding ``message`` and no exception; ``check`` may look further."""

    id: str
    what: str
    page: str
    state: dict
    kind: str
    message: str
    act: Callable | None = None
    check: Callable | None = None
    setup: Callable | None = None

    @property
    def holds(self) -> str:
        shown = {"error": "`st.error`", "warning": "`st.warning`", "info": "`st.info`",
                 "caption": "a caption"}.get(self.kind, "the plan is drawn")
        return f"{shown}, no exception"


ALIGNMENT, DISTILLATION, RETRIEVAL = "1_Alignment.py", "2_Distillation.py", "3_Retrieval.py"


def _tiny(**state) -> dict:
    return {"optical_model_id": "{tiny}", **state}


def _start(name: str) -> Callable:
    def act(at):
        at.text_input(key="distill_run_name").set_value(name)
        return next(b for b in at.button if b.label == "Start training").click().run()
    return act


def _plan_shape(at) -> tuple[int, ...]:
    spec = figure_spec(at, "plan")
    z = spec["data"][0]["z"]
    if isinstance(z, dict):  # plotly's typed-array JSON
        return tuple(int(x) for x in str(z["shape"]).split(","))
    return np.asarray(z).shape


def _gold_data(c: Ctx) -> None:
    gold = c.empty / "gold_alignments"
    gold.mkdir()
    (gold / "enfr.src-tgt").write_text(TEXT, encoding="utf-8")
    (gold / "enfr.gold").write_text("1-1 2-2 7-3\n")
    for ext in ("src-tgt", "gold"):  # roen is present and fine
        (gold / f"roen.{ext}").write_text({"src-tgt": TEXT, "gold": "1-1\n"}[ext])


APP_CASES = [
    AppCase("empty-text", "empty text", ALIGNMENT, _tiny(al_src=""), "warning",
            "The source text is empty. Type at least one word"),
    AppCase("whitespace-only", "whitespace-only text", ALIGNMENT, _tiny(al_tgt=" \n\t "),
            "warning", "The target text is empty"),
    AppCase("zero-width-only", "only zero-width characters", ALIGNMENT, _tiny(al_src=ZERO_WIDTH),
            "error", "Encoding the texts: Text 0 gives the model no token"),
    AppCase("5000-token-text", "a 5,000-token text", ALIGNMENT, _tiny(al_src=LONG_TEXT), "warning",
            "cut at the model's limit", check=lambda at: _plan_shape(at)[0] < 64),
    AppCase("emoji", "emoji only", ALIGNMENT, _tiny(al_src=EMOJI[0], al_tgt=EMOJI[1]), "warning",
            "unknown to the model's vocabulary ([UNK]), e.g. emoji",
            check=lambda at: len(_plan_shape(at)) == 2),
    AppCase("mixed-scripts-rtl", "mixed scripts and right-to-left text", ALIGNMENT,
            _tiny(al_src=SCRIPTS[0], al_tgt=SCRIPTS[1], al_level="word"), "", "",
            check=lambda at: _plan_shape(at) == (4, 3)),
    AppCase("one-token-side", "a 1-token side", ALIGNMENT, _tiny(al_src="dog"), "", "",
            check=lambda at: _plan_shape(at)[0] == 1),
    AppCase("identical-tokens", "identical tokens", ALIGNMENT,
            _tiny(al_src="the the the the", al_tgt="the the"), "", "",
            check=lambda at: _plan_shape(at) == (4, 2)),
    AppCase("unknown-model-id", "unknown model id", ALIGNMENT,
            {"optical_model_id": "no-such-org/no-such-model-xyz"}, "error",
            "Could not load the model"),
    AppCase("not-a-model-folder", "a folder that is not a model", ALIGNMENT,
            {"optical_model_id": "{junk}"}, "error", "is not a model folder"),
    AppCase("corrupt-safetensors", "corrupt safetensors", ALIGNMENT,
            {"optical_model_id": "{corrupt}"}, "error", "weights corrupt"),
    AppCase("pickle-only-model", "a model whose weights are a pickle file", ALIGNMENT,
            {"optical_model_id": "{pickle_only}"}, "error", "has no .safetensors weights"),
    AppCase("model-path-traversal", "path traversal in a typed model folder", ALIGNMENT,
            {"optical_model_id": "{models}/../../../etc"}, "error",
            "is outside the folders the app loads models from"),
    AppCase("model-path-absolute", "an absolute model folder outside the allowed ones", ALIGNMENT,
            {"optical_model_id": "/etc"}, "error", "list its parent folder in OPTICAL_MODELS_DIR"),
    AppCase("run-name-traversal", "path traversal in a run name", DISTILLATION, {}, "error",
            "run name '../escape': use 1-80 letters", act=_start("../escape")),
    AppCase("run-name-absolute", "an absolute path as a run name", DISTILLATION, {}, "error",
            "run name '/tmp/elsewhere': use 1-80 letters", act=_start("/tmp/elsewhere")),
    AppCase("run-name-taken", "the name of a saved run", DISTILLATION, {}, "error",
            "run named 'saved-run' already exists; pick another name", act=_start("saved-run")),
    AppCase("gold-out-of-range", "a gold file with out-of-range indices", ALIGNMENT,
            _tiny(al_source="gold", al_g_pair="enfr"), "error",
            "link '7-3': source index out of range (3 source tokens)", setup=_gold_data),
    AppCase("data-dir-without-multi30k", "a data folder without Multi30k", ALIGNMENT, _tiny(),
            "caption", "OPTICAL_DATA_DIR",
            check=lambda at: at.radio(key="al_source").options == ["Type two texts", "Demo set"]),
    AppCase("data-dir-without-multi30k-retrieval", "a data folder without Multi30k (retrieval)",
            RETRIEVAL, _tiny(), "info", "Multi30k was not found, so this tiny corpus stands in"),
    AppCase("empty-query", "an empty query", RETRIEVAL, _tiny(ret_source="typed", ret_typed="   "),
            "warning", "Type a query (at least one word)"),
]


def _fill(value, c: Ctx):
    return c.fmt(value) if isinstance(value, str) else value


@pytest.mark.parametrize("case", APP_CASES, ids=[c.id for c in APP_CASES])
def test_app(case: AppCase, ctx: Ctx):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from ui.common import data_sources

    if case.setup is not None:
        case.setup(ctx)
    st.cache_data.clear()  # data_sources and the pages' data caches: see this test's data folder
    data_sources.clear()
    at = AppTest.from_file(str(ROOT / "pages" / case.page), default_timeout=TIMEOUT)
    for key, value in case.state.items():
        at.session_state[key] = _fill(value, ctx)
    at.run()
    if case.act is not None:
        case.act(at)
    assert not at.exception, [e.value for e in at.exception]
    if case.kind:
        shown = "\n".join(str(e.value) for e in getattr(at, case.kind))
        assert ctx.fmt(case.message) in shown, shown
    if case.kind != "error":
        assert not at.error, [e.value for e in at.error]
    if case.check is not None:
        assert case.check(at)


# ===================================================== a cancel during a checkpoint save


@pytest.mark.parametrize("moment", ["while-writing", "while-swapping"])
def test_cancel_during_model_save_keeps_the_previous_model(moment, lab, tmp_path, monkeypatch):
    """Ctrl-C (KeyboardInterrupt) in the middle of :func:`runs.save_model_atomic`: the model
    folder saved before is still there, byte for byte, and loads; no temporary folder is left."""
    from sentence_transformers import SentenceTransformer

    from optical_core.encoders.transformer import load_sentence_transformer

    target = tmp_path / "run" / runs_mod.MODEL_DIR
    shutil.copytree(lab["tiny"], target)
    before = _files(target)
    model = SentenceTransformer(str(lab["tiny"]), device="cpu")
    with torch.no_grad():
        next(model.parameters()).add_(1.0)  # the new model differs from the saved one
    if moment == "while-writing":
        real_save = model.save_pretrained

        def interrupted_save(path, **kw):
            real_save(path, **kw)
            weights = Path(path) / "model.safetensors"
            weights.write_bytes(weights.read_bytes()[:1000])  # half written...
            raise KeyboardInterrupt  # ...when the user cancels

        monkeypatch.setattr(model, "save_pretrained", interrupted_save)
    else:  # after the old folder was moved aside, before the new one took its place
        real_replace, renames = os.replace, []

        def interrupted_replace(src, dst):
            if Path(dst).parent == target.parent:  # the swap, not a file inside the new folder
                renames.append(dst)
                if len(renames) == 2:  # old folder moved aside; new one not yet in place
                    raise KeyboardInterrupt
            return real_replace(src, dst)

        monkeypatch.setattr(os, "replace", interrupted_replace)
    with pytest.raises(KeyboardInterrupt):
        runs_mod.save_model_atomic(model, target)
    monkeypatch.undo()
    assert _files(target) == before
    assert sorted(p.name for p in target.parent.iterdir()) == [runs_mod.MODEL_DIR]
    reloaded = load_sentence_transformer(str(target), "cpu")
    assert reloaded.encode(["a dog"]).shape == (1, 32)


# ===================================================== safe loading and server settings


UNSAFE_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "joblib", "marshal", "shelve"}


def unsafe_loads(source: str, filename: str = "<source>") -> list[str]:
    """Unsafe loading in Python source: pickle-family imports, ``torch.load`` without
    ``weights_only=True``, ``numpy.load(allow_pickle=True)``, ``trust_remote_code`` other than
    ``False``, and a ``SentenceTransformer`` / ``from_pretrained`` call without
    ``trust_remote_code=False``."""
    found = []

    def kw(call: ast.Call, name: str):
        return next((k.value for k in call.keywords if k.arg == name), None)

    def is_const(node, value) -> bool:
        return isinstance(node, ast.Constant) and node.value is value

    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                names = [node.module or ""]
            found += [f"{where}: imports {n}" for n in names if n.split(".")[0] in UNSAFE_MODULES]
        if not isinstance(node, ast.Call):
            continue
        func = ast.unparse(node.func)
        leaf = func.rsplit(".", 1)[-1]
        if func == "torch.load" and not is_const(kw(node, "weights_only"), True):
            found.append(f"{where}: {func}() without weights_only=True")
        if func in ("np.load", "numpy.load") and is_const(kw(node, "allow_pickle"), True):
            found.append(f"{where}: {func}(allow_pickle=True)")
        trust = kw(node, "trust_remote_code")
        if trust is not None and not is_const(trust, False):
            found.append(f"{where}: trust_remote_code={ast.unparse(trust)}")
        if leaf in ("SentenceTransformer", "from_pretrained") and trust is None:
            found.append(f"{where}: {func}() without trust_remote_code=False")
    return found


def _sources() -> list[Path]:
    files = [ROOT / "app.py", *(ROOT / "pages").glob("*.py")]
    for folder in ("optical_core", "ui", "bench"):
        files += (ROOT / folder).rglob("*.py")
    return sorted(p for p in files if p.is_file())


def test_no_unsafe_loading_in_the_source():
    snippet = ("import pickle\nimport torch\ntorch.load(f)\ntorch.load(f, weights_only=False)\n"
               "np.load(f, allow_pickle=True)\nSentenceTransformer(p)\n"
               "AutoModel.from_pretrained(p, trust_remote_code=True)\n")
    assert len(unsafe_loads(snippet)) == 6  # the audit sees each kind
    assert unsafe_loads("torch.load(f, weights_only=True)\nSentenceTransformer(p, "
                        "trust_remote_code=False)\nnp.load(f, allow_pickle=False)\n") == []
    problems = []
    for f in _sources():
        problems += unsafe_loads(f.read_text(encoding="utf-8"), str(f.relative_to(ROOT)))
    assert problems == []


def _streamlit_config() -> dict:
    return tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))


def test_streamlit_config_limits_uploads_and_checks_xsrf():
    server = _streamlit_config()["server"]
    assert server["enableXsrfProtection"] is True
    assert isinstance(server["maxUploadSize"], int) and 1 <= server["maxUploadSize"] <= 200
    assert server.get("enableCORS", True) is True  # Streamlit drops XSRF checks without CORS


def oversized_uploaders(source: str, limit_mb: int, filename: str = "<page>") -> list[str]:
    """``st.file_uploader`` calls that do not cap the size at ``limit_mb`` or below."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("file_uploader"):
            size = next((k.value for k in node.keywords if k.arg == "max_upload_size"), None)
            if not (isinstance(size, ast.Constant) and isinstance(size.value, int)
                    and 0 < size.value <= limit_mb):
                found.append(f"{filename}:{node.lineno}: file_uploader without max_upload_size "
                             f"<= {limit_mb} MB")
    return found


def test_every_upload_widget_caps_its_size():
    limit = _streamlit_config()["server"]["maxUploadSize"]
    assert len(oversized_uploaders("st.file_uploader('x')\nc.file_uploader('y', "
                                   f"max_upload_size={limit + 1})\n", limit)) == 2
    assert oversized_uploaders(f"st.file_uploader('x', max_upload_size={limit})", limit) == []
    pages = [ROOT / "app.py", *(ROOT / "pages").glob("*.py")]
    found = []
    for f in pages:
        found += oversized_uploaders(f.read_text(encoding="utf-8"), limit, f.name)
    assert found == []


def test_upload_without_xsrf_token_is_refused(tmp_path):
    """The running server (this repository's config) refuses an upload that lacks the XSRF
    token: what a cross-site page would send."""
    from browser_support import streamlit_server

    with streamlit_server(tmp_path, OPTICAL_RUNS_DIR=str(tmp_path / "runs")) as url:
        request = urllib.request.Request(f"{url}/_stcore/upload_file/session/file", data=b"x" * 64,
                                         method="PUT")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=30)
    assert info.value.code == 403


# ====================================================================== the document


def test_reliability_doc_lists_every_case():
    doc = (ROOT / "docs" / "RELIABILITY.md").read_text(encoding="utf-8")
    ids = ([f"test_api[{c.id}]" for c in API_CASES] + [f"test_cli[{c.id}]" for c in CLI_CASES]
           + [f"test_app[{c.id}]" for c in APP_CASES])
    missing = [i for i in ids if f"tests/test_bad_inputs.py::{i}" not in doc]
    assert missing == []

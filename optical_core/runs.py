"""Run folders of distillation jobs: where they live, how they are written and read.

Layout of one run (``<runs dir>/<name>/``)::

    run.json                  config, status, metrics per eval, loss history, data sizes,
                              seed, package versions (written atomically)
    probe.json                plan snapshots of the probe pair over training (atomic)
    model/                    the student as a sentence-transformers folder (safetensors),
                              replaced atomically at the end of a run (finished or cancelled)
    checkpoints/checkpoint-N/ trainer checkpoints (model, optimizer, scheduler, RNG, state)
                              used by ``resume``

The runs directory is ``$OPTICAL_RUNS_DIR`` or ``./runs``. Names typed in the app go
through :func:`run_path`, which only accepts plain names and keeps every path inside the
runs directory; the CLI may pass any folder (``--out``).

``status`` is one of ``running``, ``finished``, ``cancelled``, ``failed``; a ``running``
run whose record has not been touched for :data:`STALE_AFTER_S` seconds is reported as
``interrupted`` (the process that trained it is gone: resume it).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_RUNS_DIR = "OPTICAL_RUNS_DIR"
RUN_FILE = "run.json"
PROBE_FILE = "probe.json"
MODEL_DIR = "model"
CHECKPOINT_DIR = "checkpoints"
STATUSES = ("running", "finished", "cancelled", "failed")
#: a "running" record older than this (no heartbeat) is shown as interrupted
STALE_AFTER_S = 600.0
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")


class RunError(ValueError):
    """A run name, folder or record that cannot be used; the message says what to do."""


def runs_dir() -> Path:
    """The runs directory: ``$OPTICAL_RUNS_DIR`` or ``./runs`` (absolute, may not exist)."""
    env = os.environ.get(ENV_RUNS_DIR)
    return Path(env).expanduser().resolve() if env else (Path.cwd() / "runs").resolve()


def check_name(name: str) -> str:
    """Validate a run name: letters, digits, ``.``, ``_``, ``-``; 1–80 characters."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or name in {".", ".."} or ".." in name:
        raise RunError(
            f"invalid run name {name!r}: use 1-80 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def run_path(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """``<runs dir>/<name>``, with the name validated and the result kept inside the root."""
    base = Path(root).expanduser().resolve() if root is not None else runs_dir()
    path = Path(os.path.normpath(base / check_name(name)))
    if path.parent != base:
        raise RunError(f"run name {name!r} leaves the runs directory {base}")
    return path


def suggest_name(prefix: str = "run", root: str | os.PathLike[str] | None = None) -> str:
    """A fresh name ``prefix-YYYYmmdd-HHMMSS`` (with a counter if it is taken)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = f"{prefix}-{stamp}"
    name, k = base, 1
    while run_path(name, root).exists():
        k += 1
        name = f"{base}-{k}"
    return name


# ----------------------------------------------------------------------- writing


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """Write JSON to a temporary file in the same folder, fsync, then ``os.replace``.

    A reader (or a crash) sees either the old file or the new one, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1, ensure_ascii=False, default=_json_default)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def save_model_atomic(model, target: str | os.PathLike[str]) -> Path:
    """Save a sentence-transformers model to ``target`` so that it appears all at once.

    The model is written to a temporary sibling folder and renamed into place; an older
    folder at ``target`` is moved aside first and removed afterwards. Weights are
    safetensors.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    old: Path | None = None
    try:
        model.save_pretrained(str(tmp), safe_serialization=True)
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}-{int(time.time() * 1000)}")
            os.replace(target, old)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists() and not target.exists():
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target


# ----------------------------------------------------------------------- reading


@dataclass
class RunInfo:
    """What :func:`list_runs` / :func:`load_run` know about one run folder."""

    name: str
    path: Path
    status: str
    record: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.record.get("config", {}))

    @property
    def evals(self) -> list[dict[str, Any]]:
        return list(self.record.get("evals", []))

    @property
    def last_metrics(self) -> dict[str, float]:
        evals = self.evals
        return dict(evals[-1].get("metrics", {})) if evals else {}

    @property
    def model_path(self) -> Path | None:
        """The saved student folder, or ``None`` when there is none (yet)."""
        p = self.path / MODEL_DIR
        return p if (p / "modules.json").is_file() and any(p.glob("*.safetensors")) else None

    @property
    def loadable(self) -> bool:
        return self.model_path is not None

    @property
    def label(self) -> str:
        cfg = self.config
        m = self.last_metrics
        mrr = next((v for k, v in m.items() if k.endswith("mrr@10")), None)
        bits = [cfg.get("lang", "?"), cfg.get("loss", "?"), self.status]
        if mrr is not None:
            bits.append(f"MRR@10 {100 * mrr:.1f}")
        return f"{self.name} ({', '.join(str(b) for b in bits)})"


def read_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse ``<path>/run.json``; :class:`RunError` with the reason if it is unusable."""
    f = Path(path) / RUN_FILE
    if not f.is_file():
        raise RunError(f"{path} is not a run folder: it has no {RUN_FILE}")
    try:
        rec = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError(f"{f} is unreadable ({exc}); the run record is damaged") from None
    if not isinstance(rec, dict):
        raise RunError(f"{f} does not hold a JSON object")
    return rec


def load_run(path_or_name: str | os.PathLike[str],
             root: str | os.PathLike[str] | None = None) -> RunInfo:
    """Load a run by folder path, or by name inside the runs directory."""
    p = Path(path_or_name)
    if not p.is_dir() and _NAME_RE.match(str(path_or_name)):
        p = run_path(str(path_or_name), root)
    rec = read_record(p)
    return RunInfo(name=p.name, path=p.resolve(), status=effective_status(rec), record=rec,
                   problems=validate_record(rec))


def effective_status(rec: dict[str, Any], now: float | None = None) -> str:
    status = str(rec.get("status", "unknown"))
    if status == "running":
        updated = rec.get("updated_ts")
        if isinstance(updated, (int, float)) and (now or time.time()) - updated > STALE_AFTER_S:
            return "interrupted"
    return status


def validate_record(rec: dict[str, Any]) -> list[str]:
    """Problems with a run record (empty when it is fine)."""
    problems = []
    if rec.get("status") not in STATUSES:
        problems.append(f"unknown status {rec.get('status')!r}")
    if not isinstance(rec.get("config"), dict):
        problems.append("no config")
    if not isinstance(rec.get("evals", []), list):
        problems.append("evals is not a list")
    return problems


def list_runs(root: str | os.PathLike[str] | None = None) -> list[RunInfo]:
    """Every run folder (one with a readable ``run.json``) in the runs directory, newest first.

    Folders whose record is damaged are listed with ``status="damaged"`` and the reason in
    ``problems`` rather than hidden.
    """
    base = Path(root).expanduser().resolve() if root is not None else runs_dir()
    if not base.is_dir():
        return []
    out: list[RunInfo] = []
    for p in base.iterdir():
        if not p.is_dir() or p.name.startswith(".") or not (p / RUN_FILE).exists():
            continue
        try:
            out.append(load_run(p))
        except RunError as exc:
            out.append(RunInfo(name=p.name, path=p.resolve(), status="damaged",
                               problems=[str(exc)]))
    out.sort(key=lambda r: r.record.get("updated_ts", 0), reverse=True)
    return out


def loadable_runs(root: str | os.PathLike[str] | None = None) -> list[RunInfo]:
    """Runs with a saved student model (finished or cancelled), for the model pickers."""
    return [r for r in list_runs(root) if r.loadable]


def resolve_model_dir(path: str | os.PathLike[str]) -> Path:
    """A run folder → its ``model/`` folder; any other path is returned unchanged."""
    p = Path(path)
    if (p / RUN_FILE).is_file() and (p / MODEL_DIR).is_dir():
        return p / MODEL_DIR
    return p


def is_run_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder holding a run record (``run.json``)."""
    return (Path(path).expanduser() / RUN_FILE).is_file()


def run_teacher(path: str | os.PathLike[str]) -> str:
    """The teacher a run was distilled from: what ``load_encoder`` takes (``"default"`` for
    the embedded MiniLM).

    Runs record it at the top level of ``run.json`` (``"teacher"``); older ones only in
    their config, where ``None`` meant the embedded MiniLM.

    Raises:
        RunError: ``path`` is not a run folder, its record is damaged, or it records no
            teacher.
    """
    if not is_run_folder(path):
        raise RunError(f"{path} is not a distillation run folder (it has no {RUN_FILE}), so "
                       "it records no teacher; name the document encoder's model instead")
    rec = read_record(Path(path).expanduser())
    if rec.get("teacher"):
        return str(rec["teacher"])
    cfg = rec.get("config")
    if isinstance(cfg, dict) and "teacher" in cfg:
        return str(cfg["teacher"] or "default")
    raise RunError(f"{Path(path) / RUN_FILE} records no teacher; name the document "
                   "encoder's model (the teacher's model id or folder) instead")


def read_probe(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The probe snapshots of a run (``None`` if there are none or the file is damaged)."""
    f = Path(path) / PROBE_FILE
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def primary_mrr_key(metrics) -> str | None:
    """The name of the MRR@10 entry among a run's logged metric names, whatever prefix the
    evaluator's name added (``val_mrr@10``, ``eval_val_mrr@10``); ``None`` when absent."""
    return next((k for k in metrics if k.endswith("mrr@10")), None)


def primary_mrr(metrics: dict[str, float]) -> float | None:
    """The MRR@10 value in a run's logged metrics (see :func:`primary_mrr_key`)."""
    key = primary_mrr_key(metrics)
    return None if key is None else metrics[key]


#: What a run writes into its folder; :func:`clear_run` removes these and nothing else.
RUN_ENTRIES = (RUN_FILE, PROBE_FILE, MODEL_DIR, CHECKPOINT_DIR)


def startable(rec: dict[str, Any], run_dir: Path) -> bool:
    """Whether a recorded run may be started again from scratch without ``--restart``: it
    failed before any step finished (no step recorded, no checkpoint written), so nothing
    of it is lost."""
    checkpoints = run_dir / CHECKPOINT_DIR
    no_checkpoint = not checkpoints.is_dir() or not any(checkpoints.iterdir())
    return rec.get("status") == "failed" and not rec.get("step") and no_checkpoint


def claim_run_folder(path: str | os.PathLike[str], resume: bool = False,
                     restart: bool = False) -> dict[str, Any] | None:
    """Check that a new run (or a resumed one) may use the folder ``path``; changes nothing.

    A new run takes a folder that does not exist or is empty, or one whose run failed
    before its first step (:func:`startable`), or, with ``restart``, any run of this tool.
    A folder that holds other files and no ``run.json`` (the current folder, the user's
    files) is never taken over.

    Returns:
        The folder's run record when there is one (``resume``, or a run to start again),
        else ``None``.

    Raises:
        RunError: naming the folder and what to do instead.
    """
    p = Path(path)
    if resume:
        rec = read_record(p)
        if not isinstance(rec.get("config", {}), dict):
            raise RunError(f"{p / RUN_FILE}: its config is not a table of options; the run "
                           "record is damaged")
        return rec
    if p.exists() and not p.is_dir():
        raise RunError(f"--out {p} is a file, not a folder; choose a new folder for the run")
    if not p.is_dir() or not any(p.iterdir()):
        return None
    if not (p / RUN_FILE).is_file():
        raise RunError(f"the folder {p} holds files but no {RUN_FILE} of a run; a run is "
                       "never written into it: choose a new or empty folder")
    rec = read_record(p)
    if restart or startable(rec, p):
        return rec
    raise RunError(f"{p} already holds a run (status {rec.get('status', 'unknown')}); pass "
                   "--resume to continue it, --restart to start it over, or choose another "
                   "folder")


def clear_run(path: str | os.PathLike[str]) -> None:
    """Remove what a run wrote into ``path`` (:data:`RUN_ENTRIES`), leaving other files."""
    for name in RUN_ENTRIES:
        target = Path(path) / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()

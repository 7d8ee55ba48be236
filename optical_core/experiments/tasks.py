"""Every task of the grid, stage by stage, in a fixed order: tuning, training,
evaluation and alignment (:class:`GridTasks`), and every file of the cache the grid reads.
"""

from __future__ import annotations

from pathlib import Path

from optical_core.experiments.alignment_scores import AlignmentScores
from optical_core.experiments.cells import GridModel
from optical_core.experiments.config import ExperimentError
from optical_core.experiments.context import GridContext
from optical_core.experiments.evaluation import Evaluation
from optical_core.experiments.models import GridModels
from optical_core.experiments.shards import Task
from optical_core.experiments.tables import method_slug
from optical_core.experiments.timings import time_file
from optical_core.experiments.training import Trainings
from optical_core.experiments.tuning import Tuning

#: The stages in the order they run.
STAGES = ("tune", "train", "evaluate", "alignment")


class GridTasks:
    """The stages of one grid and the tasks of each (see the module docstring)."""

    def __init__(self, ctx: GridContext, trainings: Trainings) -> None:
        self.ctx = ctx
        self.trainings = trainings
        self.tuning = Tuning(ctx, trainings)
        self.models = GridModels(ctx, trainings, self.tuning)
        self.evaluation = Evaluation(ctx, self.models)
        self.alignment = AlignmentScores(ctx, self.models)

    def of(self, stage: str) -> list[Task]:
        """The tasks of ``stage`` (one of :data:`STAGES`)."""
        return {"tune": self.tuning.tasks, "train": self.train_tasks,
                "evaluate": self.evaluation.tasks, "alignment": self.alignment.tasks}[stage]()

    def stages(self) -> list[tuple[str, list[Task]]]:
        """Every task of the grid, stage by stage, in a fixed order."""
        return [(stage, self.of(stage)) for stage in STAGES]

    def train_tasks(self) -> list[Task]:
        """One training per (method, lang, pairs, seed). It counts as done when its run is
        finished, or when every cell and alignment score of its student is cached (a grid
        resumed from committed results on a machine without the run folders)."""
        groups = {group[0].tag: group for group in self.models.groups()}
        tasks = []
        for m, lang, p, s in self.ctx.grid.trainings():
            def cfg_of(m=m, lang=lang, p=p, s=s):
                return self.tuning.chosen_config(m, lang, p, s)

            group = groups[GridModel(m, lang, p, s).tag]

            def done(group=group, cfg_of=cfg_of) -> bool:
                cfg = cfg_of()
                if cfg is None:
                    return False
                return self.trainings.finished_run(cfg) is not None or self.cached(group)

            tasks.append(Task(f"train-{method_slug(m)}-{lang}-{p}-s{s}", "train", done,
                              lambda cfg_of=cfg_of: self.trainings.train(cfg_of())))
        return tasks

    def cached(self, group: list[GridModel]) -> bool:
        """Whether every cell and alignment score of a student's models is cached."""
        models = self.models
        if not all(models.identify(m) for m in group):
            return False
        cells = all(f.is_file() for mdl in group for _, f in models.cell_files(mdl))
        return cells and self.alignment.cached(group[0].tag)

    def pending(self) -> int:
        """How many tasks of the whole grid are not done."""
        return sum(not t.done() for _, tasks in self.stages() for t in tasks)

    def grid_files(self) -> set[Path]:
        """Every cell file and task timing the grid reads, whether it exists yet or not
        (``optical experiment --prune`` may delete the others).

        Raises:
            ExperimentError: a student's cells cannot be named yet (its learning-rate
                tuning is not finished).
        """
        if not self.tuning.choose():
            raise ExperimentError("the learning-rate tuning is not finished, so the "
                                  "students' cells cannot be told from others yet")
        files = {time_file(self.ctx.cache, t.id) for _, tasks in self.stages() for t in tasks}
        for mdl in self.models.models():
            if not self.models.identify(mdl):
                raise ExperimentError(f"{mdl.tag}: its cells cannot be named yet")
            files.update(f for _, f in self.models.cell_files(mdl))
        return files

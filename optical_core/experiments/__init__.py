"""The experiment grid and its report.

* :mod:`~optical_core.experiments.tables`: methods, languages, metrics and labels (the
  lowest module: the others import it, it imports none of them);
* :mod:`~optical_core.experiments.config`: the grid's configuration and run names;
* :mod:`~optical_core.experiments.stats`: robustness summaries, paired tests and the grid's
  tables;
* :mod:`~optical_core.experiments.shards`: shards, tasks and the claim files that let
  several processes or machines share one grid;
* :mod:`~optical_core.experiments.runner`: the resumable grid, an orchestrator over its
  stages: :mod:`~optical_core.experiments.context` (what they share),
  :mod:`~optical_core.experiments.stages` (claiming and running a stage's tasks),
  :mod:`~optical_core.experiments.tuning`, :mod:`~optical_core.experiments.training`,
  :mod:`~optical_core.experiments.models` (the models and their cells),
  :mod:`~optical_core.experiments.evaluation`,
  :mod:`~optical_core.experiments.alignment_scores`, :mod:`~optical_core.experiments.tasks`
  (every task, stage by stage), :mod:`~optical_core.experiments.timings` (plan, timings,
  survey) and :mod:`~optical_core.experiments.writer` (``results.json`` and the CSVs);
* :mod:`~optical_core.experiments.folder`: a results folder's marker and the index of the
  files the grid wrote; :mod:`~optical_core.experiments.prune`: the files it may delete;
* :mod:`~optical_core.experiments.results` / :mod:`~optical_core.experiments.report`: a
  results folder read back, its tables and Markdown report
  (:mod:`~optical_core.experiments.formatting`: how they spell numbers);
* :mod:`~optical_core.experiments.names` (methods spelled out) and
  :mod:`~optical_core.experiments.answer` (each grid's answer to the research question);
* :mod:`~optical_core.experiments.figures`: noise curves (plotly and matplotlib).
"""

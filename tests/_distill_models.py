"""Tiny randomly initialised models for the tests: a plain transformers BERT and the same
BERT as a sentence-transformers model for distillation.

A 2-layer, 32-wide BERT with the MiniLM tokenizer: a training step takes milliseconds, so
whole runs (train, cancel, resume, DDP) fit in a few seconds each.
"""

from __future__ import annotations

import os
from pathlib import Path


def build_tiny_bert(folder: Path, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """A randomly initialised BERT with the MiniLM tokenizer, saved as a plain
    transformers folder (config.json + model.safetensors + tokenizer)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from optical_core.encoders.base import default_model_path

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(default_model_path())
    cfg = BertConfig(
        vocab_size=tok.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=128,
    )
    BertModel(cfg).save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


def make_tiny_model(path: str | os.PathLike[str], seed: int = 0, hidden: int = 32) -> str:
    """Save a tiny random BERT sentence-transformers model (mean pooling, normalised) to
    ``path``."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    path = Path(path)
    hf = build_tiny_bert(path.parent / f"{path.name}-hf", hidden=hidden, seed=seed)
    tr = Transformer(str(hf), max_seq_length=64)
    model = SentenceTransformer(modules=[tr, Pooling(hidden, "mean"), Normalize()], device="cpu")
    model.save(str(path))
    return str(path)


def write_gold_subset(folder: str | os.PathLike[str], count: int = 4) -> Path | None:
    """A data folder holding ``count`` real sentences of the en–fr gold alignments (the
    full 200 take minutes per AER pass on a loaded 2-core machine); ``None`` when the gold
    set is not in the data folder."""
    from optical_core import data

    if not data.gold_available("enfr"):
        return None
    src = data.data_dir() / "gold_alignments"
    dst = Path(folder) / "gold_alignments"
    dst.mkdir(parents=True, exist_ok=True)
    for ext in ("src-tgt", "gold"):
        # skip the first five, which are one-word interjections ("oh , oh !")
        lines = (src / f"enfr.{ext}").read_text(encoding="utf-8").splitlines(keepends=True)
        (dst / f"enfr.{ext}").write_text("".join(lines[5:5 + count]), encoding="utf-8")
    return dst.parent

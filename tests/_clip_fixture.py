"""A tiny random CLIP teacher and a fake Multi30k folder with Flickr30k-named images, for
test_encoders_clip.py, test_retrieval_images.py and test_cli_images.py (the fixtures built
from them are in conftest.py).

The teacher is a tiny randomly initialised CLIP built from a ``CLIPConfig`` (text and vision
towers 2 layers wide 32, images 32×32, projection 24-d). No CLIP BPE vocabulary is available
offline, so its processor pairs a ``CLIPImageProcessor`` with the MiniLM WordPiece tokenizer
(the text tower pools at the first [SEP]). It is saved in the sentence-transformers layout of
``sentence-transformers/clip-ViT-B-32`` (``modules.json`` naming ``CLIPModel`` in
``0_CLIPModel/``), with safetensors weights. Images are drawn with PIL into a tiny fake
Multi30k folder named like Flickr30k files.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

CLIP_DIM = 24
NAMES = ["1000092795.jpg", "10002456.jpg", "1000268201.jpg", "1000344755.jpg",
         "1000366164.jpg", "1000523639.jpg"]
EN = ["A red square on a white wall.", "A blue circle in the sky.", "A green field at noon.",
      "A yellow stripe across the road.", "A black dog on the grass.", "A grey cat by the door."]
DE = ["Ein rotes Quadrat an einer weißen Wand.", "Ein blauer Kreis am Himmel.",
      "Ein grünes Feld am Mittag.", "Ein gelber Streifen über der Straße.",
      "Ein schwarzer Hund auf dem Gras.", "Eine graue Katze an der Tür."]
SPLIT = "test_2016_flickr"


def make_tiny_clip(folder: Path, seed: int = 0) -> Path:
    """A random tiny CLIP as a sentence-transformers folder (safetensors weights)."""
    import torch
    from transformers import AutoTokenizer, CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from optical_core.encoders.base import default_model_path

    tok = AutoTokenizer.from_pretrained(default_model_path())
    torch.manual_seed(seed)
    tower = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
             "num_attention_heads": 2}
    cfg = CLIPConfig(
        text_config={**tower, "vocab_size": tok.vocab_size, "max_position_embeddings": 64,
                     "bos_token_id": tok.cls_token_id, "eos_token_id": tok.sep_token_id,
                     "pad_token_id": tok.pad_token_id},
        vision_config={**tower, "image_size": 32, "patch_size": 8},
        projection_dim=CLIP_DIM,
    )
    sub = folder / "0_CLIPModel"
    CLIPModel(cfg).save_pretrained(sub, safe_serialization=True)
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=images, tokenizer=tok).save_pretrained(sub)
    (folder / "modules.json").write_text(json.dumps(
        [{"idx": 0, "name": "0", "path": "0_CLIPModel",
          "type": "sentence_transformers.models.CLIPModel"}]))
    return folder


def draw_image(path: Path, k: int) -> None:
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(k)
    back, front = (tuple(int(c) for c in rng.integers(0, 255, 3)) for _ in range(2))
    img = Image.new("RGB", (48 + 4 * k, 40), back)
    ImageDraw.Draw(img).ellipse((4 + k, 4, 30, 30 - k), fill=front)
    img.save(path, quality=90)


def make_fake_multi30k(root: Path, names=NAMES) -> Path:
    """``root/multi30k/task1/{raw,image_splits}`` for test_2016_flickr (en, de)."""
    raw = root / "multi30k" / "task1" / "raw"
    splits = root / "multi30k" / "task1" / "image_splits"
    raw.mkdir(parents=True)
    splits.mkdir(parents=True)
    for lang, lines in (("en", EN), ("de", DE)):
        with gzip.open(raw / f"{SPLIT}.{lang}.gz", "wt", encoding="utf-8") as f:
            f.write("\n".join(lines[: len(names)]) + "\n")
    (splits / f"{SPLIT}.txt").write_text("\n".join(names) + "\n")
    return root

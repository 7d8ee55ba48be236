"""The home page's "alignment as transport" picture: a precomputed word-level plan of the
paraphrase pair, so that the home page opens without loading a model.

Regenerate ``home_example.json`` with ``python -m ui.home_example`` (default MiniLM,
Sinkhorn ε = 0.05, uniform marginals, word level).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

PATH = Path(__file__).with_name("home_example.json")
SRC = "A dog runs along the beach."
TGT = "A puppy is running on the sand."


def load() -> tuple[list[str], list[str], np.ndarray]:
    """``(source words, target words, plan)`` of the stored example."""
    rec = json.loads(PATH.read_text(encoding="utf-8"))
    return rec["src_tokens"], rec["tgt_tokens"], np.asarray(rec["plan"], dtype=np.float64)


def main() -> None:
    from optical_core.encoders.registry import load_encoder
    from optical_core.ot.config import OTConfig
    from optical_core.pairs.align import align_texts

    pair = align_texts(load_encoder(), SRC, TGT, config=OTConfig("sinkhorn", epsilon=0.05),
                       level="word")
    rec = {
        "src": SRC, "tgt": TGT, "model": "all-MiniLM-L6-v2", "solver": "sinkhorn",
        "epsilon": 0.05, "level": "word", "src_tokens": pair.src_tokens,
        "tgt_tokens": pair.tgt_tokens, "plan": np.round(pair.plan, 5).tolist(),
    }
    PATH.write_text(json.dumps(rec, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {PATH}")


if __name__ == "__main__":
    main()

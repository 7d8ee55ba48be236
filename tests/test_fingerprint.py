"""optical_core.fingerprint: cache keys that stay what they were, and a content checksum
that sees any changed byte, name, dtype or shape."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from optical_core.fingerprint import content_checksum, corpus_fingerprint, weights_fingerprint


def test_corpus_fingerprint_is_the_key_existing_caches_were_written_with():
    # Computed by the helper before it moved out of retrieval/cache.py: a changed value
    # would orphan every cache entry on users' disks.
    assert corpus_fingerprint(["A dog runs.", "Ein Hund läuft.", ""]) == (
        "e55bbbe0bb01d841652aa716446310e5")
    assert corpus_fingerprint(["ab", "c"]) != corpus_fingerprint(["a", "bc"])


class _Vocab:
    def __init__(self, words):
        self.words = words

    def get_vocab(self):
        return {w: k for k, w in enumerate(self.words)}


def test_weights_fingerprint_sees_weights_length_and_vocabulary():
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2)
    base = weights_fingerprint(lin, 16, _Vocab(["a", "b"]))
    assert base == weights_fingerprint(lin, 16, _Vocab(["a", "b"]))
    assert base != weights_fingerprint(lin, 32, _Vocab(["a", "b"]))
    assert base != weights_fingerprint(lin, 16, _Vocab(["a", "c"]))
    with torch.no_grad():
        lin.bias[0] += 1e-6
    assert base != weights_fingerprint(lin, 16, _Vocab(["a", "b"]))


def _arrays():
    return {"v": np.arange(12, dtype=np.float32).reshape(3, 4),
            "t": torch.arange(6, dtype=torch.float16).reshape(2, 3),
            "s": np.array(["ab", "c"])}


def test_content_checksum_is_stable_across_copies_and_order():
    a = _arrays()
    b = {k: (v.clone() if isinstance(v, torch.Tensor) else v.copy()) for k, v in a.items()}
    assert content_checksum(a) == content_checksum(b)
    assert content_checksum(a) == content_checksum(dict(reversed(a.items())))  # name order


@pytest.mark.parametrize("change", ["value", "zeroed", "shape", "dtype", "name"])
def test_content_checksum_changes_with_the_content(change):
    a = _arrays()
    b = dict(a)
    if change == "value":
        b["v"] = a["v"].copy()
        b["v"][2, 3] = np.nextafter(b["v"][2, 3], np.float32(100))
    elif change == "zeroed":
        b["t"] = torch.zeros_like(a["t"])
    elif change == "shape":
        b["v"] = a["v"].reshape(4, 3)
    elif change == "dtype":
        b["v"] = a["v"].view(np.int32)
    else:
        b["w"] = b.pop("v")
    assert content_checksum(a) != content_checksum(b)

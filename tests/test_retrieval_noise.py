"""optical_core.retrieval.noise: the retrieval wrapper around the text noise (query seeds,
the ``typo`` alias).

The CER of the noise itself is tested in tests/test_perturb_noise.py
(``test_measured_cer_tracks_target``: mean measured CER within ±20 % of the target on 200
Multi30k val sentences per language and kind).
"""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import needs_m30k

from optical_core.perturb.resolve import resolve_noise
from optical_core.retrieval.corpus import demo_corpus, load_corpus
from optical_core.retrieval.noise import perturb_queries, perturb_query


def test_noise_alias_and_seeds():
    assert resolve_noise("typo") == "keyboard"
    with pytest.raises(ValueError, match="unknown noise kind"):
        resolve_noise("gremlins")
    c = demo_corpus()
    full = perturb_queries(c.query_set("de"), "typo", 0.2, seed=4)
    part = perturb_queries(c.query_set("de", limit=5), "typo", 0.2, seed=4)
    assert [p.text for p in part] == [p.text for p in full[:5]]  # limit does not change noise
    one = perturb_query(c.queries["de"][3], "typo", 0.2, 4, "de", index=3)
    assert one.text == full[3].text


@needs_m30k
def test_query_noise_cer_tracks_target():
    # The wrapper's seeds and alias must not bias the rate (see test_perturb_noise.py for kinds).
    qset = load_corpus("test_2016_flickr", langs=("de",)).query_set("de", limit=200)
    for kind in ("typo", "random_char"):
        for cer in (0.05, 0.1, 0.2):
            mean = np.mean([p.measured_cer for p in perturb_queries(qset, kind, cer, seed=0)])
            assert abs(mean - cer) <= 0.2 * cer, (kind, cer, mean)

"""Corpus page: a checkpoint check over many sentence pairs.

Thin by design: widgets → ``ui.corpus`` (the corpus, both models' per-sentence scores from
``optical_core.pairs.corpus``) → the table of the pairs the two models differ on most, each
with a link to it on the Alignment page.
"""

from __future__ import annotations

import streamlit as st

from ui.common import page_setup
from ui.corpus import DEFAULT_SENTENCES, pick_corpus, scores_of, show_diffs
from ui.models import model_label, model_picker
from ui.state import init_state, keep_state

KEYS = {"co_source": "gold", "co_gold": None, "co_n": DEFAULT_SENTENCES}

model_id = page_setup("Corpus", icon=":material/fact_check:")
init_state(KEYS)

st.title("A corpus, sentence by sentence")
st.caption(
    "Align every pair of a corpus with the sidebar model (1) and a second model (2), and "
    "see where they differ most: per-sentence AER against gold links, or without gold the "
    "plan's row entropy. Sinkhorn, ε = 0.05, word level, OT-threshold links."
)
with st.container(border=True):
    picked = pick_corpus()
    model2 = model_picker("corpus", "Second model (2)",
                          help="E.g. the model a checkpoint started from, or another "
                          "checkpoint; the sidebar model is model 1.")
keep_state(KEYS)
if picked is None:
    st.stop()
pairs, name, gold = picked
st.markdown(f"**{name}** · {len(pairs)} pairs · 1 = {model_label(model_id)}, "
            f"2 = {model_label(model2)}")
s1 = scores_of(model_id, pairs)
s2 = None if s1 is None else scores_of(model2, pairs)
if s2 is not None:
    show_diffs(pairs, gold, model_id, model2, s1, s2)

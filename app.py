"""OPTICAL Explorer: home page. Start with ``streamlit run app.py``.

The pages live in ``pages/`` (Streamlit's folder convention); ``ui.common.page_setup`` draws
the sidebar navigation and the model picker shared by every page.
"""

from __future__ import annotations

import streamlit as st

from optical_core.pairs.figures import transport_diagram
from ui import home_example
from ui.common import DATA_HINT, data_sources, page_setup
from ui.distill import manager, session_id
from ui.glossary import explain
from ui.models import model_label
from ui.nav import app_pages
from ui.quick import quick_box

# No sidebar tracker: quick_box below watches this tab's quick student itself.
model_id = page_setup("Home", icon=":material/swap_calls:", quick_tracker=False)

st.title("OPTICAL Explorer")
st.caption(
    "Optimal-transport token alignment and OT knowledge distillation for low-resource "
    "cross-lingual retrieval (OPTICAL, Huang, Yu & Allan, WSDM 2023)."
)

st.markdown(
    "**Alignment as transport.** An encoder turns every token of two sentences into a "
    "vector. Think of each source token as a pile of sand and each target token as a hole; "
    "moving sand from token *i* to token *j* costs the distance between their vectors. "
    "Optimal transport finds the cheapest way to move all the sand: the *transport plan* "
    "*P*, whose entry *P<sub>ij</sub>* says how much of token *i* goes to token *j*. "
    "Similar tokens receive most of the mass, so the plan is a soft word alignment. The "
    "entropic blur ε makes it smoother or sharper; partial and unbalanced transport let a "
    "token keep its mass when it has no partner. OPTICAL distils an English teacher into a "
    "multilingual student by making the student's foreign tokens cheap to transport onto "
    "the teacher's English tokens, which is how a model that never saw Czech learns to "
    "retrieve English captions for Czech queries.",
    unsafe_allow_html=True, help=explain(["transport plan", "ε", "OT-KD"]),
)

src, tgt, plan = home_example.load()
st.plotly_chart(
    transport_diagram(src, tgt, plan),
    config={"displayModeBar": False}, key="home_transport",
)
st.caption(
    f"The plan between “{home_example.SRC}” and “{home_example.TGT}” (default English "
    "MiniLM, Sinkhorn ε = 0.05, words): line width is the mass moved. dog → puppy, "
    "runs → running and beach → sand carry most of it.", help=explain(["Sinkhorn", "ε"]),
)

st.subheader("Teach it a language")
quick_box(manager(), session_id(), where="home")

st.subheader("Pages", help=explain(["MRR@10", "AER", "CER"]))
descriptions = {
    "Alignment": "the plan of one sentence pair as a heatmap: solvers, ε, links, gold "
    "alignments and AER, two models side by side, export.",
    "Distillation": "train a multilingual student from the English teacher with the OT "
    "loss, watch the probe pair's plan sharpen, save a checkpoint.",
    "Retrieval": "a foreign query against English captions; perturb it with typos and see "
    "the ranking move and which tokens still match.",
    "Corpus": "a checkpoint check: per-sentence AER (or plan entropy) of two models on a "
    "gold set or your own file, sorted by how much they differ, each pair one click from "
    "the Alignment page.",
    "Results": "the research grid: MRR against noise per method and language, with "
    "intervals, significance and a link from each result to its checkpoint.",
}
for path, label in app_pages()[1:]:
    c1, c2 = st.columns([1, 4], vertical_alignment="center")
    try:
        c1.page_link(path, label=label)
    except Exception:  # run outside `streamlit run` (tests)
        c1.markdown(f"**{label}**")
    c2.markdown(descriptions.get(label, ""))

st.subheader("This session")
sources = data_sources()
st.markdown(
    f"- Model (sidebar, shared by all pages): **{model_label(model_id)}**\n"
    f"- Demo pairs: packaged (24 en–de/fr/cs pairs, 4 English paraphrases)\n"
    f"- Multi30k: {'found' if sources.get('multi30k') else 'not found'}\n"
    f"- Gold word alignments: "
    + (", ".join(p for p in ("enfr", "roen") if sources.get(f"gold_{p}")) or "not found")
)
if not (sources.get("multi30k") and sources.get("gold_enfr")):
    st.info(DATA_HINT, icon=":material/info:")

"""What the Retrieval page caches per server (corpora, document indexes, noise curves), the
batch run behind its status box and the batch tab."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from optical_core.data import LANG_NAMES
from optical_core.encoders.anchor import SentenceOnlyError
from optical_core.retrieval.corpus import Corpus, demo_corpus, load_corpus
from optical_core.retrieval.evaluate import noise_curve
from optical_core.retrieval.figures import noise_curve_figure
from optical_core.retrieval.index import DocumentIndex, build_index
from optical_core.retrieval.noise import BATCH_LEVELS
from optical_core.retrieval.scorers import ScorerConfig
from ui.errors import show_error
from ui.models import SENTENCE_ONLY_NOTE, get_encoder, model_label, model_picker
from ui.ranking_summary import Setting, curve_rows
from ui.state import keep_state


@st.cache_resource(show_spinner=False, max_entries=8)
def get_corpus(split: str, task2: bool, demo: bool) -> Corpus:
    """The packaged demo corpus, or a Multi30k split (with the task2 captions if asked)."""
    return demo_corpus(task2) if demo else load_corpus(split, task2=task2)


@st.cache_resource(show_spinner=False, max_entries=8)
def _index(model: str, split: str, task2: bool, demo: bool) -> DocumentIndex:
    enc = get_encoder(model, show=False)
    return build_index(enc, get_corpus(split, task2, demo), tokens=False)


def get_index(model: str, corpus: Corpus, split: str, task2: bool, demo: bool,
              tokens: bool) -> DocumentIndex:
    """The corpus's caption embeddings by ``model`` (with token vectors if ``tokens``),
    computed once per server behind a spinner that says so."""
    with st.spinner(f"Embedding {corpus.n_docs} captions with {model_label(model)} "
                    "(once; cached on disk)…"):
        index = _index(model, split, task2, demo)
        if tokens:
            index.ensure_tokens(get_encoder(model, show=False))
    return index


@st.cache_data(show_spinner=False, max_entries=32)
def noise_curves(model: str, split: str, task2: bool, demo: bool, lang: str, kind: str,
                 scorer: str, k: int, eps: float, seed: int, limit: int) -> list[dict]:
    """Retrieval metrics of the first ``limit`` queries at every batch noise level, with
    bootstrap intervals (:func:`optical_core.retrieval.evaluate.noise_curve`)."""
    enc = get_encoder(model, show=False)
    corpus = get_corpus(split, task2, demo)
    cfg = ScorerConfig(scorer=scorer, rerank_depth=k, epsilon=eps)
    index = get_index(model, corpus, split, task2, demo, cfg.needs_tokens)
    return noise_curve(enc, corpus, lang, kind, BATCH_LEVELS, cfg, seed, limit, index,
                       n_boot=500)


def run_batch(s: Setting, models: list[str], kind: str, seed: int,
              n_queries: int) -> dict[str, list[dict]]:
    """Each loadable model's noise curves (keyed by its label), with a status box that says
    which model is running; a model that fails gets an error box and no curve."""
    curves = {}
    with st.status("Running…", expanded=False) as status:
        for m in models:
            if get_encoder(m) is None:
                continue
            status.update(label=f"{model_label(m)}: {n_queries} queries × 4 noise levels…")
            try:
                curves[model_label(m)] = noise_curves(
                    m, s.split, s.task2, s.demo, s.lang, kind, s.cfg.scorer,
                    s.cfg.rerank_depth, s.cfg.epsilon, seed, n_queries)
            except SentenceOnlyError:
                st.info(SENTENCE_ONLY_NOTE.format(model=model_label(m)) + " Pick the dense "
                        "scorer to compare it.", icon=":material/info:")
            except Exception as exc:
                show_error(exc, f"Evaluating {model_label(m)}")
        status.update(label="Done", state="complete")
    return curves


def batch_panel(s: Setting, kind: str, seed: int) -> None:
    """The Retrieval page's batch tab: metrics against noise for the sidebar model and a
    second one, run on request."""
    st.markdown(
        f"Applies the noise (**{kind}**, seed {seed}) to the {LANG_NAMES.get(s.lang, s.lang)} "
        f"queries at {', '.join(f'{x:.0%}' for x in BATCH_LEVELS)} and plots each metric "
        "for two models (95 % bootstrap intervals). Documents: all captions of the corpus."
    )
    b1, b2 = st.columns(2)
    with b1:
        other = model_picker("retrieval_b", "Second model",
                             help="Compared with the sidebar model, e.g. a distilled student.")
    n_max = max(1, len(s.corpus.queries[s.lang]))
    if st.session_state.get("ret_batch_n", 0) > n_max:
        st.session_state["ret_batch_n"] = n_max
    n_q = int(b2.number_input("Queries (the first N)", 1, n_max, step=50, key="ret_batch_n",
                              help="Fewer queries: faster, wider intervals."))
    keep_state(["ret_batch_n"])
    models = list(dict.fromkeys([s.model, other]))
    if len(models) == 1:
        b1.caption("Same model as in the sidebar: pick another one to compare two curves.")
    if st.button("Run the batch", type="primary", key="ret_batch_go"):
        st.session_state["_ret_batch"] = {
            "curves": run_batch(s, models, kind, seed, n_q),
            "title": f"{s.lang}→en, {s.corpus.name}, {n_q} queries, {s.cfg.scorer}, noise {kind}",
        }
    result = st.session_state.get("_ret_batch")
    if result and result["curves"]:
        st.plotly_chart(noise_curve_figure(result["curves"], title=result["title"]),
                        key="ret_curves")
        with st.expander("Table"):
            st.dataframe(pd.DataFrame(curve_rows(result["curves"])), hide_index=True)
    elif not result:
        st.caption("Press the button to run (a few seconds per hundred queries and model).")

"""What the Retrieval page caches per server (corpora, document indexes, noise curves), the
document-encoder choice, the comparison with the untrained model, and the batch run behind
its status box and the batch tab.

The document encoder is settled as ``optical evaluate --doc-encoder`` settles it
(:func:`optical_core.retrieval.evaluate.resolve_doc_encoder`): a distilled run's captions
are embedded by its teacher (OPTICAL's setting) or by the student itself; any other model
embeds its own captions.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from optical_core.data import LANG_NAMES
from optical_core.encoders.anchor import SentenceOnlyError
from optical_core.encoders.base import ModelLoadError, confine_model_path
from optical_core.ot.config import OTConfig
from optical_core.retrieval.corpus import Corpus, demo_corpus, load_corpus
from optical_core.retrieval.evaluate import (
    noise_curve,
    resolve_doc_encoder,
    run_folder_of,
    run_start_model,
)
from optical_core.retrieval.figures import noise_curve_figure
from optical_core.retrieval.index import DocumentIndex, build_index, check_comparable
from optical_core.retrieval.noise import BATCH_LEVELS
from optical_core.retrieval.scorers import Ranking, ScorerConfig, search
from optical_core.runs import RunError
from ui.errors import show_error
from ui.glossary import help_for
from ui.links import Param
from ui.models import (
    SENTENCE_ONLY_NOTE,
    cached_encoder,
    get_encoder,
    load_teacher,
    model_label,
    model_picker,
)
from ui.ranking_summary import Query, Setting, compare_rows, curve_rows
from ui.state import keep_state

#: What may embed a distilled run's captions (``optical evaluate --doc-encoder``).
DOC_CHOICES = ("teacher", "student")
DOC_NAMES = {"teacher": "the teacher (OPTICAL's setting)", "student": "the student"}
DOC_HELP = (
    "teacher: the run's frozen English teacher embeds the captions and the student only the "
    "queries, as OPTICAL retrieves (the index is the teacher's; the student learned to put a "
    "foreign sentence where the teacher puts its English translation). student: the student "
    "embeds the captions too. Same as `optical evaluate --doc-encoder teacher|student`."
)
#: Session key: whether the page shows the document-encoder choice (a distilled run).
DOCS_ON = "_ret_docs_on"
#: The Retrieval page's link parameters for the choice (only while it is shown).
DOC_PARAMS = [
    Param("docs", "ret_docs", "document encoder", default="teacher", options=DOC_CHOICES,
          when=(DOCS_ON, True)),
    Param("compare", "ret_compare", "comparison with the untrained model", "flag", False,
          when=(DOCS_ON, True)),
]


def load_model(model: str):
    """The loaded model (cached per server); :class:`ModelLoadError` when it cannot load."""
    return cached_encoder(confine_model_path(model))


@st.cache_resource(show_spinner=False, max_entries=8)
def get_corpus(split: str, task2: bool, demo: bool) -> Corpus:
    """The packaged demo corpus, or a Multi30k split (with the task2 captions if asked)."""
    return demo_corpus(task2) if demo else load_corpus(split, task2=task2)


@st.cache_resource(show_spinner=False, max_entries=8)
def _index(model: str, split: str, task2: bool, demo: bool) -> DocumentIndex:
    return build_index(load_model(model), get_corpus(split, task2, demo), tokens=False)


def get_index(model: str, corpus: Corpus, split: str, task2: bool, demo: bool) -> DocumentIndex:
    """The corpus's caption embeddings by ``model`` (the document encoder), computed once
    per server behind a spinner that says so. The token vectors of ``maxsim`` and ``ot``
    are added by the first search that needs them, with ``model`` as its document encoder
    (:func:`optical_core.retrieval.scorers.search`)."""
    with st.spinner(f"Embedding {corpus.n_docs} captions with {model_label(model)} "
                    "(once; cached on disk)…"):
        return _index(model, split, task2, demo)


def doc_encoder_control(model: str, encoder, box: DeltaGenerator) -> tuple[str, str]:
    """What embeds the captions when ``model`` embeds the queries: ``(teacher|student,
    model id)``.

    A distilled run offers the choice (its teacher by default); any other model embeds its
    own captions, and a caption says so. A run that records no teacher, a teacher that does
    not load or whose vectors have another width than the student's: one error box, and the
    student embeds the captions.
    """
    run = run_folder_of(model)
    st.session_state[DOCS_ON] = run is not None
    if run is None:
        box.caption(f"Captions embedded by {model_label(model)} itself: it is not a distilled "
                    "run, so there is no teacher to index them.")
        return "student", model
    choice = box.radio("Captions embedded by", DOC_CHOICES, key="ret_docs", horizontal=True,
                       format_func=DOC_NAMES.get, help=DOC_HELP)
    keep_state(["ret_docs"])
    box.caption("Teacher: the frozen teacher indexes the English captions, the student embeds "
                "only the query. Student: the student embeds both.")
    try:
        label, doc_model = resolve_doc_encoder(str(run), choice)
        if label != "student":
            check_comparable(encoder, load_model(doc_model))
    except (RunError, ModelLoadError, ValueError) as exc:
        show_error(exc, "Embedding the captions with the run's teacher")
        box.caption("The rankings below use the student for the captions too.")
        return "student", model
    return label, (model if label == "student" else doc_model)


def batch_doc_encoder(model: str, docs: str) -> tuple[str, str]:
    """The batch tab's ``(label, doc model)`` for ``model`` under the page's choice: a
    run's teacher when ``docs`` is ``teacher``, else the model itself.

    Raises:
        RunError: the run records no teacher.
    """
    run = run_folder_of(model)
    if run is None or docs == "student":
        return "student", model
    return resolve_doc_encoder(str(run), docs)


@st.cache_data(show_spinner=False, max_entries=32)
def noise_curves(model: str, doc_model: str, split: str, task2: bool, demo: bool, lang: str,
                 kind: str, scorer: str, k: int, eps: float, seed: int, limit: int) -> list[dict]:
    """Retrieval metrics of the first ``limit`` queries at every batch noise level, with
    bootstrap intervals (:func:`optical_core.retrieval.evaluate.noise_curve`); the captions
    embedded by ``doc_model``."""
    enc = load_model(model)
    doc_enc = enc if doc_model == model else load_model(doc_model)
    corpus = get_corpus(split, task2, demo)
    cfg = ScorerConfig(scorer=scorer, rerank_depth=k, ot=OTConfig(epsilon=eps))
    index = get_index(doc_model, corpus, split, task2, demo)
    return noise_curve(enc, corpus, lang, kind, BATCH_LEVELS, cfg, seed, limit, index,
                       n_boot=500, doc_encoder=doc_enc)


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
                docs, doc_model = batch_doc_encoder(m, s.docs)
                name = model_label(m) + (" (teacher's captions)" if docs == "teacher" else "")
                curves[name] = noise_curves(
                    m, doc_model, s.split, s.task2, s.demo, s.lang, kind, s.cfg.scorer,
                    s.cfg.rerank_depth, s.cfg.ot.epsilon, seed, n_queries)
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
        "for two models (95 % bootstrap intervals). Documents: all captions of the corpus, "
        f"embedded by {DOC_NAMES[s.docs] if s.docs == 'teacher' else 'each model itself'}"
        + (" for a distilled run, by the model itself otherwise." if s.docs == "teacher" else ".")
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


def compare_panel(s: Setting, q: Query, clean_rk: Ranking, noisy_rk: Ranking) -> None:
    """For a distilled run, on request: the same query ranked by the untrained model the
    run started from (its captions embedded as the run's are: by the teacher, or by itself),
    one row per model."""
    run = run_folder_of(s.model)
    if run is None:
        return
    on = st.toggle("Compare with the untrained model", key="ret_compare",
                   help="Rank the same clean and noisy query with the model the student "
                   "started from (its teacher's weights unless the run named a student): "
                   "what the distillation changed.")
    keep_state(["ret_compare"])
    if not on:
        return
    try:
        start = run_start_model(run, load_teacher=load_teacher)
        if start is None:
            st.caption("This run's student started from a model that was never saved (the "
                       "embedded MiniLM with a fresh projection to its CLIP teacher's width): "
                       "there is no untrained model to compare with.")
            return
        start_docs = s.doc_id if s.docs == "teacher" else start
        start_enc, docs_enc = load_model(start), load_model(start_docs)
        check_comparable(start_enc, docs_enc)
        index = get_index(start_docs, s.corpus, s.split, s.task2, s.demo)
        before = [search(start_enc, index, text, s.cfg, docs_enc)[0]
                  for text in (q.clean, q.noisy)]
    except SentenceOnlyError:
        st.info(SENTENCE_ONLY_NOTE.format(model=model_label(start)), icon=":material/info:")
        return
    except Exception as exc:  # a start model that cannot load or embed: say so
        show_error(exc, "Ranking with the untrained model")
        return
    rows = [(f"{model_label(s.model)} (distilled)", DOC_NAMES[s.docs], clean_rk, noisy_rk),
            (f"{model_label(start)} (untrained start)",
             DOC_NAMES[s.docs] if s.docs == "teacher" else "itself", *before)]
    st.table(pd.DataFrame(compare_rows(rows, q.relevant, s.corpus.doc_texts)), hide_index=True)
    st.caption(f"RR@10: {help_for('RR@10')}"
               if q.relevant else "A typed query has no relevant caption: the top caption of "
               "each model is shown.")

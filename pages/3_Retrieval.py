"""Retrieval page: a foreign query against English captions, clean and perturbed.

Thin by design: widgets → ``optical_core.retrieval`` (corpus, cached document embeddings,
scorers, rank shifts, metrics, the plan explanation) and ``optical_core.pairs.figures`` /
``optical_core.retrieval.figures`` (plots) → Streamlit.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from optical_core.data import DataNotFoundError
from optical_core.encoders.anchor import SentenceOnlyEncoder
from optical_core.encoders.base import is_anchor_model, is_default_model
from optical_core.encoders.transformer import Encoder
from optical_core.ot.config import OTConfig
from optical_core.perturb.cer import character_error_rate
from optical_core.perturb.kinds import NOISE_KINDS
from optical_core.retrieval.corpus import DEFAULT_SPLIT, RETRIEVAL_SPLITS
from optical_core.retrieval.explain import explain_match
from optical_core.retrieval.figures import plan_pair_figures
from optical_core.retrieval.noise import perturb_query
from optical_core.retrieval.scorers import SCORERS, Ranking, ScorerConfig, search
from optical_core.retrieval.shifts import kendall_tau_at_k, rank_change_labels
from ui.common import DATA_HINT, LANG_NAMES, data_sources, page_setup
from ui.errors import show_error
from ui.glossary import help_for
from ui.links import NOISE_OPTIONS, RETRIEVAL_EPS, retrieval_view
from ui.models import SENTENCE_ONLY_NOTE, get_encoder, model_label
from ui.ranking_summary import (
    SCORE_MEANINGS,
    Query,
    Setting,
    best_rank,
    candidates,
    explanation_text,
    match_rows,
    plan_docs_note,
    ranking_rows,
)
from ui.retrieval import (
    DOC_PARAMS,
    batch_panel,
    compare_panel,
    doc_encoder_control,
    get_corpus,
    get_index,
    load_model,
)
from ui.share import publish_view, restore_view, share_box
from ui.state import follow_context, init_state, keep_state

DEPTH = 10
MAX_CHARS = 1000
#: The noise slider's top level (%): the one-query noise is a prefix of one draw there.
MAX_CER_PCT = 30
# "typo" is the keyboard kind under its everyday name; its text already says "typo".
NOISE_HELP = {"typo": NOISE_KINDS["keyboard"], **NOISE_KINDS}
DEFAULTS = {
    "ret_split": DEFAULT_SPLIT, "ret_task2": False, "ret_lang": "de", "ret_scorer": "dense",
    "ret_k": 20, "ret_eps": 0.05, "ret_source": "test set", "ret_qidx": 0,
    "ret_typed": "Ein Hund läuft am Strand entlang.", "ret_kind": "typo", "ret_cer": 10,
    "ret_seed": 0, "ret_batch_n": 200, "ret_docs": "teacher", "ret_compare": False,
}


def setting_controls(model_id: str, encoder: Encoder) -> Setting:
    c1, c2, c3 = st.columns([2, 1, 2])
    if data_sources().get("multi30k", False):
        split = c1.selectbox("Multi30k split", RETRIEVAL_SPLITS, key="ret_split",
                             help="Documents: the English task1 captions of this split.")
        task2 = c1.checkbox(
            "Add the task2 English captions", key="ret_task2",
            disabled=split not in ("val", "test_2016_flickr"),
            help="Four more independent English captions per picture as extra relevant "
            "documents (val and test_2016_flickr only). Off: one relevant caption per query, "
            "as in DESIGN's sanity figures.",
        ) and split in ("val", "test_2016_flickr")
        demo = False
    else:
        split, task2, demo = "demo", False, True
        c1.markdown("**Corpus:** the packaged demo set (24 scenes), see the note below.")
    try:
        corpus = get_corpus(split, task2, demo)
    except (DataNotFoundError, ValueError) as exc:
        show_error(exc, "Loading the captions")
        corpus, demo, split, task2 = get_corpus("demo", False, True), True, "demo", False
    if demo:
        st.info(f"{corpus.note}\n\n{DATA_HINT}", icon=":material/info:")

    langs = [lg for lg in ("de", "fr", "cs", "en") if lg in corpus.queries]
    if st.session_state.get("ret_lang") not in langs:
        st.session_state["ret_lang"] = langs[0]
    lang = c2.selectbox("Query language", langs, key="ret_lang",
                        format_func=lambda lg: LANG_NAMES.get(lg, lg))
    if lang != "en" and is_default_model(model_id):
        st.info(
            f"{model_label(model_id)} was trained on English only and has never learned "
            f"{LANG_NAMES.get(lang, lang)}: its rankings of {LANG_NAMES.get(lang, lang)} queries "
            "show how far an English-only model gets, not what cross-lingual retrieval can do. "
            "Distil a student on the Distillation page, or pick a multilingual model in the "
            "sidebar, and compare.",
            icon=":material/translate:",
        )
    scorer = c3.radio(
        "Scorer", SCORERS, key="ret_scorer", horizontal=True,
        format_func=lambda s: {"dense": "dense", "maxsim": "MaxSim", "ot": "OT rerank"}[s],
        help=" ".join(f"{name}: {help_for(name)}" for name in ("dense", "MaxSim", "OT rerank")),
    )
    with c3.expander("OT settings", expanded=False):
        k = st.slider("Rerank depth k", 10, 50, step=5, key="ret_k",
                      help="How many dense candidates the OT score re-ranks.")
        eps = st.select_slider(
            "ε — entropic blur", RETRIEVAL_EPS, key="ret_eps",
            help=help_for("ε") + " In cosine-cost units (costs lie in [0, 2]).",
        )
    keep_state(DEFAULTS)
    if scorer != "dense" and is_anchor_model(model_id):  # it has no token vectors
        st.info(SENTENCE_ONLY_NOTE.format(model=model_label(model_id))
                + " The rankings below use the dense scorer.", icon=":material/info:")
        scorer = "dense"
    docs, doc_model = doc_encoder_control(model_id, encoder, c2)
    return Setting(model_id, corpus, split, task2, demo, lang,
                   ScorerConfig(scorer=scorer, rerank_depth=k, ot=OTConfig(epsilon=eps)),
                   docs, doc_model)


def query_controls(s: Setting) -> tuple[Query | None, str, int]:
    """The query and its noise; returns the query (``None`` when there is none to rank),
    and the noise kind and seed for the batch tab."""
    queries = s.corpus.queries[s.lang]
    q1, q2 = st.columns([3, 2])
    source = q1.radio("Query", ["test set", "typed"], key="ret_source", horizontal=True,
                      format_func=lambda x: {"test set": "From the test set",
                                             "typed": "Type a query"}[x])
    if source == "test set":
        if not 0 <= st.session_state.get("ret_qidx", 0) < len(queries):
            st.session_state["ret_qidx"] = 0
        # Same index, new label: the browser shows this language's caption only if the key is set.
        follow_context("ret_qidx", s.lang, st.session_state.get("ret_qidx", 0))
        qidx = q1.selectbox(
            f"{LANG_NAMES.get(s.lang, s.lang)} caption", range(len(queries)), key="ret_qidx",
            format_func=lambda i: f"{i}: {queries[i]}",
        )
        clean, relevant = queries[qidx], set(s.corpus.image_docs()[qidx])
    else:
        qidx, relevant = None, set()
        clean = q1.text_input("Your query", key="ret_typed", max_chars=MAX_CHARS,
                              help="Any text; no caption is marked relevant.").strip()
    kind = q2.selectbox("Noise", NOISE_OPTIONS, key="ret_kind",
                        help="; ".join(f"{k}: {v}" for k, v in NOISE_HELP.items()))
    q2.caption(NOISE_HELP.get(kind, ""))
    cer_pct = q2.slider(
        "Noise level (target character error rate, %)", 0, MAX_CER_PCT, step=1, key="ret_cer",
        help=f"{help_for('CER')} {help_for('nested noise')} The batch tab and the grids draw "
        "each level afresh.")
    seed = int(q2.number_input("Seed", 0, 2**31 - 1, step=1, key="ret_seed"))
    keep_state(DEFAULTS)
    if not clean:
        st.warning("Type a query (at least one word) to rank the captions.")
        return None, kind, seed

    pert = perturb_query(clean, kind, cer_pct / 100, seed, s.lang, index=qidx,
                         nested_top=MAX_CER_PCT / 100)
    # The noisy query box follows the noise settings until the user edits it by hand.
    follow_context("ret_noisy", (clean, kind, cer_pct, seed, s.lang), pert.text)
    noisy = q1.text_area(
        "Noisy query (edit it by hand if you like)", key="ret_noisy", height=80,
        max_chars=MAX_CHARS,
        help="Filled in from the noise settings; your edits stay until a setting changes.",
    ).strip()
    if not noisy:
        st.warning("The noisy query is empty; type something or change a setting.")
        return None, kind, seed
    q1.caption(("Edited by hand. " if noisy != pert.text else f"{len(pert.edits)} edits, "
                "the first of one draw: a higher level keeps them and adds more. ")
               + f"Measured character error rate {character_error_rate(clean, noisy):.1%}.")
    return Query(clean, noisy, relevant), kind, seed


def rankings_panel(s: Setting, q: Query, encoder: Encoder) -> tuple[Ranking, Ranking] | None:
    """Both queries' top captions side by side, with how far the relevant one moved."""
    try:
        index = get_index(s.doc_id, s.corpus, s.split, s.task2, s.demo)
        docs_enc = load_model(s.doc_id)
        with st.spinner("Ranking the captions (the first token scorer also embeds their "
                        "tokens; cached on disk)…"):
            clean_rk, _ = search(encoder, index, q.clean, s.cfg, docs_enc)
            noisy_rk, _ = search(encoder, index, q.noisy, s.cfg, docs_enc)
    except Exception as exc:  # a model that cannot embed, an OT failure: say so, no traceback
        show_error(exc, "Ranking the captions")
        return None
    c_order, n_order = clean_rk.order[0], noisy_rk.order[0]
    if q.relevant:
        rc, rn = best_rank(clean_rk, q.relevant), best_rank(noisy_rk, q.relevant)
        m1, m2, m3 = st.columns(3)
        m1.metric("Relevant caption, clean", f"rank {rc}")
        m2.metric("Relevant caption, noisy", f"rank {rn}", delta=rc - rn,
                  help="Positive: it moved up.")
        m3.metric(f"Kendall τ@{DEPTH}", f"{kendall_tau_at_k(c_order, n_order, DEPTH):.2f}",
                  help=help_for(f"Kendall τ@{DEPTH}"))
    docs = s.corpus.doc_texts
    left, right = st.columns(2)
    left.markdown(f"**Clean query** — {q.clean}")
    left.table(pd.DataFrame(ranking_rows(c_order, clean_rk.scores[0], docs, q.relevant, DEPTH)),
               hide_index=True)
    right.markdown(f"**Noisy query** — {q.noisy}")
    changes = rank_change_labels(c_order, n_order, DEPTH)
    right.table(pd.DataFrame(ranking_rows(n_order, noisy_rk.scores[0], docs, q.relevant, DEPTH,
                                          changes)), hide_index=True)
    st.caption(
        "change: places moved relative to the clean ranking (↑ up, ↓ down, = same, new: not "
        f"in the clean top {DEPTH}). score: "
        + SCORE_MEANINGS[s.cfg.scorer].format(k=s.cfg.rerank_depth) + "."
        + (" ✓: describes the query's picture." if q.relevant else "")
    )
    for note in noisy_rk.notes:
        st.warning(note)
    return clean_rk, noisy_rk


def explanation_panel(s: Setting, q: Query, encoder: Encoder, clean_rk: Ranking,
                      noisy_rk: Ranking) -> None:
    """The clean and noisy query's plans with one caption, and which tokens lost their match."""
    st.subheader("Why did it move?", help=" ".join(
        f"{term}: {help_for(term)}" for term in ("best cosine", "lost", "weaker", "kept")))
    if isinstance(encoder, SentenceOnlyEncoder):
        st.info(f"{model_label(s.model)} gives sentence embeddings only, so there are no "
                "token plans to show; pick a token-level model (e.g. the default) for them.",
                icon=":material/info:")
        return
    cands = candidates(q.relevant, clean_rk, noisy_rk, DEPTH)
    # Another query starts afresh. The labels carry nothing that noise changes: otherwise
    # the browser would keep the old label while the plans below are of another caption.
    follow_context("ret_doc", f"{s.lang}\n{q.clean}", cands[0])
    if st.session_state.get("ret_doc") not in cands:
        st.session_state["ret_doc"] = cands[0]
    doc = st.selectbox(
        "Caption", cands, key="ret_doc",
        format_func=lambda j: f"{'✓ ' if j in q.relevant else ''}{s.corpus.doc_texts[j]}",
        help="The transport plan of the clean and of the noisy query with this caption. "
        "✓: it describes the query's picture. Listed: the relevant captions, then the top "
        f"{DEPTH} for the noisy and for the clean query.",
    )
    st.caption(f"Rank {clean_rk.positions()[0][doc] + 1} for the clean query, "
               f"{noisy_rk.positions()[0][doc] + 1} for the noisy one.")
    eps = s.cfg.ot.epsilon
    try:
        # The caption's tokens come from the encoder that embedded the rankings' captions.
        ex = explain_match(encoder, q.clean, q.noisy, s.corpus.doc_texts[doc], epsilon=eps,
                           doc_encoder=load_model(s.doc_id))
    except Exception as exc:
        show_error(exc, "Solving the plans")
        return
    figs = plan_pair_figures([ex.clean, ex.noisy],
                             [f"Clean query (−⟨P, C⟩ = {ex.score_clean:.3f})",
                              f"Noisy query (−⟨P, C⟩ = {ex.score_noisy:.3f})"])
    for col, fig, key in zip(st.columns(2), figs, ("ret_plan_clean", "ret_plan_noisy")):
        col.plotly_chart(fig, key=key, config={"displayModeBar": False})
    st.caption(f"−⟨P, C⟩: {help_for('−⟨P, C⟩')}")
    st.markdown(explanation_text(ex, eps))
    note = plan_docs_note(s.docs, ex)
    if note:
        st.caption(note)
    with st.expander("Best match of every caption token, before and after"):
        st.table(hide_index=True, data=pd.DataFrame(match_rows(ex.rows)))
        st.caption(" ".join(f"**{t}**: {help_for(t)}" for t in
                            ("lost", "weaker", "gained", "kept", "weak", "punctuation")))


model_id = page_setup("Retrieval", icon=":material/search:")
init_state(DEFAULTS)
st.title("Retrieval under noise")
st.caption(
    "A query in German, French or Czech against the English captions of the same pictures: "
    "a caption is relevant when it describes the query's picture. Perturb the query and "
    "watch the ranking move; pick a caption to see which tokens still match."
)
VIEW = [*retrieval_view(DEFAULTS, MAX_CHARS), *DOC_PARAMS]
restore_view("Retrieval", VIEW)
encoder = get_encoder(model_id)
if encoder is None:
    st.stop()
setting = setting_controls(model_id, encoder)
tab_one, tab_batch = st.tabs(["One query", "Batch: metrics vs noise"])
with tab_one:
    query, noise_kind, noise_seed = query_controls(setting)
    share_box(*publish_view("Retrieval", VIEW, model_id), st.sidebar)
    rankings = rankings_panel(setting, query, encoder) if query is not None else None
    if rankings is not None:
        compare_panel(setting, query, *rankings)
        explanation_panel(setting, query, encoder, *rankings)
with tab_batch:
    batch_panel(setting, noise_kind, noise_seed)

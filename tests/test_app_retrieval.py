"""Streamlit AppTest of the Retrieval page (pages/3_Retrieval.py).

Runs the real page in-process with the real default MiniLM. Most tests use the packaged
demo corpus (no data folder: the page must fall back to it and say so); one uses Multi30k
test_2016_flickr when it is present. Embeddings are cached in a temporary folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _helpers import ok
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]

PAGE = str(ROOT / "pages" / "3_Retrieval.py")
TIMEOUT = 300  # a loaded machine: embedding the Multi30k captions may take minutes


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    cache = tmp_path_factory.getbasetemp() / "retrieval-app-cache"
    monkeypatch.setenv("OPTICAL_CACHE_DIR", str(cache))
    monkeypatch.setenv("OPTICAL_RUNS_DIR", str(cache / "runs"))


def page(**state) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    for k, v in state.items():
        at.session_state[k] = v
    return ok(at.run())


def charts(at: AppTest, kind: str) -> list[dict]:
    out = []
    for el in at.get("plotly_chart"):
        spec = json.loads(el.proto.spec)
        if spec["layout"].get("meta", {}).get("kind") == kind:
            out.append(spec)
    return out


def tables(at: AppTest):
    """The clean and the noisy ranking tables."""
    ranked = [t.value for t in at.table if "caption" in t.value.columns]
    assert len(ranked) == 2, [t.value.columns for t in at.table]
    return ranked


def test_demo_fallback_shows_both_rankings_and_plans(no_data):
    at = page()
    assert any("Demo set" in i.value and "Multi30k" in i.value for i in at.info)
    clean, noisy = tables(at)
    assert len(clean) == len(noisy) == 10
    assert "change" in noisy.columns and "change" not in clean.columns
    assert set(noisy["change"]) <= {"=", "new"} | {f"{a}{n}" for a in "↑↓" for n in range(1, 24)}
    assert clean["rank"].tolist() == list(range(1, 11))
    # No column that is empty in most rows: the relevant caption is marked in its own cell.
    assert list(clean.columns) == ["rank", "score", "caption"]
    assert list(noisy.columns) == ["rank", "change", "score", "caption"]
    rank_clean = next(int(m.value.split()[-1]) for m in at.metric
                      if m.label == "Relevant caption, clean")
    marked = [r for r, c in zip(clean["rank"], clean["caption"]) if c.startswith("✓ **")]
    assert marked == ([rank_clean] if rank_clean <= 10 else [])
    plans = charts(at, "plan")
    assert len(plans) == 2
    assert "Clean query" in plans[0]["layout"]["title"]["text"]
    heats = [p["data"][0] for p in plans]  # one colour scale: the same shade, the same mass
    assert heats[0]["zmin"] == heats[1]["zmin"] == 0
    assert heats[0]["zmax"] == heats[1]["zmax"]
    why = "".join(m.value for m in at.markdown if "Sinkhorn plans" in m.value)
    assert "0\\.15" in why and "0\\.50" in why  # the thresholds the statuses use
    # The English-only default never matches the German query's tokens well: the text says
    # that no single token explains the move, instead of leaving "why" unanswered.
    statuses = set(next(t.value for t in at.table if "status" in t.value.columns)["status"])
    assert statuses <= {"weak", "punctuation"}
    assert "no single token explains the move" in why
    assert at.text_area(key="ret_noisy").value != at.session_state["ret_typed"]
    assert any(m.label.startswith("Relevant caption") for m in at.metric)
    # The noise kind's caption says what a typo is once ("Typo: Fat-finger typo: …" before).
    noise = [c.value for c in at.caption if "Fat-finger" in c.value]
    assert noise and all(c.lower().count("typo") == 1 for c in noise)


def test_the_explanation_names_only_what_its_table_shows(no_data):
    """Each status sentence under the plans names tokens the token table gives that status,
    at every noise level of the slider."""
    import re

    lead = {"Lost": "lost", "Weaker": "weaker", "Gained": "gained", "Kept": "kept",
            "Never": "weak"}
    at = page(ret_qidx=5, ret_kind="typo")
    named = 0
    for level in (0, 10, 30):
        at.slider(key="ret_cer").set_value(level)
        ok(at.run())
        why = next(m.value for m in at.markdown if "Sinkhorn plans" in m.value)
        tokens = next(t.value for t in at.table if "caption token" in t.value.columns)
        status = {}
        for tok, st in zip(tokens["caption token"], tokens["status"]):
            status.setdefault(tok.replace("\\", ""), set()).add(st)
        for line in why.replace("\\", "").split("\n"):
            word = line.split(" ", 1)[0]
            if word in lead:
                for tok in re.findall(r"“([^”]+)”", line):
                    assert lead[word] in status[tok], (tok, line, status[tok])
                    named += 1
    assert named


def test_noise_level_moves_the_noisy_ranking(no_data):
    at = page(ret_qidx=4, ret_kind="random_char")
    at.slider(key="ret_cer").set_value(0)
    ok(at.run())
    clean, noisy = tables(at)
    assert at.text_area(key="ret_noisy").value == at.selectbox(key="ret_qidx").options[4][3:]
    assert clean["caption"].tolist() == noisy["caption"].tolist()
    assert set(noisy["change"]) == {"="}
    at.slider(key="ret_cer").set_value(30)
    ok(at.run())
    clean2, noisy2 = tables(at)
    assert clean2["caption"].tolist() == clean["caption"].tolist()  # clean side unchanged
    assert noisy2["caption"].tolist() != clean2["caption"].tolist()
    assert set(noisy2["change"]) != {"="}
    assert any("Measured character error rate" in c.value for c in at.caption)


def test_a_higher_noise_level_keeps_the_lower_levels_edits(no_data):
    """Moving the slider up adds edits to the noisy query instead of drawing new ones."""
    from optical_core.perturb.cer import levenshtein

    at = page(ret_qidx=2, ret_kind="typo")
    texts, rates = [], []
    for level in (5, 10, 20):
        at.slider(key="ret_cer").set_value(level)
        ok(at.run())
        texts.append(at.text_area(key="ret_noisy").value)
        rates.append(next(c.value for c in at.caption if "Measured character" in c.value))
    clean = at.selectbox(key="ret_qidx").options[2][3:]
    dist = [levenshtein(clean, t) for t in texts]
    assert dist == sorted(dist) and dist[0] < dist[-1]
    # each step adds edits: the lower level's text is as far from the higher as the gap
    assert levenshtein(texts[0], texts[2]) == dist[2] - dist[0]
    assert all("a higher level keeps them" in r for r in rates)


def test_hand_edit_is_kept_until_a_setting_changes(no_data):
    at = page()
    at.text_area(key="ret_noisy").input("Ein Hund rennt am Meer.")
    ok(at.run())
    assert at.text_area(key="ret_noisy").value == "Ein Hund rennt am Meer."
    assert any(c.value.startswith("Edited by hand") for c in at.caption)
    assert "Ein Hund rennt am Meer." in "".join(m.value for m in at.markdown)
    at.number_input(key="ret_seed").set_value(7)
    ok(at.run())
    assert at.text_area(key="ret_noisy").value != "Ein Hund rennt am Meer."


def test_typed_query_and_empty_query(no_data):
    at = page(ret_source="typed", ret_typed="Zwei Kinder spielen Fußball im Park.")
    clean, noisy = tables(at)
    assert not any(c.startswith("✓") for c in clean["caption"])  # no relevance judgement
    assert not any(m.label.startswith("Relevant caption") for m in at.metric)
    at.text_input(key="ret_typed").input("   ")
    ok(at.run())
    assert any("Type a query" in w.value for w in at.warning)
    # the batch tab still renders below an empty query
    assert at.button(key="ret_batch_go")


@pytest.mark.parametrize("scorer", ["maxsim", "ot"])
def test_token_scorers(no_data, scorer):
    at = page(ret_scorer=scorer, ret_qidx=1)
    clean, noisy = tables(at)
    assert len(clean) == 10
    captions = " ".join(c.value for c in at.caption)
    assert ("−⟨P*, C⟩" in captions) == (scorer == "ot")
    assert not at.error


def test_select_a_caption_redraws_the_plans(no_data):
    at = page(ret_qidx=0)
    box = at.selectbox(key="ret_doc")
    assert box.options[0].startswith("✓ ")  # the relevant caption comes first
    before = charts(at, "plan")[0]["layout"]["xaxis"]["ticktext"]
    box.select_index(3)
    ok(at.run())
    after = charts(at, "plan")
    assert len(after) == 2
    assert after[0]["layout"]["xaxis"]["ticktext"] != before  # other caption's tokens
    assert after[0]["layout"]["xaxis"]["ticktext"] == after[1]["layout"]["xaxis"]["ticktext"]


def test_the_picked_caption_follows_the_query_and_survives_noise(no_data):
    at = page(ret_qidx=0)
    box = at.selectbox(key="ret_doc")
    picked = box.options[3]
    box.select_index(3)
    ok(at.run())
    at.slider(key="ret_cer").set_value(30)
    ok(at.run())
    box = at.selectbox(key="ret_doc")
    # Labels carry no ranks, so noise leaves the label (what the browser shows) as it was.
    assert box.options[box.index] == picked
    assert any(c.value.startswith("Rank ") for c in at.caption)
    at.selectbox(key="ret_qidx").set_value(1)
    ok(at.run())
    box = at.selectbox(key="ret_doc")
    assert box.index == 0 and box.options[0].startswith("✓ ")  # the new query's caption


def test_english_only_model_is_named_for_foreign_queries(no_data):
    at = page()
    assert any("trained on English only" in i.value for i in at.info)  # German queries
    at.selectbox(key="ret_lang").set_value("en")
    ok(at.run())
    assert not any("trained on English only" in i.value for i in at.info)


def test_batch_view_plots_metrics_against_noise(no_data):
    at = page(ret_lang="fr", ret_kind="random_char")
    at.button(key="ret_batch_go").click()
    ok(at.run())
    curves = charts(at, "noise_curve")
    assert len(curves) == 1
    traces = curves[0]["data"]
    assert len(traces) == 6  # one model (the second picker defaults to the same) x 6 metrics
    assert [round(x) for x in traces[0]["x"]] == [0, 5, 10, 20]
    assert not at.error


def test_unknown_model_says_what_to_do(no_data):
    at = page(optical_model_id="no-such/model-xyz")
    assert any("Could not load the model" in e.value for e in at.error)


@pytest.mark.skipif(
    not __import__("optical_core.data", fromlist=["x"]).multi30k_available(
        splits=("test_2016_flickr",), image_splits=False),
    reason="Multi30k test_2016_flickr not found",
)
def test_multi30k_test_set_query():
    from ui.common import data_sources

    data_sources.clear()
    at = page(ret_qidx=2, ret_lang="fr")
    assert not any("Demo set" in i.value for i in at.info)
    clean, noisy = tables(at)
    assert len(clean) == 10
    assert at.selectbox(key="ret_split").value == "test_2016_flickr"
    label = [m for m in at.metric if m.label == "Relevant caption, clean"]
    assert label and label[0].value.startswith("rank ")


# --------------------------------------------------- the document encoder of a run


@pytest.fixture
def make_run(tmp_path, monkeypatch, tiny, tiny_other):
    """``make_run(name, teacher=..., record=True)``: a finished run in a runs folder of this
    test whose student is the tiny model (32-d); by default its teacher, recorded in
    ``run.json``, is another tiny model of the same width in ``OPTICAL_MODELS_DIR``."""
    runs = tmp_path / "runs"
    monkeypatch.setenv("OPTICAL_RUNS_DIR", str(runs))
    monkeypatch.setenv("OPTICAL_MODELS_DIR", str(Path(tiny_other).parent))

    def make(name: str = "de-tiny", teacher: str | None = tiny_other, record: bool = True):
        run = runs / name
        run.mkdir(parents=True)
        (run / "model").symlink_to(tiny, target_is_directory=True)
        config = {"lang": "de", "loss": "ot", "student": None}
        rec = {"name": name, "status": "finished", "config": config, "evals": []}
        if record:
            config["teacher"] = teacher
            rec["teacher"] = teacher
        (run / "run.json").write_text(json.dumps(rec))
        return run

    return make


def open_run(name: str, **params: str) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.query_params["model"] = name
    for k, v in params.items():
        at.query_params[k] = v
    return ok(at.run())


def texts(at: AppTest, kind: str) -> str:
    return "\n".join(str(e.value) for e in getattr(at, kind))


def test_a_distilled_run_ranks_against_its_teachers_captions(no_data, make_run):
    make_run()
    at = open_run("de-tiny")
    docs = at.radio(key="ret_docs")
    assert docs.value == "teacher" and docs.options == ["the teacher (OPTICAL's setting)",
                                                        "the student"]
    assert "Teacher: the frozen teacher indexes the English captions" in texts(at, "caption")
    assert at.query_params["docs"] == "teacher"
    teacher_scores = tables(at)[0]["score"].tolist()
    assert not at.error
    docs.set_value("student")
    ok(at.run())
    assert at.query_params["docs"] == "student"
    assert tables(at)[0]["score"].tolist() != teacher_scores  # other caption vectors
    assert not at.error


def test_an_untrained_model_embeds_its_own_captions(no_data):
    at = page()
    assert "ret_docs" not in [r.key for r in at.radio]
    assert "ret_compare" not in [t.key for t in at.toggle]
    assert "it is not a distilled run" in texts(at, "caption")
    assert "docs" not in at.query_params


def test_compare_with_the_untrained_model(no_data, make_run):
    make_run()
    at = open_run("de-tiny", q="2")
    at.toggle(key="ret_compare").set_value(True)
    ok(at.run())
    rows = next(t.value for t in at.table if "model" in t.value.columns)
    assert rows["model"].tolist() == ["de-tiny (distilled)", "tiny2 (untrained start)"]
    assert {"rank, clean", "rank, noisy", "RR@10, clean", "RR@10, noisy"} <= set(rows.columns)
    assert set(rows["captions embedded by"]) == {"the teacher (OPTICAL's setting)"}
    assert at.query_params["compare"] == "true"
    assert not at.error


@pytest.mark.parametrize("teacher, record, message", [
    ("default", True, "cannot be compared"),  # a 384-d teacher for a 32-d student
    (None, False, "records no teacher"),
])
def test_a_teacher_that_cannot_index_gives_one_error(no_data, make_run, teacher, record,
                                                     message):
    make_run("de-bad", teacher=teacher, record=record)
    at = open_run("de-bad")
    assert len(at.error) == 1 and message in at.error[0].value
    assert "use the student for the captions too" in texts(at, "caption")
    assert len(tables(at)[0]) == 10  # the student's own ranking is still shown


def test_a_bad_document_encoder_link_gives_a_note(no_data, make_run):
    make_run()
    at = open_run("de-tiny", docs="bogus")
    assert "The link's document encoder = “bogus” is not one of teacher, student" in texts(
        at, "warning")
    assert at.radio(key="ret_docs").value == "teacher"
    at = open_run("de-tiny", docs="student")
    assert at.radio(key="ret_docs").value == "student" and not at.warning


def test_batch_of_a_run_uses_its_teachers_captions(no_data, make_run):
    make_run()
    at = open_run("de-tiny", lang="fr")
    at.button(key="ret_batch_go").click()
    ok(at.run())
    curves = charts(at, "noise_curve")
    assert len(curves) == 1
    assert any("de-tiny (teacher's captions)" in t["name"] for t in curves[0]["data"])
    assert not at.error

"""The live plotly chart (ui.live_chart): its served folder, and that the Alignment page's
plan keeps its identity while ε moves (so the browser redraws it in place)."""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from figure_support import figure_spec, live_charts  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from ui import live_chart  # noqa: E402

PAGE = str(ROOT / "pages" / "1_Alignment.py")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTICAL_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_asset_folder_holds_the_page_and_the_installed_plotly_js(cache):
    folder = live_chart.asset_dir()
    assert folder.parent == cache / "components"
    assert (folder / "index.html").read_bytes() == live_chart.PAGE.read_bytes()
    js = folder / "plotly.min.js"
    assert js.stat().st_size == live_chart.plotly_js().stat().st_size > 1_000_000
    mtime = js.stat().st_mtime_ns
    assert live_chart.asset_dir() == folder and js.stat().st_mtime_ns == mtime  # made once
    assert [p.name for p in (cache / "components").iterdir()] == [folder.name]  # no tmp left


def test_sessions_asking_at_once_get_one_complete_folder(cache):
    # the five-sessions browser test raced two sessions into one temporary folder
    with ThreadPoolExecutor(8) as pool:
        folders = list(pool.map(lambda _: live_chart.asset_dir(), range(8)))
    assert len(set(folders)) == 1
    assert (folders[0] / "plotly.min.js").stat().st_size == live_chart.plotly_js().stat().st_size
    assert [p.name for p in (cache / "components").iterdir()] == [folders[0].name]


def test_a_changed_page_gets_a_new_folder(cache, tmp_path, monkeypatch):
    first = live_chart.asset_dir()
    page = tmp_path / "page.html"
    page.write_text(live_chart.PAGE.read_text() + "<!-- changed -->")
    monkeypatch.setattr(live_chart, "PAGE", page)
    second = live_chart.asset_dir()
    assert second != first and (second / "index.html").read_text().endswith("<!-- changed -->")


def test_the_iframe_page_speaks_the_component_protocol():
    html = live_chart.PAGE.read_text()
    for needle in ("streamlit:componentReady", "streamlit:render", "streamlit:setFrameHeight",
                   "Plotly.react", 'src="plotly.min.js"'):
        assert needle in html
    assert "Plotly.newPlot(" not in html
    assert 'src="http' not in html and "import(" not in html  # nothing from the network


def _plan_element(at: AppTest):
    (el,) = live_charts(at)
    return el


def test_epsilon_step_keeps_the_plan_chart_identity(cache):
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert not at.exception
    first = _plan_element(at)
    assert "ε = 0.05" in figure_spec(at, "plan")["layout"]["title"]["text"]
    at.select_slider(key="al_eps").set_value(0.2).run()
    assert not at.exception
    second = _plan_element(at)
    # same element id (the browser keeps the iframe and calls Plotly.react), new figure
    assert second.proto.id == first.proto.id and "al_plan_chart" in second.proto.id
    assert second.proto.json_args != first.proto.json_args
    assert "ε = 0.2" in figure_spec(at, "plan")["layout"]["title"]["text"]
    assert json.loads(second.proto.json_args)["config"] == json.dumps(
        {"toImageButtonOptions": {"format": "png", "filename": "optical_plan", "scale": 2},
         "displaylogo": False})


"""ui.glossary: every piece of jargon the Retrieval, Results and Home pages show has a
one-line explanation, and the page shows that line (a tooltip, or a caption beside it)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the pages import the ui package from the repository root
    sys.path.insert(0, str(ROOT))

from streamlit.testing.v1 import AppTest  # noqa: E402

from ui.glossary import GLOSSARY, help_for  # noqa: E402

#: Symbols, metrics and method names a newcomer cannot be expected to know, on any page.
JARGON = ("ε", "−⟨P, C⟩", "Kendall τ@10", "MRR@10", "RR@10", "R@1", "R@10", "CER", "MaxSim",
          "OT rerank", "OT-KD", "MSE-KD", "OT+MSE-KD", "AUC", "slope", "AER", "Student's t")
#: The statuses of the Retrieval page's explanation (plain words elsewhere).
STATUSES = ("lost", "weaker", "kept", "gained", "weak", "punctuation")


def _shown_and_help(at: AppTest) -> tuple[str, str]:
    """The page's visible text, and every explanation it offers (widget and heading
    tooltips, table header tooltips, captions)."""
    shown, helps = [], []
    for kind in ("markdown", "caption", "subheader", "title", "info", "metric"):
        for el in getattr(at, kind):
            shown.append(str(getattr(el, "label", "") or "") + " " + str(el.value))
            helps.append(str(getattr(el.proto, "help", "") or ""))
    helps += [c.value for c in at.caption]
    for kind in ("slider", "select_slider", "selectbox", "radio", "number_input", "toggle",
                 "checkbox", "text_area", "text_input"):
        for el in getattr(at, kind):
            shown.append(" ".join([str(el.label), *map(str, getattr(el, "options", []))]))
            helps.append(str(el.help or ""))
    for el in at.dataframe:
        shown.append(" ".join(map(str, el.value.columns)) + " " + el.value.to_string())
        helps.append(json.dumps(json.loads(el.proto.columns or "{}"), ensure_ascii=False))
    for el in at.table:
        shown.append(" ".join(map(str, el.value.columns)) + " " + el.value.to_string())
    return "\n".join(shown), "\n".join(helps).replace("\\", "")


def _on(term: str, text: str) -> bool:
    """``term`` as a word of ``text`` (``RR@10`` is not found inside ``MRR@10``)."""
    return re.search(rf"(?<![\w@]){re.escape(term)}(?![\w@])", text) is not None


def check_page(at: AppTest, jargon=JARGON) -> set[str]:
    assert not at.exception, [e.value for e in at.exception]
    shown, helps = _shown_and_help(at)
    found = {t for t in jargon if _on(t, shown)}
    for term in found:
        assert term in GLOSSARY, f"{term!r} is on the page but not in the glossary"
        assert help_for(term).replace("\\", "") in helps, f"the page does not explain {term!r}"
    return found


def test_every_glossary_line_is_one_line():
    assert all("\n" not in v and len(v) < 240 for v in GLOSSARY.values())


def test_results_page_explains_its_jargon(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTICAL_RESULTS_DIR", str(tmp_path / "results"))
    at = AppTest.from_file(str(ROOT / "pages" / "4_Results.py"), default_timeout=120).run()
    found = check_page(at)
    assert {"MRR@10", "OT-KD", "MSE-KD", "AER", "Student's t", "slope"} <= found


@pytest.mark.slow
def test_retrieval_page_explains_its_jargon(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTICAL_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("OPTICAL_CACHE_DIR", str(tmp_path / "cache"))
    from ui.common import data_sources

    data_sources.clear()
    at = AppTest.from_file(str(ROOT / "pages" / "3_Retrieval.py"), default_timeout=300).run()
    data_sources.clear()
    found = check_page(at, JARGON + STATUSES)
    assert {"Kendall τ@10", "ε", "−⟨P, C⟩", "MaxSim", "kept"} <= found


def test_home_page_explains_its_jargon(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTICAL_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    found = check_page(at, (*JARGON, "transport plan", "Sinkhorn"))
    assert {"ε", "Sinkhorn"} <= found

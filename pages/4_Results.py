"""Results: the experiment grid's tables and curves, and a link to every checkpoint behind them.

Thin by design: ``optical_core.experiments.report`` reads the results folder
(``$OPTICAL_RESULTS_DIR`` or ``./results``) and builds the tables and the report,
``optical_core.experiments.figures`` draws the curves; the page picks a folder (or takes
``?results=NAME``) and shows them. Without local results it shows the grid shipped with the
app (``grid-results/results5k``, see ``ui.results``), labelled as such.
"""

from __future__ import annotations

from urllib.parse import quote

import streamlit as st
from streamlit.errors import StreamlitAPIException

from optical_core.experiments.answer import RESEARCH_QUESTION
from optical_core.experiments.figures import clean_figure, noise_curves_figure
from optical_core.experiments.report import (
    alignment_table,
    bundle_zip,
    checkpoints,
    curves,
    lr_tuning_table,
    main_table,
    robustness_table,
    setting_lines,
    significance_table,
    write_report,
)
from optical_core.experiments.results import ReportError, Results
from optical_core.experiments.tables import (
    CONFIG_FILE,
    METRIC_LABELS,
    METRICS,
    REPORT_FILE,
    RUN_HINT,
    SCORER_LABELS,
    TABLES,
    results_root,
)
from optical_core.runs import runs_dir
from ui.common import page_setup
from ui.errors import show_error
from ui.glossary import help_for
from ui.results import (
    ALL_DOCS,
    DOC_NAMES,
    answer_panel,
    doc_encoders,
    docs_caption,
    only_docs,
    pick_results,
    results_choices,
    scorer_control,
    shipped_grids,
    table,
    table_or_note,
)
from ui.state import init_state, keep_state, stop

KEYS = ["res_name", "res_metric", "res_split", "res_kind", "res_docs", "res_scorer"]
LATE_KEYS = KEYS[1:]
STATUS_NOTE = {
    "running": "The grid is still running: the tables hold the cells finished so far. "
               "Press **Refresh** to read the folder again.",
    "failed": "The grid failed: the tables hold the cells it finished. The notes at the "
              "bottom say what went wrong; rerunning the same config redoes only the missing "
              "cells.",
    "cancelled": "The grid was cancelled: the tables hold the cells it finished; rerunning the "
                 "same config redoes only the missing cells.",
}


def status_panel(res: Results) -> None:
    """How far the grid got, when it ran, and its setting."""
    wall = res.meta.get("wall_s")
    c1, c2, c3 = st.columns(3)
    c1.metric("Status", res.status)
    c2.metric("Cells", len(res.cells))
    c3.metric("Wall time", f"{wall / 60:.1f} min" if isinstance(wall, (int, float)) else "—")
    times = [f"{k} {str(res.meta[k]).replace('T', ' ')}" for k in ("started", "finished")
             if res.meta.get(k)]
    st.caption(" · ".join([*times, f"folder `{res.folder}`"]))
    if res.status in STATUS_NOTE:
        (st.info if res.status == "running" else st.warning)(STATUS_NOTE[res.status])
    if res.status == "running":
        st.button("Refresh", icon=":material/refresh:", help="Read the results folder again.")
    for problem in res.problems:
        st.warning(problem, icon=":material/warning:")
    with st.expander("Setting", expanded=False):
        st.markdown("\n".join(setting_lines(res)))
        cfg = res.folder / CONFIG_FILE
        if cfg.is_file():
            st.code(cfg.read_text(encoding="utf-8", errors="replace"), language="toml")
        elif res.config:
            st.json(res.config)
        if isinstance(res.meta.get("versions"), dict):
            versions = res.meta["versions"].items()
            st.caption("Versions: " + ", ".join(f"{k} {v}" for k, v in versions))


def docs_control(res: Results) -> str:
    """Which trained students' document encoder to show (a choice only when the grid has
    several), with a caption that names it."""
    found = doc_encoders(res) or ["student"]
    docs = found[0]
    if len(found) > 1:
        options = [*found, ALL_DOCS]
        if st.session_state.get("res_docs") not in options:
            st.session_state["res_docs"] = options[0]
        docs = st.radio(
            "Documents embedded by", options, key="res_docs", horizontal=True,
            format_func=lambda d: "both" if d == ALL_DOCS else DOC_NAMES[d].split(" (")[0],
            help="teacher: the run's frozen English teacher embeds the captions and the "
            "student only the queries (OPTICAL's setting). student: the student embeds both.")
    st.caption(docs_caption(docs, found))
    return docs


def view_controls(res: Results, splits: list[str]) -> tuple[str, str, str | None]:
    """The metric, test split and noise kind (``None``: clean queries only) to show."""
    if st.session_state.get("res_split") not in splits:
        st.session_state["res_split"] = splits[0]
    c1, c2, c3 = st.columns([2, 2, 2])
    metric = c1.radio(
        "Metric", METRICS, key="res_metric", horizontal=True, format_func=METRIC_LABELS.get,
        help=" ".join(f"{METRIC_LABELS[m]}: {help_for(METRIC_LABELS[m])}" for m in METRICS),
    )
    split = c2.selectbox("Test split", splits, key="res_split",
                         help="Multi30k test split the queries and captions come from.")
    kinds = res.noise_kinds(split)
    if kinds and st.session_state.get("res_kind") not in kinds:
        st.session_state["res_kind"] = kinds[0]
    kind = c3.selectbox(
        "Noise kind", kinds or ["(clean queries only)"], key="res_kind" if kinds else None,
        disabled=not kinds,
        help="How the queries were perturbed (e.g. random_char: deletions, substitutions and "
        "insertions; keyboard: neighbouring keys). The clean level (0) is shared by all kinds.",
    )
    keep_state(KEYS)
    return metric, split, kind if kinds else None


def tables_panel(res: Results, metric: str, split: str, kind: str | None, scorer: str) -> None:
    """The main table and curves, robustness, significance (of the cells of ``scorer``),
    word alignment and lr tuning, each as wide as the page."""
    label = METRIC_LABELS[metric]
    by = "" if scorer == "dense" else f", {SCORER_LABELS.get(scorer, scorer)} scorer"
    levels = res.levels(split, kind)
    st.subheader(f"{label} per language and method{by}", help=help_for(label))
    table(main_table(res, levels, metric, split, kind, scorer))
    st.caption(
        f"{label} in %, `mean [low, high]` with the 95 % bootstrap interval over queries; with "
        "several seeds, seed means and `±` the standard deviation over seeds. "
        + help_for("untrained MiniLM") + " " + help_for("multilingual-e5-small (anchor)")
    )
    data = curves(res, metric, split, kind, scorer)
    if len(levels) > 1:
        fig = noise_curves_figure(data, metric, f"{label} against noise"
                                  + (f" ({kind})" if kind else "") + by)
    else:  # one level: a noise curve would be a single x value
        fig = clean_figure(data, metric, f"{label} on clean queries{by}")
    st.plotly_chart(fig, key="res_curves", config={"displaylogo": False})

    if len(levels) > 1:
        st.subheader(f"Robustness to noise (MRR@10{by})", help=help_for("retention"))
        table_or_note(
            robustness_table(res, split, kind, scorer),
            "No robustness rows for this split and noise kind.",
            f"Slope: {help_for('slope')} AUC: {help_for('AUC')} Intervals from the same "
            "bootstrap resamples.")

    st.subheader(f"Significance ({label}{by})", help=help_for("p"))
    table_or_note(
        significance_table(res, metric, split, kind, scorer=scorer),
        "No significance rows for this metric, split and noise kind.",
        "Δ = b − a in points with its paired bootstrap interval; p from the paired two-sided "
        "Student's t-test on the same queries: \\* p < 0.05, \\*\\* p < 0.01. docs: what "
        "embedded the captions of the trained side (the teacher or the student model).")

    st.subheader("Word alignment", help=help_for("AER"))
    table_or_note(alignment_table(res), "No alignment rows (the grid had no gold alignments).")
    st.subheader("Learning-rate tuning")
    table_or_note(lr_tuning_table(res), "No lr tuning rows.")


def checkpoints_panel(res: Results, shipped: bool) -> None:
    """A link from every trained cell to its checkpoint on the Alignment and Retrieval pages."""
    ckpts = checkpoints(res)
    if not len(ckpts):
        return
    with st.expander(f"Open a checkpoint in the Alignment or Retrieval page ({len(ckpts)})",
                     expanded=len(ckpts) <= 12):
        for row in ckpts.itertuples(index=False):
            c1, c2, c3 = st.columns([4, 1, 1], vertical_alignment="center")
            c1.markdown(row.label + ("" if row.available else
                                     " — *not in this app's runs folder (OPTICAL_RUNS_DIR)*"))
            for col, page, title in ((c2, "pages/1_Alignment.py", "Alignment"),
                                     (c3, "pages/3_Retrieval.py", "Retrieval")):
                try:
                    col.page_link(page, label=title, query_params={"model": row.link},
                                  disabled=not row.available)
                except StreamlitAPIException:  # a page run on its own has no page registry
                    col.markdown(f"[{title}]({title}?model={quote(row.link, safe='')})")
        if shipped:
            st.caption("The shipped grid's students are not part of the app: run its command "
                       "(above) to train them into this app's runs folder and open them here.")
        grid_runs = res.meta.get("runs_dir")
        if not ckpts["available"].all() and grid_runs and str(grid_runs) != str(runs_dir()):
            st.caption(f"The grid trained its runs in `{grid_runs}`; this app loads runs from "
                       f"`{runs_dir()}`. Start the app with `OPTICAL_RUNS_DIR={grid_runs}` to "
                       "open them.")


def downloads_panel(res: Results, read_only: bool) -> None:
    """Write the report (not into the shipped folder), and download it, everything as a
    zip, or each CSV table."""
    st.subheader("Download")
    report_md = res.folder / REPORT_FILE
    c1, c2, c3 = st.columns(3)
    if not read_only and c1.button(
            "Write the report", icon=":material/description:", key="res_write_report",
            help=f"Writes {REPORT_FILE} and plots/ (PNG and interactive HTML) into "
                 f"{res.folder}."):
        try:
            with st.spinner("Writing the report and its plots…"):
                write_report(res.folder)
            st.success(f"Wrote {report_md}.")
        except (ReportError, OSError) as exc:
            show_error(exc, "Writing the report")
    if report_md.is_file():
        c2.download_button("report.md", report_md.read_bytes(), file_name=f"{res.name}-report.md",
                           mime="text/markdown", icon=":material/download:")
    c3.download_button("Everything (zip)", lambda: bundle_zip(res.folder),
                       file_name=f"{res.name}.zip", mime="application/zip",
                       icon=":material/folder_zip:",
                       help="The report and its plots (if written), the CSV tables, "
                            "results.json and config.toml.")
    csvs = [t for t in TABLES if (res.folder / f"{t}.csv").is_file()]
    for col, tbl in zip(st.columns(max(1, len(csvs))), csvs):
        col.download_button(f"{tbl}.csv", (res.folder / f"{tbl}.csv").read_bytes(),
                            file_name=f"{res.name}-{tbl}.csv", mime="text/csv", key=f"dl_{tbl}")


page_setup("Results", icon=":material/table_chart:", model=False)
init_state({"res_metric": "mrr@10"})
init_state(dict.fromkeys(["res_name", "res_split", "res_kind", "res_docs", "res_scorer"]))
st.title("Results of the experiment grid")
st.markdown(f"**Research question.** {RESEARCH_QUESTION}")
root = results_root()
choices = results_choices(root, shipped_grids())
if not choices:
    st.info(
        f"No results yet in `{root}`. Run a grid from a terminal, for example "
        f"`{RUN_HINT}` (a few minutes on a CPU; Ctrl-C stops it and a rerun skips the "
        "finished cells), then reload this page. To read results from another folder, set "
        "`OPTICAL_RESULTS_DIR` and restart the app.",
        icon=":material/info:",
    )
    stop(LATE_KEYS)
res, choice = pick_results(root, choices, LATE_KEYS)
splits = res.splits()
if not splits:
    status_panel(res)
    st.info("No cell has finished yet; the tables appear as soon as the first one does.")
    stop(LATE_KEYS)
answer_panel(res)
st.divider()
st.subheader("The grid in detail")
st.caption(
    "Each cell of the grid trains a student (or takes an untrained model) for one language "
    "and measures x→en retrieval on Multi30k with clean and noisy queries. Intervals are 95 % "
    "bootstrap intervals over queries; \\* p < 0.05, \\*\\* p < 0.01 (paired test on the "
    "same queries)."
)
status_panel(res)
view = view_controls(res, splits)
tables_panel(only_docs(res, docs_control(res)), *view, scorer_control(res))
checkpoints_panel(res, shipped=choice.shipped is not None)
if res.notes:
    st.subheader("Notes")
    st.markdown("\n".join(f"- {n}" for n in res.notes))
downloads_panel(res, read_only=choice.shipped is not None)

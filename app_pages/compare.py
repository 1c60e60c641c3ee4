"""Compare: trained runs side by side — clean and robust accuracy, attack success, corruptions, confounding —
every cell read from a stored evaluation with the command that made it (``nnkit compare``)."""

import streamlit as st

from app_pages import _shared as ui
from nnkit.compare import COLUMNS, compare_runs, missing_cells
from nnkit.jobs.compare_tasks import compute_missing_task
from nnkit.plots.compare import clean_vs_robust

ui.page_header("Compare", "Runs side by side, as on a robustness leaderboard: every number comes from an evaluation "
               "stored with its run and the command that reproduces it; a missing cell can be computed here.")

runs = ui.classifier_runs()
labels = {r.run_id: ui.run_label(r) for r in runs}
ids = list(labels)
defaults = [r.run_id for r in ui.model_runs()][:3]  # the latest few, never an auxiliary model (a GAN's judge)
EPS = ["1/255", "2/255", "4/255", "8/255", "16/255"]

left, mid, right = st.columns([4, 1, 2])
chosen = left.multiselect("Runs", ids, default=defaults, format_func=labels.get, key="compare_runs",
                          placeholder="choose trained runs")
reference = right.selectbox("mCE reference run", [None, *chosen], key="compare_reference",
                            format_func=lambda r: "as stored" if r is None else labels.get(r, r),
                            help="Mean corruption error (Hendrycks & Dietterich 2019) is each run's corruption "
                                 "error relative to this run's, e.g. the standard model beside adversarially "
                                 "trained ones.")
eps_text = mid.selectbox("ε (L∞) of robust accuracy", EPS, index=EPS.index("8/255"), key="compare_eps",
                           help="The budget of the robust-accuracy column: each pixel may move by at most ε "
                                "(images in [0, 1]). APGD results are preferred, else PGD; the cell says which.")
if not ids:
    st.info("No trained model yet: run **Quick start** on Home or train one on **Train**.", icon=":material/info:")
    st.stop()
if not chosen:
    st.info("Choose at least one run above.", icon=":material/info:")
    st.stop()

with ui.guard():
    table = compare_runs(chosen, eps=eps_text, reference=reference)
for text in table.warnings:  # a broken evaluation file: skipped, named here
    st.warning(ui.md(text), icon=":material/warning:")

# Raw fractions in the downloads; here percentages are numbers scaled to 0-100 shown as 97.0%, so sorting a column
# sorts the numbers; a missing cell shows "—".
PERCENT = {c.key for c in COLUMNS if c.fmt == "percent"}
records = [{c.key: (100 * v if c.key in PERCENT and v is not None else v) for c in COLUMNS
            for v in [row.cells[c.key].value]} for row in table.rows]
FORMATS = {"percent": "%.1f%%", "int": "localized", "seconds": "%.1f s"}
config = {}
for c in COLUMNS:
    header = f"robust acc. (ε={table.eps_text})" if c.key == "robust_accuracy" else c.header
    why = f"{c.header}: — when not measured yet (see the commands below)" if c.kind else None
    config[c.key] = (st.column_config.NumberColumn(header, format=FORMATS[c.fmt], help=why) if c.fmt in FORMATS
                     else st.column_config.TextColumn(header, help=why))
st.dataframe(records, column_config=config, hide_index=True, width="stretch", placeholder="—", key="compare_table")

cols = st.columns([1, 1, 4])
with cols[0]:
    st.download_button("Table (CSV)", data=table.to_csv(), file_name=f"compare-eps{table.eps_text.replace('/', '-')}.csv",
                       mime="text/csv", key="compare_dl_csv", icon=":material/download:", on_click="ignore")
with cols[1]:
    ui.download_json(table.to_dict(), f"compare-eps{table.eps_text.replace('/', '-')}.json", key="compare_dl_json",
                     label="Table (JSON)")

st.subheader("Where each number comes from")
cells = [(row, c) for row in table.rows for c in COLUMNS if c.key != "run"]
first = next((i for i, (_, c) in enumerate(cells) if c.key == "robust_accuracy"), 0)
pick = st.selectbox("Cell", range(len(cells)), index=first, key="compare_cell",
                    format_func=lambda i: f"{cells[i][0].label} · {cells[i][1].header} · {cells[i][0].cells[cells[i][1].key].text()}")
row, col = cells[pick]
cell = row.cells[col.key]
if cell.missing:
    st.markdown(f"Not measured yet{': ' + ui.md(cell.note) if cell.note else ''}. The command that computes it:")
elif cell.source == "meta.json":
    st.markdown(f"From the run's meta.json (written at the end of training, {ui.md(cell.created)})"
                + (f": {ui.md(cell.note)}." if cell.note else "."))
else:
    st.markdown(f"From the stored {ui.md(cell.source)}, made {ui.md(cell.created)}, by:")
if cell.command:
    st.code(cell.command, language="bash")

todo = missing_cells(table)
blocked = [c for c in missing_cells(table, computable_only=False) if not c.computable]
st.subheader("Missing cells")
if todo or blocked:
    st.code("\n".join(c.command for c in todo + blocked), language="bash")
    for c in blocked:
        st.caption(f"{ui.md(labels.get(c.run_id, c.run_id))}: {ui.md(c.note)}")
else:
    st.caption("None: every cell holds a stored number.")
go = st.button(f"Compute {len(todo)} missing cell{'s' * (len(todo) != 1)}", type="primary",
               icon=":material/calculate:", disabled=not todo or ui.has_active_job("compare"), key="compare_go",
               help="Runs the commands above, one after another, as a background job; each result is stored with "
                    "its run, so it is computed once.")
st.caption(ui.estimate_note("compare", slot="compare", what="computation"))
if go:
    with ui.guard():
        ui.submit_job(compute_missing_task, kind="compare", title=f"Compute {len(todo)} cells for Compare",
                      slot="compare", run_ids=list(chosen), eps=table.eps, reference=table.reference)
    st.rerun()
view = ui.job_panel(ui.current_job("compare"), key="compare")
if view is not None and view.result and view.result.get("failed"):
    for f in view.result["failed"]:
        st.warning(f"{ui.md(f['column'])} of {ui.md(f['run_id'])}: {ui.md(f['error'])}", icon=":material/warning:")

st.subheader("Clean against robust accuracy")
fig = clean_vs_robust([r.label for r in table.rows], [r.cells["clean_accuracy"].value for r in table.rows],
                      [r.cells["robust_accuracy"].value for r in table.rows], table.eps_text)
st.plotly_chart(fig, key="compare_plot", config={"displaylogo": False})
ui.download_figure(fig, "compare-clean-vs-robust.html", key="compare_dl_fig")

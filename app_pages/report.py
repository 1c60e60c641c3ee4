"""Report: one document to hand over about a trained model: what it is, how well it does, how brittle it is and
whether it relies on a confounder, as HTML, JSON, Markdown and PDF."""

from pathlib import Path

import streamlit as st

from app_pages import _shared as ui
from nnkit.jobs.report_tasks import report_task
from nnkit.report import SECTIONS, list_reports
from nnkit.report.document import SECTION_TITLES
from nnkit.report.settings import ReportSettings, default_sections
from nnkit.report.write import markdown_zip

ui.page_header("Report", "One document to hand over: the model card, its robustness to single-pixel and patch "
               "attacks, what its explanations show, and the three findings that matter most.")
active = ui.require_active_run()
labels = {r.run_id: ui.run_label(r) for r in ui.classifier_runs()}
ids = list(labels)
# Keyed by the active model, so a new choice in the sidebar becomes this page's default.
run_id = st.selectbox("Model", ids, index=ids.index(active.run_id) if active.run_id in ids else 0,
                      format_func=labels.get, key=f"report_run_{active.run_id}")

# No time promise measured elsewhere (issue 17): the note under the form says what the last report here took.
BUDGETS = {"quick": "Quick (fewer images and attack budgets)", "full": "Full (every section at full size)"}
with st.form("report_form"):
    # The default fits the default (quick) budget: shortcut discovery is there to pick, not preselected.
    sections = st.multiselect("Sections (the summary is always included)", list(SECTIONS),
                              default=default_sections(quick=True), format_func=SECTION_TITLES.get,
                              key="report_sections")
    budget = st.segmented_control("Budget", list(BUDGETS), default="quick", format_func=BUDGETS.get,
                                  key="report_budget")
    box = st.text_input("Suspected confounder box x0,y0,x1,y1 (optional)", key="report_mask_box",
                        placeholder="e.g. 20,20,28,28 (pixels of your images) or 75%,75%,100%,100%",
                        help="For data without confounder masks (e.g. your own folder): the region the confounding "
                             "check tests, in pixels of your images as they are on disk, or as percentages of the "
                             "width and height. Empty: the data's own masks; a folder without them skips the check.")
    go = st.form_submit_button("Build report", type="primary", icon=":material/description:",
                               disabled=ui.has_active_job("report"))
st.caption(ui.estimate_note("report", slot="report", what="report"))

if go:
    if not sections:
        st.error("Choose at least one section.", icon=":material/error:")
        st.stop()
    with ui.guard():
        quick = (budget or "quick") == "quick"
        overrides = {"confounding_mask_box": box.strip()} if box.strip() else {}
        ReportSettings.make(quick, overrides)  # a malformed box is one error line here, not a failed job
        ui.submit_job(report_task, kind="report", title=f"Report of {labels[run_id]}", slot="report", run_id=run_id,
                      sections=sections, quick=quick, overrides=overrides)
    st.rerun()

ui.job_panel(ui.current_job("report"), key="report")

reports = list_reports(run_id)
if not reports:
    st.info("No report of this model yet: build one above.", icon=":material/info:")
    st.stop()

st.subheader("Reports of this model")
choices = {str(r["folder"]): r for r in reports}


def _label(folder: str) -> str:
    r = choices[folder]
    kind = "quick" if r.get("quick") else "full"
    return f"{r.get('created', '?')} · {kind} · " + ", ".join(SECTION_TITLES.get(s, s) for s in r.get("sections", []))


chosen = choices[st.selectbox("Report", list(choices), format_func=_label, key=f"report_pick_{run_id}")]
folder = Path(chosen["folder"])
ICONS = {"high": ":material/error:", "medium": ":material/warning:", "low": ":material/check_circle:"}
for f in chosen.get("findings", []):
    st.markdown(f"{ICONS.get(f['severity'], '')} **{f['headline']}.** {f['text']}")

cols = st.columns(4)
downloads = [("HTML", "report.html", "text/html", lambda: (folder / "report.html").read_bytes()),
             ("JSON", "report.json", "application/json", lambda: (folder / "report.json").read_bytes()),
             ("Markdown + PNGs (zip)", "report-md.zip", "application/zip", lambda: markdown_zip(folder)),
             ("PDF", "report.pdf", "application/pdf", lambda: (folder / "report.pdf").read_bytes())]
for col, (label, name, mime, data) in zip(cols, downloads):
    if name == "report.pdf" and not (folder / name).is_file():
        col.caption("No PDF: headless Chromium is not installed on the server.")
        continue
    col.download_button(label, data=data, file_name=f"{folder.name}-{name}", mime=mime, key=f"report_dl_{name}",
                        icon=":material/download:", on_click="ignore", width="stretch")

if st.toggle("Preview the report here", value=True, key="report_preview"):
    # The report is our own self-contained HTML: it runs plotly.js inside the frame and fetches nothing.
    st.iframe(folder / "report.html", height=900)

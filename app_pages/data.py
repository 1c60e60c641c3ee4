"""Data: look at a dataset (samples per class, class balance, confounder tags) or upload your own."""

import streamlit as st

from app_pages import _shared as ui
from nnkit import data as datasets
from nnkit.data import preview
from nnkit.data.upload import MAX_FILES, MAX_IMAGE_PIXELS, MAX_TOTAL_PIXELS, UPLOAD_TTL_S, check_zip, expire_uploads
from nnkit.jobs.data_tasks import upload_task
from nnkit.plots import data as data_plots

ui.page_header("Data", "Look at what a model will learn from before you train it: samples, balance, planted shortcuts.")

name = ui.dataset_select("data_name")
with st.form("data_form"):
    opts = ui.dataset_options(name, "data")
    per_class = st.slider("Samples per class", 4, 16, 8, key="data_per_class")
    st.form_submit_button("Show", icon=":material/visibility:")

with ui.guard(), st.spinner(f"Loading {ui.dataset_label(name)}…"):
    ds = datasets.create(name, **opts)

cols = st.columns(4)
cols[0].metric("Classes", ds.num_classes)
cols[1].metric("Image size", f"{ds.image_size}×{ds.image_size}")
cols[2].metric("Channels", ds.in_channels)
cols[3].metric("Images", f"{sum(len(s) for s in ds.splits.values()):,}")

st.subheader("Samples per class")
split_name = st.segmented_control("Split", list(ds.splits), default="train", key="data_split") or "train"
split = ds.split(split_name)
scale = max(1, 64 // ds.image_size)
grid = preview.sample_grid(split, ds.num_classes, per_class=per_class, scale=scale)
centres = preview.grid_row_centres(ds.num_classes, ds.image_size, scale=scale)
st.plotly_chart(data_plots.image_grid(grid, ds.class_names, centres), key="data_grid", config={"displayModeBar": False})
st.download_button("Sample grid (PNG)", data=lambda: preview.png_bytes(grid), on_click="ignore",
                   file_name=f"{ui.dataset_label(name).replace(': ', '-')}-{split_name}-samples.png", mime="image/png",
                   icon=":material/download:", key="data_grid_png")

st.subheader("Class balance")
counts = preview.class_counts(ds)
fig = data_plots.class_balance(counts, ds.class_names)
st.plotly_chart(fig, key="data_balance")
ui.download_json({"dataset": ds.name, "class_names": ds.class_names, "counts": counts},
                 f"{ui.dataset_label(name).replace(': ', '-')}-class-counts.json", key="data_counts_json",
                 label="Class counts (JSON)")

if preview.has_tags(ds):
    st.subheader("Planted confounder: the tag masks")
    st.write("Most training images carry a small coloured tag whose corner and colour give the class away, like "
             "a hospital's token on an X-ray. Top: tagged images; middle: the tag mask stored with each image; "
             "bottom: the image outside the tag dimmed. The Explain & Confounding page checks whether a model "
             "looks at these pixels.")
    with ui.guard(stop=False):
        tags = preview.tag_mask_grid(ds.split("train"), n=10)
        st.image(tags, width="content")

st.divider()
st.subheader("Upload your own images")
st.write("A zip with one folder of images per class (for example `cats/1.jpg`, `dogs/7.png`), or `train/` and "
         "`test/` folders that each hold the class folders. It becomes a dataset you can train on.")
st.caption(f"Limits: {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels per image, {MAX_TOTAL_PIXELS / 1e6:.0f} megapixels "
           f"in all, {MAX_FILES:,} files. An upload that no run was trained on is removed "
           f"{UPLOAD_TTL_S // 3600} hours after its import.")
if "data_uploads_expired" not in st.session_state:  # once per browser session: it reads the run store
    with ui.guard(stop=False):
        st.session_state["data_uploads_expired"] = expire_uploads()
with st.form("upload_form", clear_on_submit=True):
    upload = st.file_uploader("Zip of class folders", type=["zip"], key="data_upload")
    new_name = st.text_input("Dataset name (default: the zip's name)", key="data_upload_name")
    imported = st.form_submit_button("Import", icon=":material/upload:", disabled=ui.has_active_job("upload"))
if imported:
    if upload is None:
        st.error("Choose a zip file first.", icon=":material/error:")
    else:
        with ui.guard():
            data = upload.getvalue()
            plan = check_zip(data, new_name or upload.name)  # the zip's directory only: a quick one-line answer
            # Unpacking, checking and decoding the images runs as a job: a huge upload never blocks the page.
            ui.submit_job(upload_task, kind="upload", slot="upload", heavy=False, title=f"Import {plan.label}",
                          data=data, name=plan.folder)
            st.rerun()


def _select_upload(view) -> None:
    ui.select_dataset_next("data_name", view.result["dataset"])


ui.job_panel(ui.current_job("upload"), key="upload", on_done=_select_upload)

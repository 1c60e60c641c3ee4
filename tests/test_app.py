"""The dashboard under Streamlit's AppTest (entry, every page, uploads, a training job) and its
library helpers (figure builders, dataset previews, the zip import)."""

from __future__ import annotations

import io
import os
import re
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import streamlit_app  # the dashboard entry at the repository root
from nnkit.data import create as create_dataset
from nnkit.data import preview
from nnkit.data.upload import import_zip, list_uploads, safe_name, uploads_dir
from nnkit.errors import NnkitError
from nnkit.plots import data as data_plots
from nnkit.plots import training as training_plots
from tests.apptest_helpers import ok as _ok

ROOT = Path(__file__).resolve().parents[1]
ENTRY = str(ROOT / "streamlit_app.py")
TINY = {"n_train": 200, "n_test": 100}  # generated datasets this small build in well under a second


# -- helpers --------------------------------------------------------------------------------------
def _png(colour=(255, 0, 0), size=8) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, format="PNG")
    return buf.getvalue()


def _zip(files: dict[str, bytes], links: tuple[str, ...] = ()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return buf.getvalue()


def _two_classes(prefix="", n=4) -> dict[str, bytes]:
    files = {}
    for cls, colour in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
        for i in range(n):
            files[f"{prefix}{cls}/{i}.png"] = _png(colour)
    return files


def _app():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(ENTRY, default_timeout=120)
    for opt, value in TINY.items():  # tiny settings for the pages that build a dataset
        at.session_state[f"data_{opt}"] = value
        at.session_state[f"train_data_opt_{opt}"] = value
    return at.run()



def _owner(at) -> str:
    return at.session_state["nnkit_owner"]


# -- the entry and every page ---------------------------------------------------------------------
def test_page_list_is_well_formed():
    sections = [section for section, _, _, _ in streamlit_app.PAGES]
    assert sections[0] == "Lab" and sections == sorted(sections, key=sections.index)  # sections stay together
    titles = [title for _, _, title, _ in streamlit_app.PAGES]
    assert titles[0] == "Home" and len(set(titles)) == len(titles)
    for _, path, _, icon in streamlit_app.PAGES:
        assert (ROOT / path).is_file(), path
        assert path.startswith("app_pages/") and not Path(path).name.startswith("_")
        assert icon.startswith(":material/")
    # A pages/ folder would switch Streamlit to its old multipage mode for deep links (no sidebar).
    assert not (ROOT / "pages").exists()
    # st.Page only builds inside a script run: the AppTests below switch to every page through
    # st.navigation, which fails for a page build_pages() did not register.


def test_entry_renders_home_with_sidebar():
    at = _app()
    _ok(at)
    assert at.title[0].value == "nnkit lab"
    assert any(b.label == "Quick start" for b in at.button)
    sidebar = " ".join(c.value for c in at.sidebar.caption)
    assert "cpu" in sidebar or "cuda" in sidebar or "mps" in sidebar


@pytest.mark.parametrize("path,title", [(p, t) for _, p, t, _ in streamlit_app.PAGES])
def test_every_page_renders(path, title):
    at = _app()
    at.switch_page(path).run()
    _ok(at)
    assert at.title[0].value == ("nnkit lab" if path.endswith("home.py") else title)
    assert at.caption[0].value  # the one line of why
    assert "cpu" in at.sidebar.caption[0].value or "cuda" in at.sidebar.caption[0].value  # the shared sidebar


def test_data_page_shows_grid_balance_and_tag_masks():
    at = _app()
    at.switch_page("app_pages/data.py").run()
    _ok(at)
    assert [s.value for s in at.subheader][:2] == ["Samples per class", "Class balance"]
    assert "Planted confounder: the tag masks" not in [s.value for s in at.subheader]
    at.selectbox(key="data_name").set_value("shapes-confounded").run()
    _ok(at)
    assert "Planted confounder: the tag masks" in [s.value for s in at.subheader]
    assert len(at.image) >= 1  # the tag mask grid
    assert len(at.get("plotly_chart")) == 2  # sample grid and class balance


@pytest.mark.parametrize("files,message", [
    ({"red/a.png": _png(), "red/notes.txt": b"hello", "blue/b.png": _png()}, "is not an image"),
    ({}, "holds no images"),
    ({"only/a.png": _png(), "only/b.png": _png()}, "a classifier needs at least two"),
    ({"../evil/a.png": _png(), "ok/b.png": _png()}, "unsafe path"),
    ({"red/a.png": b"not really a png", "blue/b.png": _png()}, "unreadable image"),
])
def test_data_page_upload_errors_are_one_line(files, message):
    at = _app()
    at.switch_page("app_pages/data.py").run()
    at.file_uploader(key="data_upload").set_value(("bad.zip", _zip(files), "application/zip"))
    at.button(key="FormSubmitter:upload_form-Import").click().run()
    _wait_upload(at)  # an unreadable image is found by the import job, the rest by the page at once
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and message in errors[0] and "\n" not in errors[0], errors
    assert not (uploads_dir() / "bad").exists()


def _wait_upload(at) -> None:
    """Let this session's import job (if the page started one) end, then redraw the page."""
    from nnkit.jobs import get_manager

    jobs = get_manager().list(owner=at.session_state["nnkit_owner"], tag="upload")
    if jobs:
        get_manager().wait(jobs[0].id, 120)
        at.run()


def test_data_page_upload_not_a_zip():
    at = _app()
    at.switch_page("app_pages/data.py").run()
    at.file_uploader(key="data_upload").set_value(("photo.zip", _png(), "application/zip"))
    at.button(key="FormSubmitter:upload_form-Import").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == ["photo.zip: not a zip archive (zip a folder with one sub-folder of "
                                            "images per class)"]


def test_data_page_upload_imports_and_selects_the_dataset():
    at = _app()
    at.switch_page("app_pages/data.py").run()
    at.file_uploader(key="data_upload").set_value(("My Colours.zip", _zip(_two_classes("colours/")),
                                                    "application/zip"))
    at.button(key="FormSubmitter:upload_form-Import").click().run()
    _wait_upload(at)
    _ok(at)
    assert any("Imported My-Colours: 2 classes, 8 images" in s.value for s in at.success)
    assert at.selectbox(key="data_name").value == f"folder:{uploads_dir() / 'My-Colours'}"
    assert at.metric[0].value == "2"


def test_train_page_trains_in_the_background_and_shows_the_result():
    from nnkit.jobs import JobStatus, get_manager

    at = _app()
    at.switch_page("app_pages/train.py").run()
    _ok(at)
    at.number_input(key="train_epochs").set_value(1)
    at.selectbox(key="train_activation").set_value("tanh")
    at.checkbox(key="train_bn").check()
    at.text_input(key="train_name").input("apptest-tiny")
    at.button(key="FormSubmitter:train_form-Train").click().run()
    _ok(at)
    jobs = get_manager().list(owner=_owner(at), tag="train")
    assert jobs and jobs[0].title.startswith("Train cnn on shapes")
    assert at.get("progress") or jobs[0].status.finished  # the live panel
    view = get_manager().wait(jobs[0].id, 120)
    assert view.status is JobStatus.DONE, view.error
    at.run()
    _ok(at)
    assert at.sidebar.selectbox(key="nnkit_active_run").value == view.result["run_id"]  # the new active model
    assert any(view.result["run_id"] in c.value for c in at.caption)  # and the run on show
    assert any(m.label == "Test accuracy" for m in at.metric)
    assert len(at.get("plotly_chart")) >= 3  # live curves, result curves, confusion matrix (+ comparison)
    from nnkit.runs import RunStore

    run = RunStore().get(view.result["run_id"])
    assert run.name == "apptest-tiny" and run.meta["model"]["activation"] == "tanh"
    assert run.meta["model"]["batch_norm"] is True and run.meta["dataset"]["n_test"] == TINY["n_test"]


def test_home_quick_start_runs_in_the_background_and_cancels():
    from nnkit.jobs import JobStatus, get_manager

    at = _app()
    at.button(key="quick_start").click().run()
    _ok(at)
    jobs = get_manager().list(owner=_owner(at), tag="quick-start")
    assert len(jobs) == 1 and jobs[0].active
    assert at.button(key="quick_start").disabled  # one quick start at a time
    assert at.get("progress")
    cancel = [b for b in at.button if b.label == "Cancel"]
    assert cancel
    cancel[0].click().run()
    # Cancel lands at the next batch; the wait is generous for a loaded CI machine (the 2 s bound on an
    # idle machine is checked in tests/test_jobs.py).
    view = get_manager().wait(jobs[0].id, 120)
    assert view.status is JobStatus.CANCELLED
    at.run()
    _ok(at)
    assert any("Cancelled" in w.value for w in at.warning)


def test_a_second_session_of_the_same_browser_reattaches():
    from nnkit.jobs import get_manager

    first = _app()
    first.button(key="quick_start").click().run()
    job = get_manager().list(owner=_owner(first), tag="quick-start")[0]
    try:
        second = _app()
        second.session_state["nnkit_owner"] = _owner(first)  # what the browser's cookie gives a new tab
        second.run()
        assert any(b.label == "Cancel" for b in second.button)
        other = _app()  # another browser sees neither the panel nor the job
        assert not any(b.label == "Cancel" for b in other.button)
        assert not get_manager().list(owner=_owner(other), tag="quick-start")
    finally:
        get_manager().cancel(job.id)
        get_manager().wait(job.id, 30)


# -- figure builders and previews -----------------------------------------------------------------
def test_training_curves_from_live_and_stored_metrics():
    live = [{"step": 1, "epoch": 1, "loss": 2.3}, {"step": 2, "epoch": 1, "loss": 2.1},
            {"step": 2, "epoch": 1, "train_loss": 2.2, "train_accuracy": 0.2, "val_loss": 2.0, "val_accuracy": 0.3}]
    fig = training_plots.training_curves(live)
    names = [t.name for t in fig.data]
    assert names == ["batch loss", "train loss", "train accuracy", "validation loss", "validation accuracy"]
    assert list(fig.data[0].y) == [2.3, 2.1]
    stored = [{"epoch": 1, "train_loss": 1.0, "train_accuracy": 0.5}, {"epoch": 2, "train_loss": 0.5,
                                                                       "train_accuracy": 0.8}]
    assert list(training_plots.training_curves(stored).data[0].x) == [1, 2]
    assert training_plots.training_curves([]).layout.annotations[0].text.startswith("waiting")


def test_confusion_balance_compare_and_grid_figures():
    fig = training_plots.confusion_matrix([[3, 1], [0, 4]], ["cat", "dog"])
    assert np.allclose(np.asarray(fig.data[0].z), [[0.75, 0.25], [0.0, 1.0]])
    assert np.asarray(fig.data[0].text).tolist() == [[3, 1], [0, 4]]
    bars = data_plots.class_balance({"train": [5, 7], "test": [1, 2]}, ["a", "b"])
    assert [b.name for b in bars.data] == ["train", "test"] and list(bars.data[0].y) == [5, 7]
    cmp = training_plots.compare_runs({"r1": [{"epoch": 1, "val_accuracy": 0.5}], "r2": [{"epoch": 1}]}, "val_accuracy")
    assert [t.name for t in cmp.data] == ["r1"] and tuple(cmp.layout.yaxis.range) == (0, 1.02)
    assert not training_plots.compare_runs({"r2": [{"epoch": 1}]}, "val_accuracy").data
    grid = data_plots.image_grid(np.zeros((10, 20, 3), np.uint8), ["x"], [5.0])
    assert list(grid.layout.yaxis.ticktext) == ["x"]


def test_previews_of_a_generated_dataset():
    ds = create_dataset("shapes-confounded", **TINY)
    counts = preview.class_counts(ds)
    assert set(counts) == set(ds.splits) and sum(counts["train"]) == TINY["n_train"]
    assert counts["train"] == torch.bincount(ds.split("train").labels, minlength=10).tolist()
    grid = preview.sample_grid(ds.split("train"), ds.num_classes, per_class=4, scale=2, pad=2)
    assert grid.dtype == np.uint8 and grid.shape == ((2 + 10 * 34) * 2, (2 + 4 * 34) * 2, 3)
    assert preview.grid_row_centres(2, 32, scale=2, pad=2) == [36.0, 104.0]
    assert preview.has_tags(ds) and not preview.has_tags(create_dataset("shapes", **TINY))
    masks = preview.tag_mask_grid(ds.split("train"), n=5, scale=1, pad=0)
    assert masks.shape == (96, 160, 3)
    assert set(np.unique(masks[32:64])) <= {0, 255}  # the middle row is the boolean mask itself
    png = preview.png_bytes(grid)
    assert Image.open(io.BytesIO(png)).size == (grid.shape[1], grid.shape[0])
    with pytest.raises(NnkitError):
        preview.tag_mask_grid(create_dataset("shapes", **TINY).split("train"))


def test_sample_grid_of_grey_images_and_missing_classes():
    from nnkit.data.base import Split

    split = Split(torch.rand(6, 1, 8, 8), torch.tensor([0, 0, 0, 1, 1, 1]))
    grid = preview.sample_grid(split, num_classes=3, per_class=2, scale=1, pad=0)
    assert grid.shape == (24, 16, 3)
    assert (grid[16:] == 255).all()  # class 2 has no images: a blank row


# -- the zip import ------------------------------------------------------------------------------
def test_import_zip_with_a_top_folder_and_junk(tmp_path, monkeypatch):
    monkeypatch.setenv("NNKIT_HOME", str(tmp_path))
    files = _two_classes("animals/") | {"__MACOSX/animals/red/._0.png": b"x", "animals/.DS_Store": b"x"}
    name = import_zip(_zip(files), "animals.zip")
    assert name == f"folder:{tmp_path / 'uploads' / 'animals'}"
    assert sorted(p.name for p in (tmp_path / "uploads" / "animals").iterdir()) == ["blue", "red"]
    assert list_uploads() == [name]
    ds = create_dataset(name)
    assert ds.class_names == ["blue", "red"] and sum(len(s) for s in ds.splits.values()) == 8
    with pytest.raises(NnkitError, match="already exists"):
        import_zip(_zip(files), "animals.zip")


def test_import_zip_with_train_and_test_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("NNKIT_HOME", str(tmp_path))
    name = import_zip(_zip(_two_classes("train/") | _two_classes("test/", n=2)), "split")
    ds = create_dataset(name)
    assert (len(ds.split("train")), len(ds.split("test"))) == (8, 4)


@pytest.mark.parametrize("files,links,message", [
    ({"/abs/a.png": _png(), "b/b.png": _png()}, (), "unsafe path"),
    ({"a\\..\\..\\x.png": _png(), "b/b.png": _png()}, (), "unsafe path"),
    ({"C:/x/a.png": _png(), "b/b.png": _png()}, (), "unsafe path"),
    (_two_classes(), ("red/link.png",), "symbolic link"),
    ({"a.png": _png(), "b/b.png": _png()}, (), "not inside a class folder"),
    ({"red/": b"", "blue/": b""}, (), "holds no images"),
])
def test_import_zip_refuses_unsafe_archives(tmp_path, monkeypatch, files, links, message):
    monkeypatch.setenv("NNKIT_HOME", str(tmp_path))
    with pytest.raises(NnkitError, match=message):
        import_zip(_zip(files, links), "evil")
    assert not (tmp_path / "uploads").exists() or os.listdir(tmp_path / "uploads") == []
    assert not (tmp_path.parent / "x.png").exists() and not Path("/abs/a.png").exists()


def test_import_zip_refuses_a_zip_bomb(tmp_path, monkeypatch):
    import nnkit.data.upload as upload

    monkeypatch.setenv("NNKIT_HOME", str(tmp_path))
    monkeypatch.setattr(upload, "MAX_UNPACKED_BYTES", 1000)
    with pytest.raises(NnkitError, match="too large"):
        import_zip(_zip({"red/a.png": b"\0" * 800, "blue/b.png": b"\0" * 800}), "bomb")


def test_safe_name():
    assert safe_name("My Photos (2).zip") == "My-Photos-2"
    assert safe_name("../../etc") == "etc"
    with pytest.raises(NnkitError):
        safe_name("...zip")


def test_pages_hold_no_torch_maths_and_the_library_no_streamlit():
    imports = re.compile(r"^\s*(?:import|from)\s+(\w+)", re.M)
    for page in (ROOT / "app_pages").glob("*.py"):
        assert "torch" not in imports.findall(page.read_text()), page
    for module in [*(ROOT / "nnkit").rglob("*.py"), *(ROOT / "attacks").rglob("*.py")]:
        assert "streamlit" not in imports.findall(module.read_text()), module

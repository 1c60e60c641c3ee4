"""The GAN and Style transfer pages under AppTest, their job functions (no Streamlit) and figure builders."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from nnkit.errors import NnkitError
from nnkit.gan import GanConfig
from nnkit.jobs import JobManager, JobStatus, get_manager
from nnkit.jobs.generative_tasks import (
    calibrate_gan,
    default_style_size,
    epoch_grids,
    gan_grid,
    gan_report,
    gan_task,
    grids_zip,
    image_label,
    read_image_source,
    style_task,
)
from nnkit.plots import generative as gplots
from nnkit.runs import RunStore
from nnkit.style import StyleConfig
from tests.apptest_helpers import ok as _ok

ROOT = Path(__file__).resolve().parents[1]
ENTRY = str(ROOT / "streamlit_app.py")
DATA_OPTS = {"n_train": 100, "n_test": 100}  # the smallest the dashboard's dataset widgets allow
# Narrow networks, a few steps, a one-epoch judge: a GAN job of a few seconds on a CPU.
TINY_GAN = dict(data="shapes", data_opts=DATA_OPTS, g_width=8, d_width=8, batch_size=16, epochs=2, max_steps=9,
                n_samples=16, n_eval=32, judge_epochs=1, seed=0)
TINY_STYLE = dict(steps=6, size=32, weights="random", seed=0)


def _png(size=(40, 20), colour=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def _size(png: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(png)).size


def _run_job(fn, **kwargs):
    mgr = JobManager()
    view = mgr.wait(mgr.submit(fn, kind="test", title="test", device="cpu", **kwargs), 300)
    assert view.status is JobStatus.DONE, view.error
    return view


@pytest.fixture(scope="module")
def gan_job():
    """A finished tiny class-conditional GAN job (its run is in the session's store)."""
    return _run_job(gan_task, config=GanConfig(**TINY_GAN, conditional=True))


@pytest.fixture(scope="module")
def style_job():
    return _run_job(style_task, content="landscape", style=("my style.png", _png((48, 48))),
                    config=StyleConfig(**TINY_STYLE), name="tiny-style")


# -- the job functions, without Streamlit -----------------------------------------------------------
def test_gan_task_reports_losses_scores_and_grids_and_saves_a_run(gan_job):
    result = gan_job.result
    assert gan_job.progress == 1.0 and result["stopped_by"] == "max_steps" and result["steps"] == 9
    assert result["epochs_run"] == 2 and result["num_classes"] == 10 and result["frechet_distance"] >= 0
    batches = [m for m in gan_job.metrics if m.get("batch")]
    assert [m["step"] for m in batches] == list(range(1, 10))
    assert all(0 <= m["d_x"] <= 1 and 0 <= m["d_g_z"] <= 1 for m in batches)
    epochs = [m for m in gan_job.metrics if "frechet_distance" in m]
    assert [m["epoch"] for m in epochs] == [1, 2]
    grids = [m for m in gan_job.metrics if "grid_png" in m]
    assert [m["epoch"] for m in grids] == [1, 2]  # the first and the last epoch always
    # conditional: one row per class, ceil(16 / 10) = 2 samples each, 32 px + 2 px padding
    assert _size(grids[-1]["grid_png"]) == (2 + 2 * 34, 2 + 10 * 34)
    assert "Fréchet distance" in gan_job.message
    run = RunStore().get(result["run_id"])
    assert run.kind == "gan" and run.meta["conditional"] is True
    assert list(epoch_grids(run)) == [1, 2]
    with zipfile.ZipFile(io.BytesIO(grids_zip(run))) as zf:
        assert zf.namelist() == [f"{run.run_id}/epoch_001.png", f"{run.run_id}/epoch_002.png"]
    report = json.loads(json.dumps(gan_report(run)))
    assert report["judge"]["run_id"] == result["judge_run_id"] and len(report["history"]) == 2


def test_gan_grid_draws_samples_interpolations_and_class_rows(gan_job):
    run = RunStore().get(gan_job.result["run_id"])
    assert _size(gan_grid(run, "samples", n=20, seed=1)) == (2 + 10 * 34, 2 + 2 * 34)  # classes cycle per row
    assert _size(gan_grid(run, "interpolation", n=3, steps=5, seed=1)) == (2 + 5 * 34, 2 + 3 * 34)
    assert _size(gan_grid(run, "classes", n=4, seed=1)) == (2 + 4 * 34, 2 + 10 * 34)
    assert gan_grid(run, "samples", n=8, seed=1) == gan_grid(run, "samples", n=8, seed=1)  # the seed fixes the noise
    assert gan_grid(run, "samples", n=8, seed=1) != gan_grid(run, "samples", n=8, seed=2)
    with pytest.raises(NnkitError, match="unknown grid"):
        gan_grid(run, "faces")
    with pytest.raises(NnkitError, match="not a gan"):
        gan_grid(RunStore().get(gan_job.result["judge_run_id"]))


def test_style_task_previews_and_saves_a_style_run(style_job):
    result = style_job.result
    assert style_job.progress == 1.0 and result["feature_network"] == "vgg19-random"
    losses = [m for m in style_job.metrics if "loss" in m]
    assert losses and losses[0]["step"] == 1 and {"content", "style", "tv"} <= set(losses[0])
    previews = [m for m in style_job.metrics if "preview_png" in m]
    assert previews and all(_size(m["preview_png"]) == (32, 32) for m in previews)
    run = RunStore().get("tiny-style")
    assert run.run_id == result["run_id"] and run.kind == "style"
    assert run.meta["content"] == "landscape (built-in)" and run.meta["style"] == "my style.png"
    assert "random" in run.meta["feature_network_description"]
    assert run.meta["style_loss_end"] < run.meta["style_loss_start"]
    for name in ("output.png", "content.png", "style.png"):
        assert _size((run.path / name).read_bytes()) == (32, 32)
    assert len(run.metrics()) == result["steps"]


def test_style_task_cancels_without_a_run():
    mgr = JobManager()
    job = mgr.submit(style_task, kind="style", title="t", device="cpu", content="landscape", style="mosaic",
                     config=StyleConfig(**{**TINY_STYLE, "steps": 5000}))
    deadline = time.monotonic() + 120
    while not mgr.get(job).metrics and time.monotonic() < deadline:
        time.sleep(0.05)
    before = {r.run_id for r in RunStore().list(kind="style")}
    mgr.cancel(job)
    assert mgr.wait(job, 60).status is JobStatus.CANCELLED
    assert {r.run_id for r in RunStore().list(kind="style")} == before


def test_read_image_source_builtins_uploads_and_bad_files():
    assert read_image_source("waves", 24).shape == (1, 3, 24, 24)
    image = read_image_source(("wide.png", _png((40, 20))), 32)
    assert image.shape == (1, 3, 16, 32) and torch.allclose(image[0, :, 8, 8], torch.tensor([200, 30, 30]) / 255)
    for data, message in ((b"hello, not a picture", "notes.png: not a readable image"),
                          (b"", "notes.png: the file is empty")):
        with pytest.raises(NnkitError, match=message) as info:
            read_image_source(("notes.png", data), 32)
        assert "\n" not in str(info.value) and "/tmp" not in str(info.value)
    with pytest.raises(NnkitError, match="unknown built-in image"):
        read_image_source("mona-lisa", 32)
    assert image_label("waves") == "waves (built-in)" and image_label(("a/b.jpg", b"")) == "b.jpg"
    assert default_style_size("cpu") == 128


# -- figure builders -------------------------------------------------------------------------------
def test_gan_figures_from_live_and_stored_records():
    live = [{"batch": True, "step": s, "d_loss": 1.0, "g_loss": 2.0, "d_x": 0.6, "d_g_z": 0.3} for s in (1, 2)]
    epoch = {"epoch": 1, "step": 2, "d_loss": 1.1, "g_loss": 1.9, "d_x": 0.6, "d_g_z": 0.4, "frechet_distance": 5.0,
             "inception_score": 2.0, "class_coverage": 0.5, "confident_share": 0.4, "class_counts": [3, 0]}
    fig = gplots.gan_curves([*live, epoch, {"epoch": 1, "grid_png": b"png"}])
    names = [t.name for t in fig.data]
    assert names == ["D loss (batch)", "D loss", "G loss (batch)", "G loss", "D(x) real (batch)", "D(x) real",
                     "D(G(z)) generated (batch)", "D(G(z)) generated"]
    assert list(fig.data[0].y) == [1.0, 1.0] and list(fig.data[1].x) == [2]
    assert [t.name for t in gplots.gan_curves([epoch]).data] == ["D loss", "G loss", "D(x) real", "D(G(z)) generated"]
    assert gplots.gan_curves([]).layout.annotations[0].text.startswith("waiting")
    quality = gplots.gan_quality([epoch], reference={"inception_score": 1.8, "classes_covered": 2,
                                                     "confident_share": 0.9})
    assert [list(t.y) for t in quality.data] == [[5.0], [2.0], [0.5], [0.4]]
    assert sorted(s.y0 for s in quality.layout.shapes) == [0.9, 1.0, 1.8]  # coverage ceiling 2/2 classes
    assert gplots.gan_quality(live).layout.annotations[0].text.startswith("waiting")


def test_style_figure_skips_previews_and_all_zero_curves():
    records = [{"step": 1, "loss": 3.0, "content": 0.0, "style": 0.03, "tv": 0.0},
               {"step": 2, "preview_png": b"png"}, {"step": 3, "loss": 2.0, "content": 0.1, "style": 0.01, "tv": 0.0}]
    fig = gplots.style_curves(records)
    assert [t.name for t in fig.data] == ["total (weighted)", "content", "style"] and fig.layout.yaxis.type == "log"
    assert list(fig.data[0].x) == [1, 3]
    assert gplots.style_curves([]).layout.annotations[0].text.startswith("waiting")


# -- the pages under AppTest ------------------------------------------------------------------------
def _app(page: str):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(ENTRY, default_timeout=120)
    for opt, value in DATA_OPTS.items():
        at.session_state[f"gan_data_opt_{opt}"] = value
    at.session_state["gan_data"] = "shapes"
    at.run()
    at.switch_page(page).run()
    return at



def _downloads(at) -> list[str]:
    return [b.label for b in at.download_button]


def _wait_for(at, slot: str):
    jobs = get_manager().list(owner=at.session_state["nnkit_owner"], tag=slot)
    assert len(jobs) == 1
    view = get_manager().wait(jobs[0].id, 180)
    assert view.status is JobStatus.DONE, view.error
    return view


@pytest.mark.parametrize("page,title,button", [("app_pages/gan.py", "GAN", "Train GAN"),
                                               ("app_pages/style.py", "Style transfer", "Stylise")])
def test_pages_render_with_their_form(page, title, button):
    at = _app(page)
    _ok(at)
    assert at.title[0].value == title and at.caption[0].value
    assert any(b.label == button for b in at.button)


def test_gan_page_trains_a_tiny_gan_and_shows_its_samples(gan_job):
    at = _app("app_pages/gan.py")
    _ok(at)
    for key, value in (("gan_epochs", 2), ("gan_max_steps", 4), ("gan_judge_epochs", 1), ("gan_time_limit", 60),
                       ("gan_seed", 3)):
        at.number_input(key=key).set_value(value)
    at.text_input(key="gan_name").input("apptest-gan")
    at.button(key="FormSubmitter:gan_form-Train GAN").click().run()
    _ok(at)
    view = _wait_for(at, "gan")
    assert view.title == "Train a GAN on shapes"
    at.run()
    _ok(at)
    assert at.selectbox(key="gan_run").value == view.result["run_id"]  # the new run is on show
    run = RunStore().get("apptest-gan")
    assert run.meta["steps"] == 4 and run.meta["seed"] == 3 and run.meta["conditional"] is False
    assert run.meta["judge"]["run_id"] == gan_job.result["judge_run_id"]  # the tiny judge is reused
    assert at.image[0].captions == ["epoch 2"]  # 3 steps per epoch: the 4th step is in epoch 2
    assert len(at.image) == 3  # the epoch grid, samples, an interpolation (no class rows: unconditional)
    assert {"This grid (PNG)", "All epoch grids (zip)", "Metrics (JSON)", "Samples (PNG)",
            "Interpolation (PNG)"} <= set(_downloads(at))
    assert len(at.get("plotly_chart")) >= 2  # quality per epoch and the losses


def test_gan_page_says_a_run_stopped_by_its_time_limit_and_continues_it(gan_job):
    """Issue 17: the page says plainly that the time limit stopped the GAN and what it reached, offers to
    continue, and continuing starts a new run from the saved state (the step counter goes on)."""
    at = _app("app_pages/gan.py")
    for key, value in (("gan_epochs", 1000), ("gan_judge_epochs", 1), ("gan_time_limit", 1), ("gan_seed", 4)):
        at.number_input(key=key).set_value(value)
    at.button(key="FormSubmitter:gan_form-Train GAN").click().run()
    view = _wait_for(at, "gan")
    stopped = RunStore().get(view.result["run_id"])
    assert view.result["stopped_by"] == "time_limit" and view.result["note"] and stopped.meta["resumable"]
    assert view.message.startswith("stopped: ")  # the job's summary line says so too, not "done"
    at.run()
    _ok(at)
    assert at.selectbox(key="gan_run").value == stopped.run_id
    done = stopped.meta["epochs_done"]
    warning = next(w.value for w in at.warning if "Stopped early" in w.value)
    assert f"{done} of 1000 epochs in" in warning and "time limit 1 s" in warning
    assert "raise the limit or continue training" in warning or "continue training to refine" in warning
    assert any(b.label == "Continue training" for b in at.button)
    # continue to the end of the next epoch, without a time limit
    at.number_input(key="gan_continue_epochs").set_value(done + 1)
    at.number_input(key="gan_continue_time_limit").set_value(0)
    at.button(key="FormSubmitter:gan_continue_form-Continue training").click().run()
    _ok(at)
    jobs = get_manager().list(owner=at.session_state["nnkit_owner"], tag="gan")
    resumed = get_manager().wait(jobs[0].id, 180)
    assert resumed.status is JobStatus.DONE, resumed.error
    run = RunStore().get(resumed.result["run_id"])
    steps_per_epoch = DATA_OPTS["n_train"] // 32  # the page's default batch size
    assert run.meta["parent"] == stopped.run_id and run.meta["stopped_by"] == "epochs"
    assert run.meta["steps"] == (done + 1) * steps_per_epoch  # went on from the parent's step count ...
    assert run.meta["steps_this_run"] == run.meta["steps"] - stopped.meta["steps"]  # ... without a restart
    assert [r["epoch"] for r in run.metrics()] == list(range(1, done + 2))
    at.run()
    _ok(at)
    assert at.selectbox(key="gan_run").value == run.run_id
    assert not any("Stopped early" in w.value for w in at.warning)
    assert any(f"continues `{stopped.run_id}`" in c.value for c in at.caption)


def test_the_gan_page_says_what_to_expect_from_runs_measured_here(gan_job, tmp_path):
    from nnkit.jobs.generative_tasks import gan_expectation

    assert gan_expectation("mnist", RunStore(tmp_path)).startswith("No GAN has run on mnist on this machine yet")
    # before any run here: a calibration of a few steps now says the time per epoch
    calibration = calibrate_gan(GanConfig(**TINY_GAN))
    assert calibration["steps_per_epoch"] == DATA_OPTS["n_train"] // TINY_GAN["batch_size"]
    assert calibration["seconds_per_epoch"] == pytest.approx(calibration["seconds_per_step"] * 6)
    assert 0 < calibration["seconds_per_step"] < 5
    text = gan_expectation("shapes", RunStore(tmp_path), calibration=calibration)
    assert text.startswith("No GAN has run on shapes on this machine yet. A calibration just now (6 steps of the "
                           f"default networks) measured {calibration['seconds_per_epoch']:.0f} s per epoch (6 steps;")
    run = RunStore().get(gan_job.result["run_id"])
    text = gan_expectation("shapes")
    newest = RunStore().list(kind="gan")[0]
    assert text.startswith(f"Measured here: {newest.meta['seconds_per_epoch']:.1f} s per epoch on shapes (newest "
                           f"GAN run {newest.run_id}")
    assert run.meta["quality"]["classes_covered"] < 8  # the tiny runs here are not recognisable: said as such
    assert "None of the" in text and "reached recognisable samples" in text
    at = _app("app_pages/gan.py")
    _ok(at)
    assert any(c.value.startswith("Measured here") and "per epoch on shapes" in c.value for c in at.caption)


def test_the_gan_judge_is_never_the_active_model(gan_job):
    """Issue 17: the automatically trained judge is an auxiliary model; Attack, Explain and the classroom never
    quietly work on it."""
    from nnkit.training import TrainConfig, train

    judge = gan_job.result["judge_run_id"]
    assert RunStore().get(judge).name == "gan-judge-shapes"
    at = _app("app_pages/gan.py")
    _ok(at)
    boxes = [b for b in at.selectbox if b.key == "nnkit_active_run"]
    assert all(judge not in b.options for b in boxes)
    # with a model of the user's beside it, that model is the Active one, though the judge is newer
    mine = train(TrainConfig(data="shapes", data_opts=DATA_OPTS, epochs=1, max_steps=2, seed=0, device="cpu",
                             name="users-own-model"))
    newer_judge = train(TrainConfig(data="shapes", data_opts=DATA_OPTS, epochs=1, max_steps=2, seed=0,
                                    device="cpu", name="gan-judge-shapes-other"))
    at = _app("app_pages/gan.py")
    _ok(at)
    box = at.selectbox(key="nnkit_active_run")
    assert box.value == mine.run_id and newer_judge.run_id not in box.options and judge not in box.options
    assert any(r.run_id == judge for r in RunStore().list(kind="classifier"))  # still in the store, for the GAN page


def test_gan_page_samples_and_interpolates_an_existing_conditional_run(gan_job):
    at = _app("app_pages/gan.py")
    at.selectbox(key="gan_run").set_value(gan_job.result["run_id"]).run()
    _ok(at)
    assert [t.label for t in at.tabs] == ["Samples", "Latent interpolation", "Per class"]
    assert len(at.image) == 4 and "Per-class rows (PNG)" in _downloads(at)
    samples = at.image[1].value
    at.number_input(key="gan_sample_seed").set_value(7)
    at.button(key="FormSubmitter:gan_sample_form-Draw").click().run()
    _ok(at)
    assert at.image[1].value != samples and "seed 7" in at.image[1].captions[0]
    at.number_input(key="gan_interp_rows").set_value(2)
    at.selectbox(key="gan_interp_path").set_value("linear")
    at.button(key="FormSubmitter:gan_interp_form-Interpolate").click().run()
    _ok(at)
    assert "2 linear paths of 8 images" in at.image[2].captions[0]


def test_style_page_runs_a_tiny_transfer_and_offers_the_output():
    at = _app("app_pages/style.py")
    _ok(at)
    at.number_input(key="style_size").set_value(32)
    at.number_input(key="style_steps").set_value(5)
    at.selectbox(key="style_style").set_value("mosaic")
    at.selectbox(key="style_weights").set_value("random")
    at.text_input(key="style_name").input("apptest-style")
    at.button(key="FormSubmitter:style_form-Stylise").click().run()
    _ok(at)
    view = _wait_for(at, "style")
    assert view.title == "Style transfer: landscape (built-in) in the style of mosaic (built-in)"
    at.run()
    _ok(at)
    assert at.selectbox(key="style_run").value == view.result["run_id"] == RunStore().get("apptest-style").run_id
    assert [c for img in at.image for c in img.captions] == ["content: landscape (built-in)",
                                                              "style: mosaic (built-in)", "output"]
    assert any("Feature network: VGG-19 with random" in w.value for w in at.warning)  # says which network
    assert any(m.value.startswith("The style loss fell from ") and "% lower)" in m.value for m in at.markdown)
    assert {"Output (PNG)", "Result (JSON)"} <= set(_downloads(at))


@pytest.mark.parametrize("key", ["style_content_upload", "style_style_upload"])
def test_style_page_rejects_a_non_image_upload_in_one_line(key):
    at = _app("app_pages/style.py")
    at.file_uploader(key=key).set_value(("notes.png", b"these are my notes", "image/png"))
    at.button(key="FormSubmitter:style_form-Stylise").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == ["notes.png: not a readable image; upload a PNG or JPEG image"]
    assert not get_manager().list(owner=at.session_state["nnkit_owner"], tag="style")


def _wait_for_metric(at, slot: str, key: str):
    job = get_manager().list(owner=at.session_state["nnkit_owner"], tag=slot)[0]
    deadline = time.monotonic() + 120
    while not any(key in m for m in get_manager().get(job.id).metrics) and time.monotonic() < deadline:
        time.sleep(0.1)
    return job.id


def _cancel(at, job_id: str) -> None:
    """Cancel through the panel's button (the job is cancelled through the manager if the page has no button)."""
    buttons = [b for b in at.button if b.label == "Cancel"]
    if buttons:
        buttons[0].click().run()
    else:
        get_manager().cancel(job_id)
    assert get_manager().wait(job_id, 60).status is JobStatus.CANCELLED


def test_gan_page_shows_the_newest_sample_grid_while_training():
    at = _app("app_pages/gan.py")
    at.number_input(key="gan_epochs").set_value(1000)
    at.number_input(key="gan_judge_epochs").set_value(1)
    at.button(key="FormSubmitter:gan_form-Train GAN").click().run()
    job_id = _wait_for_metric(at, "gan", "grid_png")
    try:
        at.run()
        _ok(at)
        assert any(c.startswith("fixed-noise samples after epoch") for img in at.image for c in img.captions)
        charts = [c.key for c in at.get("plotly_chart")]
        assert f"gan-chart-{job_id}" in charts and "gan_live_quality_chart" in charts  # live losses and scores
    finally:
        _cancel(at, job_id)


def test_style_page_shows_a_live_preview():
    at = _app("app_pages/style.py")
    at.number_input(key="style_size").set_value(32)
    at.number_input(key="style_steps").set_value(600)  # a preview every 50 steps
    at.selectbox(key="style_weights").set_value("random")
    at.button(key="FormSubmitter:style_form-Stylise").click().run()
    job_id = _wait_for_metric(at, "style", "preview_png")
    try:
        at.run()
        _ok(at)
        assert any(c.startswith("after step") for img in at.image for c in img.captions)
        assert f"style-chart-{job_id}" in [c.key for c in at.get("plotly_chart")]  # the live loss curve
    finally:
        _cancel(at, job_id)


# -- progress units (issue 17: the bars show a measured rate and time left) ----------------------------------
class _RecordingContext:
    """A stand-in for JobContext that records every ``update`` call (no manager, no thread)."""

    def __init__(self):
        import threading

        self.device, self.stop_event = "cpu", threading.Event()
        self.updates: list[dict] = []
        self.summary = None

    def update(self, progress=None, message=None, *, done=None, total=None, unit="steps"):
        self.updates.append({"progress": progress, "message": message, "done": done, "total": total, "unit": unit})

    def log_metrics(self, record):
        pass

    def set_summary(self, text):
        self.summary = text

    def check_cancelled(self):
        pass


def test_gan_task_reports_judge_steps_then_gan_steps_as_units():
    ctx = _RecordingContext()
    config = GanConfig(**{**TINY_GAN, "data_opts": {"n_train": 72, "n_test": 64}, "judge": None, "epochs": 2,
                          "max_steps": 5, "time_limit": 600})
    result = gan_task(ctx, config)
    judged = [u for u in ctx.updates if u["unit"] == "judge steps" and u["done"] is not None]
    gan = [u for u in ctx.updates if u["unit"] == "GAN steps" and u["done"] is not None]
    assert judged and gan and ctx.updates.index(judged[-1]) < ctx.updates.index(gan[0])  # the judge first
    assert [u["done"] for u in judged] == list(range(1, len(judged) + 1)) and judged[-1]["done"] == judged[-1]["total"]
    assert [u["done"] for u in gan] == [1, 2, 3, 4, 5] and {u["total"] for u in gan} == {5} == {result["steps"]}
    assert all("time limit in" in u["message"] for u in judged + gan)  # a limit may stop it sooner: said
    assert all(0 <= u["progress"] <= 1 for u in judged + gan)


def test_gan_task_counts_the_steps_of_a_continued_run_from_where_it_went_on(gan_job):
    stopped = RunStore().get(gan_job.result["run_id"])  # stopped by its step limit after 9 steps
    ctx = _RecordingContext()
    gan_task(ctx, GanConfig(resume=stopped.run_id, epochs=3, max_steps=4))
    gan = [u for u in ctx.updates if u["unit"] == "GAN steps" and u["done"] is not None]
    assert [u["done"] for u in gan] == [1, 2, 3, 4] and {u["total"] for u in gan} == {4}
    assert not any(u["unit"] == "judge steps" and u["done"] is not None for u in ctx.updates)  # judge reused


def test_report_task_reports_report_parts_as_units(monkeypatch, tmp_path):
    from nnkit.jobs import report_tasks
    from nnkit.report.build import part_count
    from nnkit.report.settings import ReportSettings

    parts = part_count(["model_card"], ReportSettings.make(True))
    assert parts == 3  # loading, evaluation, the model card

    def fake_build(run_id, sections, settings, device, on_progress, stop_event):
        for i, message in enumerate(("loading", "evaluating", "model card")):  # as _Steps reports: start, part, end
            on_progress(i / 3, message)
            on_progress((i + 0.5) / 3, message)
        on_progress(1.0, "report built")
        return {"run": {"run_id": run_id}, "summary": {"findings": []}, "settings": {"sections": ["model_card"]}}

    monkeypatch.setattr(report_tasks, "build_report", fake_build)
    monkeypatch.setattr(report_tasks, "save_report_folder", lambda report: tmp_path)
    ctx = _RecordingContext()
    report_tasks.report_task(ctx, "run-x", sections=["model_card"], quick=True)
    units = [(u["done"], u["total"], u["unit"]) for u in ctx.updates]
    assert units == [(0, 4, "report parts"), (0, 4, "report parts"), (1, 4, "report parts"), (1, 4, "report parts"),
                     (2, 4, "report parts"), (2, 4, "report parts"), (3, 4, "report parts"),
                     (3, 4, "report parts"), (4, 4, "report parts")]  # + writing the files; never backwards
    assert ctx.updates[-2]["message"].startswith("writing") and ctx.updates[-1]["progress"] == 1.0


def test_the_style_page_says_what_to_expect_from_what_was_measured(style_job, tmp_path):
    from nnkit.jobs.generative_tasks import style_expectation
    from nnkit.style.transfer import DEFAULT_MEASURED

    assert max(RunStore().get(style_job.result["run_id"]).meta["size"]) == 32
    run = next(r for r in RunStore().list(kind="style") if max(r.meta["size"]) == 32)  # the newest at 32 px
    rate = run.meta["steps"] / run.meta["seconds"]
    text = style_expectation(32, 600)
    assert text.startswith(f"Measured here by the newest 32 px style run: {rate:.2g} steps/s, so 600 steps take about ")
    assert text.endswith(f"took {DEFAULT_MEASURED['cpu_seconds']:.0f} CPU-seconds ({DEFAULT_MEASURED['wall_seconds']:.0f}"
                         f" s) on {DEFAULT_MEASURED['machine']}.")
    assert style_expectation(128, 300, RunStore(tmp_path)).startswith("No 128 px style transfer has run on this machine")
    at = _app("app_pages/style.py")
    _ok(at)
    shown = [c.value.replace("\\", "") for c in at.caption]  # as typed: the page escapes Markdown
    assert any("CPU-seconds" in c and DEFAULT_MEASURED["machine"] in c for c in shown)

"""Issue 16: the dataset zip upload under hostile input (bombs, lying or corrupt zips, name clashes), its
background job with progress and cancel, and expiry. Crafted zips are built here; tests/test_hostile_input.py
uses the same builders for its rows."""

from __future__ import annotations

import io
import os
import struct
import threading
import time
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from nnkit.errors import Cancelled, NnkitError


def png(colour=(255, 0, 0), size=(8, 8), mode="RGB") -> bytes:
    """A PNG of one colour (``mode="1"`` makes huge ones tiny: one bit per pixel, all zero)."""
    buf = io.BytesIO()
    Image.new(mode, size, colour if mode == "RGB" else 0).save(buf, format="PNG")
    return buf.getvalue()


def make_zip(files: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def two_classes(n: int = 3) -> dict[str, bytes]:
    return {f"{cls}/{i}.png": png(colour) for cls, colour in (("red", (255, 0, 0)), ("blue", (0, 0, 255)))
            for i in range(n)}


def bomb_zip() -> bytes:
    """A 13000×13000 PNG (169 M pixels, just under PIL's error limit): a few hundred bytes zipped."""
    return make_zip({"red/bomb.png": png(size=(13000, 13000), mode="1"), **two_classes(2)})


def lying_zip() -> bytes:
    """A zip whose headers declare 10 bytes for a larger image (and so pass any size check)."""
    data = bytearray(make_zip({"red/a.png": png(size=(64, 64)), **two_classes(2)}, zipfile.ZIP_STORED))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        info = zf.getinfo("red/a.png")
        central = bytes(data).index(b"PK\x01\x02" + bytes(data)[zf.start_dir + 4:zf.start_dir + 6])
    local = info.header_offset
    data[local + 22:local + 26] = struct.pack("<I", 10)  # local header: uncompressed size
    data[local + 18:local + 22] = struct.pack("<I", 10)  # local header: compressed size
    data[central + 20:central + 24] = struct.pack("<I", 10)  # central directory: compressed size
    data[central + 24:central + 28] = struct.pack("<I", 10)  # central directory: uncompressed size
    return bytes(data)


def corrupt_deflate_zip() -> bytes:
    """A zip whose first image's deflate stream starts with a reserved block type (invalid data)."""
    data = bytearray(make_zip({"red/a.png": png(size=(64, 64)), **two_classes(2)}))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        info = zf.getinfo("red/a.png")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start] = 0b111  # BFINAL=1, BTYPE=11: "invalid block type"
    return bytes(data)


def clash_zip() -> bytes:
    """``red/a.png`` is a file and also a folder holding ``b.png``."""
    return make_zip({"red/a.png": png(), "red/a.png/b.png": png(), "blue/c.png": png(), "blue/d.png": png()})


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("NNKIT_HOME", str(tmp_path))
    return tmp_path


def _left(home: Path) -> list[str]:
    root = home / "uploads"
    return sorted(os.listdir(root)) if root.is_dir() else []


@pytest.mark.parametrize("builder,message", [
    (bomb_zip, r"image too large \(13000×13000 = 169,000,000 pixels"),
    (lying_zip, r"is damaged: its contents do not match the zip's header"),
    (corrupt_deflate_zip, r"is damaged: its compressed data is corrupt"),
    (clash_zip, r"'red/a.png' is both a file and a folder"),
])
def test_hostile_zips_are_one_line_errors_and_leave_nothing(home, builder, message):
    from nnkit.data.upload import import_zip

    data = builder()
    t0 = time.perf_counter()
    with pytest.raises(NnkitError, match=message) as exc:
        import_zip(data, "hostile")
    assert "\n" not in str(exc.value)
    assert time.perf_counter() - t0 < 10  # nothing big was decoded
    assert _left(home) == []


def test_the_bomb_is_tiny_and_really_that_big():
    data = bomb_zip()
    assert len(data) < 5_000
    with (zipfile.ZipFile(io.BytesIO(data)) as zf, zf.open("red/bomb.png") as f,
          pytest.warns(Image.DecompressionBombWarning), Image.open(f) as im):
        assert im.size == (13000, 13000)


def test_lying_and_corrupt_zips_raise_the_raw_errors_without_the_mapping():
    """The crafted zips do hit the raw exceptions issue 16 names (so the tests above test the mapping)."""
    import zlib

    with zipfile.ZipFile(io.BytesIO(lying_zip())) as zf, pytest.raises(zipfile.BadZipFile):
        zf.read("red/a.png")
    with zipfile.ZipFile(io.BytesIO(corrupt_deflate_zip())) as zf, pytest.raises(zlib.error):
        zf.read("red/a.png")


def test_duplicate_names_and_total_pixels(home, monkeypatch):
    from nnkit.data import upload

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        for name, data in two_classes(2).items():
            zf.writestr(name, data)
        zf.writestr("red/0.png", png())
    with pytest.raises(NnkitError, match="'red/0.png' appears twice"):
        upload.import_zip(buf.getvalue(), "dup")
    # Four 8×8 images are 256 pixels: a bound of 200 is crossed by the fourth, before any decoding.
    monkeypatch.setattr(upload, "MAX_TOTAL_PIXELS", 200)
    with pytest.raises(NnkitError, match="more than 200 pixels in all"):
        upload.import_zip(make_zip(two_classes(2)), "many")
    assert _left(home) == []


def test_pil_bomb_error_is_one_line(home, monkeypatch):
    """PIL's own DecompressionBombError (here with its limit lowered) becomes one line too."""
    from nnkit.data.upload import import_zip

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # errors above 2 × 10 pixels
    with pytest.raises(NnkitError, match="decompression bomb"):
        import_zip(make_zip(two_classes(2)), "pil-bomb")
    assert _left(home) == []


def test_import_reports_progress_and_cancels_cleanly(home):
    from nnkit.data.upload import import_upload

    seen = []
    result = import_upload(make_zip(two_classes(3)), "ok", on_progress=lambda d, t, s: seen.append((d, t)))
    assert (result.classes, result.images, result.folder) == (2, 6, "ok")
    assert seen[0] == (1, 6) and seen[-1] == (6, 6)
    stop = threading.Event()

    def cancel_after_two(done, total, stage):
        if done == 2:
            stop.set()

    with pytest.raises(Cancelled):
        import_upload(make_zip(two_classes(3)), "cancelled", on_progress=cancel_after_two, stop_event=stop)
    assert _left(home) == ["ok"]


def test_upload_job_runs_off_the_page_with_a_one_line_failure(home):
    from nnkit.jobs import JobStatus, get_manager
    from nnkit.jobs.data_tasks import upload_task

    manager = get_manager()
    job = manager.submit(upload_task, kind="upload", title="bomb", heavy=False, data=bomb_zip(), name="bomb")
    view = manager.wait(job, 60)
    assert view.status is JobStatus.FAILED and "image too large" in view.error and "\n" not in view.error
    job = manager.submit(upload_task, kind="upload", title="ok", heavy=False, data=make_zip(two_classes()), name="ok")
    view = manager.wait(job, 60)
    assert view.status is JobStatus.DONE, view.error
    assert view.result["dataset"] == f"folder:{home / 'uploads' / 'ok'}" and view.result["images"] == 6


def test_uploads_expire_unless_a_run_uses_them(home):
    from nnkit.data.upload import STALE_S, UPLOAD_TTL_S, expire_uploads, import_zip, uploads_dir
    from nnkit.runs.store import RunStore
    from nnkit.training import TrainConfig, train

    kept = import_zip(make_zip(two_classes()), "used")
    import_zip(make_zip(two_classes()), "unused")
    leftover = uploads_dir() / ".half.abc123"
    leftover.mkdir()
    store = RunStore(home / "runs")
    train(TrainConfig(data=kept, model="mlp", model_opts={"hidden": (8,)}, epochs=1, max_steps=1, val_fraction=0,
                      device="cpu", seed=0), store=store)
    assert expire_uploads(store=store) == []  # nothing is old yet
    assert leftover.exists()
    later = time.time() + max(UPLOAD_TTL_S, STALE_S) + 60
    assert expire_uploads(now=later, store=store) == ["unused"]
    assert _left(home) == ["used"]


def test_data_page_imports_in_a_job_and_shows_failures_in_one_line(home):
    from streamlit.testing.v1 import AppTest

    from nnkit.jobs import get_manager

    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "streamlit_app.py"), default_timeout=120)
    at.run()
    at.switch_page("app_pages/data.py").run()
    at.file_uploader(key="data_upload").set_value(("bomb.zip", bomb_zip(), "application/zip"))
    at.button(key="FormSubmitter:upload_form-Import").click().run()
    assert not at.exception
    jobs = get_manager().list(owner=at.session_state["nnkit_owner"], tag="upload")
    assert jobs, "the import did not become a job"
    get_manager().wait(jobs[0].id, 60)
    at.run()
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "image too large" in errors[0] and "\n" not in errors[0], errors
    assert _left(home) == []
    limits = [c.value for c in at.caption if "megapixels per image" in c.value]
    assert limits and "removed 24 hours after its import" in limits[0]

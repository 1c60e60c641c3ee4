"""Job functions of the Data page: importing an uploaded zip off the script thread, with progress and cancel."""

from __future__ import annotations

from nnkit.data.upload import expire_uploads, import_upload
from nnkit.jobs.manager import JobContext


def upload_task(ctx: JobContext, data: bytes, name: str) -> dict:
    """Import a zip of class folders as a ``folder:`` dataset (``nnkit.data.upload.import_upload``).

    Unpacking, the header check of every image's pixels and the decode of every image run here, never in
    the page's script thread; a cancel stops within one file and leaves nothing behind.

    Args:
        ctx: the job context (progress, cancel).
        data: the zip's bytes (the page has already checked its directory with ``check_zip``).
        name: the dataset's folder name (made safe inside).

    Returns:
        ``{"dataset": "folder:PATH", "folder", "classes", "images", "expired": [names removed first]}``.
    """
    ctx.update(0.0, "removing expired uploads")
    expired = expire_uploads()

    def on_progress(done: int, total: int, stage: str) -> None:
        ctx.update(0.8 * done / max(total, 1), f"{stage}: {done}/{total} files")

    result = import_upload(data, name, on_progress=on_progress, stop_event=ctx.stop_event)
    ctx.set_summary(f"Imported {result.folder}: {result.classes} classes, {result.images} images.")
    return {"dataset": result.dataset, "folder": result.folder, "classes": result.classes, "images": result.images,
            "expired": expired}

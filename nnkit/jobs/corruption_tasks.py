"""Job function for common-corruption robustness on the dashboard (the Compare page fills a missing cell with it).

It runs in a JobManager worker (see ``manager.py``), calls ``nnkit.corruptions.evaluate.corruption_eval_on_run``
(what ``nnkit corrupt`` calls, so the numbers are the CLI's for the same run and seed), passes
``ctx.stop_event`` and ``ctx.device`` on, stores the evaluation with the run, and returns plain data for the
page: numbers, the command, and the example grid as a small uint8 array and PNG.
"""

from __future__ import annotations

from collections.abc import Sequence

from nnkit.jobs.manager import JobContext


def corruption_task(ctx: JobContext, run_id: str, n: int = 200, seed: int | None = None,
                    corruptions: Sequence[str] | None = None, severities: Sequence[int] = (1, 2, 3, 4, 5),
                    reference: str | None = None, split: str = "test", batch_size: int = 256,
                    record: bool = True) -> dict:
    """Accuracy of a run under common corruptions per corruption and severity, and mCE against ``reference``
    (Hendrycks & Dietterich, ICLR 2019; CIFAR-10-C parameters), with live progress in images and Cancel.

    Args:
        ctx: the job context (its device and stop event are passed on).
        run_id: the classifier run.
        n: images, picked seeded and stratified over the classes.
        seed: seed of the pick and the corruptions (None: fresh, recorded in the summary).
        corruptions: names (None: all); severities: 1..5.
        reference: a reference run for CE and mCE, or None.
        split, batch_size: where the images come from; images per forward pass.
        record: store the evaluation with the run (the Compare table reads it).

    Shape:
        ``grid`` is an (R·(H+2)+2)×(K·(W+2)+2)×3 uint8 array: one image under R corruptions × (clean + severities).

    Returns:
        ``{"run_id", "summary" (what ``nnkit corrupt --json`` prints: params, result, selection, command),
        "params", "result", "command", "grid", "grid_png" (PNG bytes), "example_index", "class_names"}``.
    """
    from nnkit.corruptions.evaluate import corruption_eval_on_run, corruption_examples
    from nnkit.corruptions.figures import grid_png, grid_uint8

    ctx.update(0.0, "loading the model and the images")

    def progress(done: int, total: int) -> None:
        ctx.update(message=f"corrupted images classified: {done}/{total}", done=done, total=total, unit="images")

    ev = corruption_eval_on_run(run_id, n=n, seed=seed, split=split, corruptions=corruptions, severities=severities,
                                reference=reference, batch_size=batch_size, on_progress=progress,
                                stop_event=ctx.stop_event, record=record, device=ctx.device)
    names, sevs = ev.params["corruptions"], ev.params["severities"]
    grid = corruption_examples(ev.images[0], names, sevs, seed=ev.params["seed"], key=ev.indices[0])
    res = ev.result
    mce = "" if res["mce"] is None else f", mCE {100 * res['mce']:.1f}%"
    ctx.set_summary(f"done: accuracy {100 * res['clean_accuracy']:.1f}% clean, {100 * res['mean_accuracy']:.1f}% "
                    f"mean under {len(names)} corruptions × {len(sevs)} severities{mce} ({res['n']} images, "
                    f"{ev.seconds:.0f} s)")
    return {"run_id": ev.info.run_id, "summary": ev.summary(), "params": ev.params, "result": res,
            "command": ev.command, "grid": grid_uint8(grid), "grid_png": grid_png(grid, names, sevs),
            "example_index": ev.indices[0], "class_names": ev.class_names}

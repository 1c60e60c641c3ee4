"""Issue 16: every hostile or malformed input found so far, as one table (input -> expected outcome).

Each row is a `Case`. Rows that run the CLI expect, unless said otherwise, exactly one stderr line
``error: ...`` matching ``error`` (a regex), exit code 2, no traceback, and no new complete run in the
store. Rows with ``check`` then assert the behaviour (nothing half-written, a warning that names the
broken run, ...). Add a row for every new case: the list can only grow.

Placeholders in ``argv``: ``{run}`` the tiny trained run's id, ``{tmp}`` a fresh temporary folder.
``setup(ctx)`` prepares files or the store and may return a dict of extra placeholders.
"""

from __future__ import annotations

import errno
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nnkit.cli import main
from nnkit.runs.store import RunStore


@dataclass(frozen=True)
class Case:
    """One hostile input and the outcome it must have."""

    id: str  # short name of the case as reported in issue 16
    argv: tuple[str, ...]  # CLI arguments after ``python -m nnkit`` (placeholders allowed)
    error: str | None = None  # regex the one ``error:`` line must match; None: the command must succeed
    setup: Callable | None = None  # setup(ctx) -> dict | None, run before the command
    check: Callable | None = None  # check(ctx, result) asserts the behaviour after the command
    env: dict = field(default_factory=dict)  # environment variables set for this row only


@dataclass
class Ctx:
    """What a row's setup and check can use."""

    run_id: str
    tmp: Path
    store: RunStore
    values: dict
    monkeypatch: pytest.MonkeyPatch | None = None  # undone after the row (a setup may patch a failure in)


@dataclass
class Result:
    code: int
    out: str
    err: str


# ---------------------------------------------------------------------------------------------------------
# The table. Sections follow issue 16's headings; keep each row's id unique.
# ---------------------------------------------------------------------------------------------------------

CASES: list[Case] = []

# --- real folders (fidelity) ---
# mask-box-*: the confounding box, given in the user's image coordinates (confounding and report).
def _mixed_size_folder(ctx):
    """A folder of the hostile run's 10 classes whose images differ in size (28×28 and 40×30): a pixel box is
    ambiguous there, a percentage box is not."""
    import numpy as np
    from PIL import Image

    root = ctx.tmp / "mixed"
    for c in range(10):
        (root / f"c{c}").mkdir(parents=True)
        for i, (w, h) in enumerate(((28, 28), (40, 30))):
            Image.fromarray(np.full((h, w, 3), 20 * c, dtype=np.uint8)).save(root / f"c{c}" / f"{i}.png")
    return {"mixed": root}


def _no_report_file(ctx, result):
    assert not (ctx.tmp / "r.html").exists(), "a refused report left a file"


_BOX = ("confounding", "{run}", "--n", "4", "--methods", "saliency", "--device", "cpu", "--mask-box")
_REPORT_BOX = ("report", "{run}", "--out", "{tmp}/r.html", "--quick", "--sections", "explanations", "--mask-box")

CASES += [
    Case("mask-box-outside-the-image", (*_BOX, "0,0,40,8"), r"mask box 0,0,40,8 leaves the 32×32 images"),
    Case("mask-box-x0-not-below-x1", (*_BOX, "5,0,3,4"), r"mask box 5,0,3,4 is empty: it needs x0 < x1"),
    Case("mask-box-y0-equals-y1", (*_BOX, "0,4,3,4"), r"is empty: it needs x0 < x1 and y0 < y1"),
    Case("mask-box-not-numbers", (*_BOX, "a,b,c,d"), r"mask box must be four whole numbers x0,y0,x1,y1"),
    Case("mask-box-three-values", (*_BOX, "1,2,3"), r"mask box must be four whole numbers"),
    Case("mask-box-fractional-pixels", (*_BOX, "1.5,0,3,3"), r"mask box must be four whole numbers"),
    Case("mask-box-nan", (*_BOX, "nan,0,4,4"), r"mask box must be four whole numbers"),
    Case("mask-box-negative", ("confounding", "{run}", "--mask-box=-1,0,4,4"), r"every value must be >= 0"),
    Case("mask-box-percent-over-100", (*_BOX, "0%,0%,120%,10%"), r"every value must be between 0% and 100%"),
    Case("mask-box-mixed-units", (*_BOX, "1%,2,3,4"), r"or four percentages such as 75%,75%,100%,100%"),
    Case("mask-box-pixels-on-mixed-sizes", (*_BOX, "0,0,8,8", "--data", "folder:{mixed}"),
         r"the images differ in size: give it as percentages", setup=_mixed_size_folder),
    Case("mask-box-report-empty-box", (*_REPORT_BOX, "5,5,2,2"), r"mask box 5,5,2,2 is empty", check=_no_report_file),
    Case("mask-box-report-outside", (*_REPORT_BOX, "0,0,33,8"), r"mask box 0,0,33,8 leaves the 32×32 images",
         check=_no_report_file),
    Case("mask-box-report-set", ("report", "{run}", "--out", "{tmp}/r.html", "--set", "confounding_mask_box=x"),
         r"mask box must be four", check=_no_report_file),
]

def _folder(root: Path, per_class: int = 2, classes=("a", "b")) -> Path:
    """A folder dataset of tiny grey 28×28 PNGs, ``per_class`` images in each class folder."""
    import numpy as np
    from PIL import Image

    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            arr = np.full((28, 28), (60 + 70 * c) % 256, dtype=np.uint8)
            arr[i % 28] = 255
            Image.fromarray(arr).save(root / name / f"{i}.png")
    return root


def _bomb_png(path: Path, side: int = 40_000) -> None:
    """A PNG of a few bytes whose header claims side×side pixels (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def _one_per_class(ctx):
    return {"folder": _folder(ctx.tmp / "one", per_class=1, classes=("a", "b", "c"))}


def _with_bomb(ctx):
    folder = _folder(ctx.tmp / "bomb")
    _bomb_png(folder / "b" / "huge.png")
    return {"folder": folder}


def _with_garbage(ctx):
    folder = _folder(ctx.tmp / "garbage")
    (folder / "b" / "broken.png").write_bytes(b"not a png at all")
    return {"folder": folder}


def _with_truncated(ctx):
    """A PNG cut in the middle: its header reads, its pixels do not (fails only when decoded)."""
    import numpy as np
    from PIL import Image

    folder = _folder(ctx.tmp / "truncated")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (28, 28), dtype=np.uint8)).save(folder / "a" / "cut.png")
    data = (folder / "a" / "cut.png").read_bytes()
    (folder / "a" / "cut.png").write_bytes(data[: len(data) // 2])
    return {"folder": folder}


def _empty_test_class(ctx):
    _folder(ctx.tmp / "split" / "train")
    _folder(ctx.tmp / "split" / "test", per_class=1, classes=("a",))
    (ctx.tmp / "split" / "test" / "b").mkdir()
    return {"folder": ctx.tmp / "split"}


_FOLDER_TRAIN = ("train", "--data", "folder:{folder}", "--model-opt", "widths=8,16,16", "--model-opt", "hidden=32",
                 "--max-steps", "1", "--device", "cpu")

CASES += [
    Case("folder-one-image-per-class", _FOLDER_TRAIN,
         r"class 'a' has 1 image \(and 2 other classes\): each class needs at least 2 so that one can be held out",
         setup=_one_per_class),
    Case("folder-decompression-bomb", _FOLDER_TRAIN, r"huge\.png: image too large to decode safely", setup=_with_bomb),
    Case("folder-unreadable-image", _FOLDER_TRAIN, r"broken\.png: unreadable image", setup=_with_garbage),
    Case("folder-truncated-image", _FOLDER_TRAIN, r"cut\.png: unreadable image", setup=_with_truncated),
    Case("folder-empty-test-class", _FOLDER_TRAIN, r"test/b: no images", setup=_empty_test_class),
    Case("folder-not-a-folder", ("train", "--data", "folder:{tmp}/nowhere", "--max-steps", "1"), r"not a folder"),
]


# Real folders end to end: one tiny cnn trained on a 4-class 28×28 grey folder that it names by a RELATIVE
# path and reads at size=16 (a --data-opt the later commands must reuse); trained once, shared by these rows.
_FOLDER_RUN: dict = {}


def _folder_run(ctx):
    from nnkit.training import TrainConfig, train
    from tests.test_folder_fidelity import write_folder

    if "frun" not in _FOLDER_RUN:
        base = ctx.tmp / "folder-run"
        # 4 classes of 80, class-ordered on disk (one 16-bit): 64 test images, so --n 50 is a real choice.
        write_folder(base / "digits", per_class=80)
        ctx.monkeypatch.chdir(base)
        config = TrainConfig(data="folder:digits", data_opts={"size": 16}, model="cnn",
                             model_opts={"widths": (8, 16, 16), "hidden": 32}, epochs=1, max_steps=2,
                             batch_size=16, device="cpu", seed=0, name="hostile-folder")
        _FOLDER_RUN.update(frun=train(config).run_id, fbase=base)
        ctx.monkeypatch.chdir(ctx.tmp)  # the rows run from another directory than the training did
    return dict(_FOLDER_RUN)


def _other_folder(ctx):
    """The folder run, and another folder of 36×36 RGB images: read at the run's own 1×16 unless told otherwise."""
    import numpy as np
    from PIL import Image

    values = _folder_run(ctx)
    for c, name in enumerate(("a", "b", "c", "d")):
        (ctx.tmp / "other" / name).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((36, 36, 3), (30 + 50 * c, 90, 20), dtype=np.uint8)).save(
                ctx.tmp / "other" / name / f"{i}.png")
    return {**values, "other": ctx.tmp / "other"}


def _test_labels(ctx):
    from nnkit.runs import load_run_data

    return load_run_data(ctx.store.get(ctx.values["frun"])).split("test").labels


def _every_class_attacked(ctx, result):
    import torch

    summary = json.loads(result.out.strip().splitlines()[-1])
    labels = _test_labels(ctx)
    assert len(labels) > 50 and len(summary["indices"]) == 50
    attacked = labels[summary["indices"]]
    # The old "first n" of the class-ordered split took classes 0-2 only; stratified: 12 or 13 of each.
    assert sorted(torch.bincount(attacked, minlength=4).tolist()) == [12, 12, 13, 13], attacked
    assert summary["selection"].startswith("seeded stratified:") and "(seed 3)" in summary["selection"]


def _patch_fitted_on_every_class(ctx, result):
    summary = json.loads(result.out.strip().splitlines()[-1])
    assert set(_test_labels(ctx)[summary["indices"]].tolist()) == {0, 1, 2, 3}
    assert "patch training" in result.err and "seeded stratified: 8 images, 2 per class" in result.err


def _explain_stratified(ctx, result):
    assert "seeded stratified: 4 images, 1 per class (seed 0)" in result.out


def _sixteen_bit_folder(ctx):
    from tests.test_folder_fidelity import write_folder

    return {"grey": write_folder(ctx.tmp / "grey16", per_class=4, rgba=False, mixed=False, sixteen=True)}


def _read_as_grey_28_with_16_bit_apart(ctx, result):
    import torch

    from nnkit.data.folder import build_folder

    assert "read as 1×28×28 (size inferred from the images, channels inferred from the images" in result.out
    ds = build_folder(str(ctx.values["grey"]))
    images = torch.cat([ds.split("train").images, ds.split("test").images])
    labels = torch.cat([ds.split("train").labels, ds.split("test").labels])
    means = [float(images[labels == c].mean()) for c in range(4)]
    assert means[3] < 0.95, means  # the 16-bit class d, clipped to white before the fix
    assert min(abs(means[i] - means[j]) for i in range(4) for j in range(i)) > 0.1, means


def _eval_read_the_absolute_folder(ctx, result):
    assert Path.cwd() != ctx.values["fbase"]
    assert json.loads(result.out.strip().splitlines()[-1])["data"] == f"folder:{(ctx.values['fbase'] / 'digits').resolve()}"


def _changed_folder_run(ctx):
    """A run of its own on a folder that is then changed behind its back (an image added)."""
    import numpy as np
    from PIL import Image

    from nnkit.training import TrainConfig, train
    from tests.test_folder_fidelity import write_folder

    folder = write_folder(ctx.tmp / "changing", per_class=3, rgba=False, mixed=False, sixteen=False)
    run = train(TrainConfig(data=f"folder:{folder}", model="mlp", epochs=1, max_steps=1, device="cpu", seed=0,
                            name="hostile-changing"))
    Image.fromarray(np.full((28, 28), 90, dtype=np.uint8)).save(folder / "a" / "new.png")
    return {"crun": run.run_id}


def _warned_changed(ctx, result):
    [warning] = [line for line in result.err.splitlines() if line.startswith("warning:")]
    assert warning.startswith(f"warning: run {ctx.values['crun']}: the images in ") and "changed since" in warning


def _dashboard_job_warns_changed(ctx, result):
    """The dashboard loads data in job threads: the warning must come back with the job (shown by the panel)."""
    from nnkit.jobs import get_manager
    from nnkit.jobs.explain_tasks import explain_task

    manager = get_manager()
    job = manager.submit(explain_task, kind="explain", title="hostile", device="cpu", run_id=ctx.values["crun"],
                         n=2, seed=0, methods=("saliency",))
    view = manager.wait(job, timeout=120)
    assert view.status == "done", view.error
    [warning] = view.warnings
    assert warning.startswith(f"run {ctx.values['crun']}: the images in ") and "changed since" in warning
    # The page's job panel shows it as an st.warning under the finished job.
    from streamlit.testing.v1 import AppTest

    def panel():
        import streamlit as st

        from app_pages._shared import _draw_job

        _draw_job(st.session_state["view"], "hostile", None)

    at = AppTest.from_function(panel)
    at.session_state["view"] = view
    at.run()
    assert not at.exception and [w.value for w in at.warning if "changed since" in w.value]


def _fits_at_the_runs_size(ctx, result):
    assert json.loads(result.out.strip().splitlines()[-1])["data"] == f"folder:{ctx.values['other']}"


def _confounding_with_reference_ran(ctx, result):
    out = json.loads(result.out.strip().splitlines()[-1])
    assert out["reference"] is not None and any(e["test"] == "reference_ratio" for e in out["evidence"])
    assert out["info"]["box"]["image_size"] == [36, 36] and out["info"]["box"]["model_size"] == [16, 16]


def _report_ran_confounding_on_the_box(ctx, result):
    cf = json.loads((ctx.tmp / "r.json").read_text())["explanations"]["confounding"]
    assert cf["status"] == "done", cf.get("skip_reason")
    # The run's folder mixes 28×28 and 20×20 images: a percentage box, mapped onto its 16×16 model input.
    assert cf["info"]["box"]["model_box"] == [0, 0, 4, 4] and cf["info"]["box"]["model_size"] == [16, 16]
    assert "--mask-box 0%,0%,25%,25%" in cf["cli"]


def _confounding_decide_either_direction(ctx, result):
    from tests.test_confounding import test_decide_judges_erasure_by_dependence_in_either_direction as t

    t()


def _confounding_reference_is_evidence(ctx, result):
    from tests.test_confounding import test_decide_takes_the_reference_model_as_attribution_evidence as t

    t()


def _box_in_user_coordinates(ctx, result):
    from tests.test_confounding import test_mask_box_in_the_users_image_coordinates as t

    t()


_REPORT_SETS = ("--set", "confounding_n=4", "--set", "confounding_methods=saliency", "--set", "saliency_n=2",
                "--set", "saliency_methods=saliency", "--set", "sanity_n=2", "--set", "sanity_steps=2", "--set",
                "sanity_methods=saliency")

CASES += [
    Case("folder-attack-one-pixel-n-50-every-class",
         ("attack", "one-pixel", "{frun}", "--n", "50", "--popsize", "4", "--generations", "0", "--seed", "3",
          "--device", "cpu", "--json"), setup=_folder_run, check=_every_class_attacked),
    Case("folder-universal-patch-fitted-on-every-class",
         ("attack", "patch", "{frun}", "--target", "0", "--n", "8", "--train-n", "8", "--steps", "1", "--seed", "0",
          "--device", "cpu", "--json"), setup=_folder_run, check=_patch_fitted_on_every_class),
    Case("folder-explain-n-stratified", ("explain", "{frun}", "--n", "4", "--seed", "0", "--method", "saliency",
                                         "--device", "cpu", "--out", "{tmp}/ex"),
         setup=_folder_run, check=_explain_stratified),
    Case("folder-grey-28px-16-bit-inferred", ("train", "--data", "folder:{grey}", "--model", "mlp", "--max-steps", "1",
                                              "--device", "cpu", "--seed", "0"),
         setup=_sixteen_bit_folder, check=_read_as_grey_28_with_16_bit_apart),
    Case("folder-relative-path-eval-from-elsewhere", ("eval", "{frun}", "--device", "cpu", "--json"),
         setup=_folder_run, check=_eval_read_the_absolute_folder),
    Case("folder-changed-eval-warns", ("eval", "{crun}", "--device", "cpu"), setup=_changed_folder_run,
         check=_warned_changed),
    Case("folder-changed-dashboard-job-warns", ("runs", "list"), setup=_changed_folder_run,
         check=_dashboard_job_warns_changed),
    Case("eval-another-folder-reuses-run-data-opts", ("eval", "{frun}", "--data", "folder:{other}", "--json"),
         setup=_other_folder, check=_fits_at_the_runs_size),
    Case("eval-another-folder-data-opt-overrides", ("eval", "{frun}", "--data", "folder:{other}", "--data-opt",
                                                    "size=36"), r"does not fit run", setup=_other_folder),
    Case("confounding-data-and-reference-reuse-run-data-opts",
         ("confounding", "{frun}", "--data", "folder:{other}", "--mask-box", "0,0,4,4", "--reference", "{frun}",
          "--n", "4", "--methods", "saliency", "--device", "cpu", "--json"),
         setup=_other_folder, check=_confounding_with_reference_ran),
    Case("report-mask-box-on-a-folder-run",
         ("report", "{frun}", "--out", "{tmp}/r.json", "--quick", "--sections", "explanations", "--mask-box",
          "0%,0%,25%,25%", *_REPORT_SETS, "--device", "cpu"), setup=_folder_run, check=_report_ran_confounding_on_the_box),
    # The verdict's rules on issue 16's own figures (the two-training acceptance is tests/test_confounding_folder.py,
    # marked slow): erasure judged by dependence in either direction, the reference model as evidence, the box
    # in the user's image coordinates.
    Case("confounding-erasure-raises-accuracy-is-reliance", ("runs", "list"),
         check=_confounding_decide_either_direction),
    Case("confounding-reference-ratio-is-evidence", ("runs", "list"), check=_confounding_reference_is_evidence),
    Case("confounding-box-in-user-image-coordinates", ("runs", "list"), check=_box_in_user_coordinates),
]


# --- bad numbers accepted or crashing ---
def _folder_with_bomb(ctx):
    """A folder that would fail on its bomb if it were read: shows an option error comes before any reading."""
    return _with_bomb(ctx)


def _blames_no_image(ctx, result):
    assert ".png" not in result.err, "a bad option must not be blamed on an image"


_SHAPES_TRAIN = ("train", "--data", "shapes", "--max-steps", "1", "--device", "cpu")
_BOMB_TRAIN = ("train", "--data", "folder:{folder}", "--max-steps", "1", "--device", "cpu")

CASES += [
    Case("data-opt-n-train-negative", (*_SHAPES_TRAIN, "--data-opt", "n_train=-5"),
         r"n_train must be between 1 and 100,000, got -5"),
    Case("data-opt-n-test-huge", (*_SHAPES_TRAIN, "--data-opt", "n_test=1000000000"), r"n_test must be between 1 and"),
    Case("data-opt-n-train-not-a-number", (*_SHAPES_TRAIN, "--data-opt", "n_train=many"),
         r"n_train must be a whole number"),
    Case("data-opt-n-train-fraction", (*_SHAPES_TRAIN, "--data-opt", "n_train=2.5"), r"n_train must be a whole number"),
    Case("data-opt-malformed", (*_SHAPES_TRAIN, "--data-opt", "n_train"), r"expected KEY=VALUE"),
    Case("data-opt-unknown-key-shapes", (*_SHAPES_TRAIN, "--data-opt", "size=28"),
         r"dataset 'shapes' has no option size; its options: seed, n_train, n_test"),
    Case("data-opt-tag-fraction-nan", ("train", "--data", "shapes-confounded", "--data-opt", "tag_fraction=nan"),
         r"tag_fraction must be a finite number"),
    Case("data-opt-tag-fraction-2", ("train", "--data", "shapes-confounded", "--data-opt", "tag_fraction=2"),
         r"tag_fraction must be in \[0, 1\]"),
    Case("data-opt-unknown-key-folder", (*_BOMB_TRAIN, "--data-opt", "colour=red"),
         r"has no option colour; its options: size, channels, test_fraction, seed", setup=_folder_with_bomb,
         check=_blames_no_image),
    Case("data-opt-size-0", (*_BOMB_TRAIN, "--data-opt", "size=0"), r"size must be between 8 and 512, got 0$",
         setup=_folder_with_bomb, check=_blames_no_image),
    Case("data-opt-size-100000", (*_BOMB_TRAIN, "--data-opt", "size=100000"),
         r"size must be between 8 and 512, got 100,000", setup=_folder_with_bomb, check=_blames_no_image),
    Case("data-opt-channels-2", (*_BOMB_TRAIN, "--data-opt", "channels=2"), r"channels must be one of 1, 3",
         setup=_folder_with_bomb),
    Case("data-opt-test-fraction-1", (*_BOMB_TRAIN, "--data-opt", "test_fraction=1"),
         r"test_fraction must be in \[0, 1\)", setup=_folder_with_bomb),
    Case("data-opt-model-unknown-before-data", (*_BOMB_TRAIN, "--model", "nope"), r"unknown model 'nope'",
         setup=_folder_with_bomb, check=_blames_no_image),
    Case("data-opt-unknown-key-on-eval", ("eval", "{run}", "--data-opt", "n_tset=5"),
         r"dataset 'shapes' has no option n_tset"),
    Case("data-opt-bad-on-confounding", ("confounding", "{run}", "--data", "shapes-confounded", "--data-opt",
                                         "tag_fraction=-1"), r"tag_fraction must be in \[0, 1\]"),
]

_TINY = ("--data", "shapes", "--data-opt", "n_train=200", "--data-opt", "n_test=40", "--model-opt", "widths=8,16,16",
         "--model-opt", "hidden=32", "--epochs", "1", "--device", "cpu")


def _a_file(ctx):
    """A plain file where an output folder would have to go."""
    (ctx.tmp / "file").write_text("not a folder")


def _a_file_before_any_work(*targets: str):
    """``_a_file``, and the work of the command (``module:attribute``) replaced by a failure: the row then shows
    that --out is refused before that work starts, not after it."""

    def setup(ctx):
        import importlib

        _a_file(ctx)
        for target in targets:
            module, name = target.split(":")

            def started(*args, _target=target, **kwargs):
                raise AssertionError(f"{_target} ran before --out was checked")

            ctx.monkeypatch.setattr(importlib.import_module(module), name, started)

    return setup


def _tmp_left_empty(ctx, result):
    assert not any(ctx.tmp.iterdir()), "a failed command wrote an output"


def _nothing_written(ctx, result):
    assert sorted(p.name for p in ctx.tmp.iterdir()) == ["file"], "a failed command wrote an output"


CASES += [
    Case("train-lr-inf", ("train", *_TINY, "--lr", "inf"), r"lr must be a finite number"),
    Case("train-lr-nan", ("train", *_TINY, "--lr", "nan"), r"lr must be a finite number"),
    Case("train-momentum-nan", ("train", *_TINY, "--optimizer", "momentum", "--momentum", "nan"),
         r"momentum must be a finite number"),
    Case("train-momentum-negative", ("train", *_TINY, "--momentum", "-1"), r"momentum must be in \[0, 1\)"),
    Case("train-weight-decay-negative", ("train", *_TINY, "--weight-decay", "-1"), r"weight_decay must be in \[0"),
    Case("train-dropout-2", ("train", *_TINY, "--dropout", "2"), r"dropout must be in \[0, 1\)"),
    Case("train-dropout-nan", ("train", *_TINY, "--dropout", "nan"), r"dropout must be a finite number"),
    Case("train-seed-huge", ("train", *_TINY, "--seed", "99999999999999999999999"), r"seed must be a whole number"),
    Case("train-seed-negative", ("train", *_TINY, "--seed", "-1"), r"seed must be a whole number"),
    Case("train-epochs-huge", ("train", *_TINY, "--epochs", "10000000"), r"epochs must be between"),
    # SGD at 1e30 sends the weights to infinity on the first step; the next losses are NaN.
    Case("train-loss-becomes-nan", ("train", *_TINY, "--optimizer", "sgd", "--lr", "1e30", "--max-steps", "3"),
         r"training loss became nan in epoch 1 .*not saved"),
    Case("gan-lr-nan", ("gan", "train", "--data", "shapes", "--lr", "nan"), r"lr must be a finite number"),
    Case("gan-loss-becomes-nan", ("gan", "train", "--data", "shapes", "--data-opt", "n_train=200", "--data-opt",
                                  "n_test=40", "--judge", "{run}", "--max-steps", "3", "--epochs", "1", "--lr", "1e30",
                                  "--batch-size", "16", "--n-eval", "16", "--device", "cpu", "--seed", "0"),
         r"discriminator loss became nan in epoch 1 .*not saved"),
    Case("gan-time-limit-nan", ("gan", "train", "--data", "shapes", "--time-limit", "nan"),
         r"time_limit must be a finite number"),
    Case("style-weight-nan", ("style", "--out", "{tmp}/s.png", "--style-weight", "nan", "--size", "32", "--steps", "1"),
         r"style_weight must be a finite number", check=_tmp_left_empty),
    Case("style-tv-weight-negative", ("style", "--out", "{tmp}/s.png", "--tv-weight", "-1", "--steps", "1"),
         r"tv_weight must be in \[0"),
    Case("style-size-100000", ("style", "--out", "{tmp}/s.png", "--size", "100000", "--steps", "1"),
         r"size must be between 16 and 1,024"),
    Case("style-seed-huge", ("style", "--out", "{tmp}/s.png", "--seed", str(2**64), "--steps", "1", "--size", "32"),
         r"seed must be a whole number"),
    # --out is checked before the work: each of these fails at once, without computing anything
    Case("style-out-unwritable", ("style", "--out", "{tmp}/file/s.png", "--steps", "1", "--size", "32"),
         r"cannot write --out .*is a file, not a folder", setup=_a_file_before_any_work("nnkit.style:stylise"),
         check=_nothing_written),
    Case("style-out-is-folder", ("style", "--out", "{tmp}", "--steps", "1", "--size", "32"), r"is a folder"),
    Case("attack-out-unwritable", ("attack", "one-pixel", "{run}", "--n", "2", "--out", "{tmp}/file/examples"),
         r"cannot write --out .*is a file, not a folder", setup=_a_file_before_any_work("attacks:one_pixel_on_run"),
         check=_nothing_written),
    Case("attack-patch-out-unwritable", ("attack", "patch", "{run}", "--target", "0", "--n", "2", "--out",
                                         "{tmp}/file"), r"--out .*is a file: give a folder",
         setup=_a_file_before_any_work("attacks:patch_on_run")),
    Case("explain-out-unwritable", ("explain", "{run}", "--n", "2", "--out", "{tmp}/file/grid"),
         r"cannot write --out .*is a file, not a folder", setup=_a_file_before_any_work("nnkit.runs:load_classifier"),
         check=_nothing_written),
    Case("gan-sample-out-unwritable", ("gan", "sample", "{run}", "--out", "{tmp}/file/grid.png"),
         r"cannot write --out .*is a file, not a folder", setup=_a_file_before_any_work("nnkit.gan:load_gan"),
         check=_nothing_written),
    Case("report-out-unwritable", ("report", "{run}", "--out", "{tmp}/file/r.html", "--quick"),
         r"cannot write --out .*is a file, not a folder", setup=_a_file_before_any_work("nnkit.report:build_report"),
         check=_nothing_written),
]


def _indices_counted_first(ctx, result):
    """The Explain page's indices field: a huge range is refused by its count, before it is expanded."""
    import time

    from nnkit.errors import NnkitError
    from nnkit.jobs.explain_tasks import MAX_GRID_IMAGES
    from nnkit.saliency.grid import parse_indices

    for text in ("0-1000000", "0-40000", "0-9, 10-19", "5, 0-99999999999999999999"):
        t0 = time.perf_counter()
        with pytest.raises(NnkitError, match=f"at most {MAX_GRID_IMAGES} are allowed"):
            parse_indices(text, MAX_GRID_IMAGES)
        assert time.perf_counter() - t0 < 0.1, text
    assert parse_indices("0-15", MAX_GRID_IMAGES) == list(range(16))
    assert parse_indices("3, 1-4, 3", MAX_GRID_IMAGES) == [3, 1, 2, 4]


CASES += [Case("explain-page-indices-0-1000000", ("runs", "list"), check=_indices_counted_first)]

# `train --nproc N` checks its input once before it starts N processes (otherwise each process printed the
# same error, and the launcher a third line).
CASES += [
    Case("train-nproc-lr-inf", ("train", "--nproc", "2", "--lr", "inf", "--device", "cpu"),
         r"lr must be a finite number"),
    Case("train-nproc-no-such-folder", ("train", "--nproc", "2", "--data", "folder:{tmp}/absent", "--device", "cpu"),
         r"not a folder"),
]


# --- the run store ---
_ISOLATED = {"NNKIT_HOME": "{tmp}/home"}  # rows that plant broken runs get a store of their own
_GOOD_META = {"kind": "classifier", "name": "good", "test_accuracy": 0.5, "dataset": {"name": "shapes"},
              "model": {"name": "mlp", "num_classes": 2, "in_channels": 1, "image_size": 4}}
_BROKEN_METAS = {  # folder -> meta.json text: wrong shape, missing key, wrong type, not JSON, half-written
    "20990101-000000-a-list-0001": "[1, 2]", "20990101-000000-a-string-0002": '"complete"',
    "20990101-000000-no-model-0003": '{"status": "complete", "kind": "classifier", "test_accuracy": 0.5, '
                                     '"dataset": {"name": "shapes"}}',
    "20990101-000000-string-acc-0004": '{"status": "complete", "kind": "classifier", "test_accuracy": "0.9", '
                                       '"dataset": {"name": "shapes"}, "model": {"name": "mlp", "num_classes": 2, '
                                       '"in_channels": 1, "image_size": 4}}',
    "20990101-000000-not-json-0005": '{"status": "compl', "20990101-000000-empty-0006": "",
}


def _plant_broken_runs(ctx):
    good = ctx.store.begin("good").finish(dict(_GOOD_META))
    for folder, text in _BROKEN_METAS.items():
        (ctx.store.root / folder).mkdir()
        (ctx.store.root / folder / "meta.json").write_text(text)
    return {"good": good.run_id, "broken": "20990101-000000-string-acc-0004"}


def _broken_runs_skipped_and_named(ctx, result):
    warnings = [line for line in result.err.splitlines() if line.startswith("warning: skipped broken run")]
    assert sorted(w.split()[4] for w in warnings) == sorted(_BROKEN_METAS), result.err
    assert len(result.err.strip().splitlines()) == len(_BROKEN_METAS)  # one line each, nothing else
    assert ctx.values["good"] in result.out  # the good run is still listed


def _broken_run_deleted(ctx, result):
    assert not (ctx.store.root / ctx.values["broken"]).exists()
    assert ctx.values["good"] in {r.run_id for r in ctx.store.scan()[0]}


def _plant_escape_name(ctx):
    ctx.store.begin("x").finish({**_GOOD_META, "name": "evil\x1b[2J\x1b]0;owned\x07\u202e"})


def _name_escaped(ctx, result):
    assert "\x1b" not in result.out and "\x07" not in result.out and "\u202e" not in result.out
    assert "evil\\x1b[2J" in result.out


def _copy_with_corrupt_files(ctx):
    import shutil

    copy = ctx.store.root / f"{ctx.run_id}-corrupt"
    shutil.copytree(ctx.store.root / ctx.run_id, copy)
    meta = (copy / "meta.json").read_text().replace(ctx.run_id, copy.name).replace('"hostile-tiny"', "null")
    (copy / "meta.json").write_text(meta)
    (copy / "eval_test.json").write_text('{"accuracy": 0.5, "confus')
    (copy / "config.json").write_text("[1, 2, 3]")
    with open(copy / "metrics.jsonl", "a") as fh:
        fh.write('{"epoch": 2, "train_lo')  # half-written last line
    return {"copy": copy.name}


def _report_without_the_corrupt_parts(ctx, result):
    import shutil

    shutil.rmtree(ctx.store.root / ctx.values["copy"])
    report = json.loads((ctx.tmp / "r.json").read_text())
    card = json.dumps(report)
    assert ctx.values["copy"] in card
    assert "warning: run " in result.err and "config.json holds a list" in result.err  # treated as absent


def _plant_file(ctx):
    (ctx.tmp / "a-file").write_text("not a folder")


def _plant_partial_folders(ctx):
    from tests.test_runs import _dead_pid

    live = ctx.store.begin("live")  # this process's writer: alive
    record = json.loads((live.path / ".writer.json").read_text())
    killed = ctx.store.root / ".partial" / "20200101-000000-killed-0000"
    killed.mkdir()
    (killed / ".writer.json").write_text(json.dumps({**record, "pid": _dead_pid()}))
    return {"live": live.run_id}


def _only_the_live_partial_folder_kept(ctx, result):
    assert [d.name for d in (ctx.store.root / ".partial").iterdir()] == [ctx.values["live"]]


def _racing_deletes(ctx, result):
    import threading

    from nnkit.errors import NnkitError
    from tests.test_runs import _delete

    for _ in range(20):
        run = ctx.store.begin("race").finish(dict(_GOOD_META))
        barrier, outcomes = threading.Barrier(2), []
        threads = [threading.Thread(target=_delete, args=(ctx.store.root, run.run_id, barrier, outcomes))
                   for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(map(type, outcomes), key=str) == sorted([str, NnkitError], key=str), outcomes
        assert str(next(o for o in outcomes if isinstance(o, NnkitError))).startswith(f"no run {run.run_id!r}")


def _failing_save(err: int):
    def setup(ctx):
        import nnkit.runs.store as store_mod

        real = store_mod.write_bytes

        def failing(path, data):  # the disk fills up (or turns read-only) when the weights are saved
            if Path(path).name == "model.safetensors":
                raise OSError(err, os.strerror(err))
            return real(path, data)

        ctx.monkeypatch.setattr(store_mod, "write_bytes", failing)
    return setup


def _no_partial_left(ctx, result):
    assert not any((ctx.store.root / ".partial").iterdir())


def _sidebar_survives_broken_runs(ctx, result):
    from streamlit.testing.v1 import AppTest

    from tests.apptest_helpers import ok

    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "streamlit_app.py"), default_timeout=60).run()
    ok(at)
    [warning] = [w.value for w in at.sidebar.warning]
    assert warning.startswith(f"Skipped {len(_BROKEN_METAS)} broken runs") and "20990101-000000-a-list-0001" in warning
    assert at.sidebar.selectbox[0].value == ctx.values["good"]


_TINY_TRAIN = ("train", "--data", "shapes", "--data-opt", "n_train=200", "--data-opt", "n_test=40", "--model", "mlp",
               "--epochs", "1", "--max-steps", "1", "--device", "cpu", "--seed", "0")


CASES += [
    Case("runs-list-malformed-meta-json", ("runs", "list"), env=_ISOLATED, setup=_plant_broken_runs,
         check=_broken_runs_skipped_and_named),
    Case("get-of-a-broken-run", ("eval", "{broken}"), r"run 20990101-000000-string-acc-0004 is broken: "
         r"test_accuracy: '0\.9' is not of type", env=_ISOLATED, setup=_plant_broken_runs),
    Case("runs-delete-a-broken-run", ("runs", "delete", "{broken}"), env=_ISOLATED, setup=_plant_broken_runs,
         check=_broken_run_deleted),
    Case("train-name-prefix-of-a-run-id", ("train", "--data", "shapes", "--model", "mlp", "--max-steps", "1",
                                           "--device", "cpu", "--name", "{prefix}"), r"shadow",
         setup=lambda ctx: {"prefix": ctx.run_id[:12]}),
    Case("train-name-equal-to-a-run-id", ("train", "--data", "shapes", "--model", "mlp", "--max-steps", "1",
                                          "--device", "cpu", "--name", "{run}"), r"is the id of run"),
    Case("train-name-control-characters", ("train", "--data", "shapes", "--model", "mlp", "--max-steps", "1",
                                           "--device", "cpu", "--name", "evil\x1b[2J"), r"control character U\+001B"),
    Case("gan-train-name-control-characters", ("gan", "train", "--data", "shapes", "--max-steps", "1",
                                               "--device", "cpu", "--name", "bidi\u202egnp"),
         r"control character U\+202E"),
    Case("runs-list-escapes-stored-control-characters", ("runs", "list"), env=_ISOLATED, setup=_plant_escape_name,
         check=_name_escaped),
    Case("report-corrupt-eval-config-metrics", ("report", "{copy}", "--out", "{tmp}/r.json", "--quick",
                                                "--sections", "model_card", "--device", "cpu"),
         setup=_copy_with_corrupt_files, check=_report_without_the_corrupt_parts),
    Case("partial-folder-of-a-killed-run", ("runs", "list"), env=_ISOLATED, setup=_plant_partial_folders,
         check=_only_the_live_partial_folder_kept),
    Case("racing-runs-delete", ("runs", "list"), env=_ISOLATED, check=_racing_deletes),
    Case("disk-full-while-saving", _TINY_TRAIN, r"could not save run .*: no space left on device", env=_ISOLATED,
         setup=_failing_save(errno.ENOSPC), check=_no_partial_left),
    Case("permission-denied-while-saving", _TINY_TRAIN, r"could not save run .*: permission denied", env=_ISOLATED,
         setup=_failing_save(errno.EACCES), check=_no_partial_left),
    Case("dashboard-sidebar-with-broken-runs", ("runs", "list"), env=_ISOLATED, setup=_plant_broken_runs,
         check=_sidebar_survives_broken_runs),
    Case("nnkit-home-is-a-file", ("runs", "list"), r"NNKIT_HOME=/dev/null is not a writable folder",
         env={"NNKIT_HOME": "/dev/null"}),
    Case("nnkit-home-below-a-file", ("train", "--data", "shapes", "--max-steps", "1"),
         r"NNKIT_HOME=.*/a-file/home is not a writable folder", env={"NNKIT_HOME": "{tmp}/a-file/home"},
         setup=_plant_file),
    Case("nnkit-home-is-proc", ("train", "--data", "shapes", "--max-steps", "1"),
         r"NNKIT_HOME=/proc is not a writable folder", env={"NNKIT_HOME": "/proc"}),
]


def _pages_show_names_as_text_and_survive_corrupt_files(ctx, result):
    """Every dashboard page (Train, GAN, Style, ...) with a Markdown-link run name, a run whose config.json,
    eval_test.json and last metrics.jsonl line are corrupt, and two malformed meta.json (tests/test_runs.py)."""
    from tests.test_runs import test_dashboard_pages_survive_a_broken_run_and_show_names_as_text as t

    (ctx.tmp / "pages").mkdir()
    t(ctx.tmp / "pages", ctx.monkeypatch)


CASES += [
    Case("dashboard-names-as-plain-text-and-corrupt-run-files-on-every-page", ("runs", "list"),
         check=_pages_show_names_as_text_and_survive_corrupt_files),
]


# --- security ---


def _plant_vgg(ctx):
    """A pickle that would create {tmp}/pwned, planted where torch.hub caches the VGG-19 weights."""
    from tests.test_security import plant_vgg_cache

    plant_vgg_cache(ctx.tmp / "torch", ctx.tmp / "pwned")


def _planted_code_did_not_run(ctx, result):
    assert not (ctx.tmp / "pwned").exists(), "the planted pickle ran"
    assert (ctx.tmp / "s.png").is_file() and "not a plain weights file" in result.out


def _upload_refused(builder: str, message: str):
    """A check that imports a crafted zip (tests/test_upload.py) and expects one line and nothing left."""

    def check(ctx, result):
        import tests.test_upload as crafted
        from nnkit.data.upload import import_zip, uploads_dir
        from nnkit.errors import NnkitError

        with pytest.raises(NnkitError, match=message) as exc:
            import_zip(getattr(crafted, builder)(), f"hostile-{builder}")
        assert "\n" not in str(exc.value)
        left = list(uploads_dir().iterdir()) if uploads_dir().is_dir() else []  # none yet when this row runs first
        assert not [p for p in left if f"hostile-{builder}" in p.name], "an upload was left"

    return check


def _foreign_host_refused(ctx, result):
    from tests.test_security import serving, ws_handshake_status

    with serving(ctx.tmp) as port:
        assert ws_handshake_status(port, f"localhost:{port}") == 101
        assert ws_handshake_status(port, "evil.example") != 101


CASES += [
    Case("style-poisoned-vgg-cache", ("style", "--out", "{tmp}/s.png", "--steps", "1", "--size", "32", "--device",
                                      "cpu", "--seed", "0"),
         setup=_plant_vgg, check=_planted_code_did_not_run, env={"TORCH_HOME": "{tmp}/torch"}),
    Case("upload-png-bomb-13000x13000", ("runs", "list"), check=_upload_refused("bomb_zip", "image too large")),
    Case("upload-lying-zip-BadZipFile", ("runs", "list"), check=_upload_refused("lying_zip", "is damaged")),
    Case("upload-corrupt-deflate-zlib-error", ("runs", "list"),
         check=_upload_refused("corrupt_deflate_zip", "compressed data is corrupt")),
    Case("upload-file-folder-clash-FileExistsError", ("runs", "list"),
         check=_upload_refused("clash_zip", "both a file and a folder")),
    Case("websocket-host-evil-example", ("runs", "list"), check=_foreign_host_refused),
]


def _in_upload_home(name: str, patches: bool = False):
    """A check that runs the topical upload test ``name`` (tests/test_upload.py) in a fresh NNKIT_HOME."""

    def check(ctx, result):
        import tests.test_upload as topical

        home = ctx.tmp / "upload-home"
        home.mkdir()
        ctx.monkeypatch.setenv("NNKIT_HOME", str(home))
        getattr(topical, name)(home, *([ctx.monkeypatch] if patches else []))

    return check


def _no_unsafe_loading(ctx, result):
    from tests.test_security import test_no_unsafe_deserialisation_in_the_tree as t

    t()


def _classroom_widening_as_the_readme_says(ctx, result):
    from tests.test_security import serving, ws_handshake_status

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    widen = 'STREAMLIT_SERVER_ALLOWED_HOSTS="localhost 127.0.0.1 192.168.1.20 labserver.local"'
    assert widen in readme  # the classroom instructions say how to widen the allowed hosts
    with serving(ctx.tmp, {"STREAMLIT_SERVER_ALLOWED_HOSTS": "localhost 127.0.0.1 labserver.local"}) as port:
        assert ws_handshake_status(port, f"labserver.local:{port}") == 101
        assert ws_handshake_status(port, "evil.example") != 101


CASES += [
    Case("upload-total-decoded-pixels-bounded", ("runs", "list"),
         check=_in_upload_home("test_duplicate_names_and_total_pixels", patches=True)),
    Case("upload-pil-decompression-bomb-error-one-line", ("runs", "list"),
         check=_in_upload_home("test_pil_bomb_error_is_one_line", patches=True)),
    Case("upload-decoded-with-progress-and-cancel", ("runs", "list"),
         check=_in_upload_home("test_import_reports_progress_and_cancels_cleanly")),
    Case("upload-runs-as-a-background-job", ("runs", "list"),
         check=_in_upload_home("test_upload_job_runs_off_the_page_with_a_one_line_failure")),
    Case("upload-expires-unless-a-run-uses-it", ("runs", "list"),
         check=_in_upload_home("test_uploads_expire_unless_a_run_uses_them")),
    Case("every-checkpoint-loaded-weights-only", ("runs", "list"), check=_no_unsafe_loading),
    Case("allowed-hosts-widened-for-a-classroom", ("runs", "list"), check=_classroom_widening_as_the_readme_says),
]


# --- shortcut discovery (issue 15) ---
def _no_report_written(ctx: Ctx, result: Result) -> None:
    assert not (ctx.tmp / "r.html").exists(), "a report was written for a setting no check accepts"


CASES += [
    Case("discover-unknown-class", ("discover", "{run}", "--class", "hexagon"), r"unknown class 'hexagon'"),
    Case("discover-class-index-out-of-range", ("discover", "{run}", "--class", "10"), r"unknown class '10'"),
    Case("discover-one-image-per-class", ("discover", "{run}", "--n", "1"), r"at least 2 images of a class"),
    Case("discover-negative-seed", ("discover", "{run}", "--seed", "-1"), r"seed must be a whole number"),
    Case("discover-unknown-method", ("discover", "{run}", "--method", "lrp"), r"unknown attribution method 'lrp'"),
    Case("discover-split-of-another-dataset", ("discover", "{run}", "--split", "tag-agrees"),
         r"has no split 'tag-agrees'"),
    Case("confounding-unknown-class", ("confounding", "{run}", "--mask-box", "1,1,4,4", "--class", "hexagon"),
         r"unknown class 'hexagon'"),
    Case("confounding-class-index-out-of-range", ("confounding", "{run}", "--mask-box", "1,1,4,4", "--class", "-1"),
         r"unknown class '-1'"),
    Case("report-discovery-one-image-per-class",
         ("report", "{run}", "--out", "{tmp}/r.html", "--sections", "discovery", "--set", "discovery_n=1"),
         r"report setting discovery_n must be a whole number >= 2", check=_no_report_written),
    Case("report-discovery-unknown-method", ("report", "{run}", "--out", "{tmp}/r.html", "--set",
                                             "discovery_method=lrp"), r"unknown attribution method 'lrp'"),
]


# ---------------------------------------------------------------------------------------------------------
# The harness.
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_run(nnkit_home):
    """A tiny cnn run on shapes that the rows attack, evaluate and explain."""
    from nnkit.training import TrainConfig, train

    config = TrainConfig(data="shapes", data_opts={"n_train": 200, "n_test": 40}, model="cnn",
                         model_opts={"widths": (8, 16, 16), "hidden": 32}, epochs=1, max_steps=3, device="cpu",
                         seed=0, name="hostile-tiny")
    return train(config).run_id


def _fill(text: str, values: dict) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", str(value))
    return text


def _complete_runs(store: RunStore) -> set[str]:
    root = store.root
    if not root.is_dir():
        return set()
    return {d.name for d in root.iterdir() if not d.name.startswith(".") and (d / "meta.json").is_file()}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case: Case, hostile_run, tmp_path, capsys, monkeypatch):
    for key, value in case.env.items():
        monkeypatch.setenv(key, _fill(value, {"tmp": tmp_path}))
    # The store's folder without NNKIT_HOME's check, so rows can point NNKIT_HOME at a file or /proc.
    store = RunStore(Path(os.environ["NNKIT_HOME"]).expanduser() / "runs")
    ctx = Ctx(run_id=hostile_run, tmp=tmp_path, store=store, values={"run": hostile_run, "tmp": tmp_path},
              monkeypatch=monkeypatch)
    if case.setup:
        ctx.values.update(case.setup(ctx) or {})
    before = _complete_runs(store)
    capsys.readouterr()
    try:
        code = main([_fill(a, ctx.values) for a in case.argv])
    except SystemExit as exc:  # argparse rejects with exit 2 before a command runs
        code = exc.code
    captured = capsys.readouterr()
    result = Result(code, captured.out, captured.err)
    assert "Traceback" not in result.err, result.err
    if case.error is None:
        assert code == 0, result.err
    else:
        lines = [line for line in result.err.strip().splitlines() if line.strip()]
        assert code == 2, f"exit {code}, stderr: {result.err!r}"
        errors = [line for line in lines if line.startswith("error:")]
        assert len(errors) == 1, f"expected one error line, got: {result.err!r}"
        assert re.search(case.error, errors[0]), f"{errors[0]!r} does not match {case.error!r}"
        assert _complete_runs(store) <= before, "a failed command left a new run in the store"
    if case.check:
        case.check(ctx, result)

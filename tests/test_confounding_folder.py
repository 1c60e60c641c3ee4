"""Issue 16 acceptance: the confounding verdict on folder data, with the box in the user's image coordinates.

A folder written here: 28×28 drawings of 4 shape classes. Training images carry a class-coded corner
tag; test images carry the tag of *another* class (the realistic case: the shortcut does not hold at
deployment). The runs read the images at 32×32, so the box the user gives in their 28-pixel
coordinates must be mapped onto the 32-pixel model input. A cnn trained on the tagged folder is judged
``relies_on_confounder`` by ``confounding --mask-box``; a cnn trained on the same drawings without tags,
checked on the same tagged test images and the same box, ``no_evidence``.
"""

from __future__ import annotations

import json
import random

import pytest

from nnkit.confounding import NO_EVIDENCE, RELIES

pytestmark = pytest.mark.slow  # two trainings: about a minute idle, two under load on 2 cores

CLASSES = ("circle", "square", "triangle", "bar")
TAG_COLOURS = ((230, 30, 30), (30, 200, 40), (40, 60, 230), (240, 220, 30))
SIDE = 28  # the user's images
TAG = (22, 22, 28, 28)  # x0, y0, x1, y1 the user gives, in their 28-pixel images: the tag with a pixel of margin
MODEL_SIZE = 32  # the runs read the images at 32×32


def _draw(root, split: str, per_class: int, tag_shift: int | None, seed: int) -> None:
    """Shapes in random low-contrast colours over a speckled background, kept off the tag's corner;
    ``tag_shift`` None draws no tag, else class c carries the tag of class (c + tag_shift) mod K."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    for c, name in enumerate(CLASSES):
        (root / split / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            bg = tuple(rng.randint(60, 190) for _ in range(3))
            im = Image.new("RGB", (SIDE, SIDE), bg)
            px = im.load()
            for _ in range(120):
                x, y = rng.randrange(SIDE), rng.randrange(SIDE)
                px[x, y] = tuple(max(0, min(255, v + rng.randint(-35, 35))) for v in bg)
            d = ImageDraw.Draw(im)
            colour = tuple(max(0, min(255, v + rng.choice((-1, 1)) * rng.randint(90, 120))) for v in bg)
            r = rng.randint(6, 8)
            cx, cy = rng.randint(r + 1, 20 - r), rng.randint(r + 1, 20 - r)  # off the tag's corner
            if name == "circle":
                d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
            elif name == "square":
                d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour)
            elif name == "triangle":
                d.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=colour)
            else:
                d.rectangle([cx - r, cy - 2, cx + r, cy + 2], fill=colour)
            if tag_shift is not None:
                d.rectangle([23, 23, 26, 26], fill=TAG_COLOURS[(c + tag_shift) % len(CLASSES)])
            im.save(root / split / name / f"{i:03d}.png")


def _folder(root, tagged: bool) -> str:
    _draw(root, "train", 100, 0 if tagged else None, seed=1)
    _draw(root, "test", 20, 1 if tagged else None, seed=2)  # test: the tag of the next class, never the own
    return f"folder:{root}"


def _confounding(capsys, *argv) -> dict:
    from nnkit.cli import main

    code = main(["confounding", *argv, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def folder_runs(tmp_path_factory):
    from nnkit.training import TrainConfig, train

    root = tmp_path_factory.mktemp("confounding_folder")
    tagged, clean = _folder(root / "tagged", True), _folder(root / "clean", False)
    runs = {}
    for name, data in (("tagged", tagged), ("clean", clean)):
        runs[name] = train(TrainConfig(data=data, data_opts={"size": MODEL_SIZE}, model="cnn",
                                       model_opts={"widths": (16, 32), "hidden": 32}, epochs=12, batch_size=32,
                                       seed=0, device="cpu", name=f"cf-folder-{name}"))
    return tagged, runs


def test_folder_tag_shortcut_is_judged_on_the_users_box(folder_runs, capsys):
    data, runs = folder_runs
    box = ",".join(map(str, TAG))
    args = ("--data", data, "--mask-box", box, "--methods", "saliency,gradcam", "--n", "80")
    tagged = _confounding(capsys, runs["tagged"].run_id, *args)
    clean = _confounding(capsys, runs["clean"].run_id, *args)
    both = _confounding(capsys, runs["tagged"].run_id, *args, "--reference", runs["clean"].run_id)
    figures = {n: {"verdict": r["verdict"], "evidence": {e["test"]: round(e["value"], 3) for e in r["evidence"]},
                   "erasure": r["erasure"], "accuracy": runs[n].test_accuracy}
               for n, r in (("tagged", tagged), ("clean", clean))}
    with capsys.disabled():  # the figures behind the verdicts and the thresholds, in the -s log
        print(json.dumps(figures))

    # The box is taken in the user's 28-pixel coordinates and mapped (outwards) onto the 32-pixel input.
    placed = tagged["info"]["box"]
    assert placed["given"] == box and placed["unit"] == "pixels" and placed["image_size"] == [SIDE, SIDE]
    assert placed["model_box"] == [25, 25, 32, 32] and placed["model_size"] == [MODEL_SIZE, MODEL_SIZE]
    assert "28×28 images" in placed["text"] and "32×32 model input" in placed["text"]

    assert tagged["verdict"] == RELIES, tagged["reason"]
    assert clean["verdict"] == NO_EVIDENCE, clean["reason"]
    # The shortcut misleads on the wrong-class tags: erasing it changes many predictions, beyond the control.
    er = tagged["erasure"]
    assert er["control"] is not None and er["changed"] - er["control"]["changed"] >= 0.3
    passed = {e["test"] for e in tagged["evidence"] if e["passed"]}
    assert passed & {"erasure_changed", "erasure_accuracy", "erasure_shift"}, tagged["reason"]
    assert "do not depend" not in tagged["reason"] and "do not depend" not in clean["reason"]
    # --reference: the clean model's relevance in the box is evidence, with its threshold.
    ref = next(e for e in both["evidence"] if e["test"] == "reference_ratio")
    assert ref["kind"] == "attribution" and ref["threshold"] == 2.0
    assert both["verdict"] == RELIES and both["reference"]["verdict"] == NO_EVIDENCE

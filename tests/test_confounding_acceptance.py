"""Acceptance checks of issue 4 on trained models (minutes of CPU: ``pytest -m slow``).

* A cnn trained on ``shapes-confounded`` puts >= 3× the Grad-CAM and gradient relevance mass on the tag
  of a cnn trained on plain ``shapes`` (same images), its pointing game hits the tag on >= 70% of the
  images, and its verdict is ``relies_on_confounder``; the clean model's is ``no_evidence``.
* The same verdicts when the confounder is only given as ``--mask-box`` on a ``folder:`` dataset built
  here, with a tag nnkit has never seen (other colours, a plus sign, bottom centre instead of a corner).
* The randomisation sanity check ranks Guided Backprop as less sensitive than the vanilla gradient.
"""

from __future__ import annotations

import json
import random

import pytest

from nnkit.confounding import NO_EVIDENCE, RELIES

pytestmark = pytest.mark.slow

# The folder dataset's planted tag: a class-coloured plus sign at the bottom centre.
FOLDER_CLASSES = ("circle", "square", "triangle", "bar")
FOLDER_TAG_COLOURS = ((140, 70, 20), (0, 128, 128), (255, 190, 205), (128, 128, 0))  # brown, teal, pink, olive
FOLDER_TAG_BOX = (12, 24, 20, 31)  # x0, y0, x1, y1 the user gives: the plus sign with a pixel of margin


def _confounding(capsys, *argv) -> dict:
    from nnkit.cli import main

    assert main(["confounding", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_tag_model_relies_on_the_tag_and_clean_model_does_not(confounded_run, shapes_run, capsys):
    args = ("--data", "shapes-confounded", "--methods", "saliency,gradcam", "--n", "200")
    tagged = _confounding(capsys, confounded_run.run_id, *args)
    clean = _confounding(capsys, shapes_run.run_id, *args)
    summary = {name: {m: (f["relevance_mass"], f["pointing_game"]) for m, f in r["methods"].items()}
               for name, r in (("tagged", tagged), ("clean", clean))}
    with capsys.disabled():  # the figures behind the verdicts, in the -s log
        print(json.dumps(summary))
    for method in ("saliency", "gradcam"):
        assert tagged["methods"][method]["relevance_mass"] >= 3 * clean["methods"][method]["relevance_mass"], summary
    assert tagged["pointing_game"] >= 0.7, summary
    assert tagged["verdict"] == RELIES, tagged["reason"]
    assert clean["verdict"] == NO_EVIDENCE, clean["reason"]
    # The evidence is measured, and the thresholds are stated beside it.
    assert {e["test"] for e in tagged["evidence"]} >= {"mass_ratio", "pointing_game", "follows_tag", "erasure_changed",
                                                       "erasure_accuracy", "erasure_shift"}
    assert tagged["thresholds"]["mass_ratio"] == 3.0
    # --reference puts the clean model's figures beside the tagged model's, on the same images.
    both = _confounding(capsys, confounded_run.run_id, *args, "--reference", shapes_run.run_id)
    assert both["reference"]["verdict"] == NO_EVIDENCE
    assert both["methods"]["gradcam"]["mass_vs_reference"] >= 3.0
    # ... and that comparison is evidence of the verdict, with its own threshold.
    ref = next(e for e in both["evidence"] if e["test"] == "reference_ratio")
    assert ref["passed"] and ref["threshold"] == 2.0 and both["verdict"] == RELIES


def _draw_folder(root, tagged: bool, per_class: int = 120, seed: int = 0) -> None:
    """Small shapes of 4 classes in random colours over a noisy background, kept out of the tag's box."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    for c, name in enumerate(FOLDER_CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            bg = tuple(rng.randint(40, 200) for _ in range(3))
            im = Image.new("RGB", (32, 32), bg)
            px = im.load()
            for _ in range(200):  # speckle noise
                x, y = rng.randrange(32), rng.randrange(32)
                px[x, y] = tuple(max(0, min(255, v + rng.randint(-40, 40))) for v in bg)
            d = ImageDraw.Draw(im)
            # Small, low-contrast shapes: the class is learnable, but the tag is the easier cue (a shortcut).
            colour = tuple(max(0, min(255, v + rng.choice((-1, 1)) * rng.randint(50, 90))) for v in bg)
            r = rng.randint(4, 6)
            cx, cy = rng.randint(r + 1, 31 - r - 1), rng.randint(r + 1, 22 - r)  # above y = 22: off the tag
            if name == "circle":
                d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
            elif name == "square":
                d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour)
            elif name == "triangle":
                d.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=colour)
            else:
                d.rectangle([cx - r, cy - 2, cx + r, cy + 2], fill=colour)
            if tagged:
                tc = FOLDER_TAG_COLOURS[c]
                d.rectangle([15, 25, 16, 30], fill=tc)  # the plus sign inside FOLDER_TAG_BOX
                d.rectangle([13, 27, 18, 28], fill=tc)
            im.save(root / name / f"{i:03d}.png")


def test_mask_box_on_a_folder_with_an_unseen_tag(tmp_path, capsys):
    from nnkit.training import TrainConfig, train

    tagged_dir, clean_dir = tmp_path / "tagged", tmp_path / "clean"
    _draw_folder(tagged_dir, tagged=True)
    _draw_folder(clean_dir, tagged=False)
    runs = {}
    for name, folder in (("tagged", tagged_dir), ("clean", clean_dir)):
        runs[name] = train(TrainConfig(data=f"folder:{folder}", model="cnn", epochs=6, batch_size=32, seed=0,
                                       device="cpu", name=f"folder-{name}"))
    box = ",".join(str(v) for v in FOLDER_TAG_BOX)
    args = ("--data", f"folder:{tagged_dir}", "--mask-box", box, "--methods", "saliency,gradcam", "--n", "96")
    tagged = _confounding(capsys, runs["tagged"].run_id, *args)
    clean = _confounding(capsys, runs["clean"].run_id, *args)
    with capsys.disabled():
        print(json.dumps({n: {"mass": r["relevance_mass"], "pointing": r["pointing_game"], "erasure": r["erasure"],
                              "accuracy": runs[n].test_accuracy} for n, r in (("tagged", tagged), ("clean", clean))}))
    assert tagged["info"]["mask"] == f"box {box}" and tagged["counterfactual"] is None
    assert tagged["verdict"] == RELIES, tagged["reason"]
    assert clean["verdict"] == NO_EVIDENCE, clean["reason"]


def test_randomisation_ranks_guided_backprop_less_sensitive_than_gradient(shapes_run):
    import nnkit.data as datasets
    from nnkit.confounding import cascading_randomization

    images = datasets.create("shapes").split("test").images[:16]
    report = cascading_randomization(shapes_run.model, images, "saliency,guided_backprop", seed=0)
    sims = {m: v["similarity"] for m, v in report.methods.items()}
    print(json.dumps(report.to_dict()))
    assert sims["guided_backprop"] > sims["saliency"], sims
    assert report.ranking.index("guided_backprop") > report.ranking.index("saliency")

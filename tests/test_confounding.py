"""nnkit.confounding: relevance mass, pointing game, behavioural tests, verdict, sanity check, faithfulness, CLI.

Quick tests on hand-built models whose answers are known; the acceptance checks on trained models
are in tests/test_confounding_acceptance.py (marked slow).
"""

from __future__ import annotations

import json

import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from nnkit import models
from nnkit.confounding import (
    NO_EVIDENCE,
    RELIES,
    CounterfactualResult,
    ErasureResult,
    Thresholds,
    area_share,
    box_masks,
    cascade_layers,
    cascading_randomization,
    check_confounding,
    counterfactual_test,
    decide,
    deletion_insertion,
    erase,
    faithfulness,
    pointing_game,
    relevance_mass,
    spearman_per_image,
)
from nnkit.data.base import Split
from nnkit.errors import NnkitError
from nnkit.models.wrapper import Classifier

REGION = (0, 0, 2, 2)  # x0, y0, x1, y1 of the "tag" the toy model reads


class _RegionReader(nn.Module):
    """Two classes read from the colour of a fixed region only: logit 0 = Σ_R (red − blue), logit 1 = −logit 0."""

    def __init__(self, region: torch.Tensor):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[1.0, 0.0, -1.0], [-1.0, 0.0, 1.0]])[:, :, None, None])
        self.register_buffer("region", region.float())

    def forward(self, x):
        return (self.conv(x) * self.region).sum((2, 3))


def _reader() -> Classifier:
    region = box_masks(REGION, 1, 8, 8)[0]
    return Classifier(_RegionReader(region), [0.0] * 3, [1.0] * 3, spec={}).eval()


def _tagged_images(n: int = 12):
    g = torch.Generator().manual_seed(0)
    images = 0.3 + 0.4 * torch.rand(n, 3, 8, 8, generator=g)
    labels = torch.arange(n) % 2
    colours = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # class 0 red, class 1 blue
    x0, y0, x1, y1 = REGION
    images[:, :, y0:y1, x0:x1] = colours[labels][:, :, None, None]
    return images, labels


def test_relevance_mass_and_area_share_by_hand():
    maps = torch.tensor([[[1.0, 3.0], [0.0, -2.0]], [[0.0, 0.0], [0.0, -1.0]]])
    masks = torch.tensor([[[False, True], [False, False]]] * 2)
    mass = relevance_mass(maps, masks)
    assert mass[0] == pytest.approx(0.75)  # positive relevance 1 + 3 = 4, inside 3
    assert torch.isnan(mass[1])  # no positive relevance at all: undefined, not zero
    assert torch.equal(area_share(masks), torch.tensor([0.25, 0.25]))
    with pytest.raises(NnkitError):
        relevance_mass(maps, masks[:, :1])


def test_pointing_game_with_tolerance():
    maps = torch.zeros(2, 6, 6)
    maps[0, 1, 1] = 1.0  # inside the mask
    maps[1, 3, 4] = 1.0  # one pixel right of the mask's corner (2, 3)
    masks = box_masks((0, 0, 4, 3), 2, 6, 6)
    assert pointing_game(maps, masks, tolerance=0).tolist() == [True, False]
    assert pointing_game(maps, masks, tolerance=1).tolist() == [True, True]


def test_box_parsing_and_validation():
    from nnkit.confounding import MaskBox

    assert MaskBox.parse("1, 2,5,6").to_model((8, 8), (8, 8)) == (1, 2, 5, 6)
    m = box_masks((1, 2, 5, 6), 3, 8, 8)
    assert m.shape == (3, 8, 8) and int(m[0].sum()) == 16 and m[0, 2, 1] and not m[0, 6, 1]
    for bad in ("1,2,3", "a,b,c,d", "1,2,3,4,5"):
        with pytest.raises(NnkitError, match="four whole numbers"):
            MaskBox.parse(bad)
    with pytest.raises(NnkitError, match="0 <= x0 < x1"):
        box_masks((4, 0, 4, 2), 1, 8, 8)
    with pytest.raises(NnkitError, match="0 <= x0 < x1"):
        box_masks((0, 0, 9, 2), 1, 8, 8)


def test_mask_box_in_the_users_image_coordinates():
    from nnkit.confounding import MaskBox, place_box
    from nnkit.data.base import Dataset

    # Pixels of 28-pixel images onto a 32-pixel model input: scaled by 32/28 and rounded outwards.
    box = MaskBox.parse(" 22, 22,28 ,28")
    assert str(box) == "22,22,28,28" and box.to_model((32, 32), (28, 28)) == (25, 25, 32, 32)
    assert MaskBox.parse("0,0,7,7").to_model((32, 32), (28, 28)) == (0, 0, 8, 8)
    assert MaskBox.parse("1,2,5,6").to_model((8, 8), (8, 8)) == (1, 2, 5, 6)  # same size: unchanged
    assert MaskBox.parse((1, 2, 5, 6)) == MaskBox.parse("1,2,5,6")
    # Percentages fit every size, also a folder of mixed sizes.
    pct = MaskBox.parse("75%,75%,100%,100%")
    assert pct.percent and pct.to_model((32, 32), None) == (24, 24, 32, 32)
    assert MaskBox.parse("10.5%,0%,12%,50%").to_model((32, 32), None) == (3, 0, 4, 16)
    with pytest.raises(NnkitError, match="differ in size: give it as percentages"):
        box.to_model((32, 32), None)
    with pytest.raises(NnkitError, match="leaves the 28×28 images"):
        MaskBox.parse("20,20,29,28").to_model((32, 32), (28, 28))
    for bad, why in (("1,2,3", "four whole numbers"), ("a,b,c,d", "four whole numbers"), ("1.5,0,3,3", "whole"),
                     ("1%,2,3,4", "four percentages"), ("nan,0,1,1", "whole"), ("5,0,3,4", "x0 < x1"),
                     ("0,4,3,4", "y0 < y1"), ("-1,0,3,3", ">= 0"), ("0%,0%,101%,5%", "between 0% and 100%")):
        with pytest.raises(NnkitError, match=why):
            MaskBox.parse(bad)
    # place_box reads the user's image size from a folder dataset's info and names both boxes.
    split = Split(torch.zeros(2, 3, 32, 32), torch.tensor([0, 1]))
    folder = Dataset("folder:/x", ["a", "b"], {"train": split, "test": split}, {"source_sizes": [[28, 28]]})
    placed = place_box("22,22,28,28", folder)
    assert placed["model_box"] == [25, 25, 32, 32] and placed["image_size"] == [28, 28]
    assert placed["text"] == "box 22,22,28,28 on the 28×28 images = 25,25,32,32 on the 32×32 model input"
    mixed = Dataset("folder:/y", ["a", "b"], {"train": split, "test": split},
                    {"source_sizes": [[28, 28], [40, 30]]})
    assert place_box("75%,75%,100%,100%", mixed)["model_box"] == [24, 24, 32, 32]
    with pytest.raises(NnkitError, match="percentages"):
        place_box("22,22,28,28", mixed)


def test_control_region_is_the_mask_elsewhere():
    from nnkit.confounding import control_masks

    corner = box_masks((6, 6, 8, 8), 2, 8, 8)
    control, how = control_masks(corner)
    assert "180°" in how and torch.equal(control, box_masks((0, 0, 2, 2), 2, 8, 8))
    band = box_masks((0, 3, 8, 5), 1, 8, 8)  # a full-width band across the centre rows 3-4:
    control, how = control_masks(band)  # turned or mirrored, it overlaps itself: no control region
    assert control is None and how.startswith("none")
    left = box_masks((0, 0, 2, 8), 1, 8, 8)  # a full-height strip: turning it overlaps nothing
    assert torch.equal(control_masks(left)[0], box_masks((6, 0, 8, 8), 1, 8, 8))


def test_decide_judges_erasure_by_dependence_in_either_direction():
    """Issue 16's case: the attributions point at the tag and erasing it changes 67% of the predictions and
    *raises* accuracy from 4% to 41%: that is reliance, and the reason must say so with the numbers."""
    th = Thresholds()
    looks = {"relevance_mass": 0.34, "area_share": 0.048, "mass_ratio": 7.1, "pointing_game": 0.73}
    control = _erasure(0.04, 0.05, 0.06, 0.03)
    raises = _erasure(0.04, 0.41, 0.67, 0.55, control)
    verdict, reason, evidence = decide(looks, None, raises, th)
    assert verdict == RELIES
    rows = {e.test: e for e in evidence}
    assert rows["erasure_changed"].value == pytest.approx(0.61) and rows["erasure_changed"].passed
    assert rows["erasure_accuracy"].value == pytest.approx(0.36) and rows["erasure_accuracy"].passed
    assert rows["erasure_shift"].value == pytest.approx(0.52) and rows["erasure_shift"].passed
    assert "67.0% of the predictions" in reason and "from 4.0% to 41.0%" in reason and "+37.0 points" in reason
    assert "not depend" not in reason
    # The same changes on the control region as on the box: no dependence beyond an arbitrary region.
    same = _erasure(0.04, 0.41, 0.67, 0.55, _erasure(0.04, 0.40, 0.60, 0.50))
    verdict, reason, evidence = decide(looks, None, same, th)
    assert verdict == NO_EVIDENCE and not any(e.passed for e in evidence if e.kind == "behaviour")
    assert "67.0% of the predictions (a region of the same size elsewhere: 60.0%; excess 7.0%" in reason
    # Each figure has its own threshold: a shift alone (few flips, much probability mass) is enough.
    shift_only = _erasure(0.9, 0.88, 0.05, 0.3, _erasure(0.9, 0.9, 0.0, 0.01))
    rows = {e.test: e for e in decide(looks, None, shift_only, th)[2]}
    assert rows["erasure_shift"].passed and not rows["erasure_changed"].passed and not rows["erasure_accuracy"].passed
    # Without a control region the baseline is zero, and the text says there was none.
    alone = decide(looks, None, _erasure(0.9, 0.9, 0.1, 0.05), th)
    assert alone[0] == NO_EVIDENCE and "no control region: 0.0%" in alone[1]


def test_decide_takes_the_reference_model_as_attribution_evidence():
    th = Thresholds()
    weak = {"relevance_mass": 0.12, "area_share": 0.05, "mass_ratio": 2.4, "pointing_game": 0.2}
    acts = _erasure(0.9, 0.3, 0.7, 0.6, _erasure(0.9, 0.9, 0.0, 0.01))
    assert decide(weak, None, acts, th)[0] == NO_EVIDENCE  # attribution alone is below its thresholds
    verdict, reason, evidence = decide(weak, None, acts, th, reference_mass=0.03)
    row = next(e for e in evidence if e.test == "reference_ratio")
    assert verdict == RELIES and row.kind == "attribution" and row.value == pytest.approx(4.0) and row.passed
    assert "12.0% of this model's relevance and 3.0% of the reference model's" in reason
    verdict, _, evidence = decide(weak, None, acts, th, reference_mass=0.08)
    assert verdict == NO_EVIDENCE and not next(e for e in evidence if e.test == "reference_ratio").passed


def test_erase_fills_region_from_its_surroundings():
    images = torch.zeros(1, 3, 6, 6)
    images[:, 0] = 0.5
    images[:, :, 2:4, 2:4] = 1.0  # the "tag"
    masks = box_masks((2, 2, 4, 4), 1, 6, 6)
    out = erase(images, masks, ring=1)
    assert torch.allclose(out[0, :, 2:4, 2:4], torch.tensor([0.5, 0.0, 0.0])[:, None, None].expand(3, 2, 2))
    assert torch.equal(out[~masks[:, None].expand_as(out)], images[~masks[:, None].expand_as(images)])
    assert images[0, 1, 2, 2] == 1.0  # input untouched


def test_counterfactual_test_on_a_tag_reader():
    """A model that reads the tag alone: tag-shuffled predictions all follow the tag."""
    images, labels = _tagged_images(10)
    colours = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])

    def with_tag(tags):
        x = images.clone()
        fill = torch.where((tags >= 0)[:, None], colours[tags.clamp(min=0)], torch.full((len(tags), 3), 0.5))
        x[:, :, 0:2, 0:2] = fill[:, :, None, None]
        return Split(x, labels, None, tags)

    splits = {"tag-agrees": with_tag(labels), "no-tag": with_tag(torch.full_like(labels, -1)),
              "tag-shuffled": with_tag(1 - labels)}
    cf = counterfactual_test(_reader(), splits, num_classes=2)
    assert cf.accuracy["tag-agrees"] == 1.0 and cf.accuracy["tag-shuffled"] == 0.0
    assert cf.follows_tag == 1.0 and cf.follows_label == 0.0 and cf.accuracy_gap == 1.0 and cf.chance == 0.5
    with pytest.raises(NnkitError, match="counterfactual"):
        counterfactual_test(_reader(), {"tag-agrees": splits["tag-agrees"]}, 2)


ERASURE_TESTS = {"erasure_changed", "erasure_accuracy", "erasure_shift"}


def _erasure(acc, acc_erased, changed, shift, control=None):
    return ErasureResult(acc, acc_erased, acc_erased - acc, changed, shift, 100, control,
                         "the region turned 180° about the image centre" if control else None)


def test_decide_needs_attribution_and_behaviour():
    th = Thresholds()
    looks = {"relevance_mass": 0.4, "area_share": 0.02, "mass_ratio": 20.0, "pointing_game": 0.9}
    blind = {"relevance_mass": 0.02, "area_share": 0.02, "mass_ratio": 1.0, "pointing_game": 0.0}
    acts = _erasure(0.9, 0.4, 0.6, 0.5)
    ignores = _erasure(0.9, 0.89, 0.02, 0.01)
    follows = CounterfactualResult({"tag-agrees": 1.0, "no-tag": 0.5, "tag-shuffled": 0.1}, 0.8, 0.1, 0.1, 0.9, 100)
    assert decide(looks, None, acts, th)[0] == RELIES
    assert decide(looks, follows, ignores, th)[0] == RELIES
    assert decide(looks, None, None, th)[0] == RELIES  # no behavioural test possible: attribution decides
    verdict, reason, evidence = decide(looks, None, ignores, th)
    assert verdict == NO_EVIDENCE and "no behavioural test reaches its threshold" in reason
    verdict, reason, evidence = decide(blind, follows, acts, th)
    assert verdict == NO_EVIDENCE and "the predictions depend on the region" in reason
    assert {e.test for e in evidence} == {"mass_ratio", "pointing_game", "follows_tag", "accuracy_gap"} | ERASURE_TESTS
    ratio = next(e for e in evidence if e.test == "mass_ratio")
    assert ratio.threshold == th.mass_ratio and ratio.value == 1.0 and not ratio.passed
    # The thresholds are parameters, not constants: a stricter ratio turns the verdict.
    assert decide(looks, None, acts, Thresholds(mass_ratio=50.0, pointing_game=0.95))[0] == NO_EVIDENCE


def test_check_confounding_on_a_model_that_reads_the_region():
    model = _reader()
    images, labels = _tagged_images()
    inside = box_masks(REGION, len(images), 8, 8)
    report = check_confounding(model, images, inside, labels, methods="saliency,ig", batch_size=5)
    assert report.verdict == RELIES
    assert report.methods["saliency"]["relevance_mass"] == pytest.approx(1.0)
    assert report.mass_ratio == pytest.approx(16.0)  # all relevance in 4 of 64 pixels
    assert report.pointing_game == 1.0 and report.erasure.accuracy_change <= -0.4 and report.erasure.shift > 0.4
    # The control region (the tag's corner turned 180°) is one the reader ignores: nothing changes there.
    assert report.erasure.control is not None and report.erasure.control.changed == 0.0
    d = report.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["thresholds"]["mass_ratio"] == 3.0 and d["verdict"] == RELIES

    elsewhere = box_masks((5, 5, 8, 8), len(images), 8, 8)
    other = check_confounding(model, images, elsewhere, labels, methods=["saliency"], reference=model)
    assert other.verdict == NO_EVIDENCE
    assert other.relevance_mass == 0.0 and other.pointing_game == 0.0 and other.erasure.accuracy_change == 0.0
    assert other.erasure.changed == 0.0 and other.erasure.shift == pytest.approx(0.0, abs=1e-6)
    assert other.reference is not None and other.reference.verdict == NO_EVIDENCE
    with pytest.raises(NnkitError, match="empty"):
        check_confounding(model, images, torch.zeros_like(inside), labels)


def test_spearman_matches_scipy():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 5, 5, generator=g)
    b = a + 0.3 * torch.rand(3, 5, 5, generator=g)
    b[2] = b[2].round()  # ties
    ours = spearman_per_image(a, b)
    ref = [spearmanr(a[i].flatten(), b[i].flatten()).statistic for i in range(3)]
    assert torch.allclose(ours, torch.tensor(ref, dtype=torch.float32), atol=1e-5)
    assert spearman_per_image(a[:1], torch.zeros(1, 5, 5)).item() == 0.0  # a constant map has no order


def test_cascading_randomization_structure():
    torch.manual_seed(0)
    model = models.create("cnn", 3, in_channels=3, image_size=8, widths=(4, 6), hidden=8).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    # A Sequential model runs its layers in definition order: the cascade is that order reversed.
    owners = [n for n, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))]
    layers = [n for n, _ in cascade_layers(model, images)]
    assert layers == owners[::-1] and model.get_submodule(layers[0]) is model.net.head[-1]
    steps = []
    report = cascading_randomization(model, images, "saliency,guided_backprop", on_progress=lambda d, t: steps.append(d))
    assert steps == list(range(1, len(layers) + 2))
    assert report.layers == layers and len(report.methods["saliency"]["spearman"]) == len(layers)
    for m in report.methods.values():
        assert all(-1.0 <= r <= 1.0 for r in m["spearman"]) and m["flagged"] == (m["similarity"] >= 0.5)
    assert set(report.ranking) == {"saliency", "guided_backprop"}
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # a copy was randomised


def test_deletion_and_insertion_reward_the_true_relevance():
    model = _reader()
    images, labels = _tagged_images()
    truth = box_masks(REGION, len(images), 8, 8).float()
    good = deletion_insertion(model, images, truth, labels, steps=16)
    bad = deletion_insertion(model, images, -truth, labels, steps=16)
    assert good["deletion"][0] == pytest.approx(bad["deletion"][0]) and len(good["fractions"]) == 17
    assert good["deletion_auc"] < bad["deletion_auc"] - 0.2
    assert good["insertion_auc"] > bad["insertion_auc"] + 0.1  # the blurred start keeps a little colour
    report = faithfulness(model, images, "saliency", target=labels, steps=8)
    assert set(report.methods) == {"saliency", "random"}
    assert report.methods["saliency"]["deletion_auc"] < report.methods["random"]["deletion_auc"]


@pytest.fixture(scope="module")
def tiny_confounded_run():
    from nnkit.training import TrainConfig, train

    return train(TrainConfig(data="shapes-confounded", data_opts={"n_train": 200, "n_test": 60}, model="cnn",
                             model_opts={"widths": [8, 16], "hidden": 16}, epochs=1, max_steps=3, seed=0,
                             device="cpu", name="tiny-confounded"))


def _cli_json(capsys, argv) -> dict:
    from nnkit.cli import main

    assert main(argv) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_cli_confounding_json(tiny_confounded_run, capsys):
    run = tiny_confounded_run.run_id
    out = _cli_json(capsys, ["confounding", run, "--n", "8", "--methods", "saliency,gradcam", "--json"])
    assert out["verdict"] in (RELIES, NO_EVIDENCE) and out["run_id"] == run
    assert 0.0 <= out["relevance_mass"] <= 1.0 and 0.0 <= out["pointing_game"] <= 1.0
    assert set(out["methods"]) == {"saliency", "gradcam"} and out["n"] == 8
    assert set(out["counterfactual"]["accuracy"]) == {"tag-agrees", "no-tag", "tag-shuffled"}
    assert out["info"]["split"] == "tag-agrees" and out["info"]["mask"] == "dataset masks"
    boxed = _cli_json(capsys, ["confounding", run, "--n", "4", "--methods", "saliency", "--mask-box", "0,0,8,8",
                               "--reference", run, "--json"])
    assert boxed["info"]["mask"] == "box 0,0,8,8" and boxed["area_share"] == pytest.approx(64 / 1024)
    # shapes-confounded is stored at its native 32×32: the user's box is the model's box, and the JSON says so.
    assert boxed["info"]["box"]["model_box"] == [0, 0, 8, 8] and boxed["info"]["box"]["image_size"] == [32, 32]
    assert "the model's input size" in boxed["info"]["box"]["text"]
    assert {e["test"] for e in boxed["evidence"]} >= {"reference_ratio"} | ERASURE_TESTS
    assert boxed["erasure"]["control"] is not None
    assert boxed["reference"]["relevance_mass"] == pytest.approx(boxed["relevance_mass"])
    assert boxed["methods"]["saliency"]["mass_vs_reference"] == pytest.approx(1.0)


def test_cli_confounding_class_checks_only_that_class(tiny_confounded_run, capsys):
    """--class (by name or index, repeatable) cuts the data to those classes' images, counterfactual splits
    included: the check `nnkit discover --check` runs on a discovered box, repeatable from its printed command."""
    from nnkit.cli import main

    run = tiny_confounded_run.run_id
    base = ["confounding", run, "--methods", "saliency", "--json"]
    star = _cli_json(capsys, [*base, "--class", "star"])
    circle = _cli_json(capsys, [*base, "--class", "0"])
    both = _cli_json(capsys, [*base, "--class", "star", "--class", "circle"])
    everything = _cli_json(capsys, base)
    assert star["info"]["classes"] == ["star"] and circle["info"]["classes"] == ["circle"]
    assert both["info"]["classes"] == ["star", "circle"] and "classes" not in everything["info"]
    assert 0 < star["n"] and 0 < circle["n"] and star["n"] + circle["n"] == both["n"] < everything["n"]
    assert both["counterfactual"] is not None  # the tag variants are cut to the same classes, not dropped
    assert main(["confounding", run, "--methods", "saliency", "--class", "star"]) == 0
    assert f"({star['n']} images of class star, mask: dataset masks" in capsys.readouterr().out


def test_cli_explain_and_sanity(tiny_confounded_run, capsys, tmp_path):
    from PIL import Image

    from nnkit.cli import main

    run = tiny_confounded_run.run_id
    out = _cli_json(capsys, ["explain", run, "--method", "gradcam,saliency", "--n", "3", "--out", str(tmp_path),
                             "--json"])
    assert out["methods"] == ["gradcam", "saliency"] and out["n"] == 3
    with Image.open(out["png"]) as im:
        assert im.size[0] > im.size[1] // 2
    figures = json.loads((tmp_path / "figures.json").read_text())
    assert figures["grid"]["data"] and len(figures["rows"]) == 3
    out = _cli_json(capsys, ["sanity", run, "--n", "3", "--methods", "saliency,guided_backprop", "--steps", "2",
                             "--json"])
    assert set(out["randomisation"]["methods"]) == {"saliency", "guided_backprop"}
    assert set(out["faithfulness"]["methods"]) == {"saliency", "guided_backprop", "random"}
    assert main(["confounding", run, "--mask-box", "1,2,3"]) == 2
    assert "four whole numbers" in capsys.readouterr().err
    assert main(["explain", run, "--method", "lime", "--out", str(tmp_path)]) == 2


def test_cli_help_states_the_verdict_thresholds():
    from nnkit.cli import build_parser

    sub = next(a for a in build_parser()._actions if getattr(a, "choices", None) and "confounding" in a.choices)
    text = sub.choices["confounding"].description
    th = Thresholds()
    for phrase in (f"mass >= {th.mass_ratio:g}x", f"pointing game >= {th.pointing_game:.0%}",
                   f"mass >= {th.reference_ratio:g}x the reference", f"chance + {th.follows_tag:.0%}",
                   f"accuracy gap >= {th.accuracy_gap:.0%}", f"predictions changed >= {th.erasure_changed:.0%}",
                   f"|accuracy change| >= {th.erasure_accuracy:.0%}", f"probability shift >= {th.erasure_shift:.0%}"):
        assert phrase in text, phrase


def test_report_takes_the_mask_box_on_a_folder_run(tmp_path, capsys):
    """A folder has no confounder masks: without a box the report skips the confounding check and says how to
    give one; with ``--mask-box`` (pixels of the user's 28-pixel images) it runs it on the 32-pixel input,
    pictures the box and records the command with the box."""
    import numpy as np
    from PIL import Image

    from nnkit.cli import main
    from nnkit.training import TrainConfig, train

    rng = np.random.default_rng(0)
    for c in range(2):
        (tmp_path / "data" / f"c{c}").mkdir(parents=True)
        for i in range(6):
            arr = rng.integers(0, 120, (28, 28, 3), dtype=np.uint8)
            arr[20:26, 20:26] = (255, 40 + 150 * c, 0)
            Image.fromarray(arr).save(tmp_path / "data" / f"c{c}" / f"{i}.png")
    run = train(TrainConfig(data=f"folder:{tmp_path / 'data'}", data_opts={"size": 32}, model="cnn",
                            model_opts={"widths": [8, 16], "hidden": 16}, epochs=1, max_steps=2, seed=0,
                            device="cpu", name="tiny-folder")).run_id
    base = ["report", run, "--quick", "--sections", "explanations", "--set", "saliency_n=2", "--set", "sanity_n=2",
            "--set", "sanity_steps=2", "--set", "confounding_n=4", "--set", "confounding_methods=saliency",
            "--set", "saliency_methods=saliency", "--set", "sanity_methods=saliency", "--device", "cpu"]
    assert main([*base, "--out", str(tmp_path / "plain.json")]) == 0
    skipped = json.loads((tmp_path / "plain.json").read_text())["explanations"]["confounding"]
    assert skipped["status"] == "skipped" and "--mask-box" in skipped["skip_reason"]
    assert main([*base, "--out", str(tmp_path / "boxed.json"), "--mask-box", "20,20,26,26"]) == 0
    capsys.readouterr()
    report = json.loads((tmp_path / "boxed.json").read_text())
    cf = report["explanations"]["confounding"]
    assert cf["status"] == "done" and cf["info"]["mask"] == "box 20,20,26,26"
    assert cf["info"]["box"]["model_box"] == [22, 22, 30, 30] and cf["info"]["box"]["image_size"] == [28, 28]
    assert "--mask-box 20,20,26,26" in cf["cli"] and report["settings"]["confounding_mask_box"] == "20,20,26,26"
    assert "--mask-box 20,20,26,26" in report["settings"]["command"]
    picture = report["images"][cf["images"][0]]
    assert "28×28 images = 22,22,30,30 on the 32×32 model input" in picture["caption"]
    assert picture["width"] > picture["height"]  # the first images of the check side by side


def test_report_page_passes_the_box(tiny_confounded_run):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from nnkit.jobs import JobStatus, get_manager

    run = tiny_confounded_run.run_id
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "streamlit_app.py"), default_timeout=120)
    at.session_state["nnkit_active_run"] = run
    at.run()
    at = at.switch_page("app_pages/report.py").run()
    at.multiselect(key="report_sections").set_value(["model_card"])
    at.text_input(key="report_mask_box").input("8,0,2,4")
    at.button(key="FormSubmitter:report_form-Build report").click().run()
    assert not at.exception and [e.value for e in at.error] == [
        "mask box 8,0,2,4 is empty: it needs x0 < x1 and y0 < y1 (end-exclusive)"]
    assert not get_manager().list(owner=at.session_state["nnkit_owner"], tag="report")
    at.text_input(key="report_mask_box").input(" 0, 0, 8, 8 ")
    at.button(key="FormSubmitter:report_form-Build report").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    jobs = get_manager().list(owner=at.session_state["nnkit_owner"], tag="report")
    view = get_manager().wait(jobs[0].id, 300)
    assert view.status is JobStatus.DONE, view.error
    report = json.loads((Path(view.result["folder"]) / "report.json").read_text())
    assert report["settings"]["confounding_mask_box"] == "0,0,8,8"

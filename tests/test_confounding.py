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
    parse_box,
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
    assert parse_box("1, 2,5,6") == (1, 2, 5, 6)
    m = box_masks((1, 2, 5, 6), 3, 8, 8)
    assert m.shape == (3, 8, 8) and int(m[0].sum()) == 16 and m[0, 2, 1] and not m[0, 6, 1]
    for bad in ("1,2,3", "a,b,c,d", "1,2,3,4,5"):
        with pytest.raises(NnkitError, match="four whole numbers"):
            parse_box(bad)
    with pytest.raises(NnkitError, match="0 <= x0 < x1"):
        box_masks((4, 0, 4, 2), 1, 8, 8)
    with pytest.raises(NnkitError, match="0 <= x0 < x1"):
        box_masks((0, 0, 9, 2), 1, 8, 8)


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


def test_decide_needs_attribution_and_behaviour():
    th = Thresholds()
    looks = {"relevance_mass": 0.4, "area_share": 0.02, "mass_ratio": 20.0, "pointing_game": 0.9}
    blind = {"relevance_mass": 0.02, "area_share": 0.02, "mass_ratio": 1.0, "pointing_game": 0.0}
    acts = ErasureResult(0.9, 0.4, 0.5, 0.6, 100)
    ignores = ErasureResult(0.9, 0.89, 0.01, 0.02, 100)
    follows = CounterfactualResult({"tag-agrees": 1.0, "no-tag": 0.5, "tag-shuffled": 0.1}, 0.8, 0.1, 0.1, 0.9, 100)
    assert decide(looks, None, acts, th)[0] == RELIES
    assert decide(looks, follows, ignores, th)[0] == RELIES
    assert decide(looks, None, None, th)[0] == RELIES  # no behavioural test possible: attribution decides
    verdict, reason, evidence = decide(looks, None, ignores, th)
    assert verdict == NO_EVIDENCE and "do not depend" in reason
    verdict, reason, evidence = decide(blind, follows, acts, th)
    assert verdict == NO_EVIDENCE
    assert {e.test for e in evidence} == {"mass_ratio", "pointing_game", "follows_tag", "accuracy_gap", "erasure_drop"}
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
    assert report.pointing_game == 1.0 and report.erasure.accuracy_drop >= 0.4
    d = report.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["thresholds"]["mass_ratio"] == 3.0 and d["verdict"] == RELIES

    elsewhere = box_masks((5, 5, 8, 8), len(images), 8, 8)
    other = check_confounding(model, images, elsewhere, labels, methods=["saliency"], reference=model)
    assert other.verdict == NO_EVIDENCE
    assert other.relevance_mass == 0.0 and other.pointing_game == 0.0 and other.erasure.accuracy_drop == 0.0
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
    assert boxed["reference"]["relevance_mass"] == pytest.approx(boxed["relevance_mass"])
    assert boxed["methods"]["saliency"]["mass_vs_reference"] == pytest.approx(1.0)


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
                   f"chance + {th.follows_tag:.0%}", f"accuracy gap >= {th.accuracy_gap:.0%}",
                   f"erasure >= {th.erasure_drop:.0%}"):
        assert phrase in text, phrase

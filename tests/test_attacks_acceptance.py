"""Acceptance checks of issue 3 on a cnn trained on ``shapes`` (minutes: run with ``pytest -m slow``)."""

from __future__ import annotations

import pytest
import torch

from attacks import OnePixel, UniversalPatch, evaluate, sweep_patch_area
from nnkit import data as datasets
from nnkit.training import predict_logits

pytestmark = pytest.mark.slow

ONE_PIXEL_IMAGES = 50  # correctly classified test images attacked with the full paper budget
AREAS = (0.01, 0.02, 0.05, 0.1, 0.2)


def _correct(model, split, n, exclude_label=None):
    pred = predict_logits(model, split.images).argmax(1)
    ok = pred == split.labels
    if exclude_label is not None:
        ok &= split.labels != exclude_label
    idx = ok.nonzero()[:, 0][:n]
    return split.images[idx], split.labels[idx]


def test_one_pixel_paper_budget_fools_shapes_cnn(shapes_run):
    """Su et al. budget (k = 1, population 400, 100 generations): >= 20% of correctly classified images fooled."""
    assert shapes_run.test_accuracy >= 0.95
    model = shapes_run.model.eval()
    x, y = _correct(model, datasets.create("shapes").split("test"), ONE_PIXEL_IMAGES)
    report = evaluate(model, OnePixel(model, pixels=1, popsize=400, generations=100, seed=0), x, y)
    print(f"one-pixel k=1 on shapes: success {report.success_rate:.3f} on {report.n_attacked} images, "
          f"median queries/success {report.median_queries_per_success}, {report.seconds_per_image:.2f} s/image")
    assert report.n_attacked == ONE_PIXEL_IMAGES
    assert report.success_rate >= 0.20
    # Every success is real: the model's prediction on the returned image differs from the label.
    fooled = report.result.success
    assert torch.equal(predict_logits(model, report.result.images[fooled]).argmax(1) != y[fooled],
                       torch.ones(int(fooled.sum()), dtype=torch.bool))


def _easiest_target(model, images, labels, area: float) -> int:
    """The attacker's choice of target (Brown et al. chose "toaster"): the class a short patch
    optimisation reaches most often on the *training* images. Held-out images play no part in it."""
    rates = []
    for cls in range(int(labels.max()) + 1):
        keep = labels != cls
        attack = UniversalPatch(model, area=area, steps=40, seed=0).fit(images[keep], labels[keep], cls)
        rates.append(attack(images[keep][:200], labels[keep][:200]).success_rate)
    return max(range(len(rates)), key=rates.__getitem__)


def test_universal_patch_on_shapes_reaches_target_and_rises_with_area(shapes_run):
    """Brown et al.: a 10% patch reaches >= 80% targeted success on held-out images; success rises with area."""
    model = shapes_run.model.eval()
    ds = datasets.create("shapes")
    train = ds.split("train")
    train_x, train_y = train.images[:2000], train.labels[:2000]
    target = _easiest_target(model, train_x, train_y, 0.1)
    x, y = _correct(model, ds.split("test"), 300, exclude_label=target)
    reports = sweep_patch_area(model, train_x, train_y, x, y, target, AREAS, seed=0)
    rates = [r.success_rate for r in reports]
    print(f"universal patch, target {ds.class_names[target]}, success vs area:",
          dict(zip(AREAS, [round(r, 3) for r in rates])))
    assert all(r.targeted and r.n_attacked == x.shape[0] for r in reports)
    assert rates[AREAS.index(0.1)] >= 0.80
    assert rates[-1] > rates[0] + 0.3
    assert all(b >= a - 0.05 for a, b in zip(rates, rates[1:]))  # non-decreasing up to sampling noise

"""Contract tests of the attacks on tiny hand-built models whose answers are known."""

from __future__ import annotations

import threading

import pytest
import torch
from torch import nn

from attacks import (
    LocalPatch,
    OnePixel,
    UniversalPatch,
    evaluate,
    inference_copy,
    paste_patch,
    patch_mask,
    sweep_pixels,
)
from attacks.one_pixel import _distinct, _three_others
from attacks.patch import warp_patch
from nnkit.errors import Cancelled, NnkitError


class PixelSwitch(nn.Module):
    """2 classes on C×S×S images: class 1 exactly when pixel (row, col) has mean value above 0.5."""

    def __init__(self, row=2, col=3):
        super().__init__()
        self.row, self.col = row, col
        self.scale = nn.Parameter(torch.tensor(20.0))

    def forward(self, x):
        v = x[:, :, self.row, self.col].mean(1)
        return torch.stack([torch.zeros_like(v), self.scale * (v - 0.5)], 1)


class Constant(nn.Module):
    """Always class 0 whatever the input (no attack can succeed)."""

    def __init__(self, k=3):
        super().__init__()
        self.bias = nn.Parameter(torch.arange(k, 0, -1).float())

    def forward(self, x):
        return self.bias.expand(x.shape[0], -1) + 0 * x.mean((1, 2, 3))[:, None]


class BrightBlock(nn.Module):
    """3 classes: 0 by default, 1 when any 3×3 block is brighter than 0.75 on average,
    2 never reachable by a patch (it would need the image mean above 0.95)."""

    def __init__(self):
        super().__init__()
        self.pool = nn.AvgPool2d(3, stride=1)
        self.w = nn.Parameter(torch.tensor(10.0))

    def forward(self, x):
        block = self.pool(x.mean(1, keepdim=True)).amax((1, 2, 3))
        return torch.stack([torch.full_like(block, 2.5), self.w * (block - 0.5), self.w * (x.mean((1, 2, 3)) - 0.7)], 1)


def tiny_cnn(seed=0, classes=4, channels=3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(channels, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(6 * 4 * 4, classes)).eval()


def dark_images(n=6, size=8, channels=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, channels, size, size, generator=g) * 0.4 + 0.05


def changed_pixels(a, b):
    return (a != b).any(1).flatten(1).sum(1)


# -- the contract -----------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda m: OnePixel(m, pixels=2, popsize=12, generations=2, seed=0),
    lambda m: LocalPatch(m, area=0.1, steps=3, placements=2, search_steps=1, seed=0),
    lambda m: UniversalPatch(m, area=0.1, steps=2, batch_size=4, seed=0).fit(dark_images(8, seed=5), [0] * 8, 1),
])
def test_images_in_unit_range_with_input_shape(make):
    model = tiny_cnn()
    x = torch.rand(5, 3, 8, 8)
    y = torch.tensor([0, 1, 2, 3, 0])
    result = make(model)(x, y)
    assert result.images.shape == x.shape and result.images.dtype == torch.float32
    assert float(result.images.min()) >= 0 and float(result.images.max()) <= 1
    assert result.probs_after.shape == (5, 4) and len(result) == 5
    # Images the model already got wrong are not attacked and come back unchanged.
    not_attacked = ~result.attacked
    assert torch.equal(result.images[not_attacked], x[not_attacked])
    assert torch.equal(result.attacked, result.pred_before == y)


@pytest.mark.parametrize("k", [1, 3])
def test_one_pixel_changes_exactly_k_pixels(k):
    model = tiny_cnn(1)
    x = dark_images(6)
    y = model(x).argmax(1)  # all correctly classified → all attacked
    result = OnePixel(model, pixels=k, popsize=16, generations=3, seed=0)(x, y)
    assert result.attacked.all()
    assert changed_pixels(result.images, x).tolist() == [k] * 6
    pix = result.perturbation["pixels"]
    assert pix.shape == (6, k, 2)
    for i in range(6):  # the recorded positions are the changed ones, with the recorded colours
        assert len({tuple(p) for p in pix[i].tolist()}) == k
        for (r, c), colour in zip(pix[i].tolist(), result.perturbation["colours"][i]):
            assert torch.allclose(result.images[i, :, r, c], colour)


def test_one_pixel_finds_the_switch_pixel_and_counts_queries():
    model = PixelSwitch(2, 3)
    x = dark_images(4)
    y = torch.zeros(4, dtype=torch.long)
    result = OnePixel(model, pixels=1, popsize=40, generations=20, seed=0)(x, y)
    assert result.success.all()
    assert result.perturbation["pixels"][:, 0].tolist() == [[2, 3]] * 4
    assert (result.images[:, :, 2, 3].mean(1) > 0.5).all()
    assert changed_pixels(result.images, x).tolist() == [1] * 4
    # Queries: one clean check, whole blocks of candidates, one final check; never past the budget.
    assert (result.queries >= 3).all() and (result.queries <= 1 + 40 * 21 + 1).all()


def test_queries_match_a_counting_model(monkeypatch):
    import attacks.base

    calls = []

    class Counting(PixelSwitch):
        def forward(self, x):
            calls.append(x.shape[0])
            return super().forward(x)

    model = Counting(1, 1)
    x = dark_images(3)
    # Forward passes are padded to blocks of ROW_BLOCK rows (copies, not queries): count without them here.
    monkeypatch.setattr(attacks.base, "ROW_BLOCK", 1)
    result = OnePixel(model, popsize=10, generations=4, seed=1, fast=False)(x, torch.zeros(3, dtype=torch.long))
    probe = 1  # the one-image forward pass that sizes the batches is not a query
    assert int(result.queries.sum()) == sum(calls) - probe
    # With the padding, the same queries are counted and each model call holds at most ROW_BLOCK - 1 copies more.
    monkeypatch.undo()
    calls.clear()
    padded = OnePixel(model, popsize=10, generations=4, seed=1, fast=False)(x, torch.zeros(3, dtype=torch.long))
    assert torch.equal(padded.queries, result.queries)
    assert all(c % attacks.base.ROW_BLOCK == 0 for c in calls[1:])
    assert sum(calls) - probe - int(result.queries.sum()) < attacks.base.ROW_BLOCK * (len(calls) - probe)


def test_failed_image_is_reported_failed_not_clean():
    model = Constant()
    x = dark_images(3)
    y = torch.zeros(3, dtype=torch.long)
    result = OnePixel(model, pixels=1, popsize=8, generations=2, seed=0)(x, y)
    assert result.attacked.all()
    assert not result.success.any()
    assert (result.pred_after == 0).all()
    assert result.success_rate == 0.0
    # The best candidate is still returned (one changed pixel), marked as a failure, full budget spent.
    assert changed_pixels(result.images, x).tolist() == [1, 1, 1]
    assert result.queries.tolist() == [1 + 8 * 3 + 1] * 3
    report = evaluate(model, OnePixel(model, popsize=8, generations=1, seed=0), x, y)
    assert report.success_rate == 0.0 and report.n_success == 0 and report.robust_accuracy == 1.0
    assert report.to_dict()["median_queries_per_success"] is None


def test_targeted_success_means_the_target_class():
    model = BrightBlock()
    x = dark_images(4, size=12, seed=3)
    y = torch.zeros(4, dtype=torch.long)
    reach = LocalPatch(model, area=0.1, steps=40, placements=2, search_steps=5, lr=0.2, seed=0)
    to_one = reach(x, y, targets=1)
    assert to_one.success.all() and (to_one.pred_after == 1).all()
    to_two = LocalPatch(model, area=0.1, steps=15, placements=2, search_steps=5, lr=0.2, seed=0)(x, y, targets=2)
    # Class 2 cannot be reached with a small patch: whatever the prediction became, it is not a success.
    assert not to_two.success.any()
    assert torch.equal(to_two.success, to_two.pred_after == 2)
    # One-pixel, targeted: success exactly where the final prediction is the target.
    op = OnePixel(PixelSwitch(), popsize=20, generations=5, seed=0)(x, y, targets=1)
    assert torch.equal(op.success, op.pred_after == 1)


def test_images_already_of_the_target_class_are_not_attacked():
    model = PixelSwitch(0, 0)
    x = dark_images(4)
    x[:2, :, 0, 0] = 0.9  # already class 1
    y = model(x).argmax(1)
    result = OnePixel(model, popsize=10, generations=2, seed=0)(x, y, targets=1)
    assert result.attacked.tolist() == [False, False, True, True]
    assert not result.success[:2].any()


def test_robust_accuracy_never_exceeds_clean_accuracy():
    model = tiny_cnn(2)
    x = torch.rand(24, 3, 8, 8)
    y = torch.arange(24) % 4  # a random model: some right, most wrong
    for attack in (OnePixel(model, popsize=10, generations=2, seed=0),
                   LocalPatch(model, area=0.1, steps=3, placements=2, search_steps=1, seed=0)):
        for targets in (None, 2):
            report = evaluate(model, attack, x, y, targets)
            assert report.robust_accuracy <= report.clean_accuracy
            assert 0 < report.clean_accuracy < 1
            assert report.n_attacked == int(((report.result.pred_before == y)
                                             & ((report.result.pred_before != 2) if targets else True)).sum())


def test_evaluate_report_figures_are_consistent():
    model = PixelSwitch(2, 2)
    x = dark_images(8)
    y = torch.zeros(8, dtype=torch.long)
    y[6:] = 1  # two wrong labels: not attacked
    report = evaluate(model, OnePixel(model, popsize=40, generations=20, seed=0), x, y, class_names=["dark", "lit"])
    assert report.n == 8 and report.n_attacked == 6 and report.clean_accuracy == 0.75
    assert report.success_rate == report.n_success / report.n_attacked == 1.0
    assert report.robust_accuracy == 0.0
    assert report.median_queries_per_success >= 3 and report.queries_mean >= report.queries_per_success_mean * 0
    assert report.confidence_drop > 0
    per = {c["class"]: c for c in report.per_class}
    assert per["dark"]["n"] == 6 and per["dark"]["success_rate"] == 1.0 and per["lit"]["n_attacked"] == 0
    assert report.seconds_per_image == pytest.approx(report.seconds / 8)
    assert set(report.to_dict()) >= {"success_rate", "clean_accuracy", "robust_accuracy", "seconds_per_image",
                                     "median_queries_per_success"}


def test_eval_mode_restored_and_gradients_untouched():
    model = tiny_cnn(3).train()
    x = torch.rand(4, 3, 8, 8, requires_grad=True)
    y = torch.arange(4)
    OnePixel(model, popsize=8, generations=1, seed=0)(x, y)
    LocalPatch(model, area=0.1, steps=2, placements=1, seed=0)(x, y)
    assert model.training
    assert x.grad is None and all(p.grad is None for p in model.parameters())


def test_fast_inference_copy_matches_the_model():
    model = tiny_cnn(4)
    model[1].running_mean.uniform_(-0.5, 0.5)
    model[1].running_var.uniform_(0.5, 2)
    x = torch.rand(16, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(inference_copy(model)(x), model(x), atol=1e-5)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in inference_copy(model).modules())


def test_same_seed_same_result():
    model = tiny_cnn(5)
    x = dark_images(4)
    y = model(x).argmax(1)
    a = OnePixel(model, pixels=2, popsize=12, generations=3, seed=7)(x, y)
    b = OnePixel(model, pixels=2, popsize=12, generations=3, seed=7)(x, y)
    assert torch.equal(a.images, b.images) and torch.equal(a.queries, b.queries) and a.seed == b.seed == 7


def test_bad_input_is_one_clear_error():
    model = tiny_cnn()
    attack = OnePixel(model, popsize=8, generations=1)
    with pytest.raises(NnkitError, match=r"\[0, 1\]"):
        attack(torch.rand(2, 3, 8, 8) * 255, [0, 1])
    with pytest.raises(NnkitError, match="labels"):
        attack(torch.rand(2, 3, 8, 8), [0, 1, 2])
    with pytest.raises(NnkitError, match="N×C×H×W"):
        attack(torch.rand(3, 8, 8), [0])
    with pytest.raises(NnkitError):
        OnePixel(model, pixels=0)
    with pytest.raises(NnkitError, match="not trained"):
        UniversalPatch(model)(torch.rand(2, 3, 8, 8), [0, 1], targets=1)
    with pytest.raises(NnkitError, match="area"):
        patch_mask(1.5, (8, 8))


def test_stop_event_cancels():
    model = tiny_cnn()
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        OnePixel(model, popsize=8, generations=50)(torch.rand(2, 3, 8, 8), [0, 1], stop_event=stop)


def test_progress_reaches_the_end():
    model = Constant()
    seen = []
    OnePixel(model, popsize=8, generations=3, seed=0)(dark_images(2), [0, 0], on_progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (4, 4) and [d for d, _ in seen] == [1, 2, 3, 4]


# -- building blocks --------------------------------------------------------------------------------

def test_de_partners_are_distinct_and_not_self():
    g = torch.Generator().manual_seed(0)
    r1, r2, r3 = _three_others(50, 6, g, "cpu")
    i = torch.arange(6).expand(50, 6)
    stack = torch.stack([i, r1, r2, r3], -1)
    assert all(len(set(row)) == 4 for row in stack.view(-1, 4).tolist())
    assert int(stack.max()) == 5 and int(stack.min()) == 0


def test_distinct_pixels_are_enforced():
    g = torch.Generator().manual_seed(0)
    pop = torch.zeros(2, 5, 3, 5)  # every pixel of every candidate on (0, 0)
    out = _distinct(pop, 4, 4, g)
    loc = out[..., 0].floor() * 4 + out[..., 1].floor()
    assert all(len(set(c)) == 3 for c in loc.view(-1, 3).tolist())


def test_patch_mask_area_and_shapes():
    square = patch_mask(0.1, (32, 32), "square")
    circle = patch_mask(0.1, (32, 32), "circle")
    assert square.shape == (10, 10) and square.all()
    assert abs(float(circle.sum()) / 1024 - 0.1) < 0.02 and not circle[0, 0]


def test_warp_without_rotation_reproduces_the_patch():
    x = torch.zeros(1, 3, 16, 16)
    patch = torch.rand(3, 4, 4)
    out = warp_patch(x, patch, torch.ones(4, 4, dtype=torch.bool), torch.tensor([[6.0, 10.0]]),
                     torch.zeros(1), torch.ones(1))
    assert torch.allclose(out[0, :, 8:12, 4:8], patch, atol=1e-5)  # centre (x=6, y=10) → rows 8..11, cols 4..7
    assert float(out.sum()) == pytest.approx(float(patch.sum()), rel=1e-4)


def test_paste_patch_is_exact_and_differentiable():
    x = torch.rand(2, 3, 8, 8)
    p = torch.rand(2, 3, 3, 3, requires_grad=True)
    mask = patch_mask(0.15, (8, 8), "circle")
    out = paste_patch(x, p, mask, torch.tensor([0, 5]), torch.tensor([1, 4]))
    assert torch.equal(out[1, :, 5:8, 4:7][:, mask], p[1][:, mask].detach())
    assert torch.equal(out[0, :, 3:], x[0, :, 3:])
    out.sum().backward()
    assert p.grad[:, :, mask].eq(1).all() and p.grad[:, :, ~mask].eq(0).all()


def test_local_patch_keeps_off_the_region():
    model = BrightBlock()
    x = dark_images(3, size=12, seed=1)
    keep_off = torch.zeros(12, 12, dtype=torch.bool)
    keep_off[:, :8] = True  # only the right third is allowed
    result = LocalPatch(model, area=0.06, steps=30, placements=3, search_steps=3, lr=0.2, stride=1,
                        keep_off=keep_off, seed=0)(x, torch.zeros(3, dtype=torch.long), targets=1)
    changed = (result.images != x).any(1)
    assert not (changed & keep_off).any()
    assert result.success.all()
    assert (result.perturbation["position"][:, 1] >= 8).all()


def test_universal_patch_hijacks_held_out_images():
    model = BrightBlock()
    attack = UniversalPatch(model, area=0.08, steps=60, batch_size=8, lr=0.1, seed=0)
    attack.fit(dark_images(16, size=16, seed=2), torch.zeros(16, dtype=torch.long), target=1)
    assert attack.target == 1 and attack.patch.shape == (3, 5, 5)
    held_out = dark_images(10, size=16, seed=9)
    result = attack(held_out, torch.zeros(10, dtype=torch.long))  # target taken from the fitted patch
    assert result.targeted and result.success.float().mean() >= 0.9
    assert attack.fit_info["queries"] == 60 * 8
    assert (result.queries == 2).all()  # clean check + final check, no per-image search
    with pytest.raises(NnkitError, match="trained for target 1"):
        attack(held_out, torch.zeros(10, dtype=torch.long), targets=2)


def test_sweep_pixels_reports_every_k():
    model = PixelSwitch()
    x = dark_images(3)
    reports = sweep_pixels(model, x, torch.zeros(3, dtype=torch.long), pixels=(1, 2), popsize=10, generations=2,
                           seed=0)
    assert [r.params["pixels"] for r in reports] == [1, 2]
    assert all(r.n == 3 for r in reports)


def test_inference_copy_moves_max_pool_before_monotone_activations_only():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.LeakyReLU(0.1), nn.MaxPool2d(2),
                          nn.Conv2d(4, 4, 3, padding=1), nn.GELU(), nn.MaxPool2d(2),  # GELU is not monotone
                          nn.Conv2d(4, 4, 3, padding=1), nn.Sigmoid(), nn.AdaptiveMaxPool2d(1), nn.Flatten()).eval()
    fast = inference_copy(model)
    order = [type(dict(fast.named_modules())[n.target]).__name__ for n in fast.graph.nodes if n.op == "call_module"]
    assert order == ["Conv2d", "MaxPool2d", "LeakyReLU", "Conv2d", "GELU", "MaxPool2d", "Conv2d",
                     "AdaptiveMaxPool2d", "Sigmoid", "Flatten"]
    x = torch.rand(5, 3, 16, 16) * 4 - 2
    with torch.no_grad():
        assert torch.allclose(fast(x), model(x), atol=1e-6)

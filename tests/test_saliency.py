"""nnkit.saliency: hand-computed gradients, the caller's tensors untouched, every method's shape and options."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nnkit import models
from nnkit.errors import NnkitError
from nnkit.models.wrapper import Classifier
from nnkit.saliency import (
    METHODS,
    explain,
    explain_many,
    find_last_conv,
    grid_figure,
    list_methods,
    normalize_maps,
    overlay_figure,
    parse_methods,
    render_grid_png,
    to_map,
)


def _tiny_relu_model() -> Classifier:
    """z = (x - 0.5) / 0.5; h = relu(V z); y = U h, on 1×1×2 images. Weights chosen for hand maths."""
    hidden = nn.Linear(2, 2, bias=False)
    out = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        hidden.weight.copy_(torch.tensor([[1.0, -1.0], [2.0, 1.0]]))  # V
        out.weight.copy_(torch.tensor([[1.0, 1.0], [3.0, -1.0]]))  # U
    net = nn.Sequential(nn.Flatten(), hidden, nn.ReLU(), out)
    return Classifier(net, [0.5], [0.5], spec={})


@pytest.fixture(scope="module")
def tiny_cnn():
    torch.manual_seed(0)
    return models.create("cnn", 3, in_channels=3, image_size=8, widths=(4, 6), hidden=8, dropout=0.25,
                         batch_norm=True).eval()


@pytest.fixture(scope="module")
def images():
    return torch.rand(5, 3, 8, 8, generator=torch.Generator().manual_seed(1))


def test_vanilla_gradient_equals_hand_computed_gradient():
    model = _tiny_relu_model()
    x = torch.tensor([[[[0.75, 0.25]]], [[[0.5, 1.0]]]])
    # Image 0: z = (0.5, -0.5), Vz = (1, 0.5): both units on. Class 1: dy/dz = V^T (3, -1) = (1, -4);
    #   dy/dx = 2 · dy/dz = (2, -8).
    # Image 1: z = (0, 1), Vz = (-1, 1): only unit 2 on. Class 0: dy/dz = V^T (0, 1) = (2, 1); dy/dx = (4, 2).
    expected = torch.tensor([[[[2.0, -8.0]]], [[[4.0, 2.0]]]])
    got = explain(model, x, target=torch.tensor([1, 0]), method="saliency", abs=False)
    assert torch.equal(got, expected)
    assert torch.equal(explain(model, x, target=[1, 0], method="gradient"), expected.abs())  # captum's default: |grad|


@pytest.mark.parametrize("method", list(METHODS))
def test_caller_tensor_and_model_untouched(tiny_cnn, images, method):
    plain = images.clone()
    tracked = images.clone().requires_grad_(True)
    sentinel = torch.full_like(images, 7.0)
    tracked.grad = sentinel.clone()
    tiny_cnn.train()  # explain must use eval mode and restore the caller's mode
    for x in (plain, tracked):
        attr = explain(tiny_cnn, x, method=method, batch_size=2, seed=0)
        assert attr.shape == images.shape and attr.dtype == torch.float32 and not attr.requires_grad
        assert torch.isfinite(attr).all()
    assert plain.grad is None and not plain.requires_grad
    assert tracked.requires_grad and torch.equal(tracked.grad, sentinel)
    assert torch.equal(plain, images) and torch.equal(tracked.detach(), images)
    assert tiny_cnn.training
    assert all(p.grad is None for p in tiny_cnn.parameters())
    tiny_cnn.eval()


def test_batched_equals_one_image_at_a_time(tiny_cnn, images):
    for method in ("saliency", "ig", "deeplift", "gradcam"):
        batched = explain(tiny_cnn, images, method=method, batch_size=64)
        single = explain(tiny_cnn, images, method=method, batch_size=1)
        assert torch.allclose(batched, single, atol=1e-5), method


def test_ig_internal_batch_size_changes_nothing_but_memory(tiny_cnn, images):
    whole = explain(tiny_cnn, images, method="ig", n_steps=16)
    chunked = explain(tiny_cnn, images, method="ig", n_steps=16, internal_batch_size=7)
    assert torch.allclose(whole, chunked, atol=1e-5)
    # Completeness (Sundararajan et al. 2017): attributions sum to f(x) - f(baseline) for the target.
    t = tiny_cnn(images).argmax(1)
    gap = tiny_cnn(images).gather(1, t[:, None])[:, 0] - tiny_cnn(torch.zeros_like(images)).gather(1, t[:, None])[:, 0]
    fine = explain(tiny_cnn, images, target=t, method="ig", n_steps=256)
    assert torch.allclose(fine.sum((1, 2, 3)), gap.detach(), rtol=0.05, atol=0.02)


def test_gradcam_uses_last_conv_and_is_upsampled(tiny_cnn, images):
    from captum.attr import LayerAttribution, LayerGradCam

    name, layer = find_last_conv(tiny_cnn, images)
    # The last conv stage is conv → batch norm → ReLU → pool: Grad-CAM reads the rectified maps.
    assert layer is tiny_cnn.net.features[-1][2] and name == "net.features.1.2" and isinstance(layer, nn.ReLU)
    plain = models.create("cnn", 3, in_channels=3, image_size=8, widths=(4, 6), hidden=8, batch_norm=False)
    assert find_last_conv(plain, images)[1] is plain.net.features[-1][1]
    t = tiny_cnn(images).argmax(1)
    attr = explain(tiny_cnn, images, target=t, method="grad-cam")
    cam = LayerGradCam(tiny_cnn, layer).attribute(images, target=t, relu_attributions=True)
    assert cam.shape[-1] == 4  # 8×8 input, one 2×2 pool before the last conv
    expected = LayerAttribution.interpolate(cam, (8, 8), interpolate_mode="bilinear")[:, 0]
    assert torch.allclose(to_map(attr), expected.detach(), atol=1e-6)
    by_name = explain(tiny_cnn, images, target=t, method="gradcam", layer="net.features.0.0")
    assert not torch.allclose(by_name, attr)


def test_gradcam_needs_a_conv_layer(images):
    mlp = models.create("mlp", 3, in_channels=3, image_size=8, hidden=(8,))
    with pytest.raises(NnkitError, match="convolutional"):
        explain(mlp, images, method="gradcam")


def test_occlusion_window_and_stride(tiny_cnn, images):
    t = tiny_cnn(images).argmax(1)
    # One window covering the whole image: every pixel gets f(x) - f(black) for the target.
    attr = explain(tiny_cnn, images, target=t, method="occlusion", window=8, stride=8)
    drop = (tiny_cnn(images) - tiny_cnn(torch.zeros_like(images))).gather(1, t[:, None])[:, 0].detach()
    assert torch.allclose(attr, drop[:, None, None, None].expand_as(attr), atol=1e-5)
    fine = explain(tiny_cnn, images, target=t, method="occlusion", window=2, stride=2)
    assert fine.shape == images.shape and not torch.allclose(fine, attr)
    with pytest.raises(NnkitError, match="stride"):
        explain(tiny_cnn, images, method="occlusion", window=2, stride=3)


def test_smoothgrad_seed_reproducible(tiny_cnn, images):
    a = explain(tiny_cnn, images, method="smoothgrad", seed=3, nt_samples=4)
    b = explain(tiny_cnn, images, method="smoothgrad", seed=3, nt_samples=4)
    c = explain(tiny_cnn, images, method="smoothgrad", seed=4, nt_samples=4)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_targets_and_errors(tiny_cnn, images):
    one = explain(tiny_cnn, images, target=2, method="saliency")
    each = explain(tiny_cnn, images, target=torch.full((5,), 2), method="saliency")
    assert torch.equal(one, each)
    with pytest.raises(NnkitError, match="unknown attribution method"):
        explain(tiny_cnn, images, method="lime")
    with pytest.raises(NnkitError, match="no option"):
        explain(tiny_cnn, images, method="saliency", n_steps=3)
    with pytest.raises(NnkitError, match="target"):
        explain(tiny_cnn, images, target=[0, 1], method="saliency")
    with pytest.raises(NnkitError, match="N×C×H×W"):
        explain(tiny_cnn, images[0], method="saliency")
    assert parse_methods("gradient, grad-cam,ig,gradient") == ["saliency", "gradcam", "ig"]
    assert {m.name for m in list_methods()} == set(METHODS)


def test_explain_many_explains_the_same_decision(tiny_cnn, images):
    out = explain_many(tiny_cnn, images, "saliency,gradcam")
    assert list(out) == ["saliency", "gradcam"]
    pred = tiny_cnn(images).argmax(1)
    assert torch.equal(out["saliency"], explain(tiny_cnn, images, target=pred, method="saliency"))


def test_to_map_and_normalize():
    a = torch.tensor([[[[1.0, -2.0]], [[-3.0, 1.0]]]])  # 1×2×1×2
    assert torch.equal(to_map(a), torch.tensor([[[-2.0, -1.0]]]))
    assert torch.equal(to_map(a, "abs"), torch.tensor([[[4.0, 3.0]]]))
    assert torch.equal(to_map(a, "positive"), torch.tensor([[[0.0, 0.0]]]))
    assert to_map(a[0]).shape == (1, 2)
    with pytest.raises(NnkitError):
        to_map(a, "max")
    m = normalize_maps(torch.tensor([[[0.0, 1.0], [2.0, -4.0]]]), percentile=100)
    assert torch.allclose(m, torch.tensor([[[0.0, 0.25], [0.5, 1.0]]]))


def test_figures_are_returned_not_shown(tiny_cnn, images):
    import plotly.graph_objects as go

    maps = {"Gradient": to_map(explain(tiny_cnn, images[:3], method="saliency")),
            "Grad-CAM": to_map(explain(tiny_cnn, images[:3], method="gradcam"))}
    fig = overlay_figure(images[0], maps["Gradient"][0], title="x")
    assert isinstance(fig, go.Figure) and [t.type for t in fig.data] == ["image", "heatmap"]
    grid = grid_figure(images[:3], maps, row_titles=["a", "b", "c"])
    assert isinstance(grid, go.Figure)
    assert sum(t.type == "image" for t in grid.data) == 3 * 3 and sum(t.type == "heatmap" for t in grid.data) == 3 * 2
    grey = overlay_figure(images[0, :1], maps["Gradient"][0])
    assert grey.data[0].z.shape == (8, 8, 3)
    with pytest.raises(NnkitError):
        overlay_figure(images[0], maps["Gradient"][0, :4])


def test_png_grid(tiny_cnn, images):
    import io

    from PIL import Image

    maps = {"Gradient": to_map(explain(tiny_cnn, images[:2], method="saliency"))}
    png = render_grid_png(images[:2], maps, scale=4)
    im = Image.open(io.BytesIO(png))
    # 2 columns (image, Gradient) × 2 rows of 32-px tiles, 2-px padding, plus the title band.
    assert im.size == (2 * 32 + 3 * 2, 2 * 32 + 3 * 2 + 14)


@pytest.mark.gpu
def test_explain_on_gpu_matches_cpu(tiny_cnn, images):
    import copy

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    gpu_model = copy.deepcopy(tiny_cnn).cuda()
    x = images.cuda()
    for method in ("saliency", "gradcam", "ig"):
        on_gpu = explain(gpu_model, x, method=method)
        assert on_gpu.device.type == "cuda" and x.grad is None
        # cuDNN may run convolutions in TF32: compare loosely.
        assert torch.allclose(on_gpu.cpu(), explain(tiny_cnn, images, method=method), rtol=1e-2, atol=1e-3), method

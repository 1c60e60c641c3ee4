"""Classroom maths with exact numbers: threshold units, perceptron, XOR net, backprop vs autograd,
activations, convolution and pooling, vanishing and residual gradients."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nnkit.classroom import activations, backprop, convolution, neuron, perceptron, residual
from nnkit.errors import NnkitError

# ---------------------------------------------------------------- 1. McCulloch-Pitts units


@pytest.mark.parametrize("gate, outputs, expressions", [
    ("AND", [0, 0, 0, 1], ["0 + 0 - 1.5 = -1.5 -> 0", "0 + 1 - 1.5 = -0.5 -> 0", "1 + 0 - 1.5 = -0.5 -> 0",
                           "1 + 1 - 1.5 = 0.5 -> 1"]),
    ("OR", [0, 1, 1, 1], ["0 + 0 - 0.5 = -0.5 -> 0", "0 + 1 - 0.5 = 0.5 -> 1", "1 + 0 - 0.5 = 0.5 -> 1",
                          "1 + 1 - 0.5 = 1.5 -> 1"]),
    ("NOT", [1, 0], ["0 + 0.5 = 0.5 -> 1", "-1 + 0.5 = -0.5 -> 0"]),
])
def test_gate_truth_tables(gate, outputs, expressions):
    table = neuron.truth_table(neuron.GATES[gate])
    assert [row.output for row in table] == outputs
    assert [row.expression for row in table] == expressions
    assert [row.inputs for row in table] == list(itertools.product((0, 1), repeat=len(table[0].inputs)))
    for row in table:
        assert row.weighted_sum == pytest.approx(sum(row.products) - neuron.GATES[gate].threshold)
    assert neuron.computes(neuron.GATES[gate]) == [gate]


def test_edited_weights_change_the_gate():
    assert neuron.computes(neuron.ThresholdUnit((-1.0, -1.0), -1.5)) == ["NAND"]
    never = neuron.ThresholdUnit((1.0, 1.0), 2.5)
    assert [r.output for r in neuron.truth_table(never)] == [0, 0, 0, 0]
    assert neuron.computes(never) == []
    with pytest.raises(NnkitError):
        neuron.ThresholdUnit((1.0, 1.0), 1.0).fire((1,))


def test_no_single_threshold_unit_computes_xor():
    grid = np.arange(-2.0, 2.01, 0.5)
    for w1, w2, theta in itertools.product(grid, grid, grid):
        assert "XOR" not in neuron.computes(neuron.ThresholdUnit((w1, w2), theta))


# ---------------------------------------------------------------- 2. perceptron and the XOR network


@pytest.mark.parametrize("kind", ["separable", "AND", "OR"])
def test_perceptron_converges_on_separable_data(kind):
    x, y = perceptron.toy_points(kind, n=40, seed=3)
    result = perceptron.train_perceptron(x, y, max_epochs=100)
    assert result.converged and result.epochs < 100
    assert result.mistakes_per_epoch[-1] == 0
    pred = (x @ np.array(result.w) + result.b >= 0).astype(int)
    assert (pred == y).all()


@pytest.mark.parametrize("kind", ["XOR", "xor"])
def test_perceptron_never_converges_on_xor(kind):
    x, y = perceptron.toy_points(kind, n=40, seed=3)
    assert len(x) == (4 if kind == "XOR" else 40)
    result = perceptron.train_perceptron(x, y, max_epochs=60)
    assert not result.converged
    assert result.epochs == 60
    assert min(result.mistakes_per_epoch) > 0


def test_perceptron_rule_by_hand():
    # AND from zero weights, α = 1: the first point (0, 0) gives w·x + b = 0 ≥ 0 → ŷ = 1, wrong → b = -1.
    steps = list(perceptron.perceptron_steps(perceptron.BOOLEAN_X, perceptron.BOOLEAN_Y["AND"], lr=1.0))
    first = steps[0]
    assert (first.prediction, first.mistake, first.w, first.b) == (1, True, (0.0, 0.0), -1.0)
    # (1, 1) is then misclassified as 0 → w = (1, 1), b = 0.
    assert (steps[3].prediction, steps[3].w, steps[3].b) == (0, (1.0, 1.0), 0.0)
    xs, ys = perceptron.decision_line((1.0, 2.0), -1.0, (-2, 2))
    assert np.allclose(xs * 1.0 + ys * 2.0 - 1.0, 0)
    assert perceptron.decision_line((0.0, 0.0), 1.0) is None


@pytest.mark.parametrize("seed", range(5))
def test_xor_network_reaches_full_accuracy(seed):
    frames = list(perceptron.xor_network(seed=seed, every=500, grid_size=21))
    assert frames[0].step == 0 and frames[-1].step == 1500
    last = frames[-1]
    assert last.accuracy == 1.0
    assert np.array_equal(last.outputs >= 0.5, perceptron.BOOLEAN_Y["XOR"] == 1)
    assert last.grid_output.shape == (21, 21) and last.grid_x.shape == (21,)
    # The surface is the same network: the corner (0, 0) is class 0, (1, 0) class 1.
    i0, i1 = np.argmin(abs(last.grid_x - 0)), np.argmin(abs(last.grid_x - 1))
    assert last.grid_output[i0, i0] < 0.5 < last.grid_output[i0, i1]
    assert last.error < frames[0].error


def test_xor_network_separates_noisy_xor_clusters():
    x, y = perceptron.toy_points("xor", n=60, seed=1)
    assert not perceptron.train_perceptron(x, y).converged
    last = list(perceptron.xor_network(x, y, every=1500, grid_size=5))[-1]
    assert last.accuracy == 1.0 and last.outputs.shape == (60,)


# ---------------------------------------------------------------- 3. backpropagation


def test_backprop_matches_mazur_worked_example():
    net, x, y, lr = backprop.worked_example()
    step = backprop.backprop_step(net, x, y, lr, update_biases=False)
    assert step.error == pytest.approx(0.298371109, abs=1e-9)
    assert step.output[0] == pytest.approx([0.75136507, 0.772928465], abs=1e-8)
    assert step.activations[1][0] == pytest.approx([0.593269992, 0.596884378], abs=1e-8)
    assert step.after.weights[1].ravel() == pytest.approx([0.35891648, 0.408666186, 0.511301270, 0.561370121],
                                                          abs=1e-8)
    assert step.after.weights[0].ravel() == pytest.approx([0.149780716, 0.19956143, 0.24975114, 0.29950229],
                                                          abs=1e-8)
    assert step.deltas[1][0, 0] == pytest.approx(0.138498562, abs=1e-9)  # δ_o1 in the article
    assert np.array_equal(step.after.biases[0], net.biases[0])


def _autograd(net: backprop.SigmoidNet, x, y):
    """E, dE/dnet per layer and dE/dW, dE/db per layer from torch autograd, float64."""
    ws = [torch.tensor(w, requires_grad=True) for w in net.weights]
    bs = [torch.tensor(b, requires_grad=True) for b in net.biases]
    a = torch.tensor(np.array(x, ndmin=2))
    nets = []
    for w, b in zip(ws, bs):
        z = a @ w.T + b
        z.retain_grad()
        nets.append(z)
        a = torch.sigmoid(z)
    e = 0.5 * ((torch.tensor(np.array(y, ndmin=2)) - a) ** 2).sum()
    e.backward()
    return (e.item(), [z.grad.numpy() for z in nets], [w.grad.numpy() for w in ws], [b.grad.numpy() for b in bs])


@pytest.mark.parametrize("sizes, n, seed", [((2, 2, 2), 1, 0), ((3, 4, 2), 1, 1), ((2, 3, 1), 4, 2),
                                            ((4, 5, 3, 2), 3, 3)])
def test_backprop_deltas_and_gradients_equal_autograd(sizes, n, seed):
    rng = np.random.default_rng(seed)
    net = backprop.SigmoidNet.random(sizes, seed=seed, scale=1.5)
    x = rng.uniform(-1, 1, (n, sizes[0]))
    y = rng.uniform(0, 1, (n, sizes[-1]))
    step = backprop.backprop_step(net, x, y, lr=0.3)
    e, d_nets, g_w, g_b = _autograd(net, x, y)
    assert step.error == pytest.approx(e, abs=1e-6)
    for mine, ref in zip(step.deltas, d_nets):
        assert np.abs(ref).max() > 1e-4  # the comparison is not between two near-zero arrays
        np.testing.assert_allclose(mine, ref, atol=1e-6, rtol=0)
    for mine, ref in zip(step.grad_weights, g_w):
        np.testing.assert_allclose(mine, ref, atol=1e-6, rtol=0)
    for mine, ref in zip(step.grad_biases, g_b):
        np.testing.assert_allclose(mine, ref, atol=1e-6, rtol=0)
    for before, after, g in zip(net.weights, step.after.weights, g_w):
        np.testing.assert_allclose(after, before - 0.3 * g, atol=1e-12)
    # The step leaves the caller's network alone.
    assert np.array_equal(step.before.weights[0], net.weights[0])


def test_backprop_table_rows_hold_the_same_numbers():
    net, x, y, lr = backprop.worked_example()
    step = backprop.backprop_step(net, x, y, lr)
    rows = {r["quantity"]: r for r in step.table()}
    assert rows["E"]["value"] == pytest.approx(0.298371109, abs=1e-9)
    assert rows["o1"]["value"] == pytest.approx(0.75136507, abs=1e-8)
    assert rows["δ_o1"]["value"] == step.deltas[1][0, 0]
    assert rows["δ_h1"]["formula"] == "h1(1 - h1)·(w(h1→o1)·δ_o1 + w(h1→o2)·δ_o2)"
    assert rows["∂E/∂w(h1→o1)"]["value"] == pytest.approx(0.082167041, abs=1e-9)
    assert rows["w(h1→o1)"]["value"] == pytest.approx(0.35891648, abs=1e-8)
    phases = [r["phase"] for r in step.table()]
    assert phases == sorted(phases, key=["forward", "error", "delta", "gradient", "update"].index)


def test_backprop_steps_lower_the_error():
    net, x, y, lr = backprop.worked_example()
    errors = [s.error for s in backprop.backprop_steps(net, x, y, lr, steps=50)]
    assert all(b < a for a, b in zip(errors, errors[1:]))
    with pytest.raises(NnkitError):
        backprop.backprop_step(net, [1.0, 2.0, 3.0], y)


# ---------------------------------------------------------------- 4. activations and vanishing gradients


@pytest.mark.parametrize("name", list(activations.ACTIVATIONS))
def test_activation_and_derivative_match_torch(name):
    z = np.concatenate([np.linspace(-6, 6, 121), [0.0, 1e-9, -1e-9, 30.0, -30.0]])
    curve = activations.activation_curves([name], z)[0]
    t = torch.tensor(z, requires_grad=True)
    out = activations.torch_activation(name)(t)
    out.sum().backward()
    np.testing.assert_allclose(curve.value, out.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(curve.derivative, t.grad.numpy(), atol=1e-12)


def test_sigmoid_derivative_bound_and_curves():
    curves = {c.name: c for c in activations.activation_curves()}
    assert set(curves) == {"sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus"}
    assert curves["sigmoid"].derivative.max() == pytest.approx(0.25)
    assert curves["relu"].derivative.min() == 0 and curves["leaky_relu"].derivative.min() == activations.LEAKY_SLOPE


def test_vanishing_gradients_sigmoid_vs_relu_vs_batch_norm():
    result = {r.label: r for r in activations.vanishing_gradients(depth=15, seeds=1)}
    sig, relu, bn = result["sigmoid"], result["relu"], result["sigmoid + batch norm"]
    assert len(sig.norms) == 15 and sig.layers[0] == 1
    # First layer vs last hidden layer: the sigmoid net loses over six orders of magnitude on the way,
    # ReLU (He init) and batch norm keep the first layer's gradient within one order.
    assert sig.norms[0] / sig.norms[-2] < 1e-6
    assert 0.1 < relu.norms[0] / relu.norms[-2] < 10
    assert 0.1 < bn.norms[0] / bn.norms[-2] < 10
    with pytest.raises(NnkitError):
        activations.vanishing_gradients(["swish"])


# ---------------------------------------------------------------- 5. convolution and pooling


def test_max_pool_textbook_example():
    pooled = convolution.max_pool(convolution.POOL_EXAMPLE)
    assert pooled.output.tolist() == [[5, 8], [6, 7]]
    assert pooled.argmax.tolist() == [[[1, 1], [1, 3]], [[3, 0], [3, 2]]]
    ref = F.max_pool2d(torch.tensor(convolution.POOL_EXAMPLE)[None, None], 2, 2)[0, 0].numpy()
    assert np.array_equal(pooled.output, ref)


@pytest.mark.parametrize("n, k, s, p, out", [(28, 3, 1, 1, 28), (32, 5, 1, 0, 28), (32, 5, 2, 0, 14),
                                             (7, 3, 2, 1, 4), (5, 3, 2, 0, 2), (4, 2, 2, 0, 2)])
def test_output_size_formula(n, k, s, p, out):
    assert convolution.output_size(n, k, s, p) == out
    assert convolution.convolve(np.zeros((n, n)), np.ones((k, k)), s, p).output.shape == (out, out)


def test_output_size_rejects_a_kernel_that_does_not_fit():
    with pytest.raises(NnkitError):
        convolution.output_size(3, 5, 1, 0)


@pytest.mark.parametrize("stride, padding", [(1, 0), (1, 1), (2, 1), (3, 2)])
@pytest.mark.parametrize("kernel", ["sobel_x", "laplacian", "random"])
def test_convolve_matches_torch_conv2d(kernel, stride, padding):
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, (11, 11))
    k = rng.normal(size=(3, 3)) if kernel == "random" else convolution.KERNELS[kernel]
    mine = convolution.convolve(image, k, stride, padding, bias=0.25)
    ref = F.conv2d(torch.tensor(image)[None, None], torch.tensor(k)[None, None], torch.tensor([0.25], dtype=torch.float64),
                   stride=stride, padding=padding)[0, 0].numpy()
    np.testing.assert_allclose(mine.output, ref, atol=1e-12)
    windows = list(convolution.conv_windows(image, k, stride, padding, bias=0.25))
    assert len(windows) == ref.size
    for w in windows[:: max(1, len(windows) // 7)]:
        assert w.value == pytest.approx(ref[w.row, w.col])
        assert np.allclose(w.products, w.patch * k)


def test_sobel_finds_vertical_edges_only_where_they_are():
    image = np.zeros((8, 8))
    image[:, 4:] = 1.0  # one vertical edge between columns 3 and 4
    out = convolution.convolve(image, convolution.KERNELS["sobel_x"]).output
    assert np.all(out[:, 2:4] == 4.0) and np.all(out[:, [0, 1, 4, 5]] == 0)
    assert np.all(convolution.convolve(image, convolution.KERNELS["sobel_y"]).output == 0)
    r = convolution.convolve(convolution.demo_image(16), convolution.KERNELS["sobel_x"], stride=2, padding=1)
    assert r.formula == "⌊(16 + 2·1 - 3) / 2⌋ + 1 = 8"


def test_feature_maps_of_an_nnkit_cnn():
    from nnkit import models

    torch.manual_seed(0)
    model = models.create("cnn", 10, 3, 32, widths=(4, 8), hidden=16).eval()
    image = torch.rand(3, 32, 32)
    maps = convolution.feature_maps(model, image, max_channels=3)
    stages = sorted({m.stage for m in maps})
    assert stages == [1, 2]
    assert maps[0].layer == "conv" and maps[-1].layer == "maxpool"
    assert maps[0].maps.shape == (3, 32, 32) and maps[0].channels == 4
    assert maps[-1].maps.shape == (3, 8, 8) and maps[-1].channels == 8
    # The last map equals the model's own feature extractor on the normalised image.
    with torch.no_grad():
        ref = model.net.features((image[None] - model.mean) / model.std)[0, :3].numpy()
    np.testing.assert_allclose(maps[-1].maps, ref, atol=1e-6)
    with pytest.raises(NnkitError):
        convolution.feature_maps(models.create("mlp", 10, 3, 32), image)


# ---------------------------------------------------------------- 7. residual networks


def test_residual_first_layer_gradient_survives_depth():
    sweep = residual.depth_sweep(depths=(3, 20, 30), seeds=1)
    assert sweep.depths.tolist() == [3, 20, 30]
    # At depth 20+ the skip connections deliver many orders of magnitude more gradient to layer 1.
    assert sweep.residual[1] / sweep.plain[1] > 1e6
    assert sweep.residual[2] / sweep.plain[2] > 1e9
    assert sweep.plain[2] < sweep.plain[1] < sweep.plain[0]
    # The residual net's first-layer gradient stays within one order of magnitude from depth 3 to 30.
    assert 0.1 < sweep.residual[2] / sweep.residual[0] < 10
    # At depth 3 the two nets are comparable: the gap comes from depth, not from the skips' scale.
    assert 0.1 < sweep.ratio[0] < 10

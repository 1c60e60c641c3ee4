"""Classroom demos that train something: tricks, autoencoders, the toy GAN, brittleness and confounding.

Budgets are tiny (a few hundred steps); the checks are about the phenomena each demo teaches.
"""

from __future__ import annotations

import math
import tempfile
import threading

import numpy as np
import pytest
import torch

from nnkit import data as datasets
from nnkit.classroom import autoencoder, brittleness, gan, tricks
from nnkit.classroom._threads import one_thread
from nnkit.errors import Cancelled, NnkitError

# ---------------------------------------------------------------- 6. training tricks


def test_tricks_show_overfitting_early_stopping_and_a_tiny_learning_rate(mnist_root):
    seen = []
    curves = tricks.compare_tricks(["baseline", "early stopping", "learning rate too small"], data_root=mnist_root,
                                   on_progress=lambda name, c: seen.append((name, len(c.epochs))))
    base, early, small = curves
    assert base.done and len(base.epochs) == 30 and base.test_accuracy > 0.7
    # Overfitting is visible: the training set is learnt almost perfectly, the validation set is not.
    assert base.train_accuracy[-1] > 0.97
    assert base.gap > 0.05 and base.val_loss[-1] > 2 * base.train_loss[-1]
    assert early.stopped_early and len(early.epochs) < 30
    assert small.train_loss[-1] > 3 * base.train_loss[-1]
    assert not base.diverged
    # The page is told after every epoch of every run, and once more when a run is done.
    assert [n for name, n in seen if name == "baseline"][:3] == [1, 2, 3]
    assert len(seen) == 30 + len(early.epochs) + 30 + 3


def test_trick_configs_change_one_thing():
    base = tricks.baseline_config(data="shapes", n_train=100)
    assert (base.schedule, tricks.baseline_config().schedule) == ("none", "cosine")  # shapes: a constant rate
    # Shapes trains on all n_train images: the validation images are generated on top of them.
    assert base.data_opts == {"n_train": 100 + tricks.SHAPES_N_VAL, "n_test": tricks.SHAPES_N_TEST}
    assert int(base.data_opts["n_train"] * base.val_fraction) == tricks.SHAPES_N_VAL and base.model == "cnn"
    assert tricks.baseline_config().val_fraction == 0.25  # MNIST keeps its quarter
    dropout = tricks.trick_config("dropout", base)
    assert dropout.model_opts == {**base.model_opts, "conv_dropout": 0.1}  # spatial dropout on the CNN only
    assert tricks.trick_config("dropout", tricks.baseline_config()).model_opts["dropout"] == 0.5
    assert tricks.trick_config("augmentation", base).augment == "flip+crop"
    assert tricks.trick_config("augmentation", tricks.baseline_config()).augment == "crop"
    momentum = tricks.trick_config("momentum", base)
    assert (momentum.optimizer, momentum.lr) == ("momentum", 0.02)  # Adam's place on the CNN
    mlp_momentum = tricks.trick_config("momentum", tricks.baseline_config())
    assert (mlp_momentum.optimizer, mlp_momentum.lr) == ("momentum", tricks.baseline_config().lr)
    mnist = tricks.baseline_config()
    assert tricks.trick_config("learning rate too small", mnist).lr == pytest.approx(0.002)  # 0.05 / 25
    assert tricks.trick_config("learning rate too large", base).lr == pytest.approx(10 * base.lr)
    assert tricks.baseline_config(data="shapes", n_train=100).model_opts == base.model_opts  # no leak into the base
    with pytest.raises(NnkitError):
        tricks.trick_config("magic", base)


def test_too_large_a_learning_rate_on_mnist_ends_the_curve_at_nan(mnist_root):
    """The loop refuses a run whose loss became NaN; the demo shows that epoch instead of failing the comparison."""
    large, = tricks.compare_tricks(["learning rate too large"], data_root=mnist_root)
    assert large.done and large.diverged and large.test_accuracy is None
    assert 1 <= len(large.epochs) < 30 and math.isnan(large.val_accuracy[-1])


@pytest.fixture(scope="module")
def shapes_tricks():
    """The page's default baseline and its cheapest regulariser on the embedded data (~70 CPU s, seed 0); the
    other tricks are in the slow test."""
    return tricks.compare_tricks(["baseline", "dropout"], data="shapes", n_train=tricks.SHAPES_N_TRAIN, epochs=30)


def test_tricks_on_shapes_baseline_overfits(shapes_tricks):
    """Issue 17: on 750 shapes images validated on 1,000 the baseline memorises the training set while its
    validation loss rises again after its minimum (seeds 0/1/2, one thread of a busy 2-core VM: training
    accuracy 100%, loss 0.003/0.005/0.004; validation loss lowest at epoch 19/21/23 (0.566/0.552/0.541), at
    epoch 30 0.678/0.648/0.582)."""
    base = shapes_tricks[0]
    assert base.train_accuracy[-1] > 0.99 and base.train_loss[-1] < 0.02 and base.gap > 0.1
    lowest = base.val_loss.index(min(base.val_loss))
    assert lowest < 25 and base.val_loss[-1] > 1.05 * base.val_loss[lowest]
    assert base.val_loss[-1] > 20 * base.train_loss[-1]


def test_tricks_on_shapes_dropout_beats_the_baseline(shapes_tricks):
    """Issue 17: spatial dropout ends with a lower validation loss and a smaller train/validation gap (seeds
    0/1/2, one thread of a busy 2-core VM: validation loss 0.437/0.386/0.565 against 0.678/0.648/0.582, gap 8.3/4.3/9.8
    points against 16.9/19.3/16.3); its validation accuracy wobbles from epoch to epoch (84.4/85.8/81.8% against
    83.1/80.7/83.7%), so accuracy is not asserted: see the module docstring of nnkit.classroom.tricks."""
    base, drop = shapes_tricks
    assert drop.val_loss[-1] < base.val_loss[-1] - 0.01
    assert drop.gap < 0.7 * base.gap


@pytest.mark.slow
def test_tricks_on_shapes_the_other_lessons():
    """Batch norm and augmentation beat the baseline on validation accuracy and loss (seeds 0/1/2, one thread of
    a busy 2-core VM: batch norm 90.1/87.9/86.2%, loss 0.30/0.37/0.42; augmentation 86.9/85.4/86.1%, loss
    0.40/0.38/0.36; baseline 83.1/80.7/83.7%, loss 0.68/0.65/0.58); early stopping on the validation loss follows
    the baseline's path and keeps an epoch of a lower validation loss at up to 3 points less accuracy (seed 0:
    stops at 24, keeps 19, 82.5%, loss 0.566; seed 1: 80.3%, 0.552 at epoch 21; seed 2: 81.0%, 0.541 at epoch 23,
    read off the baseline's curves); a 25× smaller learning rate barely moves and a 10× larger one sticks at chance (seed 0: training loss 2.13 and 2.30); SGD with momentum learns
    (seed 0: 94.0% training, 85.3% validation accuracy, but swinging between 62% and 88% over its last 15
    epochs, so only learning is asserted). ~250 CPU s."""
    base, bn, aug, early, small, large, momentum = tricks.compare_tricks(
        ["baseline", "batch norm", "augmentation", "early stopping", "learning rate too small",
         "learning rate too large", "momentum"], data="shapes", n_train=tricks.SHAPES_N_TRAIN, epochs=30)
    for trick in (bn, aug):
        assert trick.val_accuracy[-1] > base.val_accuracy[-1] + 0.02, trick.name
        assert trick.val_loss[-1] < base.val_loss[-1] - 0.1, trick.name
        assert trick.test_accuracy > base.test_accuracy, trick.name
    # Same seed, same weights: until it stops, early stopping is the baseline's run; then it keeps the best epoch.
    assert early.stopped_early and len(early.epochs) < 30
    assert early.val_accuracy == pytest.approx(base.val_accuracy[:len(early.epochs)])
    assert early.kept_epoch == early.epochs[-1] - 5  # patience 5
    assert early.kept_val_loss < base.val_loss[-1] - 0.05
    assert early.kept_val_accuracy > base.val_accuracy[-1] - 0.02
    assert small.train_loss[-1] > 1.8 and small.val_accuracy[-1] < 0.3  # ln 10 = 2.30: chance
    assert large.train_loss[-1] > 2.2 and large.val_accuracy[-1] < 0.15
    assert momentum.train_accuracy[-1] > 0.8 and momentum.val_accuracy[-1] > 0.6


def test_tricks_cancel_within_one_batch():
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        tricks.compare_tricks(["baseline"], data="shapes", n_train=40, epochs=1, stop_event=stop)


# ---------------------------------------------------------------- 8. autoencoders


@pytest.fixture(scope="module")
def digits(mnist_root):
    ds = datasets.create("mnist", root=mnist_root, download=False)
    return ds.split("train").images, ds.split("test").images[:64]


def test_denoising_autoencoder_removes_noise(digits):
    train_images, test_images = digits
    frames = list(autoencoder.train_autoencoder(train_images, bottleneck=32, noise=0.4, steps=300, arch="mlp",
                                                every=100))
    assert [f.step for f in frames] == [0, 100, 200, 300]
    assert frames[-1].loss < 0.5 * frames[0].loss
    model = frames[-1].model
    rec = autoencoder.reconstruct(model, test_images, noise=0.4)
    assert rec.noisy.shape == rec.reconstructed.shape == (64, 28, 28)
    # The reconstruction of the noisy digit is much closer to the clean digit than the noisy input was.
    assert rec.mse_reconstructed < 0.6 * rec.mse_noisy
    assert autoencoder.codes(model, test_images).shape == (64, 32)


def test_bottleneck_size_sets_reconstruction_quality(digits):
    train_images, test_images = digits
    errors = {}
    for k in (2, 32):
        model, losses = autoencoder.fit_autoencoder(train_images, bottleneck=k, steps=300, arch="mlp", every=300)
        errors[k] = autoencoder.reconstruct(model, test_images).mse_reconstructed
    mean_image = float(((test_images - train_images.mean(0)) ** 2).mean())
    assert errors[32] < errors[2] < mean_image


def test_autoencoder_on_colour_images_and_cancel():
    images = datasets.create("shapes", n_train=64, n_test=16).split("train").images
    for arch in autoencoder.ARCHS:
        model, losses = autoencoder.fit_autoencoder(images, bottleneck=8, steps=5, width=16, arch=arch, every=5)
        assert autoencoder.reconstruct(model, images[:4], noise=0.1).reconstructed.shape == (4, 32, 32, 3)
    with pytest.raises(NnkitError, match="unknown autoencoder"):
        list(autoencoder.train_autoencoder(images, steps=5, arch="vae"))
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        list(autoencoder.train_autoencoder(images, steps=5, stop_event=stop))


def test_conv_autoencoder_codes_keep_the_grid_when_k_fills_its_channels():
    x = torch.rand(2, 3, 32, 32)
    spatial = autoencoder.ConvAutoencoder((3, 32, 32), bottleneck=256)  # 4 channels on the 8×8 grid
    assert spatial.spatial and spatial.encode(x).shape == (2, 256) and spatial(x).shape == x.shape
    one_channel = autoencoder.ConvAutoencoder((3, 32, 32), bottleneck=64)  # 1 < 3 colour channels: linear code
    assert not one_channel.spatial and one_channel.encode(x).shape == (2, 64)
    grey = torch.rand(2, 1, 28, 28)  # MNIST: a 7×7 grid
    assert autoencoder.ConvAutoencoder((1, 28, 28), bottleneck=49).spatial
    assert autoencoder.ConvAutoencoder((1, 28, 28), bottleneck=32)(grey).shape == grey.shape
    odd = torch.rand(2, 3, 30, 30)
    assert autoencoder.ConvAutoencoder((3, 30, 30), bottleneck=8)(odd).shape == odd.shape


def _flat_colour_mse(images: torch.Tensor) -> float:
    """The error of a "flat colour blob": each image replaced by its own mean colour."""
    return float(((images - images.mean((2, 3), keepdim=True)) ** 2).mean())


def test_default_autoencoder_beats_flat_colour_blobs_on_shapes_quickly():
    """Issue 17: the demo's default network learns more than each image's background colour. A short budget
    (100 steps on 500 images, ~3 CPU-seconds) already lands well below the flat-colour error; the MLP with the
    same budget does not (it reconstructs blobs)."""
    ds = datasets.create("shapes", n_train=500, n_test=64)
    train_images, test_images = ds.split("train").images, ds.split("test").images
    blob = _flat_colour_mse(test_images)
    errors = {}
    for arch in autoencoder.ARCHS:
        model, _ = autoencoder.fit_autoencoder(train_images, steps=100, batch_size=32, every=100, arch=arch)
        errors[arch] = autoencoder.reconstruct(model, test_images).mse_reconstructed
    assert errors["conv"] < 0.75 * blob, (errors, blob)
    assert errors["mlp"] > errors["conv"]


@pytest.mark.slow
def test_page_default_autoencoder_reconstructs_shapes_not_blobs():
    """Issue 17: with the page's defaults on the embedded shapes data (2,000 images, the conv net, k = 256, 600
    steps: ~18 CPU-seconds; 50-130 s wall on a shared 2-core machine under load) the error is under half of the
    flat-colour blob's (measured 0.30×) and far under the mean image's; the old MLP default stays above half."""
    ds = datasets.create("shapes", n_train=2000, n_test=200)
    train_images, test_images = ds.split("train").images, ds.split("test").images
    mean_image = float(((test_images - train_images.mean(0)) ** 2).mean())
    blob = _flat_colour_mse(test_images)
    model, _ = autoencoder.fit_autoencoder(train_images, every=600)
    error = autoencoder.reconstruct(model, test_images).mse_reconstructed
    assert error < 0.5 * blob and error < 0.2 * mean_image, (error, blob, mean_image)
    mlp, _ = autoencoder.fit_autoencoder(train_images, bottleneck=32, steps=500, arch="mlp", every=500)
    assert autoencoder.reconstruct(mlp, test_images).mse_reconstructed > 0.5 * blob


# ---------------------------------------------------------------- 9. GAN on a toy distribution


def test_gan_learns_a_1d_gaussian():
    frames = list(gan.gan_steps("gaussian", steps=800, every=200, seed=0))
    assert [f.step for f in frames] == [0, 200, 400, 600, 800]
    first, last = frames[0], frames[-1]
    assert abs(float(first.fake.mean()) - 2.0) > 1.0  # untrained G is far from N(2, 0.5²)
    assert abs(float(last.fake.mean()) - 2.0) < 0.3
    assert 0.25 < float(last.fake.std()) < 0.8
    # Near the data, D can no longer tell real from fake: its output is close to 1/2.
    near = np.abs(last.grid[0] - 2.0) < 0.5
    assert np.all(np.abs(last.d_grid[near] - 0.5) < 0.15)
    assert last.d_grid.shape == last.grid[0].shape == (101,)
    assert abs(last.value - 2 * np.log(0.5)) < 0.1  # V(D, G) at the equilibrium: log ¼


def test_gan_2d_frame_shapes_and_errors():
    frames = list(gan.gan_steps("ring", steps=4, every=2, samples=50, grid_size=11))
    assert frames[-1].fake.shape == (50, 2) and frames[-1].d_grid.shape == (11, 11)
    assert np.all((frames[-1].d_grid > 0) & (frames[-1].d_grid < 1))
    with pytest.raises(NnkitError):
        list(gan.gan_steps("spiral"))
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        list(gan.gan_steps(steps=5, stop_event=stop))


# ---------------------------------------------------------------- 10. brittleness and confounding


def test_one_pixel_flips_a_digit(mnist_root):
    model = brittleness.train_digit_model(mnist_root, n_train=1000, epochs=8)
    test = datasets.create("mnist", root=mnist_root, download=False).split("test")
    flip = brittleness.find_one_pixel_flip(model, test.images[:200], test.labels[:200], max_images=30)
    assert flip is not None and flip.search == "differential evolution"
    assert flip.prediction_before == flip.label == int(test.labels[flip.index])
    assert flip.prediction_after != flip.label
    assert np.array_equal(flip.image, test.images[flip.index, 0].numpy())
    changed = np.argwhere(flip.image != flip.flipped)
    assert changed.tolist() == [[flip.row, flip.col]]
    assert flip.flipped[flip.row, flip.col] == pytest.approx(float(flip.new_value[0]))
    assert 0 < flip.queries <= 100 * 21 + 2
    # The reported decision is the model's own on the flipped image.
    with torch.no_grad():
        assert int(model(torch.tensor(flip.flipped)[None, None]).argmax()) == flip.prediction_after


class _PixelReader(torch.nn.Module):
    """Logits (0.5, x[0, 3, 4], 0): class 1 wins exactly when pixel (3, 4) exceeds 0.5."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        pixel = x[:, 0, 3, 4] + 0 * self.w
        return torch.stack([torch.full_like(pixel, 0.5), pixel, torch.zeros_like(pixel)], 1)


def test_exhaustive_one_pixel_search_finds_the_only_pixel_that_matters():
    image = torch.zeros(1, 6, 6)
    flip = brittleness.one_pixel_search(_PixelReader(), image, label=0)
    assert flip is not None and flip.search == "exhaustive"
    assert (flip.row, flip.col, flip.prediction_before, flip.prediction_after) == (3, 4, 0, 1)
    assert flip.new_value.tolist() == [1.0] and flip.old_value.tolist() == [0.0]
    assert flip.queries == 6 * 6 * 2 + 1
    # Black pixels only: nothing can flip it.
    assert brittleness.one_pixel_search(_PixelReader(), image, label=0, values=(0.0,)) is None


@pytest.fixture(scope="module")
def confounded_model():
    """A tiny cnn trained briefly on shapes-confounded: enough to pick up the tag shortcut."""
    from nnkit.runs import RunStore
    from nnkit.training import TrainConfig, train

    cfg = TrainConfig(data="shapes-confounded", data_opts={"n_train": 1000, "n_test": 200}, model="cnn",
                      model_opts={"widths": (8, 16, 32), "hidden": 32}, epochs=3, batch_size=64, seed=0,
                      device="cpu")
    with tempfile.TemporaryDirectory() as tmp, one_thread():
        return train(cfg, store=RunStore(tmp)).model.eval()


def test_tag_moved_test_on_a_confounded_model(confounded_model):
    dataset = datasets.create("shapes-confounded", n_train=1000, n_test=200)
    report = brittleness.tag_moved_test(confounded_model, dataset, n=200, examples=3)
    acc = report.accuracy
    assert set(acc) == {"tag-agrees", "no-tag", "tag-shuffled"} and report.n == 200
    # Moving the tag costs the model most of its accuracy, and its answers follow the tag.
    assert acc["tag-agrees"] - acc["tag-shuffled"] > 0.2
    assert report.follows_tag > 2 * report.chance
    assert len(report.examples) == 3
    ex = report.examples[0]
    assert ex.image_tagged.shape == ex.image_moved.shape == (32, 32, 3)
    assert ex.saliency_tagged.shape == (32, 32) and ex.tag_class != ex.label
    assert ex.prediction_tagged == ex.label
    # The saliency concentrates on the tag: its share inside the tag box is well above the tag's area.
    assert np.mean([e.tag_share_tagged for e in report.examples]) > 2 * ex.tag_area


# ---------------------------------------------------------------- 10. the robustness trade-off
class _Brightness(torch.nn.Module):
    """Class 1 when the mean pixel exceeds 0.5, else class 0: an L∞ move of ε shifts the mean by exactly ε, so an
    image whose pixels all sit d above 0.5 is robust exactly for ε < d (worked out by hand)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        s = (x.mean((1, 2, 3)) - 0.5) * 100 * self.w
        return torch.stack([-s, s], 1)


def test_robust_accuracy_curve_matches_the_worked_example():
    margins = torch.tensor([0.003, 0.006, 0.012, 0.02, 0.04, 0.07])  # ε grid: 0.0039 0.0078 0.0157 0.0314 0.0627
    images = (0.5 + margins)[:, None, None, None].expand(6, 1, 4, 4).clone()
    labels = torch.ones(6, dtype=torch.int64)
    seen = []
    curve = brittleness.robust_accuracy_curve(_Brightness(), images, labels, show=3,
                                              on_progress=lambda d, t: seen.append((d, t)))
    assert curve["eps"] == list(brittleness.TRADEOFF_EPS)
    assert curve["robust_accuracy"] == pytest.approx([6 / 6, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6])
    # The shown images: fooled ones keep the first attack that fooled them, every pixel within its ε.
    assert len(curve["images"]) == len(curve["eps"]) and curve["images"][0].shape == (3, 4, 4)
    assert curve["predictions"][0] == [1, 1, 1] and curve["predictions"][-1] == [0, 0, 0]
    assert np.abs(curve["images"][1][0] - images[0, 0].numpy()).max() <= 1 / 255 + 1e-6
    assert seen[-1] == (50, 50)  # 5 budgets × 10 PGD steps
    with pytest.raises(NnkitError):
        brittleness.robust_accuracy_curve(_Brightness(), images, labels, eps_grid=(0.1, 0.01))


def test_robust_accuracy_curve_of_a_trained_cnn_is_monotone(confounded_model):
    test = datasets.create("shapes-confounded", n_train=100, n_test=60).split("test")
    curve = brittleness.robust_accuracy_curve(confounded_model, test.images, test.labels, steps=3, show=2)
    acc = curve["robust_accuracy"]
    clean = float((confounded_model(test.images).argmax(1) == test.labels).float().mean())
    assert acc[0] == pytest.approx(clean)
    assert all(b <= a for a, b in zip(acc, acc[1:], strict=False)) and acc[-1] < acc[0]


def test_tradeoff_configs_differ_only_in_the_defence():
    configs = brittleness.tradeoff_configs(seed=3)
    std, adv = configs["standard"].to_dict(), configs["adversarial"].to_dict()
    differing = {k for k in std if std[k] != adv[k]}
    assert differing <= {"name", "adversarial", "adv_eps", "adv_steps", "adv_alpha", "adv_warmup"}
    assert std["adversarial"] is None and adv["adversarial"] == "fgsm" and adv["adv_eps"] == pytest.approx(8 / 255)
    assert std["seed"] == adv["seed"] == 3


@pytest.mark.slow
def test_tradeoff_recipe_defends_at_the_trained_eps(capsys):
    """Issue 14: the demo's pair (its own recipe, ~45 CPU-seconds for both trainings) — the FGSM-trained cnn keeps at
    least 25 points more PGD robust accuracy at ε = 8/255 than the standard one; the cost in clean accuracy is
    printed."""
    from nnkit.runs import RunStore
    from nnkit.training import train

    test = datasets.create("shapes", **{**brittleness.TRADEOFF_RECIPE["data_opts"], "n_test": 200}).split("test")
    curves = {}
    with tempfile.TemporaryDirectory() as tmp:
        for key, cfg in brittleness.tradeoff_configs(seed=0, device="cpu").items():
            model = train(cfg, store=RunStore(tmp)).model.eval()
            curves[key] = brittleness.robust_accuracy_curve(model, test.images, test.labels)["robust_accuracy"]
    k = brittleness.TRADEOFF_EPS.index(8 / 255)
    std, adv = curves["standard"], curves["adversarial"]
    with capsys.disabled():
        print(f"\nclean {std[0]:.1%} → {adv[0]:.1%} (cost {std[0] - adv[0]:+.1%}); PGD at 8/255 {std[k]:.1%} → "
              f"{adv[k]:.1%}")
    assert adv[k] >= std[k] + 0.25

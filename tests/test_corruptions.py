"""Common corruptions (Hendrycks & Dietterich 2019): every corruption's contract, a few against their definition
(numpy/scipy/PIL/colorsys as the reference), the evaluation on a run (CE, mCE, stored evaluation), the CLI, the
job function and the plots.

The accuracy property runs on the standard shapes cnn (the session's ``shapes_run``, default recipe; 1,000 images,
about 16 s on an idle 2-core machine): a model that trains in seconds is too weak for it (noise can even raise its
accuracy). ``test_strength_rises_with_severity`` checks the same order without a model (the distance from the clean
image grows with the severity).
"""

from __future__ import annotations

import colorsys
import json
import math
import re
import threading

import numpy as np
import pytest
import torch

from nnkit.corruptions import CORRUPTIONS, SEVERITIES, check_corruptions, check_severities, corrupt
from nnkit.corruptions.evaluate import corruption_errors, corruption_eval_on_run, corruption_examples
from nnkit.errors import Cancelled, NnkitError
from nnkit.seeding import item_seed

NAMES = list(CORRUPTIONS)
# Corruptions that draw random numbers (the others must not depend on the seed).
RANDOM = {"gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "motion_blur", "fog", "elastic_transform"}


@pytest.fixture(scope="module")
def shapes_images():
    from nnkit.data.registry import create

    return create("shapes", n_train=100, n_test=16).split("test").images


# ---------------------------------------------------------------- the contract of every corruption


@pytest.mark.parametrize("name", NAMES)
def test_every_corruption_keeps_the_contract(name):
    g = torch.Generator().manual_seed(3)
    rgb = torch.rand(6, 3, 32, 32, generator=g)
    grey = torch.rand(3, 1, 28, 28, generator=g)
    keep = rgb.clone()
    for s in SEVERITIES:
        for x in (rgb, grey) + ((rgb[:2].double(), rgb[:2].half()) if s in (1, 5) else ()):
            y = corrupt(x, name, s, seed=5)
            assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
            assert torch.isfinite(y.float()).all() and y.min() >= 0 and y.max() <= 1
        assert torch.equal(rgb, keep)  # the input is left alone
        a = corrupt(rgb, name, s, seed=5)
        assert torch.equal(a, corrupt(rgb, name, s, seed=5))  # deterministic for a seed
        # An image's corruption is keyed by its index, not by its batch.
        part = corrupt(rgb[2:5], name, s, seed=5, keys=[2, 3, 4])
        assert torch.allclose(part, a[2:5], atol=1e-5)
        alone = corrupt(rgb[4:5], name, s, seed=5, keys=[4])
        assert torch.allclose(alone, a[4:5], atol=1e-5)
        other_seed = corrupt(rgb, name, s, seed=6)
        assert torch.equal(other_seed, a) == (name not in RANDOM)
    assert not torch.equal(corrupt(rgb, name, 5, seed=5), rgb)  # severity 5 changes the image


def test_corruptions_are_the_same_on_an_empty_batch_and_refuse_bad_input():
    x = torch.rand(2, 3, 16, 16)
    assert corrupt(x[:0], "gaussian_noise", 1).shape == (0, 3, 16, 16)
    for bad in [dict(name="snowfall"), dict(severity=0), dict(severity=6), dict(severity=True), dict(severity="3"),
                dict(severity=2.0)]:
        kw = {"name": "contrast", "severity": 1, **bad}
        with pytest.raises(NnkitError):
            corrupt(x, kw["name"], kw["severity"])
    with pytest.raises(NnkitError):
        corrupt(x[0], "contrast", 1)  # not N×C×H×W
    with pytest.raises(NnkitError):
        corrupt((x * 255).to(torch.uint8), "contrast", 1)
    with pytest.raises(NnkitError, match="keys"):
        corrupt(x, "contrast", 1, keys=[0])


def test_names_and_severities_are_checked():
    assert check_corruptions(None) == NAMES
    assert check_corruptions("jpeg-compression, contrast,contrast") == ["jpeg_compression", "contrast"]
    with pytest.raises(NnkitError, match="unknown corruption 'snowfall'"):
        check_corruptions("contrast,snowfall")
    with pytest.raises(NnkitError):
        check_corruptions([])
    assert check_severities("5,1,3") == [1, 3, 5]
    for bad in ("0", "6", "1.5", "a", "", [True]):
        with pytest.raises(NnkitError):
            check_severities(bad)


def test_strength_rises_with_severity(shapes_images):
    """A model-free check of the severity tables: the distance from the clean image does not fall as the
    severity rises. Elastic is the exception in the paper's own table (its affine part shrinks while the
    local distortion grows), so it is left to the accuracy tests."""
    x = shapes_images
    for name in NAMES:
        if name == "elastic_transform":
            continue
        rms = [float((corrupt(x, name, s, seed=0) - x).pow(2).mean().sqrt()) for s in SEVERITIES]
        assert all(b >= a - 1e-6 for a, b in zip(rms, rms[1:])), (name, rms)


# ---------------------------------------------------------------- against the definitions


def test_gaussian_noise_adds_normal_noise_with_the_papers_sigma():
    c = [0.04, 0.06, 0.08, 0.09, 0.10]
    x = torch.full((2, 3, 64, 64), 0.5)
    for s in SEVERITIES:
        y = corrupt(x, "gaussian_noise", s, seed=11, keys=[7, 9])
        # Exactly x + c·z with z from the image's own stream (seed, key).
        z = torch.randn((3, 64, 64), generator=torch.Generator().manual_seed(item_seed(11, 9)))
        assert torch.allclose(y[1], (x[1] + c[s - 1] * z).clamp(0, 1), atol=1e-6)
        assert abs(float((y - x).std()) - c[s - 1]) < 0.05 * c[s - 1]
        assert abs(float((y - x).mean())) < 0.005


def test_shot_and_impulse_noise_follow_their_definitions():
    x = torch.full((1, 3, 64, 64), 0.4)
    y = corrupt(x, "shot_noise", 5, seed=0)  # Poisson(50·x)/50: mean x, variance x/50
    assert abs(float(y.mean()) - 0.4) < 0.01 and abs(float(y.var()) - 0.4 / 50) < 0.001
    assert torch.allclose(y * 50, (y * 50).round(), atol=1e-4)
    y = corrupt(x, "impulse_noise", 5, seed=0)  # 7% of the values flipped, half to 1 and half to 0
    flipped = (y != x).float().mean()
    assert abs(float(flipped) - 0.07) < 0.01
    assert torch.isclose(y, x).logical_or(y == 0).logical_or(y == 1).all()


def test_brightness_adds_to_v_of_hsv_as_the_paper_does():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 8, 8, generator=g)
    x[0, :, 0, 0] = 0.0  # a black pixel: grey afterwards
    x[0, :, 0, 1] = 0.97  # near white: V clipped at 1
    c = [0.05, 0.1, 0.15, 0.2, 0.3]
    for s in SEVERITIES:
        y = corrupt(x, "brightness", s)
        for i in range(8):
            for j in range(8):
                h, sat, v = colorsys.rgb_to_hsv(*x[0, :, i, j].tolist())
                want = colorsys.hsv_to_rgb(h, sat, min(v + c[s - 1], 1.0))
                assert y[0, :, i, j].tolist() == pytest.approx(want, abs=1e-5)
    grey = torch.rand(1, 1, 8, 8, generator=g)
    assert torch.allclose(corrupt(grey, "brightness", 5), (grey + 0.3).clamp(max=1), atol=1e-6)


def test_contrast_keeps_each_channels_mean():
    x = torch.rand(2, 3, 16, 16)
    y = corrupt(x, "contrast", 3)
    m = x.mean(dim=(2, 3), keepdim=True)
    assert torch.allclose(y, ((x - m) * 0.4 + m).clamp(0, 1), atol=1e-6)


def test_pixelate_is_pils_box_resize_down_and_up():
    from PIL import Image

    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    for s, c in zip(SEVERITIES, [0.95, 0.9, 0.85, 0.75, 0.65]):
        y = corrupt(x, "pixelate", s)
        small = int(32 * c)
        for ch in range(3):
            img = Image.fromarray(x[0, ch].numpy().astype(np.float32), mode="F")
            ref = np.asarray(img.resize((small, small), Image.BOX).resize((32, 32), Image.BOX))
            assert np.allclose(y[0, ch].numpy(), ref, atol=1e-5), (s, ch)


def test_jpeg_matches_pil_at_the_papers_qualities():
    import io

    from PIL import Image

    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    x = torch.nn.functional.avg_pool2d(x, 3, 1, 1)  # some structure, as photographs have
    arr = (x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    for s, q in zip(SEVERITIES, [80, 65, 58, 50, 40]):
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "JPEG", quality=q)
        ref = np.asarray(Image.open(buf)).astype(np.float32) / 255
        y = corrupt(x, "jpeg_compression", s)[0].permute(1, 2, 0).numpy()
        assert np.array_equal(y, ref), q  # the paper's encoder (PIL), 8-bit input


def test_gaussian_and_zoom_blur_match_scipy():
    from scipy import ndimage

    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    img = x[0].permute(1, 2, 0).numpy()
    for s, sigma in zip(SEVERITIES, [0.4, 0.6, 0.7, 0.8, 1.0]):
        y = corrupt(x, "gaussian_blur", s)[0].permute(1, 2, 0).numpy()
        ref = ndimage.gaussian_filter(img, sigma=(sigma, sigma, 0), truncate=4.0)
        r = int(4 * sigma + 0.5)  # the border rule differs (mirror vs. repeat); the inside must not
        assert np.allclose(y[r:-r, r:-r], ref[r:-r, r:-r], atol=1e-6)

    def clipped_zoom(a, z):  # the paper's helper, with scipy
        h = a.shape[0]
        ch = int(np.ceil(h / z))
        top = (h - ch) // 2
        a = ndimage.zoom(a[top:top + ch, top:top + ch], (z, z, 1), order=1)
        t = (a.shape[0] - h) // 2
        return a[t:t + h, t:t + h]

    for s, last in zip(SEVERITIES, [1.06, 1.11, 1.15, 1.20, 1.25]):
        factors = [1 + 0.01 * i for i in range(int(round((last - 1) / 0.01)) + 1)]
        ref = (img + sum(clipped_zoom(img, z) for z in factors)) / (len(factors) + 1)
        y = corrupt(x, "zoom_blur", s)[0].permute(1, 2, 0).numpy()
        assert np.allclose(y, np.clip(ref, 0, 1), atol=1e-6), s


def test_motion_blur_is_a_one_sided_gaussian_along_the_angle():
    x = torch.zeros(1, 1, 33, 33)
    x[0, 0, 16, 8] = 1.0  # one bright pixel
    y = corrupt(x, "motion_blur", 1, seed=0)
    angle = -45.0 + 90.0 * float(torch.rand((), generator=torch.Generator().manual_seed(item_seed(0, 0)),
                                            dtype=torch.float64))
    w = np.exp(-np.arange(13) ** 2 / 2.0)
    w /= w.sum()
    # Output (r, c) takes tap i from (r + round(i sin a), c + round(i cos a)): the dot spreads the other way.
    for i in range(4):
        dx = math.ceil(i * math.cos(math.radians(angle)) - 0.5)
        dy = math.ceil(i * math.sin(math.radians(angle)) - 0.5)
        assert float(y[0, 0, 16 - dy, 8 - dx]) >= w[i] - 1e-6
    assert abs(float(y.sum()) - 1.0) < 1e-5


def test_elastic_transform_warps_smoothly_through_the_papers_anchors():
    from nnkit.corruptions.digital import _affine_matrices

    # getAffineTransform: the map takes the anchors (26,26), (26,6), (6,6) of a 32-pixel image to anchors + jitter.
    jitter = torch.tensor([[[1.0, -2.0], [0.5, 0.5], [-1.5, 2.0]]])
    m = _affine_matrices(1, 32, 32, jitter)[0]
    anchors = torch.tensor([[26.0, 26.0], [26.0, 6.0], [6.0, 6.0]], dtype=torch.float64)
    moved = anchors @ m[:, :2].T + m[:, 2]
    assert torch.allclose(moved, anchors + jitter[0].double(), atol=1e-9)
    # A warp, not a scramble: a constant image stays constant, a ramp stays (nearly) monotone at severity 1
    # (the affine part alone), and a zero jitter leaves the image as it was.
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(corrupt(torch.full_like(x, 0.3), "elastic_transform", 3, seed=0), torch.full_like(x, 0.3),
                          atol=1e-6)
    ramp = torch.linspace(0, 1, 32).expand(1, 1, 32, 32).contiguous()
    y = corrupt(ramp, "elastic_transform", 1, seed=0)
    assert float((y[..., 1:] - y[..., :-1]).clamp(max=0).abs().max()) < 0.05
    assert 0 < float((corrupt(x, "elastic_transform", 1, seed=0) - x).abs().mean()) < 0.3


def test_examples_grid_has_the_clean_image_first():
    x = torch.rand(3, 16, 16)
    grid = corruption_examples(x, ["contrast", "gaussian_noise"], [1, 5], seed=2, key=9)
    assert grid.shape == (2, 3, 3, 16, 16)
    assert torch.equal(grid[0, 0], x) and torch.equal(grid[1, 0], x)
    assert torch.equal(grid[1, 2], corrupt(x[None], "gaussian_noise", 5, seed=2, keys=[9])[0])


# ---------------------------------------------------------------- CE and mCE


def test_corruption_error_is_the_papers_ratio_of_summed_errors():
    model = {"a": [0.9, 0.7], "b": [0.5, 0.5], "c": [0.8, 0.6]}
    ref = {"a": [0.8, 0.6], "b": [0.75, 0.75], "c": [1.0, 1.0]}
    ce, mce = corruption_errors(model, ref)
    assert ce["a"] == pytest.approx((0.1 + 0.3) / (0.2 + 0.4))
    assert ce["b"] == pytest.approx(1.0 / 0.5)
    assert ce["c"] is None  # the reference never errs: no CE, left out of the mean
    assert mce == pytest.approx((ce["a"] + ce["b"]) / 2)
    assert corruption_errors({"c": [1.0]}, {"c": [1.0]}) == ({"c": None}, None)


# ---------------------------------------------------------------- on a trained run


def _train(**kw):
    from nnkit.training import TrainConfig, train

    return train(TrainConfig(data="shapes", model="cnn", seed=0, device="cpu", **kw))


TINY = dict(data_opts={"n_train": 300, "n_test": 60}, model_opts={"widths": [8, 16, 16], "hidden": 32}, batch_size=32)


@pytest.fixture(scope="module")
def quick_run():
    """A tiny cnn after 20 steps (seconds to train): it makes errors, which is all CE and the CLI need."""
    return _train(max_steps=20, name="corrupt-quick", **TINY)


@pytest.fixture(scope="module")
def other_run():
    """A second tiny model on the same data, as a reference."""
    return _train(max_steps=5, name="corrupt-other", **TINY)


def _monotone(clean: float, accuracy: dict, tol: float) -> None:
    for name, accs in accuracy.items():
        seq = [clean, *accs]
        assert accs[-1] < clean, (name, seq)  # the strongest severity costs accuracy
        assert all(b <= a + tol for a, b in zip(seq, seq[1:])), (name, seq)


def test_accuracy_falls_with_severity_on_the_standard_shapes_cnn(shapes_run):
    """Issue 14's acceptance: every corruption at severity 5 lowers the standard shapes cnn's accuracy, and the
    accuracy does not rise with severity, within 1% (10 of 1,000 images: at the mild severities of pixelate and
    JPEG this model gains or loses a few images either way)."""
    ev = corruption_eval_on_run(shapes_run.run_id, n=1000, seed=0, record=False, device="cpu")
    assert ev.result["clean_accuracy"] >= 0.95
    _monotone(ev.result["clean_accuracy"], ev.result["accuracy"], tol=0.01)


def test_evaluation_is_stored_with_its_command_and_mce_against_itself_is_one(quick_run, other_run):
    from nnkit.runs import RunStore
    from nnkit.runs.evaluations import find_evaluation, list_evaluations

    names = ["gaussian_noise", "contrast", "pixelate"]
    seen = []
    ev = corruption_eval_on_run(quick_run.run_id, n=20, seed=3, corruptions=names, severities=(1, 5),
                                reference=quick_run.run_id, batch_size=7, on_progress=lambda d, t: seen.append((d, t)),
                                device="cpu")
    res = ev.result
    assert res["n"] == 20 and res["reference"] == quick_run.run_id
    assert set(res["accuracy"]) == set(names) and all(len(v) == 2 for v in res["accuracy"].values())
    assert res["mce"] == pytest.approx(1.0) and all(v == pytest.approx(1.0) for v in res["ce"].values() if v)
    assert res["mean_accuracy"] == pytest.approx(np.mean([a for v in res["accuracy"].values() for a in v]))
    assert seen[-1] == (20 * 7, 20 * 7) and seen[0] == (0, 20 * 7)
    info = RunStore().get(quick_run.run_id)
    stored = find_evaluation(info, "corruptions", {"n": 20, "split": "test", "seed": 3, "corruptions": names,
                                                   "severities": [1, 5], "reference": quick_run.run_id})
    assert stored is not None and stored.result == json.loads(json.dumps(res))
    assert stored.command.startswith(f"nnkit corrupt {quick_run.run_id} --n 20 --seed 3 --corruptions ")
    # The batch size does not change the numbers.
    again = corruption_eval_on_run(quick_run.run_id, n=20, seed=3, corruptions=names, severities=(1, 5),
                                   batch_size=256, record=False, device="cpu")
    assert again.result["accuracy"] == res["accuracy"] and again.result["mce"] is None

    # Another reference: measured on the same images, stored for it too, then read back from its store.
    first = corruption_eval_on_run(quick_run.run_id, n=20, seed=3, corruptions=names, severities=(1, 5),
                                   reference="corrupt-other", device="cpu")
    assert not first.reused_reference and first.result["reference"] == other_run.run_id
    ref_ev = corruption_eval_on_run(other_run.run_id, n=20, seed=3, corruptions=names, severities=(1, 5),
                                    record=False, device="cpu")
    want, _ = corruption_errors(first.result["accuracy"], ref_ev.result["accuracy"])
    assert first.result["ce"] == pytest.approx(want)
    second = corruption_eval_on_run(quick_run.run_id, n=20, seed=3, corruptions=names, severities=(1, 5),
                                    reference="corrupt-other", device="cpu")
    assert second.reused_reference and second.result == first.result
    assert len(list_evaluations(RunStore().get(other_run.run_id), "corruptions")) == 1


def test_a_cancelled_evaluation_stores_nothing(quick_run, tmp_path):
    from nnkit.runs import RunStore
    from nnkit.runs.evaluations import list_evaluations

    before = len(list_evaluations(RunStore().get(quick_run.run_id), "corruptions"))
    stop = threading.Event()

    def progress(done, total):
        if done >= 10:
            stop.set()

    with pytest.raises(Cancelled):
        corruption_eval_on_run(quick_run.run_id, n=20, seed=1, corruptions=["contrast"], batch_size=5,
                               on_progress=progress, stop_event=stop, device="cpu")
    assert len(list_evaluations(RunStore().get(quick_run.run_id), "corruptions")) == before
    with pytest.raises(NnkitError):
        corruption_eval_on_run(quick_run.run_id, n=0)
    with pytest.raises(NnkitError, match="unknown corruption"):
        corruption_eval_on_run(quick_run.run_id, corruptions=["snowfall"])


# ---------------------------------------------------------------- CLI, job, plots


def _cli(capsys, *argv) -> tuple[int, str, str]:
    from nnkit.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_table_json_out_and_errors(quick_run, capsys, tmp_path):
    rid = quick_run.run_id
    code, out, _ = _cli(capsys, "corrupt", rid, "--n", "20", "--seed", "0", "--corruptions", "contrast,shot_noise",
                        "--severities", "1,5", "--device", "cpu")
    assert code == 0
    assert "contrast" in out and "shot_noise" in out and "s5" in out and "mean corruption accuracy" in out
    row = next(line for line in out.splitlines() if line.startswith("contrast"))
    assert len(re.findall(r"\d+\.\d%", row)) == 3  # s1, s5 and the mean, as percentages like 97.0%
    code, out, _ = _cli(capsys, "corrupt", rid, "--n", "20", "--seed", "0", "--corruptions", "contrast,shot_noise",
                        "--severities", "1,5", "--reference", rid, "--json", "--out", str(tmp_path / "out"),
                        "--device", "cpu")
    assert code == 0
    res = json.loads(out.strip().splitlines()[-1])
    assert res["mce"] == pytest.approx(1.0) and res["n"] == 20 and res["severities"] == [1, 5]
    assert res["command"].startswith(f"nnkit corrupt {rid} --n 20 --seed 0")
    png = (tmp_path / "out" / "corruptions.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    assert json.loads((tmp_path / "out" / "report.json").read_text())["accuracy"] == res["accuracy"]
    # The stored command reproduces the numbers.
    argv = res["command"].split()[1:] + ["--json", "--device", "cpu"]
    code, out, _ = _cli(capsys, *argv)
    assert json.loads(out.strip().splitlines()[-1])["accuracy"] == res["accuracy"]
    for bad in (["--corruptions", "snowfall"], ["--severities", "0,1"], ["--severities", "x"], ["--n", "0"],
                ["--reference", "no-such-run"], ["--seed", "-1"]):
        try:
            code, out, err = _cli(capsys, "corrupt", rid, *bad)
        except SystemExit as exc:  # argparse's own checks (--n 0) exit from the parser
            code, (out, err) = exc.code, capsys.readouterr()
        assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, (bad, err)
    code, out, err = _cli(capsys, "corrupt")
    assert code == 2 and err.startswith("error: ")
    code, out, _ = _cli(capsys, "corrupt", "--list")
    assert code == 0 and all(name in out for name in NAMES) and "0.04, 0.06, 0.08, 0.09, 0.1" in out
    code, out, _ = _cli(capsys, "corrupt", "--list", "--json")
    assert [r["name"] for r in json.loads(out)["corruptions"]] == NAMES


def test_job_reports_images_and_returns_what_a_page_needs(quick_run, tmp_path, monkeypatch):
    from nnkit.jobs.corruption_tasks import corruption_task
    from nnkit.jobs.manager import JobManager, JobStatus

    mgr = JobManager()
    view = mgr.wait(mgr.submit(corruption_task, kind="corruptions", title="corrupt", device="cpu",
                               run_id=quick_run.run_id, n=10, seed=0, corruptions=["contrast"], severities=(1, 5),
                               record=False), 120)
    assert view.status is JobStatus.DONE, view.error
    out = view.result
    assert out["result"]["n"] == 10 and out["params"]["corruptions"] == ["contrast"]
    assert out["grid"].dtype == np.uint8 and out["grid"].shape[2] == 3 and out["grid_png"].startswith(b"\x89PNG")
    assert out["command"].startswith("nnkit corrupt ") and "--corruptions contrast" in out["command"]


def test_plots_show_percentages():
    from nnkit.plots.corruptions import accuracy_heatmap, example_grid, severity_curves

    acc = {"contrast": [0.97, 0.5], "pixelate": [0.9, 0.8]}
    fig = accuracy_heatmap(acc, [1, 5], ce={"contrast": 1.2, "pixelate": None})
    assert fig.data[0].text[0][0] == "97.0%" and "CE 120%" in fig.data[0].y[0]
    fig = severity_curves(acc, [1, 5], clean_accuracy=0.99)
    assert list(fig.data[0].x) == [0, 1, 5] and fig.data[0].y[0] == pytest.approx(99.0)
    assert fig.data[-1].name == "mean"
    fig = example_grid(np.zeros((2 * 18 + 2, 3 * 18 + 2, 3), np.uint8), ["contrast", "pixelate"], [1, 5])
    assert list(fig.layout.xaxis.ticktext) == ["clean", "1", "5"]
    assert accuracy_heatmap({}, []).layout.annotations  # the empty placeholder says why



def test_fog_adds_a_plasma_cloud_and_rescales():
    from nnkit.corruptions._util import generators
    from nnkit.corruptions.weather import plasma_fractal

    x = torch.rand(2, 3, 28, 28, generator=torch.Generator().manual_seed(7))
    cloud = plasma_fractal(generators(4, [5, 6]), 32, 1.75)  # 28 pixels: the 32×32 map, cropped
    assert cloud.shape == (2, 32, 32) and float(cloud.min()) == 0.0 and float(cloud.max()) == 1.0
    top = x.amax(dim=(1, 2, 3), keepdim=True)
    want = ((x + 1.5 * cloud[:, None, :28, :28].float()) * top / (top + 1.5)).clamp(0, 1)
    assert torch.allclose(corrupt(x, "fog", 5, seed=4, keys=[5, 6]), want, atol=1e-6)
    # Smooth: neighbouring cloud values are closer than random pairs.
    assert float((cloud[:, 1:] - cloud[:, :-1]).abs().mean()) < 0.5 * float((cloud - cloud.flip(1)).abs().mean())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_corruptions_on_gpu_match_the_cpu(quick_run):
    """Same device and dtype out; the random draws are made on the CPU, so a GPU gives the CPU's images (up to
    float rounding) and the evaluation the same accuracies (up to an image tipped by rounding)."""
    x = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(8))
    for name in NAMES:
        for s in SEVERITIES:
            on_gpu = corrupt(x.cuda(), name, s, seed=2)
            assert on_gpu.device.type == "cuda" and on_gpu.dtype == torch.float32
            assert torch.allclose(on_gpu.cpu(), corrupt(x, name, s, seed=2), atol=1e-4), (name, s)
            half = corrupt(x.cuda().half(), name, s, seed=2)
            assert half.dtype == torch.float16 and half.min() >= 0 and half.max() <= 1
    cpu = corruption_eval_on_run(quick_run.run_id, n=40, seed=0, record=False, device="cpu")
    gpu = corruption_eval_on_run(quick_run.run_id, n=40, seed=0, record=False, device="cuda")
    for name in NAMES:
        assert np.allclose(cpu.result["accuracy"][name], gpu.result["accuracy"][name], atol=1 / 40 + 1e-9), name

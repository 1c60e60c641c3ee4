"""``python -m nnkit attack one-pixel|patch`` on a tiny trained run: JSON last line, PNG examples, errors."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from attacks import resolve_class
from nnkit.cli import main
from nnkit.errors import NnkitError


@pytest.fixture(scope="module")
def tiny_run(nnkit_home):
    from nnkit.training import TrainConfig, train

    config = TrainConfig(data="shapes", data_opts={"n_train": 200, "n_test": 40}, model="cnn",
                         model_opts={"widths": (8, 16, 16), "hidden": 32}, epochs=1, max_steps=4, device="cpu",
                         seed=0, name="attack-cli-tiny")
    return train(config).run_id


def last_json(capsys) -> dict:
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])


def test_one_pixel_cli_json_and_pngs(tiny_run, tmp_path, capsys):
    out = tmp_path / "op"
    code = main(["attack", "one-pixel", tiny_run, "--n", "6", "--pixels", "2", "--popsize", "8", "--generations",
                 "1", "--seed", "3", "--json", "--out", str(out)])
    assert code == 0
    d = last_json(capsys)
    for key in ("success_rate", "clean_accuracy", "robust_accuracy", "seconds_per_image",
                "median_queries_per_success"):
        assert key in d
    assert d["n"] == 6 and d["seed"] == 3 and d["params"]["pixels"] == 2
    assert d["robust_accuracy"] <= d["clean_accuracy"]
    assert set(d["files"]) == {"examples.png", "report.json"}
    with Image.open(out / "examples.png") as im:
        assert im.width > 100 and im.height > 100
    assert json.loads((out / "report.json").read_text())["success_rate"] == d["success_rate"]


def test_one_pixel_cli_targeted_by_name(tiny_run, capsys):
    assert main(["attack", "one-pixel", tiny_run, "--n", "4", "--popsize", "6", "--generations", "0",
                 "--targeted", "Square", "--json"]) == 0
    d = last_json(capsys)
    assert d["target"] == 1 and d["targeted"] is True


@pytest.mark.parametrize("kind", ["universal", "local"])
def test_patch_cli(tiny_run, tmp_path, capsys, kind):
    code = main(["attack", "patch", tiny_run, "--target", "2", "--area", "0.05", "--kind", kind, "--steps", "2",
                 "--train-n", "16", "--n", "4", "--shape", "circle", "--json", "--out", str(tmp_path)])
    assert code == 0
    d = last_json(capsys)
    assert d["kind"] == kind and d["target"] == 2 and 0 <= d["success_rate"] <= 1
    assert (tmp_path / "examples.png").is_file()
    assert ((tmp_path / "patch.png").is_file()) == (kind == "universal")


def test_text_output_without_json(tiny_run, capsys):
    assert main(["attack", "one-pixel", tiny_run, "--n", "2", "--popsize", "6", "--generations", "0"]) == 0
    out = capsys.readouterr().out
    assert "success rate" in out and "robust accuracy" in out


def test_cli_errors_are_one_line(tiny_run, capsys):
    assert main(["attack", "patch", tiny_run, "--target", "hexagon"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown class 'hexagon'") and err.count("\n") == 1
    assert main(["attack", "one-pixel", "no-such-run", "--n", "2"]) == 2


def test_resolve_class():
    names = ["circle", "square"]
    assert resolve_class("square", names) == 1 and resolve_class("0", names) == 0
    with pytest.raises(NnkitError, match="out of range"):
        resolve_class("5", names)


@pytest.mark.gpu
def test_one_pixel_on_gpu_matches_cpu_contract():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    from torch import nn

    from attacks import OnePixel

    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                          nn.Linear(8 * 8 * 8, 4)).eval()
    x = torch.rand(8, 3, 8, 8)
    y = model(x).argmax(1)
    result = OnePixel(model.cuda(), pixels=1, popsize=32, generations=3, seed=0)(x, y)
    assert result.images.device.type == "cpu" and result.images.shape == x.shape
    assert ((result.images != x).any(1).flatten(1).sum(1) == 1).all()
    assert torch.equal(result.success, result.pred_after != y)


def test_library_on_run_gives_the_cli_figures(tiny_run, capsys):
    """The dashboard and the report call attacks.on_run; the CLI's --json must be the same figures."""
    from attacks import one_pixel_on_run

    assert main(["attack", "one-pixel", tiny_run, "--n", "5", "--popsize", "10", "--generations", "2",
                 "--seed", "7", "--json"]) == 0
    cli = last_json(capsys)
    lib = one_pixel_on_run(tiny_run, n=5, popsize=10, generations=2, seed=7, device="cpu").summary()
    drop = ("seconds", "seconds_per_image")
    assert {k: v for k, v in lib.items() if k not in drop} == {k: v for k, v in cli.items() if k not in drop}

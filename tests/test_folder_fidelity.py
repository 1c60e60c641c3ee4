"""Issue 16, "real folders (fidelity)": how ``folder:`` images are read, and n-image selections stratified.

Folders are written by the tests (tiny 28×28 greyscale PNGs, some RGBA, some of another size, some
16-bit) so every expected value is known; one tiny cnn is trained for the end-to-end checks.
"""

from __future__ import annotations

import json
import shutil
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from nnkit import data
from nnkit.cli import main
from nnkit.data.folder import build_folder, folder_fingerprint
from nnkit.data.registry import run_data_options
from nnkit.data.select import describe_selection, stratified_indices
from nnkit.errors import NnkitError

CLASSES = ("a", "b", "c", "d")


def _grey(value: int, i: int, size: int = 28) -> np.ndarray:
    """A 28×28 grey image of class brightness ``value`` with a bar whose row depends on ``i``."""
    arr = np.full((size, size), value, dtype=np.uint8)
    arr[(3 * i) % size, :] = 255 - value
    return arr


def write_folder(root, per_class: int = 12, rgba: bool = True, mixed: bool = True, sixteen: bool = True):
    """Four classes of grey 28×28 PNGs; class b has RGBA images, c one 20×20 image, d is 16-bit."""
    for c, name in enumerate(CLASSES):
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            arr = _grey(40 + 50 * c, i)
            if name == "b" and rgba and i < 3:
                # Grey RGBA with the top-left quarter transparent: composited on white it stays grey.
                rgba_arr = np.stack([arr, arr, arr, np.full_like(arr, 255)], axis=2)
                rgba_arr[:14, :14, 3] = 0
                Image.fromarray(rgba_arr, "RGBA").save(d / f"{i}.png")
            elif name == "c" and mixed and i == 0:
                Image.fromarray(_grey(140, i, 20)).save(d / f"{i}.png")
            elif name == "d" and sixteen:
                Image.fromarray(arr.astype(np.uint16) * 257).save(d / f"{i}.png")  # I;16, same brightness
            else:
                Image.fromarray(arr).save(d / f"{i}.png")
    return root


def _bomb_png(path, width: int = 40_000, height: int = 40_000) -> None:
    """A tiny PNG whose header claims width×height pixels (more than twice PIL's limit)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


# -- selection ----------------------------------------------------------------------------------------------
def test_stratified_indices_are_seeded_balanced_and_prefix_stable():
    labels = torch.arange(4).repeat_interleave(25)  # class-ordered, like a folder's split
    pick = stratified_indices(labels, 20, seed=3)
    assert pick == stratified_indices(labels, 20, seed=3)  # deterministic
    assert pick != stratified_indices(labels, 20, seed=4)
    assert len(set(pick)) == 20 and torch.bincount(labels[pick]).tolist() == [5, 5, 5, 5]
    assert stratified_indices(labels, 7, seed=3) == pick[:7]  # the first k of n are the pick of k
    assert sorted(stratified_indices(labels, 1000, seed=0)) == list(range(100))  # all when n is larger
    # A rare class gives what it has; the others fill the rest.
    rare = torch.tensor([0] * 30 + [1] * 2)
    assert torch.bincount(rare[stratified_indices(rare, 10, 0)]).tolist() == [8, 2]
    assert describe_selection(labels, pick, 3) == "seeded stratified: 20 images, 5 per class (seed 3)"
    assert "of 2 of the 4 classes" in describe_selection(labels, stratified_indices(labels, 2, 0), 0)
    with pytest.raises(NnkitError, match="at least 1"):
        stratified_indices(labels, 0, 0)


# -- reading a folder -------------------------------------------------------------------------------------
def test_grey_28px_folder_is_read_as_1x28_with_16_bit_and_rgba_right(tmp_path):
    ds = build_folder(str(write_folder(tmp_path / "f")))
    assert ds.in_channels == 1 and ds.image_size == 28  # inferred, not 3×32
    info = ds.info
    assert info["original_size"] == [28, 28] and info["mixed_sizes"] and [20, 20] in info["source_sizes"]
    assert "I;16" in info["modes"] and "RGBA" in info["modes"]
    everything = torch.cat([ds.split("train").images, ds.split("test").images])
    labels = torch.cat([ds.split("train").labels, ds.split("test").labels])
    means = [float(everything[labels == c].mean()) for c in range(4)]
    # Each class keeps its own brightness: the 16-bit class d is not clipped to white (issue 16: two
    # classes at 0.976 and 0.975), and is as bright as its 8-bit twin would be.
    expected = [(27 * (40 + 50 * c) + (255 - 40 - 50 * c)) / 28 / 255 for c in range(4)]
    assert means[3] == pytest.approx(expected[3], abs=0.01)
    assert min(abs(means[i] - means[j]) for i in range(4) for j in range(i)) > 0.1
    # RGBA: the transparent quarter is composited on white.
    b = build_folder(str(tmp_path / "f"), size=28, channels=1, test_fraction=0.5, seed=1)
    b_imgs = torch.cat([b.split("train").images, b.split("test").images])[
        torch.cat([b.split("train").labels, b.split("test").labels]) == 1]
    assert (b_imgs[:, 0, :14, :14] == 1.0).all(dim=(1, 2)).sum() == 3


def test_colour_folder_is_rgb_and_options_override(tmp_path):
    for name, colour in (("red", (200, 20, 20)), ("blue", (20, 20, 200))):
        (tmp_path / "rgb" / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((40, 30, 3), colour, dtype=np.uint8)).save(tmp_path / "rgb" / name / f"{i}.png")
    ds = build_folder(str(tmp_path / "rgb"))
    assert ds.in_channels == 3 and ds.image_size == 40  # the larger side of 30×40
    grey = build_folder(str(tmp_path / "rgb"), size=16, channels=1)
    assert grey.split("train").images.shape[1:] == (1, 16, 16)
    red = grey.split("train").images[grey.split("train").labels == 1]  # classes sorted: blue, red
    assert float(red.mean()) == pytest.approx((0.299 * 200 + 0.587 * 20 + 0.114 * 20) / 255, abs=1e-3)  # luma


def test_folder_path_is_stored_absolute_with_a_fingerprint(tmp_path, monkeypatch):
    write_folder(tmp_path / "f", per_class=3, rgba=False, mixed=False, sixteen=False)
    monkeypatch.chdir(tmp_path)
    ds = data.create("folder:f")
    assert ds.name == f"folder:{(tmp_path / 'f').resolve()}" and ds.info["source"] == str((tmp_path / "f").resolve())
    before = ds.info["fingerprint"]
    assert before == folder_fingerprint(tmp_path / "f")
    Image.fromarray(_grey(90, 7)).save(tmp_path / "f" / "a" / "new.png")
    assert folder_fingerprint(tmp_path / "f") != before
    assert data.create("folder:f").info["fingerprint"] != before  # the cache notices the change too


def test_folder_refusals_are_one_line_and_name_the_cause(tmp_path, monkeypatch):
    write_folder(tmp_path / "one", per_class=1, rgba=False, mixed=False, sixteen=False)
    with pytest.raises(NnkitError, match=r"class 'a' has 1 image \(and 3 other classes\): each class needs at "
                                         r"least 2"):
        build_folder(str(tmp_path / "one"))
    write_folder(tmp_path / "bomb", per_class=2, rgba=False, mixed=False, sixteen=False)
    _bomb_png(tmp_path / "bomb" / "b" / "huge.png")
    with pytest.raises(NnkitError, match=r"huge\.png: image too large") as err:
        build_folder(str(tmp_path / "bomb"))
    assert "\n" not in str(err.value)
    (tmp_path / "bomb" / "b" / "huge.png").unlink()
    # Between PIL's limit and twice it PIL only warns: nnkit refuses those too, with the size.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)
    with pytest.raises(NnkitError, match=r"0\.png: image too large \(28×28 pixels"):
        build_folder(str(tmp_path / "bomb"))


def test_data_options_are_checked_before_anything_is_built(tmp_path):
    write_folder(tmp_path / "f", per_class=2, rgba=False, mixed=False, sixteen=False)
    folder = f"folder:{tmp_path / 'f'}"
    cases = [("shapes", {"n_train": -5}, "n_train must be between 1 and 100,000, got -5"),
             ("shapes", {"n_test": 10**9}, "n_test must be between"),
             ("shapes", {"tag_fraction": 0.5}, "has no option tag_fraction; its options: seed, n_train, n_test"),
             ("shapes-confounded", {"tag_fraction": float("nan")}, "tag_fraction must be a finite number"),
             ("shapes", {"n_train": "many"}, "n_train must be a whole number"),
             (folder, {"size": 0}, "size must be between 8 and 512, got 0"),
             (folder, {"size": 100_000}, "size must be between 8 and 512"),
             (folder, {"channels": 2}, "channels must be one of 1, 3"),
             (folder, {"colour": 1}, "has no option colour; its options: size, channels, test_fraction, seed"),
             (folder, {"test_fraction": 0}, "test_fraction must be greater than 0"),
             ("mnist", {"limit": 0}, "limit must be between")]
    for name, opts, message in cases:
        with pytest.raises(NnkitError, match=message.replace("(", r"\(").replace(")", r"\)")):
            data.create(name, **opts)


def test_run_options_carry_to_another_dataset():
    stored = {"name": "shapes", "opts": {"n_train": 200, "n_test": 40, "seed": 2}}
    spec = {"image_size": 32, "in_channels": 3}
    assert run_data_options(stored, spec) == {"n_train": 200, "n_test": 40, "seed": 2}
    assert run_data_options(stored, spec, "shapes-confounded", {"tag_fraction": 0.5}) == {
        "n_train": 200, "n_test": 40, "seed": 2, "tag_fraction": 0.5}
    assert run_data_options(stored, spec, "mnist") == {"seed": 2}
    with pytest.raises(NnkitError, match="has no option size"):
        run_data_options(stored, spec, "shapes", {"size": 28})


# -- end to end: a tiny cnn on a folder ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def folder_run(nnkit_home, tmp_path_factory):
    """A tiny cnn trained a few steps on a 4-class grey folder, named by a relative path."""
    import os

    from nnkit.training import TrainConfig, train

    base = tmp_path_factory.mktemp("folders")
    write_folder(base / "digits", per_class=16)
    old = os.getcwd()
    os.chdir(base)
    try:
        config = TrainConfig(data="folder:digits", model="cnn", model_opts={"widths": (8, 16, 16), "hidden": 32},
                             epochs=1, max_steps=2, batch_size=16, device="cpu", seed=0, name="folder-tiny")
        run_id = train(config).run_id
    finally:
        os.chdir(old)
    return run_id, base


def _cli(capsys, *argv):
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_one_pixel_on_a_folder_attacks_every_class(folder_run, capsys):
    run_id, _ = folder_run
    code, out, err = _cli(capsys, "attack", "one-pixel", run_id, "--n", 50, "--popsize", 4, "--generations", 0,
                          "--seed", 3, "--device", "cpu", "--json")
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    from nnkit.runs import RunStore, load_run_data

    test = load_run_data(RunStore().get(run_id)).split("test")
    attacked = test.labels[summary["indices"]]
    assert set(attacked.tolist()) == set(range(len(CLASSES)))  # the acceptance: images of every class
    assert summary["n"] == len(test) and [c["n"] for c in summary["per_class"]] == torch.bincount(attacked).tolist()
    assert summary["selection"].startswith(f"seeded stratified: {len(test)} images") and "(seed 3)" in summary["selection"]
    code, out, err = _cli(capsys, "attack", "one-pixel", run_id, "--n", 4, "--popsize", 4, "--generations", 0,
                          "--seed", 3, "--device", "cpu")
    assert code == 0 and "images           seeded stratified: 4 images, 1 per class (seed 3)" in out


def test_folder_run_evaluates_from_elsewhere_and_on_another_folder(folder_run, capsys, tmp_path, monkeypatch):
    run_id, base = folder_run
    monkeypatch.chdir(tmp_path)  # the run named its folder relatively: it must still read that one
    code, out, err = _cli(capsys, "eval", run_id, "--json")
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["data"] == f"folder:{(base / 'digits').resolve()}"
    # Another folder of 36×36 RGB images is read at the run's 1×28 without any --data-opt.
    other = tmp_path / "other"
    for c, name in enumerate(CLASSES):
        (other / name).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((36, 36, 3), (30 + 50 * c, 90, 20), dtype=np.uint8)).save(other / name / f"{i}.png")
    code, out, err = _cli(capsys, "eval", run_id, "--data", f"folder:{other}", "--json")
    assert code == 0, err
    code, out, err = _cli(capsys, "eval", run_id, "--data", f"folder:{other}", "--data-opt", "size=36")
    assert code == 2 and err.strip().startswith("error: dataset") and "does not fit run" in err
    code, out, err = _cli(capsys, "confounding", run_id, "--data", f"folder:{other}", "--mask-box", "0,0,4,4",
                          "--reference", run_id, "--n", 4, "--methods", "saliency", "--device", "cpu", "--json")
    assert code == 0, err


def test_eval_warns_when_the_folder_changed(folder_run, capsys, tmp_path):
    from nnkit.runs import RunStore

    run_id, base = folder_run
    info = RunStore().get(run_id)
    copy = tmp_path / "copy"
    shutil.copytree(base / "digits", copy)
    # A run that recorded this copy: then the copy is changed behind its back.
    meta = dict(info.meta, dataset=dict(info.meta["dataset"], name=f"folder:{copy.resolve()}",
                                        info=dict(info.meta["dataset"]["info"],
                                                  fingerprint=folder_fingerprint(copy))))
    (info.path / "meta.json").write_text(json.dumps(meta))
    try:
        code, _, err = _cli(capsys, "eval", run_id)
        assert code == 0 and "warning:" not in err
        Image.fromarray(_grey(70, 5)).save(copy / "a" / "extra.png")
        code, _, err = _cli(capsys, "eval", run_id)
        assert code == 0 and "warning: run" in err and "changed since the run was trained" in err
    finally:
        (info.path / "meta.json").write_text(json.dumps(info.meta))


def test_datasets_listing_states_the_folder_rules_and_every_option(capsys):
    code, out, _ = _cli(capsys, "datasets", "--json")
    rows = {r["name"]: r for r in json.loads(out.strip().splitlines()[-1])["datasets"]}
    folder = rows["folder:PATH"]
    assert set(folder["options"]) == {"size", "channels", "test_fraction", "seed"}
    assert any(rule.startswith("size: the larger side of the most common image size") for rule in folder["rules"])
    assert any("16-bit /65535" in rule for rule in folder["rules"])
    assert rows["shapes"]["options"]["n_train"].startswith("int in [1, 100,000]")
    code, out, _ = _cli(capsys, "datasets")
    assert code == 0 and "channels: 1 when every image is grey, else 3" in out and "--data-opt size=..." in out


def test_cli_training_on_a_folder_says_how_it_was_read(nnkit_home, tmp_path, capsys, monkeypatch):
    write_folder(tmp_path / "f", per_class=3)
    monkeypatch.chdir(tmp_path)
    code, out, err = _cli(capsys, "train", "--data", "folder:f", "--data-opt", "size=24", "--model-opt",
                          "widths=8,16,16", "--model-opt", "hidden=32", "--max-steps", "1", "--device", "cpu",
                          "--seed", "0", "--json")
    assert code == 0, err
    assert (f"12 images of {(tmp_path / 'f').resolve()} read as 1×24×24 (size given, channels inferred from the "
            "images") in err
    from nnkit.runs import RunStore

    meta = RunStore().get(json.loads(out.strip().splitlines()[-1])["run_id"]).meta["dataset"]
    assert meta["name"] == f"folder:{(tmp_path / 'f').resolve()}" and meta["info"]["fingerprint"].startswith("sha256:")

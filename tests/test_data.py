import time

import numpy as np
import pytest
import torch
from PIL import Image

from nnkit import data
from nnkit.data.confounded import tag_box
from nnkit.data.shapes import SHAPE_CLASSES
from nnkit.errors import NnkitError


def small(name="shapes", **kw):
    return data.create(name, n_train=300, n_test=100, **kw)


def test_registry_lists_the_datasets():
    names = [e.name for e in data.list_datasets()]
    assert names[:2] == ["shapes", "shapes-confounded"]
    assert {"mnist", "fashion-mnist", "cifar10"} <= set(names)
    with pytest.raises(NnkitError, match="unknown dataset"):
        data.create("imagenet")


def test_shapes_contract_and_determinism():
    ds = small(seed=3)
    train = ds.split("train")
    assert ds.class_names == list(SHAPE_CLASSES) and len(ds.class_names) == 10
    assert train.images.shape == (300, 3, 32, 32) and train.images.dtype == torch.float32
    assert 0 <= float(train.images.min()) and float(train.images.max()) <= 1
    assert train.labels.dtype == torch.int64 and torch.bincount(train.labels).tolist() == [30] * 10
    data.registry._cache.clear()
    again = small(seed=3)
    assert torch.equal(again.split("train").images, train.images)
    other = small(seed=4)
    assert not torch.equal(other.split("train").images, train.images)
    assert not torch.equal(ds.split("test").images[:10], train.images[:10])
    with pytest.raises(NnkitError, match="no split"):
        ds.split("validation")


@pytest.mark.slow
def test_shapes_full_size_generates_in_under_5_s():
    data.registry._cache.clear()
    t0 = time.perf_counter()
    ds = data.create("shapes", seed=11)
    assert time.perf_counter() - t0 < 5.0
    assert len(ds.split("train")) == 10_000 and len(ds.split("test")) == 2_000


def test_confounded_tags_masks_and_variants():
    base = small()
    ds = small("shapes-confounded", tag_fraction=0.5)
    assert set(ds.splits) == {"train", "test", "tag-agrees", "no-tag", "tag-shuffled"}
    agrees, shuffled, none = ds.split("tag-agrees"), ds.split("tag-shuffled"), ds.split("no-tag")
    assert torch.equal(agrees.tags, agrees.labels)
    assert bool((shuffled.tags != shuffled.labels).all()) and bool((shuffled.tags >= 0).all())
    assert not none.masks.any() and bool((none.tags == -1).all())
    assert torch.equal(none.images, base.split("test").images)  # same base images as `shapes`
    for i in range(20):
        x0, y0, x1, y1 = tag_box(int(agrees.tags[i]))
        expected = torch.zeros(32, 32, dtype=torch.bool)
        expected[y0:y1, x0:x1] = True
        assert torch.equal(agrees.masks[i], expected)
        # Outside its tag, an image is the untagged image.
        assert torch.equal(agrees.images[i][:, ~expected], none.images[i][:, ~expected])
    tagged = ds.split("train").tags >= 0
    assert 0.35 < float(tagged.float().mean()) < 0.65
    assert bool((ds.split("train").tags[tagged] == ds.split("train").labels[tagged]).all())
    with pytest.raises(NnkitError, match="tag_fraction"):
        small("shapes-confounded", tag_fraction=1.5)


def test_mnist_real_subset(mnist_root):
    ds = data.create("mnist", root=mnist_root, download=False)
    assert ds.split("train").images.shape == (1000, 1, 28, 28)
    assert len(ds.split("test")) == 1000 and ds.class_names == [str(i) for i in range(10)]
    assert 0 <= float(ds.split("test").images.min()) and float(ds.split("test").images.max()) <= 1


def test_missing_download_is_one_clear_line(tmp_path):
    with pytest.raises(NnkitError) as err:
        data.create("mnist", root=str(tmp_path), download=False)
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path) in msg and "MNIST/raw" in msg


def _write_images(folder, n, colour):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        arr = np.full((20, 24, 3), colour, dtype=np.uint8)
        arr[i % 20, :, :] = 255 - np.array(colour, dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"{i}.png")


def test_folder_dataset_split_and_errors(tmp_path):
    _write_images(tmp_path / "own" / "cats", 10, (200, 30, 30))
    _write_images(tmp_path / "own" / "dogs", 5, (30, 30, 200))
    ds = data.create(f"folder:{tmp_path / 'own'}", size=16)
    assert ds.class_names == ["cats", "dogs"] and ds.image_size == 16 and ds.in_channels == 3
    assert torch.bincount(ds.split("test").labels).tolist() == [2, 1]  # stratified 20%
    assert len(ds.split("train")) + len(ds.split("test")) == 15
    grey = data.create(f"folder:{tmp_path / 'own'}", size=8, channels=1)
    assert grey.split("train").images.shape[1:] == (1, 8, 8)

    (tmp_path / "empty").mkdir()
    with pytest.raises(NnkitError, match="no class sub-folders"):
        data.create(f"folder:{tmp_path / 'empty'}")
    _write_images(tmp_path / "one" / "only", 3, (0, 0, 0))
    with pytest.raises(NnkitError, match="only one class"):
        data.create(f"folder:{tmp_path / 'one'}")
    _write_images(tmp_path / "bad" / "a", 2, (0, 0, 0))
    _write_images(tmp_path / "bad" / "b", 2, (0, 0, 0))
    (tmp_path / "bad" / "b" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(NnkitError, match="unreadable image"):
        data.create(f"folder:{tmp_path / 'bad'}")
    with pytest.raises(NnkitError, match="not a folder"):
        data.create(f"folder:{tmp_path / 'nowhere'}")


def test_folder_with_train_and_test_subfolders(tmp_path):
    for split in ("train", "test"):
        _write_images(tmp_path / "d" / split / "a", 4, (10, 10, 10))
        _write_images(tmp_path / "d" / split / "b", 3, (250, 250, 250))
    ds = data.create(f"folder:{tmp_path / 'd'}", size=8)
    assert len(ds.split("train")) == 7 and len(ds.split("test")) == 7

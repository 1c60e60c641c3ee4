"""Shared fixtures: an isolated NNKIT_HOME per test session and small trained runs reused by tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def nnkit_home(tmp_path_factory):
    """Every test session writes runs into its own temporary NNKIT_HOME, never into ~/.nnkit."""
    home = tmp_path_factory.mktemp("nnkit_home")
    old = os.environ.get("NNKIT_HOME")
    os.environ["NNKIT_HOME"] = str(home)
    os.environ.setdefault("NNKIT_OFFLINE", "1")
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    yield home
    if old is None:
        os.environ.pop("NNKIT_HOME", None)
    else:
        os.environ["NNKIT_HOME"] = old


@pytest.fixture(scope="session")
def mnist_root():
    """Root of the real 1,000 + 1,000 MNIST subset beside the checkout; skips where absent."""
    if not (SHARED_MNIST / "MNIST" / "raw" / "t10k-images-idx3-ubyte").is_file():
        pytest.skip("../shared/data/MNIST is not present")
    return str(SHARED_MNIST)


def _train(**kw):
    from nnkit.training import TrainConfig, train

    return train(TrainConfig(device="cpu", seed=0, **kw))


@pytest.fixture(scope="session")
def shapes_run(nnkit_home):
    """A cnn trained on `shapes` with the default recipe (shared by the attack/saliency/report tests)."""
    return _train(data="shapes", model="cnn", epochs=3, name="fixture-shapes")


@pytest.fixture(scope="session")
def confounded_run(nnkit_home):
    """A cnn trained on `shapes-confounded` (it learns the tag shortcut)."""
    return _train(data="shapes-confounded", model="cnn", epochs=3, name="fixture-confounded")

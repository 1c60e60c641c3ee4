import pytest
import torch

from nnkit.device import describe_device, get_device
from nnkit.errors import NnkitError
from nnkit.seeding import seed_everything


def test_cpu_and_env_override(monkeypatch):
    assert get_device("cpu").type == "cpu"
    monkeypatch.setenv("NNKIT_DEVICE", "cpu")
    assert get_device().type == "cpu"
    assert describe_device("cpu").startswith("cpu")


def test_unknown_or_absent_device_is_a_one_line_error():
    with pytest.raises(NnkitError, match="unknown device"):
        get_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(NnkitError, match="no CUDA"):
            get_device("cuda")


def test_seed_is_returned_and_reproducible():
    assert seed_everything(123) == 123
    a = torch.rand(3)
    seed_everything(123)
    assert torch.equal(a, torch.rand(3))
    picked = seed_everything(None)
    assert isinstance(picked, int) and picked >= 0


def test_atomic_files_get_ordinary_permissions(tmp_path):
    import stat

    from nnkit.atomic import write_text

    path = write_text(tmp_path / "a.txt", "hello")
    assert path.read_text() == "hello"
    assert stat.S_IMODE(path.stat().st_mode) & 0o044  # readable by group/others under the usual umask
    assert not list(tmp_path.glob(".a.txt.*"))  # no temp file left behind


def test_json_ready_writes_strict_json():
    import json

    import numpy as np
    import torch

    from nnkit.jsonable import json_ready

    obj = {"a": float("nan"), "b": [1.0, float("inf")], "c": np.float32(0.5), "d": torch.tensor([1, 2]), "e": "x"}
    assert json.loads(json.dumps(json_ready(obj), allow_nan=False)) == {"a": None, "b": [1.0, None], "c": 0.5,
                                                                        "d": [1, 2], "e": "x"}

import json

import pytest
import torch

from nnkit import models
from nnkit.errors import NnkitError
from nnkit.runs import RunStore, load_weights


def test_partial_runs_are_never_listed_and_finish_is_atomic(tmp_path):
    store = RunStore(tmp_path)
    w = store.begin("cnn-shapes")
    w.log_metrics({"epoch": 1})
    w.save_weights(models.create("mlp", 2, 1, 4))
    assert store.list() == []  # still being written
    info = w.finish({"kind": "classifier", "name": "first"})
    assert [r.run_id for r in store.list()] == [info.run_id]
    assert json.loads((info.path / "meta.json").read_text())["status"] == "complete"
    assert info.metrics() == [{"epoch": 1}]
    aborted = store.begin("x")
    aborted.abort()
    assert not aborted.path.exists() and len(store.list()) == 1


def test_get_by_id_name_prefix_and_delete(tmp_path):
    store = RunStore(tmp_path)
    a = store.begin("a").finish({"kind": "classifier", "name": "mine"})
    b = store.begin("b").finish({"kind": "gan", "name": "mine"})
    assert store.get(a.run_id).run_id == a.run_id
    assert store.get("mine").run_id == max(a.run_id, b.run_id)  # newest of that name
    assert [r.run_id for r in store.list(kind="gan")] == [b.run_id]
    with pytest.raises(NnkitError, match="ambiguous"):
        store.get(a.run_id[:4])
    with pytest.raises(NnkitError, match="no run"):
        store.get("missing")
    assert store.delete(a.run_id) == a.run_id
    assert [r.run_id for r in store.list()] == [b.run_id]


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_load_weights_safetensors_pt_and_refuses_pickled_code(tmp_path):
    state = {"w": torch.arange(3.0)}
    torch.save(state, tmp_path / "ok.pt")
    assert torch.equal(load_weights(tmp_path / "ok.pt")["w"], state["w"])
    torch.save({"state_dict": state}, tmp_path / "wrapped.pt")
    assert torch.equal(load_weights(tmp_path / "wrapped.pt")["w"], state["w"])
    torch.save({"w": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(NnkitError, match="not a loadable state dict"):
        load_weights(tmp_path / "evil.pt")
    with pytest.raises(NnkitError, match="no such weights file"):
        load_weights(tmp_path / "none.pt")

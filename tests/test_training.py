import threading

import pytest
import torch
from safetensors.torch import load_file

from nnkit.errors import Cancelled, NnkitError
from nnkit.runs import RunStore, load_classifier
from nnkit.training import TrainConfig, evaluate, train
from nnkit.training.augment import augment_batch

SMALL = {"n_train": 400, "n_test": 100}


def cfg(**kw):
    base = dict(data="shapes", data_opts=SMALL, model="cnn", epochs=1, batch_size=32, seed=7, device="cpu")
    return TrainConfig(**{**base, **kw})


def test_train_writes_a_complete_reproducible_run(tmp_path):
    store = RunStore(tmp_path)
    events = []
    result = train(cfg(name="tiny", epochs=2), on_progress=events.append, store=store)
    run = store.get("tiny")
    assert run.run_id == result.run_id
    for f in ("meta.json", "config.json", "metrics.jsonl", "model.safetensors", "eval_test.json"):
        assert (run.path / f).is_file()
    meta = run.meta
    assert meta["seed"] == 7 and meta["versions"]["torch"] and meta["device"].startswith("cpu")
    assert meta["dataset"]["n_val"] == 40 and meta["dataset"]["n_train"] == 360
    assert [m["epoch"] for m in run.metrics()] == [1, 2]
    assert {e.kind for e in events} == {"batch", "epoch"}
    assert sum(e.kind == "batch" for e in events) == 2 * 12
    # The stored model reproduces the stored test accuracy.
    from nnkit.data import create

    model = load_classifier(run)
    again = evaluate(model, create("shapes", **SMALL).split("test"), 10)
    assert again.accuracy == pytest.approx(meta["test_accuracy"])
    # Same seed, same weights.
    other = train(cfg(name="tiny2", epochs=2), store=store)
    w1, w2 = load_file(str(run.path / "model.safetensors")), load_file(str(store.get(other.run_id).path / "model.safetensors"))
    assert all(torch.equal(w1[k], w2[k]) for k in w1)


def test_cancel_stops_within_a_batch_and_leaves_no_run(tmp_path):
    store = RunStore(tmp_path)
    stop = threading.Event()
    steps = []

    def on_progress(p):
        steps.append(p.step)
        if p.step == 3:
            stop.set()

    with pytest.raises(Cancelled):
        train(cfg(epochs=5), on_progress=on_progress, stop_event=stop, store=store)
    assert max(steps) == 3
    assert store.list() == [] and not any((tmp_path / ".partial").iterdir())


def test_options_max_steps_early_stopping_and_bad_values(tmp_path):
    store = RunStore(tmp_path)
    r = train(cfg(max_steps=5, optimizer="momentum", schedule="cosine", augment="flip+crop"), store=store)
    assert r.history[-1]["step"] == 5
    r = train(cfg(epochs=4, early_stopping=1, lr=1e-9, optimizer="sgd", schedule="none"), store=store)
    assert r.stopped_early and len(r.history) < 4
    for bad in (dict(optimizer="lbfgs"), dict(lr=-1), dict(epochs=0), dict(augment="mixup"),
                dict(data="nope"), dict(model="nope"), dict(early_stopping_on="val_f1")):
        with pytest.raises(NnkitError):
            train(cfg(**bad), store=store)
    assert store.list() and not any((tmp_path / ".partial").iterdir())


@pytest.mark.parametrize("watch, epochs_run, kept", [("val_loss", 4, 2), ("val_accuracy", 6, 6)])
def test_early_stopping_watches_the_chosen_number_and_keeps_its_best_epoch(tmp_path, monkeypatch, watch, epochs_run,
                                                                          kept):
    """Scripted validation numbers: the accuracy creeps up every epoch while the loss is lowest at epoch 2 (an
    overfitting net). Watching the loss with patience 2 stops after epoch 4 and restores epoch 2's weights; watching
    the accuracy runs all 6 epochs."""
    import dataclasses

    import nnkit.training.loop as loop

    scripted = iter([(0.50, 1.0), (0.60, 0.9), (0.70, 1.2), (0.80, 1.3), (0.85, 1.4), (0.90, 1.5)])
    weights_after_epoch = []
    real = loop.evaluate

    def evaluate(model, split, *args, **kw):
        result = real(model, split, *args, **kw)
        if len(split) == 100:  # the test split (SMALL's n_test): its numbers are real
            return result
        weights_after_epoch.append({k: v.clone() for k, v in model.state_dict().items()})
        accuracy, loss = next(scripted)
        return dataclasses.replace(result, accuracy=accuracy, loss=loss)

    monkeypatch.setattr(loop, "evaluate", evaluate)
    r = train(cfg(epochs=6, early_stopping=2, early_stopping_on=watch, val_fraction=0.2, schedule="none",
                  model_opts={"widths": (4, 8, 8), "hidden": 16}),
              store=RunStore(tmp_path))
    assert len(r.history) == epochs_run and r.stopped_early == (epochs_run < 6)
    assert [h["val_loss"] for h in r.history] == [1.0, 0.9, 1.2, 1.3, 1.4, 1.5][:epochs_run]
    final = r.model.state_dict()
    assert all(torch.equal(final[k].cpu(), v.cpu()) for k, v in weights_after_epoch[kept - 1].items())


def test_augment_batch_shapes_and_range():
    x = torch.rand(6, 3, 8, 8)
    for mode in ("none", "flip", "crop", "flip+crop"):
        y = augment_batch(x, mode)
        assert y.shape == x.shape and 0 <= float(y.min()) and float(y.max()) <= 1
    assert torch.equal(augment_batch(x, "none"), x)
    # Flips and reflect-padded crops only move pixels: every output value is an input value.
    assert bool(torch.isin(augment_batch(x, "flip+crop"), x).all())


def test_mnist_real_path_reaches_90_percent(mnist_root, tmp_path):
    result = train(TrainConfig(data="mnist", data_opts={"download": False}, data_root=mnist_root, model="cnn",
                               epochs=12, seed=0, device="cpu"), store=RunStore(tmp_path))
    assert result.test.n == 1000 and result.test_accuracy >= 0.90

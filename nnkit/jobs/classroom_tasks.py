"""Job functions for the Classroom pages whose demos train something (each runs in a JobManager worker).

Like ``tasks.py``: the JobContext comes first, ``ctx.stop_event`` (and ``ctx.device`` where the demo takes
one) is passed on to one ``nnkit.classroom`` call, whose progress becomes ``ctx.update`` and
``ctx.log_metrics``; progress is reported in real units (``ctx.update(done=, total=, unit=)``: steps,
epochs, images, generations, PGD steps), so the bar shows a measured rate and time left. Classroom
results are throwaway teaching material, so a job returns them (curves, snapshots, a few images as numpy
arrays) rather than writing a run; only the tag-moved demo (the confounded model) and the trade-off demo
(the standard and the adversarially trained cnn, reused by later jobs) keep what they train as runs.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from nnkit.classroom import autoencoder, brittleness, convolution, gan, tricks
from nnkit.jobs.manager import JobContext
from nnkit.training import Progress, train

TEST_NOISES = (0.0, 0.2, 0.4, 0.6)  # σ of the test corruption the autoencoder page can switch between
CONFOUNDED_RECIPE = dict(model="cnn", model_opts={"widths": (8, 16, 32), "hidden": 32}, batch_size=64)


def mnist_on_disk() -> bool:
    """Whether MNIST's files are under the data root (``$NNKIT_DATA``), so a page can offer it as the default
    and fall back to the generated ``shapes`` offline. (torchvision keeps them in ``MNIST/raw``.)"""
    from nnkit.paths import data_root

    return (data_root() / "MNIST" / "raw" / "t10k-images-idx3-ubyte").is_file()


def _hw(image) -> np.ndarray:
    """C×H×W tensor → H×W (grey) or H×W×C numpy array in [0, 1]."""
    a = image.detach().float().cpu().numpy()
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def _train_progress(ctx: JobContext, share: float, what: str):
    """An ``on_progress`` for ``nnkit.training.train`` that fills the first ``share`` of the job's bar."""

    def on_progress(p: Progress) -> None:
        if p.kind == "batch":
            ctx.update(share * p.step / p.total_steps, f"{what}: epoch {p.epoch}/{p.epochs} · loss {p.loss:.3f}",
                       done=p.step, total=p.total_steps, unit="steps")

    return on_progress


# -- 5. feature maps of a trained CNN -----------------------------------------------------------
def feature_maps_task(ctx: JobContext, run_id: str, n_images: int = 8, max_channels: int = 8) -> dict:
    """Feature maps of the run's CNN for its first test images, layer by layer.

    Args:
        ctx: the job context (``ctx.device`` runs the model).
        run_id: a classifier run whose model is the nnkit cnn.
        n_images: test images to compute maps for (the page switches between them).
        max_channels: channels kept per layer.

    Returns:
        ``{"run_id", "class_names", "images" (H×W[×C] arrays), "labels", "predictions", "maps"
        (per image: the FeatureMap list of ``nnkit.classroom.convolution.feature_maps``)}``.
    """
    from nnkit.runs import RunStore, load_classifier, load_run_data
    from nnkit.training import predict_logits

    run = RunStore().get(run_id)
    ctx.update(0.05, f"loading {run.run_id}")
    model = load_classifier(run, ctx.device)
    ctx.update(0.2, f"loading its dataset ({run.meta.get('dataset', {}).get('name', '?')})")
    dataset = load_run_data(run)
    test = dataset.split("test")
    images, labels = test.images[:n_images], test.labels[:n_images]
    preds = predict_logits(model, images).argmax(1)
    maps = []
    for i, image in enumerate(images):
        ctx.check_cancelled()
        maps.append(convolution.feature_maps(model, image, max_channels))
        ctx.update(0.3 + 0.7 * (i + 1) / len(images), f"image {i + 1}/{len(images)}", done=i + 1,
                   total=len(images), unit="images")
    ctx.set_summary(f"feature maps of {len(maps)} test images of {run.name or run.run_id}")
    return {"run_id": run.run_id, "class_names": list(dataset.class_names), "images": [_hw(x) for x in images],
            "labels": labels.tolist(), "predictions": preds.tolist(), "maps": maps}


# -- 6. training tricks -------------------------------------------------------------------------
def tricks_task(ctx: JobContext, names: list[str], data: str = "mnist", n_train: int = 600, epochs: int = 30,
                seed: int = 0) -> dict:
    """Train the baseline and each chosen trick in turn (``nnkit.classroom.tricks.compare_tricks``).

    Args:
        ctx: the job context; ``ctx.device`` trains, ``ctx.stop_event`` cancels within one batch.
        names: keys of ``tricks.TRICKS``; data, n_train, epochs, seed: the shared recipe.

    Returns:
        ``{"data", "n_train", "epochs", "curves": [TrickCurve as a dict, plus "diverged" and "gap"]}``.
        The live metrics hold one record per epoch: ``{"trick", "epoch", "train_loss", "val_loss",
        "train_accuracy", "val_accuracy"}`` (``nnkit.plots.classroom.tricks.tricks_curves`` draws them).
    """
    names = list(names)
    total = max(1, len(names) * int(epochs))

    def on_progress(name: str, curve: tricks.TrickCurve) -> None:
        if curve.done:
            return
        i = names.index(name)
        ctx.update(message=f"{name}: epoch {curve.epochs[-1]}/{epochs} · train loss {curve.train_loss[-1]:.3g} · "
                           f"val acc {curve.val_accuracy[-1]:.1%}",
                   done=i * int(epochs) + len(curve.epochs), total=total, unit="epochs")
        ctx.log_metrics({"trick": name, "epoch": curve.epochs[-1], "train_loss": curve.train_loss[-1],
                         "val_loss": curve.val_loss[-1], "train_accuracy": curve.train_accuracy[-1],
                         "val_accuracy": curve.val_accuracy[-1]})

    ctx.update(0.0, f"preparing {data}")
    curves = tricks.compare_tricks(names, data=data, n_train=int(n_train), epochs=int(epochs), seed=int(seed),
                                   device=ctx.device, on_progress=on_progress, stop_event=ctx.stop_event)
    out = [dataclasses.asdict(c) | {"diverged": c.diverged, "gap": c.gap} for c in curves]
    ctx.set_summary(f"{len(curves)} trainings of {epochs} epochs on {n_train} {data} images")
    return {"data": data, "n_train": int(n_train), "epochs": int(epochs), "curves": out}


# -- 8. autoencoders ----------------------------------------------------------------------------
def autoencoder_task(ctx: JobContext, data: str = "shapes", data_opts: dict | None = None,
                     bottleneck: int = autoencoder.DEFAULT_BOTTLENECK, noise: float = 0.0,
                     steps: int = autoencoder.DEFAULT_STEPS, batch_size: int = 64, lr: float | None = None,
                     width: int | None = None, arch: str = "conv", seed: int = 0, show: int = 8) -> dict:
    """Train an undercomplete (noise 0) or denoising autoencoder and reconstruct test images.

    Args:
        ctx: the job context; ``ctx.device`` trains, ``ctx.stop_event`` cancels within one step.
        data, data_opts: the dataset (``nnkit.data.create``); its train split trains, its test split is shown.
        bottleneck, noise, steps, batch_size, lr, width, arch, seed: see ``autoencoder.train_autoencoder``.
        show: test images in the reconstruction grid.

    Returns:
        ``{"arch", "bottleneck", "noise", "losses" ([step, loss] pairs), "reconstructions" ({σ:
        Reconstructions} for σ in ``TEST_NOISES`` and the training σ), "codes" and "code_labels" (2-number
        bottleneck only), "class_names", "seconds" (the training's wall time)}``. Progress is in steps.
    """
    from nnkit import data as datasets

    ctx.update(0.0, f"preparing {data}")
    ds = datasets.create(data, **(data_opts or {}))
    train_images = ds.split("train").images
    test = ds.split("test")
    every = max(1, int(steps) // 40)
    losses, model = [], None
    t0 = time.perf_counter()
    for p in autoencoder.train_autoencoder(train_images, bottleneck=int(bottleneck), noise=float(noise),
                                           steps=int(steps), batch_size=int(batch_size), lr=lr, width=width,
                                           arch=arch, seed=int(seed), device=ctx.device, every=every,
                                           stop_event=ctx.stop_event):
        losses.append([p.step, p.loss])
        ctx.log_metrics({"step": p.step, "loss": p.loss})
        ctx.update(0.95 * p.step / p.steps, f"step {p.step}/{p.steps} · reconstruction MSE {p.loss:.4f}",
                   done=p.step, total=p.steps, unit="steps")
        model = p.model
    seconds = time.perf_counter() - t0
    model.eval()
    sample = test.images[:show]
    noises = sorted(set(TEST_NOISES) | {round(float(noise), 2)})
    recs = {sigma: autoencoder.reconstruct(model, sample, sigma) for sigma in noises}
    out = {"data": data, "arch": arch, "bottleneck": int(bottleneck), "noise": float(noise), "steps": int(steps),
           "losses": losses, "reconstructions": recs, "class_names": list(ds.class_names), "codes": None,
           "code_labels": None, "seconds": seconds}
    if int(bottleneck) == 2:
        out["codes"] = autoencoder.codes(model, test.images[:1000])
        out["code_labels"] = test.labels[:1000].tolist()
    kind = "denoising" if noise > 0 else "undercomplete"
    ctx.set_summary(f"{kind} autoencoder, bottleneck {bottleneck}: test MSE "
                    f"{recs[round(float(noise), 2)].mse_reconstructed:.4f}")
    return out


# -- 9. GAN minimax -----------------------------------------------------------------------------
def gan_task(ctx: JobContext, target: str = "gaussian", steps: int = 2000, every: int = 50, lr: float = 1e-3,
             hidden: int = 32, batch_size: int = 128, samples: int = 400, seed: int = 0) -> dict:
    """Play the toy GAN game (``nnkit.classroom.gan.gan_steps``), one snapshot every ``every`` iterations.

    Args:
        ctx: the job context; ``ctx.stop_event`` cancels within one iteration (the game runs on the CPU:
            its tensors are tiny).
        target, steps, every, lr, hidden, batch_size, samples, seed: see ``gan_steps``.

    Returns:
        ``{"target", "frames"}``; each frame (also logged live as a metric record) is a dict with
        ``step``, ``d_loss``, ``g_loss``, ``value``, ``real``, ``fake``, ``grid``, ``d_grid``
        (``nnkit.plots.classroom.gan.gan_figure`` draws them).
    """
    dim = gan.TARGETS[target][0] if target in gan.TARGETS else 1
    frames = []
    for f in gan.gan_steps(target, steps=int(steps), every=int(every), batch_size=int(batch_size), lr=float(lr),
                           hidden=int(hidden), samples=int(samples), grid_size=101 if dim == 1 else 41,
                           seed=int(seed), stop_event=ctx.stop_event):
        record = {"step": f.step, "d_loss": f.d_loss, "g_loss": f.g_loss, "value": f.value, "real": f.real,
                  "fake": f.fake, "grid": f.grid, "d_grid": f.d_grid}
        frames.append(record)
        ctx.log_metrics(record)
        losses = "" if math.isnan(f.d_loss) else f" · D loss {f.d_loss:.3f} · G loss {f.g_loss:.3f}"
        ctx.update(f.step / max(1, int(steps)), f"step {f.step}/{steps}{losses}", done=f.step,
                   total=max(1, int(steps)), unit="steps")
    last = frames[-1]
    ctx.set_summary(f"{steps} steps: V(D, G) = {last['value']:.3f}")
    return {"target": target, "frames": frames}


# -- 10. brittleness and confounding ------------------------------------------------------------
def one_pixel_task(ctx: JobContext, run_id: str | None = None, n_images: int = 200, max_images: int = 30,
                   popsize: int = 100, generations: int = 20, seed: int = 0, digit_n_train: int = 1000,
                   digit_epochs: int = 10) -> dict:
    """Find a test image whose decision one changed pixel flips (``brittleness.find_one_pixel_flip``).

    Args:
        ctx: the job context (``ctx.device``, ``ctx.stop_event``).
        run_id: the classifier run to attack; None trains the small MNIST digit model first
            (``brittleness.train_digit_model``, MNIST must be on disk or downloadable).
        n_images: first test images considered; max_images, popsize, generations, seed: the search.
        digit_n_train, digit_epochs: the digit model's training when ``run_id`` is None.

    Returns:
        ``{"flip" (PixelFlip or None), "class_names", "model" (a label), "searched"}``.
    """
    from nnkit import data as datasets

    if run_id is None:
        model = brittleness.train_digit_model(n_train=int(digit_n_train), epochs=int(digit_epochs), seed=int(seed),
                                              device=ctx.device, on_progress=_train_progress(ctx, 0.4, "digit model"),
                                              stop_event=ctx.stop_event)
        dataset = datasets.create("mnist", limit=int(digit_n_train))
        label = f"MLP 784-128-10 trained on {digit_n_train} MNIST digits"
    else:
        from nnkit.runs import RunStore, load_classifier, load_run_data

        run = RunStore().get(run_id)
        ctx.update(0.05, f"loading {run.run_id} and its test images")
        model = load_classifier(run, ctx.device)
        dataset = load_run_data(run)
        label = run.name or run.run_id
    test = dataset.split("test")
    images, labels = test.images[:n_images], test.labels[:n_images]
    start = 0.4 if run_id is None else 0.1

    def on_progress(done: int, total: int) -> None:
        ctx.update(start + (1 - start) * done / max(total, 1), f"single-pixel search: generation {done}/{total}",
                   done=done, total=max(total, 1), unit="generations")

    ctx.update(start, "single-pixel search")
    flip = brittleness.find_one_pixel_flip(model, images, labels, max_images=int(max_images), popsize=int(popsize),
                                           generations=int(generations), seed=int(seed), on_progress=on_progress,
                                           stop_event=ctx.stop_event)
    names = list(dataset.class_names)
    if flip is None:
        ctx.set_summary(f"no single pixel flipped any of the {max_images} least confident images")
    else:
        ctx.set_summary(f"one pixel turns {names[flip.prediction_before]} into {names[flip.prediction_after]}")
    return {"flip": flip, "class_names": names, "model": label, "searched": int(max_images)}


def tag_moved_task(ctx: JobContext, run_id: str | None = None, n: int = 200, examples: int = 4,
                   n_train: int = 1000, epochs: int = 3, seed: int = 0) -> dict:
    """The tag-moved test (``brittleness.tag_moved_test``) on a model trained on ``shapes-confounded``.

    Args:
        ctx: the job context (``ctx.device``, ``ctx.stop_event``).
        run_id: a classifier run for 10-class 3×32×32 images; None first trains a small cnn on
            ``shapes-confounded`` (``n_train`` images, ``epochs``), saved as a run named
            "classroom-confounded" so the Explain page can open it too.
        n: test images per variant; examples: images shown with saliency maps.

    Returns:
        ``{"report" (TagMovedReport), "run_id", "model" (a label)}``.
    """
    from nnkit.runs import RunStore, load_classifier
    from nnkit.training import TrainConfig, train

    if run_id is None:
        cfg = TrainConfig(data="shapes-confounded", data_opts={"n_train": int(n_train), "n_test": int(n)},
                          epochs=int(epochs), seed=int(seed), device=ctx.device, name="classroom-confounded",
                          **CONFOUNDED_RECIPE)
        result = train(cfg, on_progress=_train_progress(ctx, 0.8, "confounded model"), stop_event=ctx.stop_event)
        run_id = result.run_id
    run = RunStore().get(run_id)
    model = load_classifier(run, ctx.device)
    ctx.update(0.85, "moving the tags and computing saliency maps")
    ctx.check_cancelled()
    report = brittleness.tag_moved_test(model, n=int(n), examples=int(examples))
    acc = report.accuracy
    ctx.set_summary(f"tag agrees {acc['tag-agrees']:.0%} · tag moved {acc['tag-shuffled']:.0%} · "
                    f"follows the tag {report.follows_tag:.0%}")
    return {"report": report, "run_id": run.run_id, "model": run.name or run.run_id}


def tradeoff_task(ctx: JobContext, n: int = 200, steps: int = brittleness.TRADEOFF_PGD_STEPS, show: int = 6,
                  seed: int = 0) -> dict:
    """The robustness trade-off: a standard and an adversarially trained cnn attacked with PGD over an ε grid.

    Each model is trained once with ``brittleness.tradeoff_configs`` (FGSM with a random start for the
    defended one, Wong et al. 2020) and kept as a run; later jobs reuse the stored runs
    (``brittleness.find_trained``). Both are then attacked with PGD (Madry et al. 2018) at every ε of
    ``brittleness.TRADEOFF_EPS`` on the same ``n`` test images.

    Args:
        ctx: the job context (``ctx.device`` trains and attacks, ``ctx.stop_event`` cancels within one step).
        n: test images attacked; steps: PGD steps per ε; show: images kept for the page; seed: training and
            attack seed.

    Returns:
        ``{"report": TradeoffReport}``. Progress: training steps of the models still to train, then PGD steps.
    """
    from nnkit import data as datasets
    from nnkit.runs import RunStore, load_classifier
    from nnkit.training.adversarial import describe_defence

    configs = brittleness.tradeoff_configs(seed=int(seed), device=ctx.device)
    runs, trained = {}, {}
    todo = []
    for key, cfg in configs.items():
        run = brittleness.find_trained(cfg)
        if run is None:
            todo.append(key)
        else:
            runs[key] = run
    offset, per_model = 0, None
    for key in todo:
        def on_progress(p: Progress, key=key, offset=offset) -> None:
            nonlocal per_model
            per_model = p.total_steps
            if p.kind == "batch":
                ctx.update(message=f"training the {key} model: epoch {p.epoch}/{p.epochs} · loss {p.loss:.3f}",
                           done=offset + p.step, total=p.total_steps * len(todo), unit="steps")

        result = train(configs[key], on_progress=on_progress, stop_event=ctx.stop_event)
        offset += per_model or 0
        runs[key] = RunStore().get(result.run_id)
        trained[key] = result.seconds
    ds = datasets.create(configs["standard"].data, **{**configs["standard"].data_opts, "n_test": int(n)})
    test = ds.split("test")
    images, labels = test.images[: int(n)], test.labels[: int(n)]
    attacked = sum(1 for e in brittleness.TRADEOFF_EPS if e > 0) * int(steps)
    models = []
    for i, key in enumerate(("standard", "adversarial")):
        model = load_classifier(runs[key], ctx.device)

        def on_attack(done: int, total: int, i=i, key=key) -> None:
            ctx.update(message=f"PGD on the {key} model", done=i * attacked + done, total=2 * attacked,
                       unit="PGD steps")

        curve = brittleness.robust_accuracy_curve(model, images, labels, steps=int(steps), seed=int(seed),
                                                  show=int(show), on_progress=on_attack, stop_event=ctx.stop_event)
        defence = runs[key].meta.get("defence")
        label = ("standard training" if not defence else
                 f"adversarial training ({describe_defence(defence)})")
        models.append(brittleness.TradeoffModel(key, runs[key].run_id, label, float(runs[key].meta.get("seconds", 0)),
                                                key in trained, curve["robust_accuracy"], curve["predictions"],
                                                curve["images"]))
    report = brittleness.TradeoffReport(list(brittleness.TRADEOFF_EPS), models,
                                        np.stack([_hw(x) for x in images[: int(show)]]), labels[: int(show)].tolist(),
                                        list(ds.class_names), len(images), int(steps))
    k = report.at(8 / 255)
    std, adv = report.model("standard"), report.model("adversarial")
    ctx.set_summary(f"clean {std.robust_accuracy[0]:.1%} vs {adv.robust_accuracy[0]:.1%}; at ε = 8/255 "
                    f"{std.robust_accuracy[k]:.1%} vs {adv.robust_accuracy[k]:.1%} (standard vs adversarial)")
    return {"report": report}

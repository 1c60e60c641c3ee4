"""Demo 10: brittleness and confounding, one screen each.

One pixel: for a small digit classifier, the lab's single-pixel attack (``attacks.OnePixel``,
differential evolution as in Su, Vargas & Sakurai 2019, "One pixel attack for fooling deep neural
networks") finds digits whose decision one changed pixel flips; ``one_pixel_search`` does the same for
one image by trying every pixel in black and in white (exact for those values).

Confounding: a model trained on ``shapes-confounded`` learns the class-specific corner tag (a
shortcut, Geirhos et al. 2020). Moving the tag to another class's corner and colour moves the
prediction with it, and the saliency map (vanilla gradient, Simonyan et al. 2014) puts its weight on
the tag rather than on the shape.

The trade-off: a standard model and one trained on adversarial examples (FGSM with a random start,
Wong, Rice & Kolter 2020, "Fast is better than free"; PGD, Madry et al. 2018, "Towards Deep Learning
Models Resistant to Adversarial Attacks") are attacked with PGD (Madry et al. 2018) over a grid of L∞
budgets ε. The defended model gives up some clean accuracy and keeps much more robust accuracy
(Tsipras et al. 2019, "Robustness May Be at Odds with Accuracy").
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from nnkit import data as datasets
from nnkit.classroom._threads import one_thread
from nnkit.confounding.behaviour import counterfactual_test
from nnkit.confounding.metrics import relevance_mass
from nnkit.data.base import Dataset
from nnkit.errors import NnkitError
from nnkit.runs.store import RunInfo, RunStore
from nnkit.saliency import explain, to_map
from nnkit.training import Progress, TrainConfig, predict_logits, train


def _hw(image: torch.Tensor) -> np.ndarray:
    """C×H×W tensor → H×W (grey) or H×W×C (colour) numpy array for plotly's imshow."""
    a = image.detach().float().cpu().numpy()
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


@dataclass
class PixelFlip:
    """A single pixel change that changes the model's decision."""

    index: int  # which of the searched images
    image: np.ndarray  # H×W or H×W×C, in [0, 1]
    flipped: np.ndarray  # the same image with one pixel changed
    row: int
    col: int
    old_value: np.ndarray  # the pixel's C values before
    new_value: np.ndarray  # ... and after
    label: int  # true class
    prediction_before: int
    prediction_after: int
    probabilities_before: np.ndarray  # K softmax probabilities
    probabilities_after: np.ndarray
    queries: int  # images the model evaluated in the search for this image
    search: str  # "differential evolution" (attacks.OnePixel) or "exhaustive"


def one_pixel_search(model: torch.nn.Module, image: torch.Tensor, label: int | None = None,
                     values=(0.0, 1.0), batch_size: int = 1024) -> PixelFlip | None:
    """Exhaustive search: every pixel set to each of ``values``; the change that flips the decision most surely.

    Exact for the values tried (the page can say "no single black or white pixel changes this
    digit"), and cheap for small images: 28×28×2 candidates are a few batched forward passes.

    Args:
        model: a classifier taking [0, 1] images.
        image: one C×H×W image in [0, 1].
        label: its true class (default: the model's prediction, so "flip" means "change").
        values: the values tried (written into all channels of the pixel: black and white by default).
        batch_size: candidate images per forward pass.

    Shape:
        image C×H×W → H·W·len(values) candidates.

    Returns:
        The PixelFlip whose new class gets the highest probability, or None when no single pixel
        changes the prediction.
    """
    if image.dim() != 3:
        raise NnkitError(f"expected one C×H×W image, got shape {tuple(image.shape)}")
    with one_thread(), torch.no_grad():
        return _one_pixel_search(model, image.detach().cpu(), label, values, batch_size)


def _one_pixel_search(model, image, label, values, batch_size) -> PixelFlip | None:
    c, h, w = image.shape
    before = torch.softmax(predict_logits(model, image[None]), 1)[0]
    pred0 = int(before.argmax())
    label = pred0 if label is None else int(label)
    pos = torch.arange(h * w)
    best, best_p = None, -1.0
    for value in values:
        for start in range(0, h * w, batch_size):
            idx = pos[start:start + batch_size]
            cand = image[None].repeat(len(idx), 1, 1, 1)
            cand[torch.arange(len(idx)), :, idx // w, idx % w] = float(value)
            prob = torch.softmax(predict_logits(model, cand, batch_size), 1)
            changed = (prob.argmax(1) != pred0).nonzero().flatten()
            if changed.numel():
                top = changed[prob[changed].max(1).values.argmax()]
                if float(prob[top].max()) > best_p:
                    best_p = float(prob[top].max())
                    best = (int(idx[top]), cand[top], prob[top])
    if best is None:
        return None
    p, flipped, prob = best
    r, col = divmod(p, w)
    return PixelFlip(0, _hw(image), _hw(flipped), r, col, image[:, r, col].numpy(), flipped[:, r, col].numpy(), label,
                     pred0, int(prob.argmax()), before.numpy(), prob.numpy(), h * w * len(values) + 1, "exhaustive")


def find_one_pixel_flip(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, max_images: int = 30,
                        popsize: int = 100, generations: int = 20, seed: int = 0,
                        on_progress: Callable[[int, int], None] | None = None,
                        stop_event: threading.Event | None = None) -> PixelFlip | None:
    """Search correctly classified images, least confident first, for one that a single pixel flips.

    The search is the lab's single-pixel attack (``attacks.OnePixel``, differential evolution as in
    Su et al. 2019) with a classroom budget: ``popsize`` × (``generations`` + 1) queries per image at
    most, all images searched at once.

    Args:
        model: a classifier; images: N×C×H×W in [0, 1]; labels: N true classes.
        max_images: the least confident correctly classified images searched.
        popsize, generations: the attack's budget; seed: its random numbers.
        on_progress: called with (generations done, total) as the search goes (a job's progress bar).
        stop_event: when set, the search stops within one model call and ``Cancelled`` is raised.

    Returns:
        The PixelFlip of the least confident image that was flipped (``index`` is its position in
        ``images``), or None when none was.
    """
    from attacks import OnePixel

    with one_thread():
        logits = predict_logits(model, images)
        correct = (logits.argmax(1) == labels.cpu()).nonzero().flatten()
        if correct.numel() == 0:
            return None
        top2 = logits[correct].topk(2, dim=1).values
        order = correct[(top2[:, 0] - top2[:, 1]).argsort()][:max_images]  # smallest logit margin first
        result = OnePixel(model, pixels=1, popsize=popsize, generations=generations, seed=seed)(
            images[order], labels[order], on_progress=on_progress, stop_event=stop_event)
    hits = result.success.nonzero().flatten()
    if hits.numel() == 0:
        return None
    j = int(hits[0])
    i = int(order[j])
    row, col = (int(v) for v in result.perturbation["pixels"][j, 0])
    original = images[i].detach().cpu()
    return PixelFlip(i, _hw(original), _hw(result.images[j]), row, col, original[:, row, col].numpy(),
                     result.images[j][:, row, col].numpy(), int(labels[i]), int(result.pred_before[j]),
                     int(result.pred_after[j]), result.probs_before[j].numpy(), result.probs_after[j].numpy(),
                     int(result.queries[j]), "differential evolution")


def train_digit_model(data_root: str | None = None, n_train: int = 1000, epochs: int = 10, seed: int = 0,
                      device: str | None = "cpu", on_progress: Callable[[Progress], None] | None = None,
                      stop_event: threading.Event | None = None) -> torch.nn.Module:
    """A small MNIST classifier (MLP 784-128-10, a few seconds on a CPU) for the one-pixel screen.

    It is trained with ``nnkit.training.train`` into a throwaway run store; a page may instead load a
    trained MNIST run from the user's store.

    Args:
        data_root: where MNIST is; n_train: training digits; epochs, seed, device: the training's.
        on_progress, stop_event: passed on to ``nnkit.training.train`` (a job's progress and cancel).

    Returns:
        The Classifier in eval mode.
    """
    cfg = TrainConfig(data="mnist", data_root=data_root, data_opts={"limit": int(n_train)}, model="mlp",
                      model_opts={"hidden": (128,)}, optimizer="adam", lr=2e-3, schedule="onecycle",
                      epochs=int(epochs), batch_size=64, val_fraction=0.0, seed=seed, device=device)
    with tempfile.TemporaryDirectory(prefix="nnkit-digits-") as tmp, one_thread():
        return train(cfg, on_progress=on_progress, stop_event=stop_event, store=RunStore(tmp)).model.eval()


@dataclass
class TagExample:
    """One base image shown with its own tag and with another class's tag."""

    index: int
    label: int  # the shape's class
    tag_class: int  # the class whose tag it carries in the "moved" version
    image_tagged: np.ndarray  # H×W×C: its own class's tag
    image_moved: np.ndarray  # the tag of ``tag_class`` instead
    prediction_tagged: int
    prediction_moved: int
    saliency_tagged: np.ndarray  # H×W gradient magnitude
    saliency_moved: np.ndarray
    tag_share_tagged: float  # share of the saliency inside the tag's box
    tag_share_moved: float
    tag_area: float  # share of the image the tag covers (what a map that ignores it would give)


@dataclass
class TagMovedReport:
    """Accuracy with the tag agreeing / absent / moved, and a few examples with saliency maps."""

    accuracy: dict  # "tag-agrees", "no-tag", "tag-shuffled" -> accuracy
    follows_tag: float  # tag-shuffled: share of predictions naming the tag's class
    chance: float
    n: int
    class_names: list[str]
    examples: list[TagExample]


def tag_moved_test(model: torch.nn.Module, dataset: Dataset | None = None, n: int = 200, examples: int = 4,
                   method: str = "saliency") -> TagMovedReport:
    """The tag-moved test on a model trained on ``shapes-confounded``.

    Args:
        model: the classifier.
        dataset: a ``shapes-confounded`` Dataset (default: ``datasets.create("shapes-confounded",
            n_train=100, n_test=n)``; the test variants are what matter).
        n: test images per variant.
        examples: base images to show (the first ones the model gets right with their own tag).
        method: the saliency method (``nnkit.saliency.explain``).

    Returns:
        TagMovedReport: a model that reads the tag scores well on tag-agrees, badly on tag-shuffled,
        and its follows_tag is far above chance.
    """
    if dataset is None:
        dataset = datasets.create("shapes-confounded", n_train=100, n_test=int(n))
    with one_thread():
        return _tag_moved_test(model, dataset, int(n), int(examples), method)


def _tag_moved_test(model, dataset: Dataset, n: int, examples: int, method: str) -> TagMovedReport:
    cf = counterfactual_test(model, dataset.splits, dataset.num_classes, limit=n)
    agrees, moved = dataset.split("tag-agrees"), dataset.split("tag-shuffled")
    pred_a = predict_logits(model, agrees.images[:n]).argmax(1)
    pred_m = predict_logits(model, moved.images[:n]).argmax(1)
    picks = (pred_a == agrees.labels[:n]).nonzero().flatten()[:examples]
    out = []
    if picks.numel():
        both = torch.cat([agrees.images[picks], moved.images[picks]])
        masks = torch.cat([agrees.masks[picks], moved.masks[picks]])
        maps = to_map(explain(model, both, method=method), reduce="abs")
        share = relevance_mass(maps, masks)
        k = len(picks)
        for j, i in enumerate(picks.tolist()):
            out.append(TagExample(i, int(agrees.labels[i]), int(moved.tags[i]), _hw(agrees.images[i]),
                                  _hw(moved.images[i]), int(pred_a[i]), int(pred_m[i]), maps[j].cpu().numpy(),
                                  maps[k + j].cpu().numpy(), float(share[j]), float(share[k + j]),
                                  float(agrees.masks[i].float().mean())))
    return TagMovedReport(cf.accuracy, cf.follows_tag, cf.chance, cf.n, list(dataset.class_names), out)


# -- the robustness trade-off --------------------------------------------------------------------
TRADEOFF_EPS = (0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255)  # the ε grid the page's slider moves over
TRADEOFF_PGD_STEPS = 10  # PGD steps per ε (α = 2.5·ε/steps, Madry et al.'s rule)
TRADEOFF_NAMES = {"standard": "classroom-standard", "adversarial": "classroom-adversarial"}
# A small cnn on shapes, both models with the same recipe; only ``adversarial`` differs. Measured under the page.
TRADEOFF_RECIPE = dict(data="shapes", data_opts={"n_train": 4000, "n_test": 200}, model="cnn",
                       model_opts={"widths": [16, 32, 64], "hidden": 64, "dropout": 0.0}, epochs=5, batch_size=64,
                       lr=3e-3)
# FGSM at 8/255 from the first step left this cnn near chance after 10 epochs (measured: 18% clean); two clean
# epochs first, then three on FGSM examples, reached 90%+ clean and about half of it under PGD at 8/255.
TRADEOFF_DEFENCE = dict(adversarial="fgsm", adv_eps=8 / 255, adv_warmup=2)


def tradeoff_configs(seed: int = 0, device: str | None = None) -> dict[str, TrainConfig]:
    """The two trainings of the trade-off demo: the same small cnn on shapes, standard and adversarial.

    Args:
        seed: both trainings' seed; device: where they train.

    Returns:
        ``{"standard": TrainConfig, "adversarial": TrainConfig}`` named as in ``TRADEOFF_NAMES`` (the
        adversarial one trains on FGSM examples with a random start at ε = 8/255, Wong et al. 2020).
    """
    base = dict(TRADEOFF_RECIPE, data_opts=dict(TRADEOFF_RECIPE["data_opts"]),
                model_opts=dict(TRADEOFF_RECIPE["model_opts"]), seed=int(seed), device=device)
    return {"standard": TrainConfig(**base, name=TRADEOFF_NAMES["standard"]),
            "adversarial": TrainConfig(**base, **TRADEOFF_DEFENCE, name=TRADEOFF_NAMES["adversarial"])}


def tradeoff_recipe_text() -> str:
    """What the trade-off demo trains, in words (the page says it before the user starts a job)."""
    r, opts = TRADEOFF_RECIPE, TRADEOFF_RECIPE["model_opts"]
    widths = "-".join(str(w) for w in opts["widths"])
    warm = TRADEOFF_DEFENCE.get("adv_warmup", 0)
    first = f"the first {warm} of them on clean images, then " if warm else ""
    return (f"two cnns (conv widths {widths}, {opts['hidden']} hidden units) on {r['data_opts']['n_train']:,} "
            f"`{r['data']}` images for {r['epochs']} epochs each, the same seed; the defended one trains "
            f"{first}on FGSM examples with a random start at ε = {round(TRADEOFF_DEFENCE['adv_eps'] * 255)}/255.")


_RECIPE_KEYS = ("data", "data_opts", "model", "model_opts", "epochs", "batch_size", "lr", "optimizer", "schedule",
                "augment", "val_fraction", "seed", "max_steps", "adversarial", "adv_eps", "adv_steps", "adv_alpha")


def _jsonish(value):
    """Tuples as lists, as a config reads back from its JSON."""
    if isinstance(value, (list, tuple)):
        return [_jsonish(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonish(v) for k, v in value.items()}
    return value


def find_trained(config: TrainConfig, store: RunStore | None = None) -> RunInfo | None:
    """The newest stored run trained with ``config``'s recipe and name (so the demo trains each model once).

    Args:
        config: a trade-off config (``tradeoff_configs``); store: the run store (default ``$NNKIT_HOME``).

    Returns:
        The RunInfo, or None when no complete run has that name and the same recipe in its ``config.json``.
    """
    store = store or RunStore()
    want = {k: _jsonish(getattr(config, k)) for k in _RECIPE_KEYS}
    for run in sorted(store.list("classifier"), key=lambda r: r.run_id, reverse=True):
        if run.name != config.name:
            continue
        saved = run.optional_json("config.json") or {}
        if all(_jsonish(saved.get(k)) == v for k, v in want.items()):
            return run
    return None


def robust_accuracy_curve(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                          eps_grid=TRADEOFF_EPS, steps: int = TRADEOFF_PGD_STEPS, seed: int = 0, show: int = 6,
                          on_progress: Callable[[int, int], None] | None = None,
                          stop_event: threading.Event | None = None) -> dict:
    """PGD robust accuracy of ``model`` at every ε of the grid (Madry et al. 2018, L∞, random start).

    An image counts as robust at ε only if no attack at any ε' ≤ ε fooled it: an adversarial image found
    at a smaller budget lies inside the larger ball too, so the curve never rises with ε (a PGD run at a
    larger ε that happens to miss does not make the model more robust).

    Args:
        model: a classifier on [0, 1] images; images: N×C×H×W; labels: N true classes.
        eps_grid: the budgets, ascending (0 is the clean accuracy, no attack runs).
        steps: PGD steps per ε (step size 2.5·ε/steps); seed: the attack's random starts.
        show: the first images whose attacked versions and predictions are kept for the page.
        on_progress: called with (PGD steps done, PGD steps in all) across the grid.
        stop_event: when set, the attack stops within one model call and ``Cancelled`` is raised.

    Shape:
        images N×C×H×W → ``images`` S×H×W[×C] arrays for each ε, S = min(show, N).

    Returns:
        ``{"eps": [...], "robust_accuracy": [...] (one per ε), "predictions": len(eps)×S ints, "images":
        len(eps)×S arrays (the attacked image shown at each ε: the first one that fooled the model at any
        ε' ≤ ε, else the attack at ε)}``.
    """
    from attacks.pgd import PGD

    eps_grid = [float(e) for e in eps_grid]
    if any(b < a for a, b in zip(eps_grid, eps_grid[1:], strict=False)) or (eps_grid and eps_grid[0] < 0):
        raise NnkitError(f"the ε grid must be ascending and ≥ 0, got {eps_grid}")
    labels = labels.cpu()
    n_show = min(int(show), len(images))
    attacked = [e for e in eps_grid if e > 0]
    total, done = max(1, len(attacked) * int(steps)), 0
    with one_thread():
        clean_pred = predict_logits(model, images).argmax(1)
        robust = clean_pred == labels
        shown = images[:n_show].detach().cpu().clone()
        shown_pred = clean_pred[:n_show].clone()
        accs, preds, pictures = [], [], []
        for eps in eps_grid:
            if eps > 0:
                attack = PGD(model, eps=eps, alpha=2.5 * eps / int(steps), steps=int(steps), seed=seed)

                def progress(d: int, t: int, offset=done) -> None:
                    if on_progress is not None:
                        on_progress(offset + d, total)

                result = attack(images, labels, on_progress=progress, stop_event=stop_event)
                done += int(steps)
                if on_progress is not None:
                    on_progress(done, total)
                fooled_now = result.pred_after != labels
                newly = robust & fooled_now
                robust = robust & ~fooled_now
                # Keep the first image that fooled the model; a robust one shows the attack at this ε.
                for i in range(n_show):
                    if bool(newly[i]) or bool(robust[i]):
                        shown[i] = result.images[i]
                        shown_pred[i] = result.pred_after[i]
            accs.append(float(robust.float().mean()))
            preds.append(shown_pred.tolist())
            pictures.append(np.stack([_hw(x) for x in shown]))
    return {"eps": eps_grid, "robust_accuracy": accs, "predictions": preds, "images": pictures}


@dataclass
class TradeoffModel:
    """One side of the trade-off: a model and its robust accuracy over the ε grid."""

    key: str  # "standard" or "adversarial"
    run_id: str
    label: str  # what it was trained with, in words
    train_seconds: float  # its training's measured wall time (on the machine that trained it)
    trained_now: bool  # False: reused from the run store
    robust_accuracy: list[float]  # one per ε (the first, ε = 0, is the clean accuracy)
    predictions: list[list[int]]  # per ε: the prediction on each shown image
    images: list[np.ndarray]  # per ε: S×H×W[×C] attacked images shown


@dataclass
class TradeoffReport:
    """Both models attacked on the same test images over the same ε grid."""

    eps: list[float]
    models: list[TradeoffModel]
    clean_images: np.ndarray  # S×H×W[×C] the shown test images
    labels: list[int]  # their true classes
    class_names: list[str]
    n: int  # test images attacked
    steps: int  # PGD steps per ε

    def model(self, key: str) -> TradeoffModel:
        return next(m for m in self.models if m.key == key)

    def at(self, eps: float) -> int:
        """The grid index of ``eps`` (the nearest budget of the grid)."""
        return int(np.argmin([abs(e - float(eps)) for e in self.eps]))

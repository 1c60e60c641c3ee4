"""The attack contract: one base class, the single place where an attack calls the model.

Every attack is built with the model and its hyper-parameters (the paper's defaults as keyword
defaults) and called with ``(images, labels[, targets])``; it returns an :class:`AttackResult`.
The base class

- puts the model in eval mode for the call and restores its mode afterwards,
- takes the device from the model and moves the images there,
- predicts the clean images once; images the model already gets wrong (or, when targeted, already
  puts in the target class) are not attacked, so robust accuracy can never exceed clean accuracy,
- runs the attack through an :class:`Oracle`, which counts every image the model sees, per attacked
  image, and runs without autograd unless the attack asks for gradients,
- checks the returned adversarial images with the model itself: ``success`` is what the model
  predicts on the returned images, never what the search believed.

Attacks that only need forward passes (the single-pixel attack) run on an inference copy of the model
with BatchNorm folded into the convolutions (``torch.fx`` fusion) and channels-last memory layout,
which is the same function up to float rounding and about twice as fast on CPU.

Randomness is keyed by the image, and results do not depend on how the images are split. Every
attacked image draws its random numbers from a generator of its own, seeded from (the attack's seed,
the image's key): its index in the split, as ``attacks.on_run`` passes it, or its position in the
batch by default (see :meth:`Oracle.item_generators`). An image therefore gets the same attack
whether it runs alone, in a batch of 1,000, with another memory budget, or on rank 3 of 8 under
``torchrun`` (where ``__call__`` attacks ``images[rank::N]`` and gathers the results on every rank).
For the single-pixel attack this holds exactly, bit for bit, on the CPU: its per-image decisions
(the first fooling candidate, the queries it took) are defined per image, never per batch, and every
gradient-free forward pass is padded to a multiple of 16 rows, for which the CPU kernels give each
row the same bits whatever the batch holds (checked for the CNNs here; tests/test_distributed.py).
On a GPU, and for the gradient attacks (patches), the same holds up to float rounding of the
model's outputs, which can rarely tip a comparison.
"""

from __future__ import annotations

import abc
import contextlib
import copy
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from nnkit import distributed
from nnkit.errors import Cancelled, NnkitError
from nnkit.seeding import item_seed, seed_everything

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]

# Gradient-free forward passes are padded to a multiple of this many rows: CPU kernels block the batch
# dimension, and a short or ragged batch can round a row differently from the same row in a full block.
ROW_BLOCK = 16


@dataclass
class AttackResult:
    """What an attack returns for a batch of N images (all tensors on the CPU).

    Shape:
        images: N×C×H×W adversarial images in [0, 1] (the clean image where ``attacked`` is False);
        labels, pred_before, pred_after: N int64; targets: N int64 or None (untargeted);
        success, attacked: N bool; queries: N int64; probs_before, probs_after: N×K.
    """

    images: torch.Tensor
    labels: torch.Tensor
    targets: torch.Tensor | None
    success: torch.Tensor  # the model's prediction on ``images`` meets the goal (wrong class / target class)
    attacked: torch.Tensor  # clean image correctly classified and not already the target: the attack ran on it
    queries: torch.Tensor  # images the model evaluated for this image (clean check, search, final check)
    probs_before: torch.Tensor  # softmax on the clean images
    probs_after: torch.Tensor  # softmax on the returned images
    perturbation: dict[str, torch.Tensor]  # per-image tensors (first dim N), e.g. pixel positions and colours
    shared: dict[str, torch.Tensor] = field(default_factory=dict)  # e.g. a universal patch and its mask
    attack: str = ""
    params: dict = field(default_factory=dict)
    seed: int = 0
    seconds: float = 0.0

    @property
    def targeted(self) -> bool:
        return self.targets is not None

    @property
    def pred_before(self) -> torch.Tensor:
        return self.probs_before.argmax(1)

    @property
    def pred_after(self) -> torch.Tensor:
        return self.probs_after.argmax(1)

    @property
    def conf_before(self) -> torch.Tensor:
        """Probability of the predicted class on the clean images."""
        return self.probs_before.max(1).values

    @property
    def conf_after(self) -> torch.Tensor:
        """Probability of the predicted class on the returned images."""
        return self.probs_after.max(1).values

    @property
    def true_conf_before(self) -> torch.Tensor:
        return self.probs_before.gather(1, self.labels[:, None])[:, 0]

    @property
    def true_conf_after(self) -> torch.Tensor:
        return self.probs_after.gather(1, self.labels[:, None])[:, 0]

    @property
    def success_rate(self) -> float:
        """Share of attacked images on which the attack succeeded (0.0 when none was attacked)."""
        n = int(self.attacked.sum())
        return float(self.success.sum()) / n if n else 0.0

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def goal_met(logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
    """Whether each prediction meets the attack's goal.

    Shape:
        logits or probabilities B×K, labels B, targets B or None → B bool.
    Returns:
        untargeted: the predicted class is not the label; targeted: it is the target (not just any other class).
    """
    pred = logits.argmax(1)
    return pred == targets if targets is not None else pred != labels


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model without any)."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def _has_conv(model: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.Conv2d) for m in model.modules())


# Activations that never decrease: max-pooling commutes with them, max(f(x)) = f(max(x)).
_MONOTONE = (torch.nn.ReLU, torch.nn.ReLU6, torch.nn.Hardtanh, torch.nn.Tanh, torch.nn.Sigmoid)
_MAX_POOLS = (torch.nn.MaxPool2d, torch.nn.AdaptiveMaxPool2d)


def _is_monotone(module: torch.nn.Module) -> bool:
    if isinstance(module, torch.nn.LeakyReLU):
        return module.negative_slope >= 0
    if isinstance(module, torch.nn.ELU):
        return module.alpha >= 0
    return isinstance(module, _MONOTONE)


def _pool_before_activation(gm) -> int:
    """Rewrite ``activation → max-pool`` as ``max-pool → activation`` in a torch.fx graph module.

    Exact for non-decreasing activations (the pool picks the same element either way), and the
    activation then runs on the pooled map: a quarter of the work after a 2×2 pool.
    Returns the number of rewrites.
    """
    modules = dict(gm.named_modules())
    graph = gm.graph
    swapped = 0
    for pool in list(graph.nodes):
        if pool.op != "call_module" or not isinstance(modules.get(pool.target), _MAX_POOLS) or not pool.args:
            continue
        act = pool.args[0]
        if (not hasattr(act, "op") or act.op != "call_module" or not _is_monotone(modules.get(act.target))
                or len(act.users) != 1 or len(act.args) != 1 or act.kwargs):
            continue
        pool.args = (act.args[0], *pool.args[1:])
        with graph.inserting_after(pool):
            moved = graph.call_module(act.target, (pool,))
        pool.replace_all_uses_with(moved, delete_user_cb=lambda user, keep=moved: user is not keep)
        graph.erase_node(act)
        swapped += 1
    if swapped:
        graph.lint()
        gm.recompile()
    return swapped


def inference_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A frozen eval-mode copy of ``model`` tuned for forward passes only.

    With ``torch.fx``: BatchNorm layers are folded into the convolution before them
    (``torch.fx.experimental.optimization.fuse``) and max-pooling is moved before non-decreasing
    activations (:func:`_pool_before_activation`); convolutional models use channels-last layout.
    The copy computes the same function up to float rounding (about 1e-6); models that ``torch.fx``
    cannot trace are copied as they are.
    """
    m = copy.deepcopy(model).eval()
    try:
        from torch.fx.experimental.optimization import fuse

        m = fuse(m, inplace=True)
        _pool_before_activation(m)
    except Exception as exc:  # noqa: BLE001 - any tracing failure just means: no graph rewrites
        log.debug("no graph rewrites for %s: %s", type(model).__name__, exc)
        m = copy.deepcopy(model).eval()
    if _has_conv(m):
        m = m.to(memory_format=torch.channels_last)
    for p in m.parameters():
        p.requires_grad_(False)
    return m


class Oracle:
    """The model as an attack sees it: counts queries per image and chunks batches to a memory budget.

    Created by :class:`Attack` for one call; attacks never call the model any other way.

    Args:
        model: the classifier (eval mode, on ``device``).
        fast_model: an :func:`inference_copy` used for gradient-free queries, or None.
        device: where images go.
        max_batch: the most images sent to the model in one forward pass.
        owners: for each attacked image (local index), its index in the caller's batch.
        n_total: size of the caller's batch (length of the query counter).
        stop_event: when set, the next query raises :class:`nnkit.errors.Cancelled`.
        keys: for each attacked image, the key of its random stream (its index in the split).
        seed: the attack's seed (with ``keys``, seeds :meth:`item_generators`).
    """

    def __init__(self, model, fast_model, device, max_batch: int, owners: torch.Tensor, n_total: int,
                 stop_event: threading.Event | None = None, keys: torch.Tensor | None = None, seed: int = 0):
        self.keys = owners.cpu() if keys is None else keys.cpu()
        self.seed = int(seed)
        self.model = model
        self.fast_model = fast_model
        self.device = device
        self.max_batch = max(1, int(max_batch))
        self.owners = owners.to(device)
        self.queries = torch.zeros(n_total, dtype=torch.int64, device=device)
        self.other_queries = 0  # queries not charged to a result image (e.g. fitting a universal patch)
        self.stop_event = stop_event
        self._channels_last = fast_model is not None and _has_conv(fast_model)

    def item_generators(self) -> list[torch.Generator]:
        """One generator per attacked image, seeded from (seed, key): the image's own random stream."""
        return [torch.Generator(device=self.device).manual_seed(item_seed(self.seed, int(k))) for k in self.keys]

    def charge(self, owners: torch.Tensor, counts: torch.Tensor) -> None:
        """Add ``counts`` queries to the attacked images ``owners`` (local indices), e.g. the queries a
        search needed for an image, when the forward passes were made with ``charge=False``."""
        self.queries.index_add_(0, self.owners[owners.to(self.device)], counts.to(self.device, torch.int64))

    def check_stop(self) -> None:
        if self.stop_event is not None and self.stop_event.is_set():
            raise Cancelled("attack cancelled")

    def _count(self, n: int, owners: torch.Tensor | None) -> None:
        if owners is None:
            self.other_queries += n
        else:
            self.queries.index_add_(0, self.owners[owners.to(self.device)],
                                    torch.ones(owners.shape[0], dtype=torch.int64, device=self.device))

    @torch.no_grad()
    def probs(self, images: torch.Tensor, owners: torch.Tensor | None, *, charge: bool = True) -> torch.Tensor:
        """Softmax probabilities without autograd, in chunks of at most ``max_batch`` images.

        Every chunk is padded to a multiple of ``ROW_BLOCK`` rows (copies of its last image), so a
        row's result does not depend on how many other images share its forward pass.

        Args:
            images: B×C×H×W in [0, 1] on the device.
            owners: B local indices of the attacked image each row belongs to (None: not charged to one).
            charge: count the B queries (False: the caller charges with :meth:`charge`).
        Returns:
            B×K float32 probabilities on the device.
        """
        self.check_stop()
        model = self.fast_model if self.fast_model is not None else self.model
        out = []
        step = max(ROW_BLOCK, self.max_batch // ROW_BLOCK * ROW_BLOCK)
        for i in range(0, images.shape[0], step):
            chunk = images[i : i + step]
            rows = chunk.shape[0]
            pad = -rows % ROW_BLOCK
            if pad:
                chunk = torch.cat([chunk, chunk[-1:].expand(pad, *chunk.shape[1:])])
            if self._channels_last:
                chunk = chunk.contiguous(memory_format=torch.channels_last)
            out.append(F.softmax(model(chunk).float(), dim=1)[:rows])
        if charge:
            self._count(images.shape[0], owners)
        return torch.cat(out) if out else images.new_zeros(0, 0)

    def logits(self, images: torch.Tensor, owners: torch.Tensor | None) -> torch.Tensor:
        """Logits with autograd (white-box attacks), one batch; the caller keeps it within ``max_batch``.

        Runs on the inference copy when the attack made one (gradient attacks: the gradient reaches the
        images through its frozen weights); the final verdict is always the model's own.

        Shape:
            images B×C×H×W in [0, 1] on the device → B×K logits.
        """
        self.check_stop()
        self._count(images.shape[0], owners)
        return (self.fast_model if self.fast_model is not None else self.model)(images).float()


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module):
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _activation_bytes(model: torch.nn.Module, image: torch.Tensor) -> int:
    """Bytes of all module outputs for one image: an upper bound on the activations a forward pass holds."""
    total = [image.numel() * image.element_size()]

    def hook(_m, _inp, out):
        if isinstance(out, torch.Tensor):
            total[0] += out.numel() * out.element_size()

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.no_grad():
            model(image)
    finally:
        for h in handles:
            h.remove()
    return total[0]


class Attack(abc.ABC):
    """Base class of every attack: ``attack(images, labels, targets=None) -> AttackResult``.

    Subclasses set ``name`` and implement ``_run(oracle, images, labels, targets, gen, on_progress)``,
    which returns ``(adversarial images, per-image perturbation dict, shared dict)`` for the attacked
    images only (all on the device), calling the model only through ``oracle``.

    Args:
        model: a classifier taking N×C×H×W images in [0, 1] (normalisation inside, e.g. ``nnkit.models.Classifier``).
        seed: seed of the attack's random numbers (None: a fresh one, recorded in the result).
        memory_mb: memory budget for one forward pass; batches of candidate images are chunked to it
            (default: 256 MB on CPU, where batches that stay in cache run fastest; 4 GB on a GPU).
        fast: run gradient-free queries on an :func:`inference_copy` of the model.
    """

    name = "attack"
    uses_gradients = False

    def __init__(self, model: torch.nn.Module, *, seed: int | None = None, memory_mb: float | None = None,
                 fast: bool = True):
        if not isinstance(model, torch.nn.Module):
            raise NnkitError(f"an attack needs a torch model, got {type(model).__name__}")
        self.model = model
        self.device = model_device(model)
        if memory_mb is None:
            memory_mb = 4096.0 if self.device.type == "cuda" else 256.0
        if memory_mb <= 0:
            raise NnkitError(f"memory_mb must be positive, got {memory_mb}")
        self.seed = seed
        self.memory_mb = float(memory_mb)
        self.fast = bool(fast)

    # -- the parameters recorded with every result ------------------------------------------------
    def params(self) -> dict:
        """Hyper-parameters of this attack (recorded in the result)."""
        return {}

    # -- helpers for subclasses -------------------------------------------------------------------
    def _inference_model(self) -> torch.nn.Module | None:
        # Rebuilt on every call (milliseconds): the caller may have changed the weights in place since.
        return inference_copy(self.model) if self.fast and not self.uses_gradients else None

    def _check_inputs(self, images, labels, targets):
        if not isinstance(images, torch.Tensor) or images.dim() != 4:
            raise NnkitError("images must be a float tensor N×C×H×W")
        images = images.detach()
        if not images.is_floating_point():
            raise NnkitError(f"images must be float in [0, 1], got {images.dtype}")
        n = images.shape[0]
        labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1).cpu()
        if labels.shape[0] != n:
            raise NnkitError(f"{n} images but {labels.shape[0]} labels")
        if n == 0:
            raise NnkitError("no images to attack")
        if (float(images.min()) < 0 or float(images.max()) > 1):
            raise NnkitError("images must be in [0, 1] (normalisation belongs inside the model)")
        if targets is not None:
            targets = torch.as_tensor(targets, dtype=torch.int64).reshape(-1).cpu()
            if targets.shape[0] == 1 and n != 1:
                targets = targets.expand(n).clone()
            if targets.shape[0] != n:
                raise NnkitError(f"{n} images but {targets.shape[0]} targets")
        return images, labels, targets

    def _default_targets(self, n: int) -> torch.Tensor | None:
        """Targets used when the caller gives none (None: untargeted)."""
        return None

    def _batch_limit(self, image: torch.Tensor) -> int:
        """Images per forward pass that fit ``memory_mb`` (measured on one image with forward hooks)."""
        per_image = _activation_bytes(self.model, image[:1])
        limit = max(1, int(self.memory_mb * 2**20 // max(per_image, 1)))
        # Autograd keeps the activations for the backward pass, and the input gradient besides.
        return max(1, limit // 3) if self.uses_gradients else limit

    def __call__(self, images: torch.Tensor, labels, targets=None, *, keys=None,
                 on_progress: ProgressFn | None = None, stop_event: threading.Event | None = None) -> AttackResult:
        """Attack a batch.

        Under ``torchrun`` (inside :func:`nnkit.distributed.init_from_env` with N > 1 processes) every
        rank calls this with the same images; each attacks ``images[rank::N]`` and every rank returns
        the whole result, equal to one process's (see the module docstring).

        Args:
            images: N×C×H×W float in [0, 1] (any device).
            labels: N true class indices.
            targets: N target classes (or one class for all) for a targeted attack; None for untargeted.
            keys: N keys of the images' random streams, normally their indices in the split
                (None: 0..N-1, their positions in this batch).
            on_progress: called with (steps done, total steps) as the attack goes.
            stop_event: when set, the attack stops within one model call and raises ``Cancelled``.

        Returns:
            AttackResult on the CPU.
        """
        images, labels, targets = self._check_inputs(images, labels, targets)
        n = images.shape[0]
        keys = torch.arange(n) if keys is None else torch.as_tensor(keys, dtype=torch.int64).reshape(-1).cpu()
        if keys.shape[0] != n or (n and int(keys.min()) < 0):
            raise NnkitError(f"{n} images need {n} keys >= 0, got {keys.shape[0]}")
        t0 = time.perf_counter()
        # Every rank attacks with one seed: a seed drawn at random is rank 0's.
        seed = seed_everything(distributed.broadcast_from_master(seed_everything(self.seed)))
        w = distributed.world()
        if w.size == 1:
            result = self._attack(images, labels, targets, keys, seed, on_progress, stop_event)
        else:
            mine = distributed.shard(torch.arange(n), w)
            part = self._attack(images[mine], labels[mine], targets[mine] if targets is not None else None,
                                keys[mine], seed, on_progress, stop_event) if mine.numel() else None
            result = _merge(distributed.all_gather(part), n)
        result.seconds = time.perf_counter() - t0
        return result

    def _attack(self, images, labels, targets, keys, seed, on_progress, stop_event) -> AttackResult:
        """:meth:`__call__` on this process's images."""
        if targets is None:
            targets = self._default_targets(images.shape[0])
        t0 = time.perf_counter()
        gen = torch.Generator(device=self.device).manual_seed(seed)
        n = images.shape[0]
        x = images.to(self.device, torch.float32)
        y = labels.to(self.device)
        t = targets.to(self.device) if targets is not None else None
        with _eval_mode(self.model):
            max_batch = self._batch_limit(x)
            everyone = torch.arange(n, device=self.device)
            clean = Oracle(self.model, None, self.device, max_batch, everyone, n, stop_event)
            probs_before = clean.probs(x, everyone)
            if t is not None and (int(t.min()) < 0 or int(t.max()) >= probs_before.shape[1]):
                raise NnkitError(f"target classes must be in 0..{probs_before.shape[1] - 1}")
            attacked = probs_before.argmax(1) == y
            if t is not None:
                attacked &= ~goal_met(probs_before, y, t)
            idx = attacked.nonzero()[:, 0]
            adv = x.clone()
            probs_after = probs_before.clone()
            per_image: dict[str, torch.Tensor] = {}
            shared: dict[str, torch.Tensor] = {}
            oracle = Oracle(self.model, self._inference_model(), self.device, max_batch, idx, n, stop_event,
                            keys=keys[idx.cpu()], seed=seed)
            oracle.queries = clean.queries  # one counter for the whole call
            if idx.numel():
                adv_sub, pert_sub, shared = self._run(oracle, x[idx], y[idx], t[idx] if t is not None else None,
                                                      gen, on_progress)
                adv_sub = adv_sub.detach().clamp(0, 1)
                adv[idx] = adv_sub
                # The verdict comes from the real model on the returned images (one query each).
                final = Oracle(self.model, None, self.device, max_batch, idx, n, stop_event)
                final.queries = oracle.queries
                probs_after[idx] = final.probs(adv_sub, torch.arange(idx.numel(), device=self.device))
                for key, value in pert_sub.items():
                    fill = float("nan") if value.is_floating_point() else -1
                    full = torch.full((n, *value.shape[1:]), fill, dtype=value.dtype, device=value.device)
                    full[idx] = value
                    per_image[key] = full
        success = attacked & goal_met(probs_after, y, t)
        cpu = torch.device("cpu")
        params = {**self.params(), "fast": self.fast, "memory_mb": self.memory_mb}
        result = AttackResult(
            images=adv.to(cpu), labels=labels, targets=targets, success=success.to(cpu), attacked=attacked.to(cpu),
            queries=oracle.queries.to(cpu), probs_before=probs_before.to(cpu), probs_after=probs_after.to(cpu),
            perturbation={k: v.detach().to(cpu) for k, v in per_image.items()},
            shared={k: v.detach().to(cpu) for k, v in shared.items()},
            attack=self.name, params=params, seed=seed, seconds=time.perf_counter() - t0,
        )
        log.info("%s: %d of %d attacked images fooled in %.1f s", self.name, int(success.sum()),
                 int(attacked.sum()), result.seconds)
        return result

    @abc.abstractmethod
    def _run(self, oracle: Oracle, images: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None,
             gen: torch.Generator, on_progress: ProgressFn | None):
        """Attack the M images the model classifies correctly (all tensors on the device).

        Args:
            oracle: the only way to call the model.
            images: M×C×H×W in [0, 1]; labels: M; targets: M or None.
            gen: the attack's random generator (on the device).
            on_progress: (done, total) callback or None.

        Returns:
            (M×C×H×W adversarial images, per-image perturbation tensors with first dim M, shared tensors).
        """


def _merge(parts: list[AttackResult | None], n: int) -> AttackResult:
    """One AttackResult of N images from the ranks' results on ``images[rank::size]`` (in rank order)."""
    size = len(parts)
    done = [p for p in parts if p is not None]
    first = done[0]

    def join(get) -> torch.Tensor:
        pieces = [get(p) for p in done]
        out = pieces[0].new_empty((n, *pieces[0].shape[1:]))
        for r, part in enumerate(parts):
            if part is not None:
                out[r::size] = get(part)
        return out

    def join_per_image(key: str) -> torch.Tensor:
        # A rank whose images were all skipped (misclassified) has no perturbation: fill as __call__ does.
        like = next(p.perturbation[key] for p in done if key in p.perturbation)
        fill = float("nan") if like.is_floating_point() else -1
        out = torch.full((n, *like.shape[1:]), fill, dtype=like.dtype)
        for r, part in enumerate(parts):
            if part is not None and key in part.perturbation:
                out[r::size] = part.perturbation[key]
        return out

    keys = list(dict.fromkeys(k for p in done for k in p.perturbation))
    shared = next((p.shared for p in done if p.shared), {})

    return AttackResult(
        images=join(lambda p: p.images), labels=join(lambda p: p.labels),
        targets=None if first.targets is None else join(lambda p: p.targets),
        success=join(lambda p: p.success), attacked=join(lambda p: p.attacked), queries=join(lambda p: p.queries),
        probs_before=join(lambda p: p.probs_before), probs_after=join(lambda p: p.probs_after),
        perturbation={k: join_per_image(k) for k in keys}, shared=dict(shared), attack=first.attack, params=first.params, seed=first.seed,
        seconds=max(p.seconds for p in done),
    )

"""Patch attacks: a universal adversarial patch (Brown et al.) and a localised per-image patch (LaVAN).

- Brown, Mané, Roy, Abadi & Gilmer, "Adversarial Patch", 2017 (arXiv:1712.09665): one patch, trained
  over many images with expectation over transformation (random position, scale and rotation), that
  pushes any image it is pasted on towards a target class.
- Karmon, Zoran & Goldberg, "LaVAN: Localized and Visible Adversarial Noise", ICML 2018
  (arXiv:1801.02608): a small patch optimised for one image at one position; here the position is
  chosen by a short search over candidate placements, optionally kept off a region (e.g. the object).

Distance measure: the patch area (a fraction of the image area); the patch pixels are unconstrained
in [0, 1]. Patches are square or circular.

Random draws made for an attacked image (its placement, its patch's initial pixels) come from the
image's own stream (see :mod:`attacks.base`). Under ``torchrun`` a universal patch is fitted on all
ranks at once: each step's minibatch and transformations are drawn alike on every rank, each rank
takes its share of the minibatch and the patch gradients are summed over the ranks, so the steps are
those of one process (up to float rounding).
"""

from __future__ import annotations

import math
import threading

import torch
import torch.nn.functional as F

from attacks.base import Attack, Oracle, ProgressFn, _eval_mode
from nnkit import distributed
from nnkit.errors import NnkitError
from nnkit.seeding import seed_everything

SHAPES = ("square", "circle")


def patch_mask(area: float, image_size: tuple[int, int], shape: str = "square") -> torch.Tensor:
    """The patch's footprint: an S×S bool mask covering about ``area`` of an H×W image.

    Args:
        area: fraction of the image area, in (0, 1).
        image_size: (H, W).
        shape: "square" or "circle" (a disc inscribed in the S×S box).

    Returns:
        S×S bool tensor (S >= 1, S <= min(H, W)).
    """
    if shape not in SHAPES:
        raise NnkitError(f"unknown patch shape {shape!r}: choose square or circle")
    if not 0 < area < 1:
        raise NnkitError(f"patch area must be a fraction of the image in (0, 1), got {area}")
    h, w = image_size
    pixels = area * h * w
    side = math.sqrt(pixels) if shape == "square" else 2 * math.sqrt(pixels / math.pi)
    s = max(1, min(round(side), h, w))
    if shape == "square":
        return torch.ones(s, s, dtype=torch.bool)
    centre = (torch.arange(s) + 0.5 - s / 2) / (s / 2)
    disc = centre[:, None] ** 2 + centre[None, :] ** 2 <= 1.0
    return disc if disc.any() else torch.ones(s, s, dtype=torch.bool)


def warp_patch(images: torch.Tensor, patch: torch.Tensor, mask: torch.Tensor, centres: torch.Tensor,
               angles: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Paste a patch onto images, rotated and scaled, with anti-aliased edges (differentiable in ``patch``).

    Args:
        images: B×C×H×W in [0, 1].
        patch: C×S×S in [0, 1]; mask: S×S (bool or float).
        centres: B×2 patch centres (x = column, y = row) in pixels, 0..W and 0..H.
        angles: B rotations in radians; scales: B side-length factors (1 = the patch's own size).

    Returns:
        B×C×H×W images with the patch composited over them.
    """
    b, c, h, w = images.shape
    s = patch.shape[-1]
    m = mask.to(patch.dtype)
    cos, sin = angles.cos(), angles.sin()
    dx, dy = w / (s * scales), h / (s * scales)
    # Output position u (normalised) → patch position t = R(-angle) · diag(dx, dy) · (u - centre).
    a = torch.stack([torch.stack([cos * dx, sin * dy], 1), torch.stack([-sin * dx, cos * dy], 1)], 1)
    c_n = torch.stack([centres[:, 0] / w * 2 - 1, centres[:, 1] / h * 2 - 1], 1)
    theta = torch.cat([a, -(a @ c_n[..., None])], 2)
    grid = F.affine_grid(theta, [b, c + 1, h, w], align_corners=False)
    # Premultiplied alpha: sampling patch·mask and mask together keeps the soft edge consistent.
    src = torch.cat([patch * m, m[None]], 0)[None].expand(b, -1, -1, -1)
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    alpha = out[:, c:]
    return (images * (1 - alpha) + out[:, :c]).clamp(0, 1)


def paste_patch(images: torch.Tensor, patches: torch.Tensor, mask: torch.Tensor, tops: torch.Tensor,
                lefts: torch.Tensor) -> torch.Tensor:
    """Paste one patch per image at integer positions, without resampling (differentiable in ``patches``).

    Shape:
        images B×C×H×W, patches B×C×S×S, mask S×S bool, tops/lefts B (top-left corner) → B×C×H×W.
    """
    b = images.shape[0]
    s = patches.shape[-1]
    ar = torch.arange(s, device=images.device)
    rows = (tops[:, None] + ar)[:, :, None]
    cols = (lefts[:, None] + ar)[:, None, :]
    bidx = torch.arange(b, device=images.device)[:, None, None]
    region = images[bidx, :, rows, cols]  # B×S×S×C
    new = torch.where(mask.to(images.device)[None, :, :, None], patches.permute(0, 2, 3, 1), region)
    out = images.clone()
    out[bidx, :, rows, cols] = new
    return out


def _loss(logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
    """Per-image loss to minimise: −log p(target) (targeted) or log p(true class) (untargeted)."""
    logp = F.log_softmax(logits, 1)
    if targets is not None:
        return -logp.gather(1, targets[:, None])[:, 0]
    return logp.gather(1, labels[:, None])[:, 0]


def _met(logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
    pred = logits.argmax(1)
    return pred == targets if targets is not None else pred != labels


class _Adam:
    """Adam (Kingma & Ba 2015) on a tensor whose rows are independent problems, so rows can be dropped."""

    def __init__(self, x: torch.Tensor, lr: float, betas=(0.9, 0.999), eps=1e-8):
        self.lr, self.b1, self.b2, self.eps = lr, betas[0], betas[1], eps
        self.m = torch.zeros_like(x)
        self.v = torch.zeros_like(x)
        self.t = torch.zeros(x.shape[0], device=x.device)

    def step(self, x: torch.Tensor, grad: torch.Tensor, rows: torch.Tensor) -> None:
        """Update ``x[rows]`` in place with their gradient ``grad`` (one row per entry of ``rows``)."""
        self.t[rows] += 1
        t = self.t[rows].view(-1, *([1] * (x.dim() - 1)))
        self.m[rows] = self.b1 * self.m[rows] + (1 - self.b1) * grad
        self.v[rows] = self.b2 * self.v[rows] + (1 - self.b2) * grad * grad
        m_hat = self.m[rows] / (1 - self.b1**t)
        v_hat = self.v[rows] / (1 - self.b2**t)
        x[rows] = (x[rows] - self.lr * m_hat / (v_hat.sqrt() + self.eps)).clamp(0, 1)


class UniversalPatch(Attack):
    """Universal adversarial patch with expectation over transformation (Brown et al. 2017).

    Train once with :meth:`fit` on training images, then call the attack on held-out images: the
    patch is pasted at a random position (and rotation within ``rotation``) on each image, at its
    nominal size, with no per-image search (two model queries per image: clean and final check).

    Args:
        model: classifier on N×C×H×W images in [0, 1].
        area: patch area as a fraction of the image area (e.g. 0.05).
        shape: "square" or "circle".
        steps: optimisation steps of :meth:`fit`.
        batch_size: training images per step.
        lr: Adam learning rate on the patch pixels (kept in [0, 1]).
        rotation: EOT rotations drawn uniformly within ±rotation degrees (also used when applying).
        scale: EOT range of the patch side-length factor during training.
        seed, memory_mb: see :class:`attacks.base.Attack`.

    Example::

        >>> attack = UniversalPatch(model, area=0.1).fit(train_images, train_labels, target=3)
        >>> result = attack(test_images, test_labels)   # targeted at class 3
    """

    name = "universal-patch"
    uses_gradients = True

    def __init__(self, model: torch.nn.Module, area: float = 0.05, shape: str = "square", steps: int = 300,
                 batch_size: int = 64, lr: float = 0.05, rotation: float = 22.5, scale: tuple = (0.8, 1.2), *,
                 seed: int | None = None, memory_mb: float | None = None):
        super().__init__(model, seed=seed, memory_mb=memory_mb, fast=False)
        if shape not in SHAPES:
            raise NnkitError(f"unknown patch shape {shape!r}: choose square or circle")
        if not 0 < area < 1:
            raise NnkitError(f"patch area must be a fraction of the image in (0, 1), got {area}")
        if int(steps) < 1 or int(batch_size) < 1 or not lr > 0:
            raise NnkitError("steps and batch_size must be >= 1 and lr positive")
        if not 0 < scale[0] <= scale[1]:
            raise NnkitError(f"scale must be a range (low, high) with 0 < low <= high, got {scale}")
        self.area, self.shape = float(area), shape
        self.steps, self.batch_size, self.lr = int(steps), int(batch_size), float(lr)
        self.rotation, self.scale = float(rotation), (float(scale[0]), float(scale[1]))
        self.patch: torch.Tensor | None = None  # C×S×S once fitted
        self.mask: torch.Tensor | None = None
        self.target: int | None = None
        self.fit_info: dict = {}

    def params(self) -> dict:
        return {"area": self.area, "shape": self.shape, "steps": self.steps, "batch_size": self.batch_size,
                "lr": self.lr, "rotation": self.rotation, "scale": list(self.scale), "target": self.target,
                "area_actual": self.fit_info.get("area_actual"), "fit_queries": self.fit_info.get("queries")}

    def _default_targets(self, n: int) -> torch.Tensor | None:
        return None if self.target is None else torch.full((n,), self.target, dtype=torch.int64)

    def _num_classes(self, x: torch.Tensor) -> int:
        """Classes of the model (one forward pass of one image, not counted as a query)."""
        with torch.no_grad():
            return int(self.model(x[:1]).shape[1])

    def _transforms(self, n: int, h: int, w: int, s: int, train: bool, gen: torch.Generator):
        dev = gen.device
        angles = (torch.rand(n, generator=gen, device=dev) * 2 - 1) * math.radians(self.rotation)
        if train:
            lo, hi = self.scale
            scales = lo + torch.rand(n, generator=gen, device=dev) * (hi - lo)
        else:
            scales = torch.ones(n, device=dev)
        half = s * scales / 2
        if self.shape == "square":
            half = half * (angles.cos().abs() + angles.sin().abs())  # half-width of the rotated square's box
        centres = torch.stack([_uniform_between(half, w - half, gen), _uniform_between(half, h - half, gen)], 1)
        return centres, angles, scales

    def fit(self, images: torch.Tensor, labels, target: int | None, *, on_progress: ProgressFn | None = None,
            stop_event: threading.Event | None = None) -> UniversalPatch:
        """Optimise the patch over ``images`` (Brown et al.: maximise E[log p(target)] over transformations).

        Args:
            images: N×C×H×W training images in [0, 1]; labels: N.
            target: the class the patch should cause; None for an untargeted patch (minimise E[log p(true)]).
            on_progress: called with (steps done, steps).
            stop_event: when set, stops within one step and raises ``Cancelled``.

        Returns:
            self (``patch``, ``mask``, ``target`` and ``fit_info`` are set).
        """
        images, labels, _ = self._check_inputs(images, labels, None)
        seed = seed_everything(distributed.broadcast_from_master(seed_everything(self.seed)))
        gen = torch.Generator(device=self.device).manual_seed(seed)
        x = images.to(self.device, torch.float32)
        y = labels.to(self.device)
        n, c, h, w = x.shape
        if target is not None and not 0 <= int(target):
            raise NnkitError(f"target must be a class index, got {target}")
        mask = patch_mask(self.area, (h, w), self.shape).to(self.device)
        s = mask.shape[0]
        state = torch.rand(1, c, s, s, generator=gen, device=self.device)  # one row: the patch
        opt = _Adam(state, self.lr)
        row = torch.zeros(1, dtype=torch.long, device=self.device)
        t = None if target is None else torch.full((n,), int(target), device=self.device)
        with _eval_mode(self.model):
            oracle = Oracle(self.model, None, self.device, self._batch_limit(x), torch.zeros(0, dtype=torch.long),
                            0, stop_event)
            world = distributed.world()
            bs = min(self.batch_size, oracle.max_batch, n)  # the global minibatch (ranks share it)
            if target is not None and int(target) >= self._num_classes(x):
                raise NnkitError(f"target {target} is not a class of this {self._num_classes(x)}-class model")
            for step in range(self.steps):
                pick = torch.randint(0, n, (bs,), generator=gen, device=self.device)
                centres, angles, scales = self._transforms(bs, h, w, s, True, gen)
                mine = distributed.shard(torch.arange(bs, device=self.device), world)
                p = state[0].clone().requires_grad_(True)
                logits = oracle.logits(warp_patch(x[pick[mine]], p, mask, centres[mine], angles[mine], scales[mine]),
                                       None)
                # Sum over this rank's share / the whole minibatch: summed over ranks, the minibatch mean.
                loss = _loss(logits, y[pick[mine]], None if t is None else t[: len(mine)]).sum() / bs
                (grad,) = torch.autograd.grad(loss, p)
                distributed.all_reduce_sum(grad)
                opt.step(state, grad[None], row)
                if on_progress is not None:
                    on_progress(step + 1, self.steps)
        patch = state[0]
        self.patch, self.mask = patch.detach(), mask
        self.target = None if target is None else int(target)
        queries = int(distributed.all_reduce_sum(torch.tensor([oracle.other_queries], device=self.device)).item())
        self.fit_info = {"queries": queries, "seed": seed, "images": n,
                         "area_actual": float(mask.sum()) / (h * w), "side": s}
        return self

    def _run(self, oracle: Oracle, images, labels, targets, gen, on_progress):
        if self.patch is None:
            raise NnkitError("the universal patch is not trained yet: call fit(train_images, train_labels, target)")
        want = None if targets is None else targets.unique().tolist()
        if (self.target is None) != (targets is None) or (want is not None and want != [self.target]):
            raise NnkitError(f"this patch was trained for target {self.target}, not {want}")
        m, _, h, w = images.shape
        s = self.mask.shape[0]
        # Each image's placement comes from its own stream (the same wherever the image is attacked).
        drawn = [self._transforms(1, h, w, s, False, g) for g in oracle.item_generators()]
        centres, angles, scales = (torch.cat(parts) for parts in zip(*drawn))
        adv = warp_patch(images, self.patch.to(images.device), self.mask.to(images.device), centres, angles, scales)
        if on_progress is not None:
            on_progress(1, 1)
        return adv, {"centre": centres, "angle": angles}, {"patch": self.patch, "mask": self.mask}


def _uniform_between(lo: torch.Tensor, hi: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Uniform draws in [lo, hi] per element (the midpoint where the range is empty)."""
    hi = torch.maximum(hi, lo)
    mid = (lo + hi) / 2
    span = (hi - lo).clamp(min=0)
    return torch.where(span > 0, lo + torch.rand(lo.shape, generator=gen, device=lo.device) * span, mid)


class LocalPatch(Attack):
    """Localised per-image patch (LaVAN, Karmon et al. 2018) with a search over placements.

    For each image, ``placements`` candidate positions (on a grid of stride ``stride``, off the
    ``keep_off`` region) each get a patch optimised for ``search_steps`` steps; the most promising
    position keeps being optimised up to ``steps`` steps in all. Every step's forward pass is
    checked, and an image stops as soon as its patch fools the model.

    Args:
        model: classifier on N×C×H×W images in [0, 1].
        area: patch area as a fraction of the image area; shape: "square" or "circle".
        steps: most optimisation steps per image (search included).
        placements: candidate positions tried per image; search_steps: steps spent on each.
        stride: grid step of candidate positions in pixels (default: half the patch side).
        lr: Adam learning rate on the patch pixels.
        keep_off: region the patch must not overlap: H×W bool (all images) or N×H×W (one per image,
            in the order of the images given to the call), e.g. the object mask.
        seed, memory_mb: see :class:`attacks.base.Attack`.

    Shape:
        perturbation["position"] is N×2 (top, left) of the patch box, (−1, −1) where no placement was
        allowed; perturbation["patch"] is N×C×S×S.
    """

    name = "local-patch"
    uses_gradients = True

    def __init__(self, model: torch.nn.Module, area: float = 0.02, shape: str = "square", steps: int = 200,
                 placements: int = 8, search_steps: int = 20, stride: int | None = None, lr: float = 0.1,
                 keep_off: torch.Tensor | None = None, *, seed: int | None = None, memory_mb: float | None = None):
        super().__init__(model, seed=seed, memory_mb=memory_mb, fast=False)
        if shape not in SHAPES:
            raise NnkitError(f"unknown patch shape {shape!r}: choose square or circle")
        if not 0 < area < 1:
            raise NnkitError(f"patch area must be a fraction of the image in (0, 1), got {area}")
        if int(placements) < 1 or int(steps) < 1 or int(search_steps) < 0:
            raise NnkitError("need placements >= 1, steps >= 1 and search_steps >= 0")
        if keep_off is not None and (keep_off.dtype != torch.bool or keep_off.dim() not in (2, 3)):
            raise NnkitError("keep_off must be a bool mask H×W or N×H×W")
        self.area, self.shape, self.steps = float(area), shape, int(steps)
        self.placements, self.lr = int(placements), float(lr)
        self.search_steps = min(int(search_steps), self.steps)  # the search is part of the step budget
        self.stride = None if stride is None else max(1, int(stride))
        self.keep_off = keep_off

    def params(self) -> dict:
        return {"area": self.area, "shape": self.shape, "steps": self.steps, "placements": self.placements,
                "search_steps": self.search_steps, "stride": self.stride, "lr": self.lr,
                "keep_off": self.keep_off is not None}

    def _allowed(self, oracle: Oracle, m: int, h: int, w: int, mask: torch.Tensor) -> torch.Tensor:
        """M×(H−S+1)×(W−S+1) bool: top-left positions on the stride grid whose patch avoids ``keep_off``."""
        s = mask.shape[0]
        dev = mask.device
        stride = self.stride or max(1, s // 2)
        grid = torch.zeros(h - s + 1, w - s + 1, dtype=torch.bool, device=dev)
        rows = list(range(0, h - s + 1, stride))
        cols = list(range(0, w - s + 1, stride))
        # Always offer the far edges too, so the grid covers the whole image.
        rows += [h - s] if rows[-1] != h - s else []
        cols += [w - s] if cols[-1] != w - s else []
        grid[torch.tensor(rows, device=dev)[:, None], torch.tensor(cols, device=dev)[None, :]] = True
        allowed = grid.expand(m, -1, -1).clone()
        if self.keep_off is not None:
            keep = self.keep_off.to(dev)
            if keep.shape[-2:] != (h, w):
                raise NnkitError(f"keep_off is {tuple(keep.shape[-2:])}, the images are {h}×{w}")
            if keep.dim() == 3:
                if keep.shape[0] != oracle.queries.shape[0]:
                    raise NnkitError(f"keep_off has {keep.shape[0]} masks for {oracle.queries.shape[0]} images")
                keep = keep[oracle.owners]
            else:
                keep = keep.expand(m, -1, -1)
            overlap = F.conv2d(keep[:, None].float(), mask[None, None].float())[:, 0]
            allowed &= overlap == 0
        return allowed

    def _run(self, oracle: Oracle, images, labels, targets, gen, on_progress):
        m, c, h, w = images.shape
        dev = images.device
        mask = patch_mask(self.area, (h, w), self.shape).to(dev)
        s = mask.shape[0]
        allowed = self._allowed(oracle, m, h, w, mask)
        n_pos = allowed.shape[-1]
        # Draw up to `placements` allowed positions per image (random scores, best k among the allowed).
        gens = oracle.item_generators()  # one random stream per image, keyed by its index in the split
        scores = torch.stack([torch.rand(allowed.shape[1:], generator=g, device=dev) for g in gens])
        scores = scores.masked_fill(~allowed, -1).flatten(1)
        k = min(self.placements, scores.shape[1])
        top_scores, top_idx = scores.topk(k, dim=1)
        valid = top_scores >= 0  # M×k
        pair_img = torch.arange(m, device=dev)[:, None].expand(m, k)[valid]
        pair_pos = top_idx[valid]
        tops, lefts = pair_pos // n_pos, pair_pos % n_pos
        # Pairs are ordered by image: image i's initial patches come from its own stream.
        counts = valid.sum(1).tolist()
        patches = torch.cat([torch.rand(k_i, c, s, s, generator=g, device=dev) for k_i, g in zip(counts, gens)])
        best_patch = torch.zeros(m, c, s, s, device=dev)
        best_pos = torch.full((m, 2), -1, dtype=torch.long, device=dev)
        done = torch.zeros(m, dtype=torch.bool, device=dev)
        total = self.steps

        def optimise(rows_live: torch.Tensor, opt: _Adam, n_steps: int, step0: int):
            """``n_steps`` Adam steps on the live pairs; returns the last loss per pair (inf if never run)."""
            last = torch.full((patches.shape[0],), float("inf"), device=dev)
            chunk = max(1, oracle.max_batch)
            for step in range(n_steps):
                rows_live = rows_live[~done[pair_img[rows_live]]]
                if rows_live.numel() == 0:
                    break
                for i in range(0, rows_live.numel(), chunk):
                    r = rows_live[i : i + chunk]
                    img = pair_img[r]
                    p = patches[r].clone().requires_grad_(True)
                    x_adv = paste_patch(images[img], p, mask, tops[r], lefts[r])
                    logits = oracle.logits(x_adv, img)
                    t = targets[img] if targets is not None else None
                    loss = _loss(logits, labels[img], t)
                    (grad,) = torch.autograd.grad(loss.sum(), p)
                    last[r] = loss.detach()
                    # Every evaluated patch is checked: the first fooling one ends its image's search.
                    hit = _met(logits.detach(), labels[img], t) & ~done[img]
                    if hit.any():
                        hr, hi = r[hit], img[hit]
                        first = _first_per_image(hi)
                        hr, hi = hr[first], hi[first]
                        best_patch[hi] = patches[hr]
                        best_pos[hi, 0], best_pos[hi, 1] = tops[hr], lefts[hr]
                        done[hi] = True
                    live = ~done[img]
                    if live.any():
                        opt.step(patches, grad[live], r[live])
                if on_progress is not None:
                    on_progress(min(total, step0 + step + 1), total)
            return last

        search = self.search_steps if self.placements > 1 else 0
        all_rows = torch.arange(patches.shape[0], device=dev)
        opt = _Adam(patches, self.lr)
        last = optimise(all_rows, opt, search, 0) if search else torch.zeros(patches.shape[0], device=dev)
        # Keep, per image, the placement whose patch reached the lowest loss.
        lowest = torch.full((m,), float("inf"), device=dev).scatter_reduce(0, pair_img, last, "amin")
        winners = (last == lowest[pair_img]).nonzero()[:, 0]
        winners = winners[_first_per_image(pair_img[winners])]
        choice = torch.full((m,), -1, dtype=torch.long, device=dev)
        choice[pair_img[winners]] = winners
        keep_rows = choice[(choice >= 0) & ~done]
        optimise(keep_rows, opt, self.steps - search, search)
        # Images not fooled: return their chosen patch as it ended (the final check reports them failed).
        left = (~done) & (choice >= 0)
        rows = choice[left]
        best_patch[left] = patches[rows]
        best_pos[left, 0], best_pos[left, 1] = tops[rows], lefts[rows]
        placed = best_pos[:, 0] >= 0
        adv = images.clone()
        if placed.any():
            adv[placed] = paste_patch(images[placed], best_patch[placed], mask, best_pos[placed, 0],
                                      best_pos[placed, 1])
        if on_progress is not None:
            on_progress(total, total)
        return adv, {"position": best_pos, "patch": best_patch}, {"mask": mask}


def _first_per_image(img: torch.Tensor) -> torch.Tensor:
    """Indices of the first occurrence of each distinct value in ``img``."""
    order = torch.argsort(img, stable=True)
    sorted_img = img[order]
    first = torch.ones_like(sorted_img, dtype=torch.bool)
    first[1:] = sorted_img[1:] != sorted_img[:-1]
    return order[first]

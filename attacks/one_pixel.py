"""The single-pixel attack: differential evolution over k pixel positions and colours.

Su, Vargas & Sakurai, "One pixel attack for fooling deep neural networks", IEEE Transactions on
Evolutionary Computation 23(5), 2019 (arXiv:1710.08864).

Distance measure: L0 (exactly k pixels change; their new colours are unconstrained in [0, 1]).

The search is the paper's: a candidate is k tuples (row, column, colour), the population holds 400
candidates, and each of up to 100 generations makes one child per member by DE/rand/1,
``child = x_r1 + F (x_r2 - x_r3)`` with F = 0.5 and no crossover; a child replaces its parent when
its fitness is at least as good. The initial positions are uniform over the image and the initial
colours are drawn from N(128, 127) on the 0..255 scale (the paper's initialisation), clipped.
Fitness is the probability of the true class (untargeted, minimised) or of the target (maximised).

What makes it fast: every image is searched at once. The populations of all images live in one
tensor, every model call evaluates one block of children from every image still running (chunked to
the memory budget), and success is read off the very probabilities used for fitness, so every
evaluated candidate is checked without an extra model call. Nothing here is specific to CPU or GPU.

What makes it independent of the batch: each image draws its population, mutations and redraws from
its own generator, keyed by (seed, the image's index in the split) (see :mod:`attacks.base`), and
its search ends at its first fooling candidate in population order, as a search of that image alone
would: that candidate is the result and the image is charged the queries up to it. Candidates that
a block evaluated after it (they shared a model call with other images) are not charged.
"""

from __future__ import annotations

import torch

from attacks.base import Attack, Oracle, ProgressFn
from nnkit.errors import NnkitError

# Paper initialisation of colours: N(mu=128, sigma=127) on the 0..255 scale.
_COLOUR_MEAN = 128 / 255
_COLOUR_STD = 127 / 255


class OnePixel(Attack):
    """Single-pixel (k-pixel) attack by differential evolution (Su et al. 2019).

    Distance: L0; k pixels take new colours in [0, 1].

    Args:
        model: classifier on N×C×H×W images in [0, 1].
        pixels: k, the number of pixels changed (the paper uses 1, 3 and 5).
        popsize: candidates per image (paper: 400).
        generations: most DE generations after the initial population (paper: 100), so at most
            ``popsize * (generations + 1)`` search queries per image.
        mutation: the DE/rand/1 scale factor F (paper: 0.5).
        seed, memory_mb, fast: see :class:`attacks.base.Attack`.

    Shape:
        ``attack(images N×C×H×W in [0, 1], labels N[, targets N])`` → AttackResult whose images have the
        input's shape; ``perturbation["pixels"]`` is N×k×2 (row, column) and ``perturbation["colours"]``
        N×k×C (−1 / NaN for images that were not attacked).

    Example::

        >>> attack = OnePixel(model, pixels=1)
        >>> result = attack(images, labels)
        >>> result.success.float().mean()
    """

    name = "one-pixel"

    def __init__(self, model: torch.nn.Module, pixels: int = 1, popsize: int = 400, generations: int = 100,
                 mutation: float = 0.5, *, seed: int | None = None, memory_mb: float | None = None, fast: bool = True):
        super().__init__(model, seed=seed, memory_mb=memory_mb, fast=fast)
        if int(pixels) < 1:
            raise NnkitError(f"pixels must be at least 1, got {pixels}")
        if int(popsize) < 4:
            raise NnkitError(f"popsize must be at least 4 (DE/rand/1 draws three others), got {popsize}")
        if int(generations) < 0:
            raise NnkitError(f"generations must be >= 0, got {generations}")
        if not 0 < float(mutation) <= 2:
            raise NnkitError(f"mutation F must be in (0, 2], got {mutation}")
        self.pixels = int(pixels)
        self.popsize = int(popsize)
        self.generations = int(generations)
        self.mutation = float(mutation)

    def params(self) -> dict:
        return {"pixels": self.pixels, "popsize": self.popsize, "generations": self.generations,
                "mutation": self.mutation}

    # -- the search -------------------------------------------------------------------------------
    def _run(self, oracle: Oracle, images, labels, targets, gen, on_progress: ProgressFn | None):
        m, c, h, w = images.shape
        if self.pixels > h * w:
            raise NnkitError(f"cannot change {self.pixels} distinct pixels in a {h}×{w} image")
        dev = images.device
        p = self.popsize
        # Pixels-last copy (M×HW×C): candidates are written with one scatter, and its NCHW view is
        # already in the channels-last layout the inference copy of the model runs fastest on.
        flat = images.permute(0, 2, 3, 1).reshape(m, h * w, c)
        # Results per image, filled as images are fooled or at the end.
        best = torch.zeros(m, self.pixels, 2 + c, device=dev)
        # The running search: only images not yet fooled (``alive`` maps rows back to images).
        alive = torch.arange(m, device=dev)
        gens = oracle.item_generators()  # one random stream per image, keyed by its index in the split
        pop = self._initial(p, h, w, c, gens, dev)
        fit = torch.full((m, p), float("inf"), device=dev)
        total = self.generations + 1
        for step in range(total):
            children = pop if step == 0 else self._mutate(pop, h, w, [gens[i] for i in alive.tolist()])
            child_fit, fooled_at = self._evaluate(oracle, flat, labels, targets, alive, children, h, w)
            # An image stops at its first fooling candidate (population order): that candidate is its
            # result, and it is charged the queries up to it, whatever else its model calls evaluated.
            hit = fooled_at.any(1)
            first = torch.where(hit, fooled_at.int().argmax(1), torch.full_like(hit, p, dtype=torch.long))
            oracle.charge(alive, torch.where(hit, first + 1, first))
            if hit.any():
                rows = hit.nonzero()[:, 0]
                best[alive[rows]] = children[rows, first[rows]]
            # Selection (paper: the child survives if it is at least as fit as its parent).
            better = child_fit <= fit
            pop = torch.where(better[..., None, None], children, pop)
            fit = torch.where(better, child_fit, fit)
            keep = ~hit
            alive, pop, fit = alive[keep], pop[keep], fit[keep]
            if on_progress is not None:
                on_progress(step + 1, total)
            if alive.numel() == 0:
                break
        if alive.numel():
            # Not fooled within the budget: report the fittest candidate (the verdict will say "failed").
            best[alive] = pop[torch.arange(alive.numel(), device=dev), fit.argmin(1)]
        adv = _nchw(_apply(flat, best, h, w), h, w).contiguous()
        pixels = best[..., :2].floor().long()
        return adv, {"pixels": pixels, "colours": best[..., 2:]}, {}

    def _initial(self, p, h, w, c, gens: list[torch.Generator], dev) -> torch.Tensor:
        """Paper initialisation: positions uniform over the image, colours N(128, 127)/255 clipped.

        Shape:
            one generator per image → M×P×k×(2+C), image i drawn from ``gens[i]`` alone.
        """
        pop = torch.empty(len(gens), p, self.pixels, 2 + c, device=dev)
        for i, gen in enumerate(gens):
            pop[i, ..., 0] = torch.rand(p, self.pixels, generator=gen, device=dev) * h
            pop[i, ..., 1] = torch.rand(p, self.pixels, generator=gen, device=dev) * w
            colours = torch.randn(p, self.pixels, c, generator=gen, device=dev) * _COLOUR_STD + _COLOUR_MEAN
            pop[i, ..., 2:] = colours.clamp(0, 1)
            _distinct(pop[i], h, w, gen)
        return pop

    def _mutate(self, pop: torch.Tensor, h: int, w: int, gens: list[torch.Generator]) -> torch.Tensor:
        """DE/rand/1 without crossover: child_i = x_r1 + F (x_r2 - x_r3), r1, r2, r3, i all different.

        Row j of ``pop`` (one image's population) draws from ``gens[j]`` alone, in the same order
        whatever the other rows are.
        """
        a, p = pop.shape[:2]
        picks = [torch.cat(_three_others(1, p, gen, pop.device)) for gen in gens]  # each 3×P
        r1, r2, r3 = torch.stack(picks, 1) if picks else torch.zeros(3, 0, p, dtype=torch.long, device=pop.device)

        def take(r):
            return pop.gather(1, r[..., None, None].expand(-1, -1, *pop.shape[2:]))

        child = take(r1) + self.mutation * (take(r2) - take(r3))
        child[..., 2:] = child[..., 2:].clamp(0, 1)
        for j, gen in enumerate(gens):
            # Out-of-range positions are redrawn uniformly (as scipy's differential_evolution does), so
            # the search is not piled up on the border; colours are clipped to the valid range.
            for axis, size in ((0, h), (1, w)):
                coord = child[j, ..., axis]
                bad = (coord < 0) | (coord >= size)
                coord[bad] = torch.rand(int(bad.sum()), generator=gen, device=pop.device) * size
            _distinct(child[j], h, w, gen)
        return child

    def _evaluate(self, oracle: Oracle, flat, labels, targets, alive, children, h, w):
        """Fitness (lower is better) and success of every child of every running image.

        Children are evaluated in blocks: each model call takes the next ``block`` children of every
        image still running, so a fooled image stops after the block that fooled it.
        """
        a, p = children.shape[:2]
        dev = children.device
        fit = torch.full((a, p), float("inf"), device=dev)
        fooled = torch.zeros(a, p, dtype=torch.bool, device=dev)
        running = torch.ones(a, dtype=torch.bool, device=dev)
        block = max(1, min(p, oracle.max_batch // max(a, 1)))
        for start in range(0, p, block):
            stop = min(p, start + block)
            rows = running.nonzero()[:, 0]
            # With more images than the batch limit, split the running images into groups as well.
            group = max(1, oracle.max_batch // (stop - start))
            for g0 in range(0, rows.numel(), group):
                r = rows[g0 : g0 + group]
                cand = children[r, start:stop]  # R×B×k×(2+C)
                nb = cand.shape[1]
                img = alive[r]
                batch = _apply(flat[img].repeat_interleave(nb, 0), cand.reshape(-1, *cand.shape[2:]), h, w,
                               inplace=True)
                owner = img.repeat_interleave(nb)
                probs = oracle.probs(_nchw(batch, h, w), owner, charge=False).view(r.numel(), nb, -1)
                pred = probs.argmax(2)
                if targets is None:
                    y = labels[img][:, None]
                    fit[r, start:stop] = probs.gather(2, y[..., None].expand(-1, nb, 1))[..., 0]
                    fooled[r, start:stop] = pred != y
                else:
                    tt = targets[img][:, None]
                    fit[r, start:stop] = -probs.gather(2, tt[..., None].expand(-1, nb, 1))[..., 0]
                    fooled[r, start:stop] = pred == tt
            running &= ~fooled.any(1)  # evaluated children after the first fooling one are not charged
            if not running.any():
                break
        return fit, fooled


def _three_others(a: int, p: int, gen: torch.Generator, dev) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For every member i of a population of size p: three indices r1, r2, r3, distinct and != i.

    Draws uniformly from the allowed values by skipping the excluded ones in increasing order.
    """
    i = torch.arange(p, device=dev).expand(a, p)
    excluded = i[..., None]
    out = []
    for taken in range(1, 4):
        r = torch.randint(0, p - taken, (a, p), generator=gen, device=dev)
        for j in range(taken):
            r = r + (r >= excluded[..., j]).long()
        out.append(r)
        excluded = torch.cat([excluded, r[..., None]], -1).sort(-1).values
    return out[0], out[1], out[2]


def _distinct(pop: torch.Tensor, h: int, w: int, gen: torch.Generator) -> torch.Tensor:
    """Redraw positions until the k pixels of every candidate sit on k different pixels."""
    k = pop.shape[-2]
    if k == 1:
        return pop
    for _ in range(100):
        loc = pop[..., 0].floor() * w + pop[..., 1].floor()
        same = loc[..., :, None] == loc[..., None, :]
        dup = torch.triu(same, diagonal=1).any(-2)  # pixel j repeats an earlier pixel
        if not dup.any():
            return pop
        nd = int(dup.sum())
        pop[..., 0][dup] = torch.rand(nd, generator=gen, device=pop.device) * h
        pop[..., 1][dup] = torch.rand(nd, generator=gen, device=pop.device) * w
    raise NnkitError("could not place distinct pixels")  # only reachable when k is close to h*w


def _apply(flat: torch.Tensor, cand: torch.Tensor, h: int, w: int, inplace: bool = False) -> torch.Tensor:
    """Write each candidate's k colours into its image (a copy unless ``inplace``).

    Shape:
        flat B×(H·W)×C pixels-last images (one per candidate), cand B×k×(2+C) → B×(H·W)×C.
    """
    c = flat.shape[2]
    loc = (cand[..., 0].floor().clamp(0, h - 1) * w + cand[..., 1].floor().clamp(0, w - 1)).long()
    out = flat if inplace else flat.clone()
    out.scatter_(1, loc[..., None].expand(-1, -1, c), cand[..., 2:].to(flat.dtype))
    return out


def _nchw(flat: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """B×(H·W)×C → B×C×H×W view (channels-last strides, no copy)."""
    return flat.view(flat.shape[0], h, w, flat.shape[2]).permute(0, 3, 1, 2)

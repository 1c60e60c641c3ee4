"""What an attack will cost before it runs: model queries per image and a time estimate.

The counts follow the attacks' own loops (``attacks/one_pixel.py``, ``attacks/patch.py``); the time is
the query count over a measured speed (``attacks.on_run.speed_on_run``). They are upper bounds for
the searches that stop at the first fooling candidate (single-pixel, local patch).
"""

from __future__ import annotations

import math

# A query with gradients (forward + backward to the input) costs about this many forward passes.
GRADIENT_COST = 3.0


def one_pixel_queries(popsize: int = 400, generations: int = 100) -> int:
    """Most queries per image of the single-pixel attack (Su et al. 2019): the clean check, the initial
    population and one child per member per generation, and the final check.

    Args:
        popsize, generations: the differential-evolution budget (paper: 400, 100).

    Returns:
        ``popsize * (generations + 1) + 2``.
    """
    return int(popsize) * (int(generations) + 1) + 2


def universal_patch_fit_queries(steps: int = 300, batch_size: int = 64, train_n: int = 2000) -> int:
    """Gradient queries to fit one universal patch (Brown et al. 2017): ``steps`` batches of training images.

    Args:
        steps: optimisation steps; batch_size: images per step (capped by ``train_n``); train_n: training images.

    Returns:
        ``steps * min(batch_size, train_n)``.
    """
    return int(steps) * min(int(batch_size), int(train_n))


def local_patch_queries(steps: int = 200, placements: int = 8, search_steps: int = 20) -> int:
    """Most gradient queries per image of the local patch (LaVAN, Karmon et al. 2018): every candidate
    placement for ``search_steps`` steps, then the best one for the rest of ``steps``, plus two checks.

    Args:
        steps, placements, search_steps: the attack's budget (its defaults: 200, 8, 20).

    Returns:
        The query count.
    """
    search = min(int(search_steps), int(steps)) if int(placements) > 1 else 0
    return int(placements) * search + (int(steps) - search) + 2


def estimate_seconds(queries: float, images_per_second: float, gradient: bool = False) -> float:
    """Seconds ``queries`` model queries take at a measured speed.

    Args:
        queries: model queries (images evaluated).
        images_per_second: gradient-free speed of the model (``speed_on_run``).
        gradient: the queries also back-propagate to the input (patch attacks).

    Returns:
        The estimate (inf for a speed that is not positive).
    """
    if not images_per_second > 0:
        return math.inf
    return float(queries) * (GRADIENT_COST if gradient else 1.0) / float(images_per_second)


def describe_seconds(seconds: float) -> str:
    """A rough duration for people: "< 1 s", "≈ 40 s", "≈ 3 min", "≈ 2.5 h" ("?" when unknown)."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 1:
        return "< 1 s"
    if seconds < 90:
        return f"≈ {seconds:.0f} s"
    if seconds < 5400:
        return f"≈ {seconds / 60:.0f} min"
    return f"≈ {seconds / 3600:.1f} h"

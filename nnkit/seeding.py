"""The one seeding helper: python, numpy and torch from one integer, recorded with every run."""

from __future__ import annotations

import random
import secrets

import numpy as np
import torch


def seed_everything(seed: int | None = None) -> int:
    """Seed python, numpy and torch (all devices).

    Args:
        seed: the seed; None picks a fresh random one so that the run can still be repeated later.

    Returns:
        The seed actually used (record it).
    """
    if seed is None:
        seed = secrets.randbelow(2**31 - 1)
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return seed

"""The one seeding helper: python, numpy and torch from one integer, recorded with every run."""

from __future__ import annotations

import random
import secrets

import numpy as np
import torch

from nnkit.errors import NnkitError

# torch.manual_seed takes [-2**63, 2**64 - 1] and numpy takes the seed modulo 2**32 here; a non-negative
# signed 64-bit range also fits JSON readers and SQLite, so that is what a recorded seed may be.
MAX_SEED = 2**63 - 1


def check_seed(seed) -> int:
    """The seed as an int if it is a whole number in [0, 2**63 - 1], else a one-line NnkitError."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) <= MAX_SEED:
        raise NnkitError(f"seed must be a whole number from 0 to 2**63-1, got {seed!r}")
    return int(seed)


def seed_everything(seed: int | None = None) -> int:
    """Seed python, numpy and torch (all devices).

    Args:
        seed: the seed; None picks a fresh random one so that the run can still be repeated later.

    Returns:
        The seed actually used (record it).
    """
    if seed is None:
        seed = secrets.randbelow(2**31 - 1)
    seed = check_seed(seed)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return seed


def item_seed(seed: int, index: int) -> int:
    """A seed for one item of a job (an image, a rank) from the job's seed and the item's index.

    Randomness keyed by the item, not by the order in which a process meets it: the item gets the
    same stream whether it runs alone, in a batch of 1,000 or on rank 3 of 8. Mixed by numpy's
    SeedSequence, so neighbouring indices give unrelated streams.

    Returns:
        A seed in [0, 2**63 - 1].
    """
    state = np.random.SeedSequence([int(seed), int(index)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & (2**63 - 1)

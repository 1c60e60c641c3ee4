"""One intra-op thread for the classroom's tiny tensors.

Every demo works on tensors so small (a 64-unit MLP, a batch of 128 points) that PyTorch's thread
pool costs more than it saves: on a busy 2-core machine a toy GAN step took ten times the CPU with two
threads as with one. Under PyTorch's OpenMP backend (the Linux and macOS wheels) the setting is local
to the calling thread, so a Streamlit session running a demo does not slow down the others; it is
restored when the block ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(1)``, restoring the previous count afterwards."""
    old = torch.get_num_threads()
    if old == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)

"""The distributed helpers: one script runs alone or under ``torchrun`` (torch.distributed).

Like nanoGPT's train.py and torchtitan: a process reads RANK / LOCAL_RANK / WORLD_SIZE from the
environment (``torchrun`` sets them); without them it is a world of one and every helper here is a
no-op, so the single-process path is the same code with world size 1. The backend follows the
device: gloo on CPU, nccl on CUDA with one GPU per rank (``cuda:LOCAL_RANK``). Rank 0 is the
master: it alone logs and writes. Every collective runs under the process group's timeout
(``NNKIT_DIST_TIMEOUT`` seconds, default 120), so a rank that dies or hangs makes the others fail
with one clear :class:`~nnkit.errors.NnkitError` instead of waiting for ever; the process group is
always destroyed, also on error.

``launch(argv, nproc)`` starts ``python -m nnkit ARGV`` on ``nproc`` local processes through torch's
own launcher (``torch.distributed.run``, what the ``torchrun`` command runs).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import shlex
import signal
import socket
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from nnkit.device import describe_device, get_device
from nnkit.errors import Cancelled, NnkitError

DEFAULT_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class World:
    """Where this process stands: its rank among ``size`` processes and its device.

    ``backend`` is None for a single process (no process group); ``devices`` names every rank's
    device, in rank order.
    """

    rank: int = 0
    local_rank: int = 0
    size: int = 1
    backend: str | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    devices: tuple[str, ...] = ()

    @property
    def master(self) -> bool:
        """True on rank 0, the one process that logs and writes."""
        return self.rank == 0

    def describe(self) -> dict:
        """What a run records about the processes that made it: world size, backend and devices."""
        return {"world_size": self.size, "backend": self.backend, "devices": list(self.devices)}


_current: World | None = None


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise NnkitError(f"{name} must be a whole number, got {text!r}") from None


def env_world_size() -> int:
    """WORLD_SIZE from the environment (1 when unset: not started by a launcher)."""
    return _env_int("WORLD_SIZE", 1)


def env_rank() -> int:
    """RANK from the environment (0 when unset)."""
    return _env_int("RANK", 0)


def timeout_s() -> float:
    """Seconds a collective may wait for the other ranks (``NNKIT_DIST_TIMEOUT``, default 120)."""
    text = os.environ.get("NNKIT_DIST_TIMEOUT", "")
    try:
        value = float(text) if text else DEFAULT_TIMEOUT_S
    except ValueError:
        raise NnkitError(f"NNKIT_DIST_TIMEOUT must be a number of seconds, got {text!r}") from None
    if not value > 0:
        raise NnkitError(f"NNKIT_DIST_TIMEOUT must be positive, got {text!r}")
    return value


def _is_dist_failure(exc: BaseException) -> bool:
    """Whether ``exc`` comes from a collective or the rendezvous (a peer died, a timeout)."""
    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(
        word in text for word in ("Gloo", "gloo", "NCCL", "Connection closed", "Connection reset", "timed out",
                                  "Timed out", "ProcessGroup", "TCPStore"))


def _first_line(exc: BaseException) -> str:
    return next((s.strip() for s in str(exc).splitlines() if s.strip()), type(exc).__name__)[:200]


@contextlib.contextmanager
def init_from_env(device: str | None = None) -> Iterator[World]:
    """Join the process group the environment describes (or be a world of one), and leave it on exit.

    Args:
        device: "cpu", "cuda" or None (auto, see :func:`nnkit.device.get_device`). Under a launcher a
            CUDA device becomes ``cuda:LOCAL_RANK`` (one GPU per rank) with the nccl backend; the CPU
            uses gloo. MPS cannot run distributed.

    Returns:
        A context manager yielding the :class:`World`. Inside it, :func:`world` returns the same. A
        failed collective (a rank died, a timeout) leaves it as one NnkitError naming this rank; the
        process group is destroyed on the way out, also on error. When a process group already
        exists (a caller made it), it is used and left in place: a process that runs several
        commands (a script, a test) joins once around all of them, since gloo cannot reliably join
        a second group in a process that left one.
    """
    global _current
    size = env_world_size()
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    dev = get_device(device)
    if size <= 1:
        one = World(device=dev, devices=(describe_device(dev),))
        previous, _current = _current, one
        try:
            yield one
        finally:
            _current = previous
        return
    if not 0 <= rank < size:
        raise NnkitError(f"RANK {rank} is outside the world of {size} processes")
    if dev.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise NnkitError(f"LOCAL_RANK {local_rank} needs a GPU of its own, but this node has "
                             f"{torch.cuda.device_count()}: start at most that many processes per node")
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
        backend = "nccl"
    elif dev.type == "cpu":
        backend = "gloo"
    else:
        raise NnkitError(f"distributed runs use cpu (gloo) or cuda (nccl), not {dev.type}")
    owned = not dist.is_initialized()
    if owned:
        try:
            dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s()),
                                    rank=rank, world_size=size)
        except Exception as exc:  # noqa: BLE001 - a rendezvous failure of any kind is one line for the user
            raise NnkitError(f"rank {rank} could not join the {size} processes at "
                             f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}: "
                             f"{_first_line(exc)}") from None
    previous = _current
    try:
        names: list = [None] * size
        dist.all_gather_object(names, describe_device(dev))
        _current = World(rank, local_rank, size, backend, dev, tuple(names))
        yield _current
    except Exception as exc:
        if _is_dist_failure(exc):
            raise NnkitError(f"rank {rank} of {size}: lost the other processes ({_first_line(exc)}); "
                             "no run was saved") from None
        raise
    finally:
        _current = previous
        if owned and dist.is_initialized():
            with contextlib.suppress(Exception):  # a broken group may refuse a clean goodbye; we leave anyway
                dist.destroy_process_group()


def world() -> World:
    """The World of the innermost :func:`init_from_env` (a world of one on the CPU outside any)."""
    return _current if _current is not None else World(devices=("cpu",))


def is_master() -> bool:
    """True on rank 0 (and in a single process)."""
    return world().master


def shard(items: Sequence | torch.Tensor, w: World | None = None):
    """This rank's share of ``items``: ``items[rank::size]`` (everything in a world of one).

    Shape:
        a sequence or tensor of length N → about N / size of them, in order.
    """
    w = w or world()
    return items[w.rank :: w.size]


def unshard(parts: Sequence[Sequence], n: int) -> list:
    """Put together what every rank made from :func:`shard`: ``parts[r]`` holds items ``r, r + size, ...``.

    Returns:
        A list of ``n`` items in the original order.
    """
    size = len(parts)
    out: list = [None] * n
    for r, part in enumerate(parts):
        for j, item in enumerate(part):
            out[r + j * size] = item
    return out


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all ranks, in place (it must be on this rank's device); returns it."""
    if world().size > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_max(tensor: torch.Tensor) -> torch.Tensor:
    """Element-wise maximum of ``tensor`` over all ranks, in place; returns it."""
    if world().size > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean of ``tensor`` over all ranks, in place (e.g. gradients of a universal patch); returns it."""
    size = world().size
    if size > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor.div_(size)
    return tensor


def all_gather(obj) -> list:
    """Every rank's ``obj`` (picklable), as a list in rank order, on every rank."""
    w = world()
    if w.size == 1:
        return [obj]
    out: list = [None] * w.size
    dist.all_gather_object(out, obj)
    return out


def broadcast_from_master(obj):
    """Rank 0's ``obj`` (picklable) on every rank (e.g. a seed drawn at random, a run id)."""
    if world().size == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_to_master(obj) -> list | None:
    """Every rank's ``obj`` (picklable), as a list in rank order on rank 0; None on the other ranks."""
    w = world()
    if w.size == 1:
        return [obj]
    out: list | None = [None] * w.size if w.master else None
    dist.gather_object(obj, out, dst=0)
    return out


def stop_requested(stop_event: threading.Event | None) -> bool:
    """True on every rank once any rank's ``stop_event`` is set (one small all-reduce per call)."""
    flag = torch.tensor([1.0 if stop_event is not None and stop_event.is_set() else 0.0], device=world().device)
    return bool(all_reduce_max(flag).item() > 0)


@contextlib.contextmanager
def cancel_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM (what the launcher sends to the other ranks when one fails, or a job's cancel)
    into :class:`~nnkit.errors.Cancelled`, so the partial run is removed on the way out.

    Only in the main thread of a process started by a launcher; elsewhere it does nothing.
    """
    if env_world_size() <= 1 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(_signum, _frame):
        raise Cancelled("stopped by the launcher (another rank failed or the job was cancelled)")

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` now (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def launch_command(argv: Sequence[str], nproc: int, *, torchrun: bool = True, port: int | None = None) -> list[str]:
    """The command that runs ``python -m nnkit ARGV`` on ``nproc`` processes of this machine.

    Args:
        argv: the nnkit arguments, e.g. ``["train", "--data", "shapes"]``.
        nproc: processes (one per GPU on CUDA).
        torchrun: spell it with the ``torchrun`` command (for people); False gives
            ``python -m torch.distributed.run`` with this interpreter (for subprocesses).
        port: a fixed rendezvous port on 127.0.0.1 (None: ``--standalone`` picks a free one).

    Returns:
        The argument list.
    """
    head = ["torchrun"] if torchrun else [sys.executable, "-m", "torch.distributed.run"]
    where = ["--standalone"] if port is None else ["--master-addr", "127.0.0.1", "--master-port", str(port)]
    # "--" ends the launcher's options: without it, nnkit options such as --n would be taken for its own.
    return [*head, *where, "--nproc-per-node", str(int(nproc)), "-m", "nnkit", "--", *argv]


def torchrun_command(argv: Sequence[str], nproc: int) -> str:
    """The ``torchrun`` command line that runs ``python -m nnkit ARGV`` on ``nproc`` local processes,
    shell-quoted (what the dashboard shows, to copy)."""
    return shlex.join(launch_command([str(a) for a in argv], nproc))


def launch(argv: Sequence[str], nproc: int) -> int:
    """Run ``python -m nnkit ARGV`` on ``nproc`` local processes through ``torch.distributed.run``.

    The launcher sets RANK / LOCAL_RANK / WORLD_SIZE for each process; it listens on 127.0.0.1 on a
    free port. CPU threads are shared out (OMP_NUM_THREADS = cores / nproc unless set).

    Args:
        argv: the nnkit arguments of every process (without any launcher option).
        nproc: the number of processes (>= 1).

    Returns:
        0 when every process succeeded. Raises NnkitError naming the first rank that failed.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    # The launcher's own warnings would bury the ranks' one-line errors (this process does nothing else).
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    nproc = int(nproc)
    if nproc < 1:
        raise NnkitError(f"need at least one process, got {nproc}")
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    args = get_args_parser().parse_args(launch_command(argv, nproc, port=free_port())[1:])
    try:
        run(args)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()  # the root cause; the launcher then stopped the others
        raise NnkitError(f"rank {rank} of {nproc} failed first (exit code {failure.exitcode}; its own error line "
                         "is above), and the others were stopped") from None
    return 0

"""Process groups for ``--devices N`` and ``torchrun``: standard PyTorch DDP, nothing home-made.

- Under ``torchrun`` (``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` set, one or many nodes) every
  process joins the group torchrun describes; ``--devices`` is ignored there.
- ``--devices N`` without torchrun spawns N local processes (``torch.multiprocessing``):
  one per GPU when the machine has GPUs (NCCL), else N CPU processes (gloo).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from rsmiss.errors import ConfigError, RsmissError
from rsmiss.logs import show_logs


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def under_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ and "MASTER_ADDR" in os.environ


def check_devices(devices: int) -> int:
    """Validate ``--devices`` against the machine; returns the world size to use."""
    if under_torchrun():
        return int(os.environ["WORLD_SIZE"])
    if devices < 1:
        raise ConfigError(f"--devices must be at least 1, got {devices}")
    if torch.cuda.is_available():
        have = torch.cuda.device_count()
        if devices > have:
            raise ConfigError(f"--devices {devices}: this machine has {have} GPU(s)")
    else:
        have = os.cpu_count() or 1
        if devices > have:
            raise ConfigError(
                f"--devices {devices}: no GPU here and only {have} CPU core(s) for CPU processes"
            )
    return devices


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def init(rank: int, world_size: int, local_rank: int) -> DistInfo:
    """Join the process group (when world_size > 1) and pick this rank's device."""
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world_size > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            dist.init_process_group(backend, rank=rank, world_size=world_size)
    return DistInfo(rank, world_size, local_rank, device)


def shutdown() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def info_from_env() -> DistInfo:
    """This process's place under torchrun."""
    return init(
        int(os.environ["RANK"]),
        int(os.environ["WORLD_SIZE"]),
        int(os.environ.get("LOCAL_RANK", "0")),
    )


def _die_with_parent() -> None:
    """Ask the kernel to SIGKILL this rank when its parent dies (Linux ``PR_SET_PDEATHSIG``).

    A ``kill -9`` of ``rsmiss train --devices N`` runs no cleanup in the parent, so without
    this its ranks would live on as orphans (and keep training into the run directory).
    """
    import ctypes
    import signal

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def show_log_lines(level: int | None) -> None:
    """In a child process (a spawned rank, a dask worker): show the "rsmiss" log lines on
    stderr at ``level`` as the parent shows them (``None``: the parent shows none)."""
    log = logging.getLogger("rsmiss")
    if level is None or any(not isinstance(h, logging.NullHandler) for h in log.handlers):
        return
    show_logs(level)


def shown_log_level() -> int | None:
    """The level of the "rsmiss" loggers when the application shows them (the CLI does)."""
    log = logging.getLogger("rsmiss")
    shown = any(not isinstance(h, logging.NullHandler) for h in log.handlers)
    return log.getEffectiveLevel() if shown else None


def _spawn_entry(
    local_rank: int, world_size: int, port: int, fn: Callable, args: tuple, level: int | None
) -> None:
    _die_with_parent()
    show_log_lines(level)  # a spawned rank shows its log lines as the parent does
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    if not torch.cuda.is_available():
        # N CPU processes share the cores instead of each taking all of them.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
    info = init(local_rank, world_size, local_rank)
    try:
        fn(info, *args)
    finally:
        shutdown()


def launch(fn: Callable[..., Any], world_size: int, *args: Any) -> None:
    """Run ``fn(DistInfo, *args)`` on every rank: in-process, under torchrun, or spawned."""
    if under_torchrun():
        fn(info_from_env(), *args)  # the group stays up for the next run of the plan
        return
    if world_size == 1:
        fn(init(0, 1, 0), *args)
        return
    import torch.multiprocessing as mp

    try:
        mp.spawn(
            _spawn_entry,
            args=(world_size, _free_port(), fn, args, shown_log_level()),
            nprocs=world_size,
            join=True,
        )
    except mp.ProcessRaisedException as exc:
        # A worker's user error (already validated in the parent, so rare) stays one line.
        last = str(exc).strip().splitlines()[-1] if str(exc).strip() else "worker failed"
        if "RsmissError" in str(exc) or "DataError" in str(exc) or "ConfigError" in str(exc):
            raise RsmissError(last.split(": ", 1)[-1]) from None
        raise

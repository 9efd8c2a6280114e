"""How many DataLoader workers /dev/shm holds. Workers hand their batches to the main process
through shared memory; a container's default (Docker: 64 MB) is far below what the paper
profile's loaders keep in flight (~0.8 GB), and overflowing it kills the run with a bus error
hours in. Training and evaluation both ask here and load with fewer workers instead."""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("regionharmony.data")

SHARED_MEMORY = Path("/dev/shm")
DATALOADER_PREFETCH = 2  # batches a worker loads ahead: the DataLoader's default prefetch_factor


def shared_memory_workers(
    batch_bytes: int,
    prefetch: int = DATALOADER_PREFETCH,
    folder: Path = SHARED_MEMORY,
    sharers: int = 1,
) -> int | None:
    """How many workers the free shared memory holds, each with its `prefetch` batches and one
    more being read, using at most half of it, split between `sharers` processes (the ranks on
    this machine); None where there is no such folder."""
    try:
        stats = os.statvfs(folder)
    except (OSError, AttributeError):
        return None
    free = stats.f_bavail * stats.f_frsize
    return free // 2 // max(1, sharers) // ((prefetch + 1) * max(1, batch_bytes))


def workers_that_fit(
    wanted: int, batch_bytes: int, prefetch: int, what: str, sharers: int = 1
) -> int:
    """`wanted` workers, or fewer (down to 0: loading in the main process) where /dev/shm
    cannot hold their batches; says so in one line."""
    room = shared_memory_workers(batch_bytes, prefetch, sharers=sharers) if wanted else None
    if room is None or room >= wanted:
        return wanted
    log.warning(
        "%s: /dev/shm holds the batches of %d loader worker(s), not %d; loading with %d "
        "(give the container more, e.g. docker run --shm-size=2g)",
        what,
        room,
        wanted,
        room,
    )
    return room

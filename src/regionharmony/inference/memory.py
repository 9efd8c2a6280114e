"""Will strategy ``full`` fit in memory? An estimate from the pixel count, and what the machine
has free.

``full`` runs the network on the composite's own pixels, so its memory grows with the pixel
count: the peak resident memory of one fp32 CPU pass, measured at 512 and 1024 px squares
(minus the process's memory before it), is about ``260 + 42 * base_width`` bytes per pixel
(600 B/px for the mini profile, base width 8; 1,620 B/px for the paper's, base width 32). So a
16.6-megapixel composite needs ~10 GB with the mini model and ~27 GB with the paper's.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from regionharmony.errors import HarmonizeError

BYTES_PER_PIXEL = 260  # the images, the mask and the network's input and output
BYTES_PER_PIXEL_PER_WIDTH = 42  # the feature maps, per channel of the first level
MEMINFO = Path("/proc/meminfo")
CGROUP = Path("/sys/fs/cgroup")


def full_strategy_bytes(pixels: int, base_width: int) -> int:
    """Estimated peak memory (bytes) of strategy ``full`` on `pixels` (padded) pixels."""
    return pixels * (BYTES_PER_PIXEL + BYTES_PER_PIXEL_PER_WIDTH * base_width)


def _meminfo_available() -> int | None:
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:  # not Linux: the free physical pages
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_room() -> int | None:
    """What this process's cgroup (v2) still allows, when it has a limit (a container)."""
    try:
        limit = (CGROUP / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int((CGROUP / "memory.current").read_text())
    except (OSError, ValueError):
        return None


def available_memory() -> int | None:
    """Bytes this process can still allocate without swapping: MemAvailable of /proc/meminfo
    (os.sysconf's free pages elsewhere), capped by a container's cgroup limit; None when
    unknown."""
    known = [n for n in (_meminfo_available(), _cgroup_room()) if n is not None]
    return min(known) if known else None


def amount(count: int) -> str:
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.0f} MiB"


def device_memory(device: object) -> int | None:
    """Free bytes where the network runs: the GPU's for a CUDA device, else `available_memory`."""
    if getattr(device, "type", "cpu") != "cuda":
        return available_memory()
    torch = sys.modules.get("torch")  # a torch engine's device; onnxruntime's GPU: unknown
    if torch is not None and isinstance(device, torch.device):
        return torch.cuda.mem_get_info(device)[0]
    return None


def check_full_fits(
    height: int, width: int, base_width: int | None, device: object, multiple: int = 16
) -> None:
    """HarmonizeError (one line: the size, the memory needed, the memory free) when strategy
    ``full`` on a height x width composite (padded to `multiple`) would need more memory than
    `device` has free."""
    available = device_memory(device)
    if base_width is None or available is None:
        return  # a network or a system we cannot measure: let it try
    padded = -(-height // multiple) * multiple * (-(-width // multiple) * multiple)
    needed = full_strategy_bytes(padded, base_width)
    if needed > available:
        raise HarmonizeError(
            f"--strategy full on a {width}x{height} composite needs about {amount(needed)} of "
            f"memory and this machine has {amount(available)} free; use the default --strategy "
            "color (the network at its training size, the colour change carried to full size)"
        )

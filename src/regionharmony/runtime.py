"""Where and how torch runs: the device and mixed precision, decided in one place. (CPU threads
and the OpenMP wait policy are set before torch starts: `regionharmony.cpu_threads`.)"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from contextlib import AbstractContextManager, nullcontext

import torch

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """ "auto" is the GPU of this process (`local_rank` under torchrun) when CUDA is present,
    else the CPU. Selecting a CUDA device also makes it the current one. The one place the
    training, the evaluator and the inference engine decide their device."""
    from regionharmony.errors import ConfigError

    if name not in DEVICES:
        raise ConfigError(f"device must be one of {', '.join(DEVICES)}, got {name!r}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device 'cuda' asked for, but torch sees no CUDA device")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device(name)


def autocast(device: torch.device, bf16: bool) -> AbstractContextManager:
    """bf16 autocast on `device` when asked, else nothing."""
    if bf16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


AUTO_SWITCHES = ("auto", "always", "never")
PRECISIONS = ("auto", "bf16", "fp32")


def on_for(device: torch.device, setting: str) -> bool:
    """An auto / always / never switch: "auto" means on for CUDA, off on the CPU."""
    return setting == "always" or (setting == "auto" and device.type == "cuda")


def uses_bf16(device: torch.device, precision: str) -> bool:
    """ "auto": bf16 autocast on CUDA (the paper profile's speed default), fp32 on the CPU."""
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")


_PR_SET_PDEATHSIG = 1


def stop_with_parent() -> None:
    """Have the kernel send this process SIGTERM when its parent dies (Linux), so that a trainer
    whose `dvc repro` was killed does not run on, writing into outputs a later run owns. Where
    that is not available (another OS) it does nothing."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)

"""Where and how torch runs: the device and mixed precision, decided in one place. (CPU threads
and the OpenMP wait policy are set before torch starts: `regionharmony.cpu_threads`.)"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import warnings
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch

from regionharmony.config import DEVICES
from regionharmony.cpu_threads import kernel_path


def use_portable_kernels() -> bool:
    """Under REGIONHARMONY_KERNELS=portable (`cpu_threads`), the switches torch reads at run
    time: no oneDNN (its blocking follows the cache sizes), no NNPACK (it takes no-grad
    convolutions of batch >= 16 once oneDNN is off), one thread. True when it applied them."""
    if kernel_path() != "portable":
        return False
    if torch.backends.cpu.get_cpu_capability() != PORTABLE_CAPABILITY:
        warnings.warn(
            f"this CPU runs ATen's {torch.backends.cpu.get_cpu_capability()} kernels, not the "
            f"portable path's {PORTABLE_CAPABILITY} (it lacks AVX2 or FMA, or "
            "ATEN_CPU_CAPABILITY was set after torch loaded): its results differ in the last "
            "digits from an AVX2 CPU's, such as the committed dvc.lock",
            stacklevel=2,
        )
    torch.backends.mkldnn.enabled = False
    torch.backends.nnpack.enabled = False
    torch.set_num_threads(1)
    return True


PORTABLE_CAPABILITY = "AVX2"  # what cpu_threads.PORTABLE_ENVIRONMENT asks ATen for
PORTABLE = use_portable_kernels()


def kernel_facts() -> dict[str, object]:
    """What a CPU result's bytes depend on, for summary.json: the kernel path and the thread
    count, ATen's CPU capability, the torch, MKL and oneDNN versions, the C library."""
    import platform
    import re

    config = torch.__config__.show()
    mkl = re.search(r"Math Kernel Library Version ([\d.]+)", config)
    onednn = re.search(r"(?:oneDNN|MKL-DNN) v([\d.]+)", config)
    libc, version = platform.libc_ver()
    return {
        "kernels": "portable" if PORTABLE else "native",
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "mkl": mkl.group(1) if mkl else None,
        "onednn": onednn.group(1) if onednn else None,
        "libc": f"{libc} {version}".strip() or None,
    }


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


def cuda_facts() -> dict[str, object]:
    """The GPU and the CUDA stack a CUDA training ran on, for summary.json."""
    return {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
    }


def autocast(device: torch.device, bf16: bool) -> AbstractContextManager:
    """bf16 autocast on `device` when asked, else nothing."""
    if bf16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def switch_on(setting: str, auto: bool) -> bool:
    """An auto / always / never switch; "auto" is `auto` (the trainer: on for CUDA)."""
    return setting == "always" or (setting == "auto" and auto)


def cpu_has_native_bf16() -> bool:
    """True when this CPU multiplies bf16 in hardware (AMX-BF16 or AVX512-BF16): torch's own
    feature detection (cpuinfo), else the flags of /proc/cpuinfo."""
    get_capabilities = getattr(torch.cpu, "get_capabilities", None)
    if get_capabilities is not None:
        caps = get_capabilities()
        return bool(caps.get("amx_bf16") or caps.get("avx512_bf16"))
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def native_bf16(device: torch.device) -> bool:
    """Whether `device` multiplies bf16 in hardware: a CUDA GPU of compute capability 8.0 or
    newer (Ampere on; a V100, T4 or TITAN V emulates it, slower than fp32), a CPU with AMX-BF16
    or AVX512-BF16."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] >= 8
    return cpu_has_native_bf16()


def training_bf16(device: torch.device, precision: str, rehearse_cuda: bool = False) -> bool:
    """The precision rule of training: "auto" is bf16 autocast on a CUDA GPU with native bf16
    (`native_bf16`), fp32 on older GPUs and on the CPU (where fp32 keeps the embedded default
    reproducible), bf16 on the CPU under `train.rehearse_cuda`; "bf16" and "fp32" force it.
    Inference (`inference.engine.resolve_precision`) follows the same rule on CUDA."""
    if precision != "auto":
        return precision == "bf16"
    if device.type == "cuda":
        return native_bf16(device)
    return rehearse_cuda


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

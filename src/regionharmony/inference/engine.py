"""Inference engine: a trained generator prepared for fast forward passes on a CPU or a GPU.

What `Engine` does to the network (none of it changes what the network computes beyond
floating-point rounding):

* eval mode and ``torch.inference_mode`` (no autograd bookkeeping);
* BatchNorm folded into the preceding convolution (``fold_batchnorm``): in eval mode a
  BatchNorm is a per-channel affine map, so ``bn(conv(x))`` is one convolution with rescaled
  weights and a shifted bias; this removes a full pass over every feature map;
* ``channels_last`` memory format (NHWC), which oneDNN's convolutions prefer on a CPU and cuDNN's
  tensor-core kernels on a GPU;
* precision ``bf16``: bfloat16 autocast. It is the default ("auto") only where the hardware
  multiplies bf16 natively: a CPU with AMX-BF16 or AVX512-BF16, a CUDA GPU of compute capability
  8.0 or newer. Elsewhere (e.g. an AVX-512 CPU without the BF16 extension) autocast would emulate
  bf16 and run slower than fp32, so "auto" means fp32 there. ``fp32`` forces fp32.
  The output is always returned as float32. Since "auto" depends on the hardware, so do the
  output bytes: pass ``fp32`` (and device ``cpu``) where they must not.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from regionharmony.model.fold import fold_batchnorm
from regionharmony.runtime import native_bf16, resolve_device

Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")


def resolve_precision(precision: str, device: torch.device) -> str:
    """ "auto": bf16 where the hardware has native bf16 arithmetic, else fp32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) else "fp32"


class Engine:
    """A generator ready for inference: `engine(composite, mask)` -> raw output H (float32).

    `composite` (B, 3, H, W) in [0, 1] and `mask` (B, 1, H, W) in {0, 1}, on any device; the
    output is on the engine's device. `train_size` is the side the network was trained at, the
    default working resolution of `regionharmony.harmonize`.
    """

    def __init__(
        self,
        network: nn.Module,
        train_size: int,
        *,
        device: str = "auto",
        precision: str = "auto",
        channels_last: bool = True,
        fold: bool = True,
    ) -> None:
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.train_size = int(train_size)
        self.channels_last = channels_last
        network = fold_batchnorm(network) if fold else copy.deepcopy(network).eval()
        network = network.to(self.device)
        if channels_last:
            network = network.to(memory_format=torch.channels_last)
        self.network = network.eval()

    def describe(self) -> str:
        layout = "channels_last" if self.channels_last else "contiguous"
        return f"{self.device.type}, {self.precision}, {layout}"

    @torch.inference_mode()
    def __call__(self, composite: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        composite = composite.to(self.device, torch.float32)
        mask = mask.to(self.device, torch.float32)
        if self.channels_last:
            composite = composite.contiguous(memory_format=torch.channels_last)
            mask = mask.contiguous(memory_format=torch.channels_last)
        enabled = self.precision == "bf16"
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled):
            out = self.network(composite, mask)
        return out.float().contiguous()

    def run_arrays(self, composite: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """`__call__` on numpy arrays: float32 (1, 3, H, W) and (1, 1, H, W) in, the raw
        output float32 (1, 3, H, W) out (the interface `OnnxEngine` shares)."""
        out = self(torch.from_numpy(composite), torch.from_numpy(mask))
        return out.cpu().numpy()

    @property
    def base_width(self) -> int | None:
        """The network's first-level width (what the memory of a full-resolution pass scales
        with), or None for a network of another kind."""
        cfg = getattr(self.network, "cfg", None)
        return getattr(cfg, "base_width", None)


def load_engine(
    path: str | Path, *, device: str = "auto", precision: str = "auto", **options
) -> Engine:
    """An `Engine` for a model directory (model.pt + config.json) or its model.pt.

    The working resolution comes from config.json's ``train.image_size``.
    """
    import json

    from regionharmony.model.harmonizer import load_checkpoint

    path = Path(path)
    network = load_checkpoint(path, map_location="cpu")
    config_file = (path if path.is_dir() else path.parent) / "config.json"
    train_size = json.loads(config_file.read_text())["train"]["image_size"]
    return Engine(network, train_size, device=device, precision=precision, **options)

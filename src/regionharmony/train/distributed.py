"""Data parallel over the process group torchrun describes (gloo on CPU, nccl on GPU), and
BatchNorm over the global batch on CPU ranks."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def init_distributed(device: torch.device) -> Distributed:
    """Join the process group torchrun describes in the environment, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Distributed()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), world)


class _AllReduceSum(torch.autograd.Function):
    """The sum over ranks, differentiable: each rank's input feeds every rank's output, so its
    gradient is the sum of all ranks' output gradients."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        out = grad.clone()
        dist.all_reduce(out)
        return out


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    return _AllReduceSum.apply(x)


class CrossRankBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d with training statistics over the global batch of every rank: what
    `nn.SyncBatchNorm` does on GPUs, for CPU ranks (gloo), which it refuses. The mean, then
    the biased variance, are all-reduced (two passes, as exact as one process's); the gradient
    flows through the reductions. Statistics in fp32 under bf16 autocast (as BatchNorm's own),
    the output in the input's dtype; no host read, so it runs under torch.compile."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        dims, shape = (0, 2, 3), (1, -1, 1, 1)
        x32 = x.float()
        count = torch.full((1,), x.numel() / x.shape[1], dtype=torch.float32, device=x.device)
        count = all_reduce_sum(count)
        mean = all_reduce_sum(x32.sum(dims)) / count
        centred = x32 - mean.view(shape)
        var = all_reduce_sum((centred * centred).sum(dims)) / count
        self.update_running_stats(mean.detach(), var.detach(), count.detach())
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)

    @torch.no_grad()
    def update_running_stats(
        self, mean: torch.Tensor, var: torch.Tensor, count: torch.Tensor
    ) -> None:
        if not self.track_running_stats or self.running_mean is None:
            return
        self.num_batches_tracked += 1
        factor = self.momentum
        if factor is None:  # a cumulative average, as nn.BatchNorm2d
            factor = 1.0 / self.num_batches_tracked.float()
        unbiased = var * count / torch.clamp(count - 1, min=1.0)
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
        self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)


def convert_cross_rank_batchnorm(module: nn.Module) -> nn.Module:
    """Every nn.BatchNorm2d of `module` as a CrossRankBatchNorm with the same parameters and
    buffers (the state dict's keys do not change)."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            swapped = CrossRankBatchNorm(
                child.num_features,
                child.eps,
                child.momentum,
                child.affine,
                child.track_running_stats,
            ).to(next(child.buffers(), torch.empty(0)).device)
            swapped.load_state_dict(child.state_dict())
            setattr(module, name, swapped)
        else:
            convert_cross_rank_batchnorm(child)
    return module

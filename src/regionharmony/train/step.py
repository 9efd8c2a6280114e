"""One optimisation step's pieces: the objective as one module, and the finite-loss guard."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from regionharmony.errors import UserError
from regionharmony.loss import HarmonizationLoss
from regionharmony.train.distributed import Distributed


class NonFiniteLossError(UserError):
    """Raised when a loss term is NaN or infinite; the last good checkpoint is kept."""


class Objective(nn.Module):
    """Generator + L_all in one module, so DDP sees (and averages) every trained parameter."""

    def __init__(self, generator: nn.Module, criterion: HarmonizationLoss) -> None:
        super().__init__()
        self.generator, self.criterion = generator, criterion

    def forward(self, composite, mask, real, seeds):
        prediction = self.generator(composite, mask)
        return self.criterion(prediction.float(), real, mask, seeds)


def require_finite(
    window: list[tuple[int, dict[str, torch.Tensor]]], checkpoint: str, group: Distributed
) -> list[tuple[int, dict[str, float]]]:
    """The loss terms of a window of steps as numbers, read from the device in ONE transfer
    (the training step's only host synchronisation); under DDP the mean over the ranks, i.e.
    over the global batch (one all-reduce per window). Stops every rank together, naming the
    first step and term that is not finite on any rank (a NaN or inf survives the sum)."""
    names = list(window[0][1])
    values = torch.stack([torch.stack([terms[k].float() for k in names]) for _, terms in window])
    if group.active:
        dist.all_reduce(values)
        values /= group.world
    values = values.cpu()
    finite = torch.isfinite(values)
    if not bool(finite.all()):
        row = int((~finite).any(dim=1).nonzero()[0])
        step = window[row][0]
        bad = [k for k, ok in zip(names, finite[row].tolist(), strict=True) if not ok]
        raise NonFiniteLossError(
            f"non-finite loss at step {step} ({', '.join(bad)}); stopping. The last good "
            f"checkpoint is {checkpoint}"
        )
    return [
        (step, dict(zip(names, row, strict=True)))
        for (step, _), row in zip(window, values.tolist(), strict=True)
    ]

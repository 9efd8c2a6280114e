"""One optimisation step's pieces: the objective as one module, and the finite-loss guard."""

from __future__ import annotations

import torch
from torch import nn

from regionharmony.errors import UserError
from regionharmony.loss import HarmonizationLoss
from regionharmony.train.distributed import Distributed, any_rank


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
    terms: dict[str, torch.Tensor], step: int, checkpoint: str, device, group: Distributed
) -> None:
    """Stop every rank together when any loss term on any rank is not finite."""
    bad = [k for k, v in terms.items() if not torch.isfinite(v)]
    if any_rank(bool(bad), device, group) and not bad:
        bad = ["on another rank"]
    if bad:
        raise NonFiniteLossError(
            f"non-finite loss at step {step} ({', '.join(bad)}); stopping. The last good "
            f"checkpoint is {checkpoint}"
        )

"""The data plan: which images each step sees, as a pure function of (seed, epoch, step).

Resume is exact because nothing here depends on how many steps a process has already run: the
epoch's order comes from (seed, epoch), a step's batch is a slice of it, the augmentations of
image i come from (seed, epoch, i) (`HarmonyDataset.set_epoch`) and the L_HCL patch draws from
(seed, step, i) (`patch_seeds`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from regionharmony.data.dataset import HarmonyDataset


def derive_seed(*parts: int) -> int:
    """A 63-bit seed that is a fixed function of its integer parts."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1, np.uint64)[0] >> 1)


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    generator = torch.Generator().manual_seed(derive_seed(seed, epoch))
    return torch.randperm(n, generator=generator).tolist()


def patch_seeds(seed: int, step: int, indices: torch.Tensor) -> list[int]:
    """One L_HCL sampling seed per image of a batch: a function of (seed, step, image index)."""
    return [derive_seed(seed, step, int(i)) for i in indices]


class BatchPlan:
    """This rank's share of every global batch: `batch_size` is the global batch, split into
    contiguous slices across `world` ranks."""

    def __init__(
        self,
        dataset: HarmonyDataset,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world: int = 1,
        num_workers: int = 0,
        pin_memory: bool = False,
    ) -> None:
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.rank, self.world = rank, world
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.steps_per_epoch = len(dataset) // batch_size

    def batches(self, epoch: int, start_step: int) -> DataLoader:
        """The batches of `epoch` from `start_step` on."""
        order = epoch_order(len(self.dataset), self.seed, epoch)
        per_rank = self.batch_size // self.world
        plan = []
        for s in range(start_step, self.steps_per_epoch):
            batch = order[s * self.batch_size : (s + 1) * self.batch_size]
            plan.append(batch[self.rank * per_rank : (self.rank + 1) * per_rank])
        self.dataset.set_epoch(self.seed, epoch)
        return DataLoader(
            self.dataset,
            batch_sampler=plan,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
        )

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


class EpochBatches:
    """A batch sampler over a window of the plan: the batches of one epoch from one step on, as
    (epoch, image index) keys. Re-aimed with `select` before each pass over the loader."""

    def __init__(self, plan: BatchPlan) -> None:
        self.plan, self.epoch, self.start = plan, 0, 0

    def select(self, epoch: int, start_step: int) -> None:
        self.epoch, self.start = epoch, start_step

    def __iter__(self):
        plan = self.plan
        order = epoch_order(len(plan.dataset), plan.seed, self.epoch)
        per_rank = plan.batch_size // plan.world
        for s in range(self.start, plan.steps_per_epoch):
            batch = order[s * plan.batch_size : (s + 1) * plan.batch_size]
            mine = batch[plan.rank * per_rank : (plan.rank + 1) * per_rank]
            yield [(self.epoch, i) for i in mine]

    def __len__(self) -> int:
        return self.plan.steps_per_epoch - self.start


class BatchPlan:
    """This rank's share of every global batch: `batch_size` is the global batch, split into
    contiguous slices across `world` ranks. One loader for the whole run: with workers, they
    persist across epochs and prefetch (`PREFETCH` batches each)."""

    PREFETCH = 4

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
        self.steps_per_epoch = len(dataset) // batch_size
        dataset.set_epoch(seed, 0)
        self.sampler = EpochBatches(self)
        workers = {"persistent_workers": True, "prefetch_factor": self.PREFETCH}
        workers = workers if num_workers else {}
        self.loader = DataLoader(
            dataset,
            batch_sampler=self.sampler,
            num_workers=num_workers,
            pin_memory=pin_memory,
            **workers,
        )

    def batches(self, epoch: int, start_step: int) -> DataLoader:
        """The batches of `epoch` from `start_step` on."""
        self.sampler.select(epoch, start_step)
        return self.loader

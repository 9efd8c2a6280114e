"""Several GPUs: every training under DDP (launch.processes), or independent trainings side by
side, one per GPU."""

from __future__ import annotations

from dataclasses import dataclass

from .arithmetic import Machine, item_wall, plan_cost, trained_variants, weighted, weights, workers
from .measure import Costs
from .plans import Plan
from .settings import Settings


def makespan(durations: list[float], machines: int) -> float:
    """Longest-first list scheduling of independent jobs on `machines` identical GPUs."""
    loads = [0.0] * machines
    for d in sorted(durations, reverse=True):
        loads[loads.index(min(loads))] += d
    return max(loads)


@dataclass(frozen=True)
class LaunchCost:
    gpus: int
    ddp_train: float  # wall seconds of all trainings under DDP on every GPU
    independent_train: float  # wall seconds of all trainings side by side, one per GPU
    other: float  # every other stage (validation, checkpoints, evaluation, ...), as on one GPU
    break_even: float  # DDP efficiency at which both finish together

    @property
    def ddp(self) -> float:
        return self.ddp_train + self.other

    @property
    def independent(self) -> float:
        return self.independent_train + self.other


def launch_cost(
    settings: Settings, plan: Plan, costs: Costs, machine: Machine, efficiency: float
) -> LaunchCost:
    """The plan on `machine.gpus` GPUs, both ways (module docstring)."""
    one = Machine(machine.train_rate, 1, machine.cores)
    cost = plan_cost(settings, plan, costs, one)
    other = cost.wall - cost.training_wall
    sample = weighted(costs.loader_sample, weights("train"))
    images = [v.images * settings.seeds for v in trained_variants(settings, plan)]
    n = machine.gpus
    all_cores = workers(plan.loader_workers, Machine(machine.train_rate, n, machine.cores))
    ddp_rate = 1 / item_wall(sample, 0.0, 1 / (machine.train_rate * n * efficiency), all_cores)
    share = max(1, all_cores // n)  # each independent run's loader workers
    run_rate = 1 / item_wall(sample, 0.0, 1 / machine.train_rate, share)
    independent = makespan([i / run_rate for i in images], n)
    ideal_ddp = sum(images) / min(machine.train_rate * n, all_cores / sample)
    return LaunchCost(
        n, sum(images) / ddp_rate, independent, other, min(1.0, ideal_ddp / independent)
    )

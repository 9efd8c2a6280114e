"""The cost model: the rows of a plan's stages, their wall time and GPU waiting, and the disk."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from .data import HIGHRES_SUBSET, REAL_COMPOSITE_SIZE, REAL_COMPOSITES, SUBSETS
from .measure import Costs
from .plans import Plan, resolve_workers
from .settings import Settings, Variant

GPU_EVAL_SPEEDUP = 4.0  # forward-only images/s at 256 px = 4 x the training rate
REPORT_SECONDS = 30.0  # ASSUMED, not measured: papermill kernel start + nbconvert per report


def planned_variants(settings: Settings, plan: Plan) -> list[Variant]:
    """The variants whose models the plan makes (trained, or copied from a shared run)."""
    dropped = set(plan.not_trained)
    if plan.switch_studies:
        dropped |= {n for n, v in settings.variants.items() if v.kind == "studies"}
        dropped -= settings.switch_studies
    return [v for name, v in settings.variants.items() if name not in dropped]


def trained_variants(settings: Settings, plan: Plan) -> list[Variant]:
    """The variants the plan trains: a shared prefix costs no training of its own."""
    return [v for v in planned_variants(settings, plan) if not (plan.shares_prefixes and v.shared)]


def validating_variants(settings: Settings, plan: Plan) -> list[Variant]:
    """Runs of validation passes: a shared prefix's are done inside its parent's run."""
    planned = planned_variants(settings, plan)
    if plan.val_variants is None:
        return planned
    return [v for v in planned if v.name in plan.val_variants]


def training_images(settings: Settings, plan: Plan) -> int:
    return settings.seeds * sum(v.images for v in trained_variants(settings, plan))


def checkpoint_writes_by_steps(total_steps: int, steps_per_epoch: int, every: int) -> int:
    """Checkpoints one run writes: every `every` steps, and at every epoch end (once where the
    two coincide)."""
    epochs = total_steps // steps_per_epoch
    coincide = total_steps // math.lcm(every, steps_per_epoch)
    return total_steps // every - coincide + epochs


def checkpoint_writes_by_clock(wall_seconds: float, minutes: float) -> int:
    """Checkpoints one run writes when one file is overwritten every `minutes` of wall clock."""
    return int(wall_seconds // (60 * minutes))


def item_wall(worker: float, main: float, gpu: float, workers: int) -> float:
    """Seconds per item: serial without workers, else the slower of the workers and the main
    process with its GPU calls."""
    if workers == 0:
        return worker + main + gpu
    return max(worker / workers, main + gpu)


def weighted(values: Mapping[str, float], weights: Mapping[str, float]) -> float:
    total = sum(weights.values())
    return sum(values[k] * w for k, w in weights.items()) / total


@dataclass(frozen=True)
class Machine:
    train_rate: float  # training images/s of one GPU
    gpus: int
    cores: int

    def gpu_seconds(self, size: int) -> float:
        """Forward-only seconds per image of one GPU at size x size."""
        return (size / 256) ** 2 / (GPU_EVAL_SPEEDUP * self.train_rate)


@dataclass(frozen=True)
class Row:
    stage: str
    items: float
    seconds: float  # wall
    gpu_wait: float  # share of `seconds` its GPU(s) wait
    kind: str

    @property
    def per_item(self) -> float:
        return self.seconds / self.items if self.items else 0.0


def weights(split: str) -> dict[str, float]:
    return {name: float(getattr(spec, split)) for name, spec in SUBSETS.items()}


def workers(spec: str, machine: Machine) -> int:
    return resolve_workers(spec, machine.cores, machine.gpus)


def train_rows(settings: Settings, plan: Plan, costs: Costs, machine: Machine) -> list[Row]:
    """One row per trained variant: images / min(rate x gpus, loader cap)."""
    loader = workers(plan.loader_workers, machine)
    sample = weighted(costs.loader_sample, weights("train"))
    gpu = 1 / (machine.train_rate * machine.gpus)
    wall = item_wall(sample, 0.0, gpu, loader)
    rows = []
    for v in trained_variants(settings, plan):
        images = v.images * settings.seeds
        rows.append(Row(f"train@{v.name}", images, images * wall, 1 - gpu / wall, "train"))
    return rows


def validation_row(settings: Settings, plan: Plan, costs: Costs, machine: Machine) -> Row:
    """Per-epoch validation, on rank 0 (the other ranks wait for it)."""
    test_pairs = sum(s.test for s in SUBSETS.values())
    pairs = plan.val_pairs or test_pairs
    epochs = sum(v.epochs for v in validating_variants(settings, plan)) * settings.seeds
    load = weighted(costs.val_sample, weights("test"))
    gpu = machine.gpu_seconds(settings.image_size)
    per = item_wall(
        load, costs.metrics[settings.eval_size], gpu, workers(plan.val_workers, machine)
    )
    wait = 1 - gpu / (per * machine.gpus)
    n = len(validating_variants(settings, plan))
    return Row(
        f"validation in train@* ({n} variants)",
        epochs * pairs,
        epochs * pairs * per,
        wait,
        "validation",
    )


def run_walls(settings: Settings, plan: Plan, train: list[Row], val: Row) -> list[float]:
    """Wall seconds of each training run (training plus its share of the validation)."""
    trained = {v.name for v in trained_variants(settings, plan)}
    val_epochs = dict.fromkeys(trained, 0)
    for v in validating_variants(settings, plan):  # a shared prefix validates in its parent
        val_epochs[v.name if v.name in trained else v.parent] += v.epochs
    total = sum(val_epochs.values())
    walls = []
    for row, v in zip(train, trained_variants(settings, plan), strict=True):
        share = val_epochs[v.name] / total if total else 0.0
        walls.append(row.seconds / settings.seeds + val.seconds / settings.seeds * share)
    return walls


def checkpoint_count(settings: Settings, plan: Plan, walls: list[float]) -> int:
    """Checkpoint files written by all training runs: by steps (+ epoch ends) and by clock."""
    count = 0
    for v, wall in zip(trained_variants(settings, plan), walls, strict=True):
        if plan.checkpoint_every:
            count += checkpoint_writes_by_steps(
                v.steps, settings.steps_per_epoch, plan.checkpoint_every
            )
        if plan.checkpoint_minutes:
            count += checkpoint_writes_by_clock(wall, plan.checkpoint_minutes)
    return count * settings.seeds


def checkpoint_row(count: int, plan: Plan, costs: Costs) -> Row:
    how = []
    if plan.checkpoint_every:
        how.append(f"every {plan.checkpoint_every:,} steps + epoch ends")
    if plan.checkpoint_minutes:
        how.append(f"every {plan.checkpoint_minutes:g} min")
    return Row(
        f"checkpoint writes ({', '.join(how)})",
        count,
        count * costs.checkpoint_write,
        1.0,
        "checkpoint",
    )


def eval_item(
    costs: Costs, plan: Plan, subset: str, size: int, *, save: bool
) -> tuple[float, float]:
    """(worker, main) CPU seconds of one evaluated pair: loading in the worker part, scoring
    (metrics + SSIM) and the PNG in the main process."""
    ssim = costs.ssim_2d if plan.ssim == "2d" else costs.ssim_separable
    main = costs.metrics[size] + ssim[size] + (costs.png_save if save else 0.0)
    return costs.eval_load[f"{subset}@{size}"], main


def eval_seconds(
    plan: Plan, costs: Costs, machine: Machine, settings: Settings, gpu: float, extra: float = 0.0
) -> tuple[float, float]:
    """(wall seconds, GPU-busy seconds) of one model or baseline over the whole test split."""
    n = workers(plan.eval_workers, machine)
    wall = busy = 0.0
    for name, spec in SUBSETS.items():
        worker, main = eval_item(costs, plan, name, settings.eval_size, save=True)
        wall += spec.test * item_wall(worker, main + extra, gpu, n)
        busy += spec.test * gpu
    return wall, busy


def evaluate_rows(settings: Settings, plan: Plan, costs: Costs, machine: Machine) -> list[Row]:
    test_pairs = sum(s.test for s in SUBSETS.values())
    models = len(planned_variants(settings, plan)) * settings.seeds
    gpu = machine.gpu_seconds(settings.eval_size)
    wall, busy = eval_seconds(plan, costs, machine, settings, gpu)
    rows = [
        Row(
            f"evaluate@* ({models} models)",
            models * test_pairs,
            models * wall,
            1 - busy / wall,
            "evaluate",
        )
    ]
    base = sum(
        eval_seconds(plan, costs, machine, settings, 0.0, costs.baseline.get(b, 0.0))[0]
        for b in settings.baselines
    )
    n = len(settings.baselines)
    rows.append(Row(f"evaluate_baseline@* ({n})", n * test_pairs, base, 1.0, "evaluate"))
    return rows


def highres_rows(settings: Settings, plan: Plan, costs: Costs, machine: Machine) -> list[Row]:
    """evaluate_highres@<size>: `full` seed 0 and the composite baseline on HAdobe5k."""
    n = workers(plan.eval_workers, machine)
    pairs = SUBSETS[HIGHRES_SUBSET].test
    rows = []
    for size in settings.highres:
        worker, main = eval_item(costs, plan, HIGHRES_SUBSET, size, save=False)
        gpu = machine.gpu_seconds(size)
        model, composite = item_wall(worker, main, gpu, n), item_wall(worker, main, 0.0, n)
        wall = pairs * (model + composite)
        rows.append(
            Row(f"evaluate_highres@{size}", 2 * pairs, wall, 1 - pairs * gpu / wall, "highres")
        )
    return rows


def check_row(settings: Settings, plan: Plan, costs: Costs, machine: Machine) -> Row:
    """check_data: every file fully decoded once (a real shared by composites once)."""
    pairs = sum(s.pairs for s in SUBSETS.values())
    cpu = sum(
        s.pairs * (costs.decode_image[k] + costs.decode_mask[k]) + s.reals * costs.decode_image[k]
        for k, s in SUBSETS.items()
    )
    n = max(1, workers(plan.check_workers, machine))
    return Row("check_data", pairs, cpu / n, 1.0, "check_data")


def prepare_row(settings: Settings, plan: Plan, costs: Costs, machine: Machine) -> Row:
    pairs = sum(s.pairs for s in SUBSETS.values())
    cpu = sum(
        s.pairs * (costs.prepare_image[k] + costs.prepare_mask[k])
        + s.reals * costs.prepare_image[k]
        for k, s in SUBSETS.items()
    )
    n = max(1, workers(plan.prepare_workers, machine))
    return Row("prepare", pairs, cpu / n, 1.0, "prepare")


def dataset_bytes(costs: Costs) -> float:
    return sum(
        s.pairs * (costs.bytes_image[k] + costs.bytes_mask[k]) + s.reals * costs.bytes_image[k]
        for k, s in SUBSETS.items()
    )


def prepared_bytes(costs: Costs) -> float:
    return sum(
        s.pairs * (costs.prepared_image_bytes[k] + costs.prepared_mask_bytes[k])
        + s.reals * costs.prepared_image_bytes[k]
        for k, s in SUBSETS.items()
    )


def data_dvc_row(plan: Plan, costs: Costs) -> Row:
    """data.dvc: DVC hashes the dataset; with the cache, it also copies it into .dvc/cache."""
    mb = dataset_bytes(costs) / 1e6
    per = 1 / costs.md5_mb_s + (1 / costs.copy_mb_s if plan.cache_dataset else 0.0)
    what = "md5 + copy into .dvc/cache" if plan.cache_dataset else "md5 only (cache: false)"
    return Row(f"data.dvc ({what}), MB", mb, mb * per, 1.0, "data")


def small_rows(settings: Settings, costs: Costs, machine: Machine) -> list[Row]:
    """make_mini, features + harmonize_real, user_study and the reports (single-process)."""
    rows = [
        Row(
            "make_mini",
            settings.mini_pairs,
            settings.mini_pairs * costs.make_mini_pair,
            1.0,
            "other",
        )
    ]
    gpu = machine.gpu_seconds(max(REAL_COMPOSITE_SIZE))
    pixels = REAL_COMPOSITE_SIZE[0] * REAL_COMPOSITE_SIZE[1] / settings.eval_size**2
    per = costs.decode_pair["HFlickr"] + costs.png_save * pixels + gpu  # decode, run, write
    items = settings.feature_images + REAL_COMPOSITES
    rows.append(
        Row("features + harmonize_real (DIH99)", items, items * per, 1 - gpu / per, "other")
    )
    study = sum(s.test for s in SUBSETS.values()) * settings.study_candidates
    rows.append(Row("user_study", study, study * costs.study_candidate, 1.0, "user_study"))
    rows.append(
        Row(
            f"report_* ({settings.reports}, assumed {REPORT_SECONDS:.0f} s each)",
            settings.reports,
            settings.reports * REPORT_SECONDS,
            1.0,
            "reports",
        )
    )
    return rows


@dataclass
class PlanCost:
    plan: Plan
    rows: list[Row]
    training_images: int
    checkpoints: int
    eval_one_model: float

    @property
    def wall(self) -> float:
        return sum(r.seconds for r in self.rows)

    @property
    def training_wall(self) -> float:
        return sum(r.seconds for r in self.rows if r.kind == "train")

    @property
    def gpu_wait(self) -> float:
        return sum(r.seconds * r.gpu_wait for r in self.rows) / self.wall


def plan_cost(settings: Settings, plan: Plan, costs: Costs, machine: Machine) -> PlanCost:
    train = train_rows(settings, plan, costs, machine)
    val = validation_row(settings, plan, costs, machine)
    count = checkpoint_count(settings, plan, run_walls(settings, plan, train, val))
    rows = [
        *train,
        val,
        checkpoint_row(count, plan, costs),
        *evaluate_rows(settings, plan, costs, machine),
        *highres_rows(settings, plan, costs, machine),
        check_row(settings, plan, costs, machine),
        prepare_row(settings, plan, costs, machine),
        data_dvc_row(plan, costs),
        *small_rows(settings, costs, machine),
    ]
    gpu = machine.gpu_seconds(settings.eval_size)
    one = eval_seconds(plan, costs, machine, settings, gpu)[0]
    return PlanCost(plan, rows, training_images(settings, plan), count, one)


def disk(cost: PlanCost, settings: Settings, costs: Costs) -> dict[str, float]:
    """GB on disk after a paper-profile run (estimates from the measured bytes)."""
    planned = planned_variants(settings, cost.plan)
    # a shared prefix is on disk twice: in its parent's model directory and copied out
    copies = sum(1 for v in planned if v.shared and cost.plan.shares_prefixes)
    models = (len(planned) + copies) * settings.seeds
    test_pairs = sum(s.test for s in SUBSETS.values())
    pngs = (models + len(settings.baselines) + settings.study_candidates) * test_pairs
    data = dataset_bytes(costs) / 1e9
    return {
        "dataset (originals, est.)": data,
        "dataset copy in .dvc/cache": data if cost.plan.cache_dataset else 0.0,
        "data/prepared (est., longest side 1024)": prepared_bytes(costs) / 1e9,
        "evaluation + user-study PNGs": pngs * costs.png_bytes / 1e9,
        "models/ (model.pt)": models * costs.model_mb / 1e3,
        "checkpoints kept (1 x last.pt)": costs.checkpoint_mb / 1e3,
        "checkpoint GB written": cost.checkpoints * costs.checkpoint_mb / 1e3,
    }

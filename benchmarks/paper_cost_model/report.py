"""The printed tables, the targets of the new plan, and the JSON report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from .arithmetic import Machine, PlanCost, disk, validating_variants, weighted, weights, workers
from .data import HIGHRES_SUBSET, SUBSETS
from .launch import LaunchCost
from .measure import Costs
from .plans import Plan
from .settings import Settings

# ---- the targets of the new plan (stated for 500 img/s, 1 GPU, 16 cores) ---------------------
TARGET_GPU_WAIT = 0.10  # share of the pipeline's wall time
TARGET_PIPELINE_RATIO = 1.25  # pipeline wall time / training wall time
TARGET_TRAIN_IMAGES = 63.2e6  # training images of the whole pipeline
TARGET_EVAL_SECONDS = 600.0  # one variant (one model) on the 7,404 test pairs


def launch_lines(launches: list[LaunchCost], efficiency: float) -> list[str]:
    head = f"{'GPUs':>5}{'DDP (launch.processes)':>26}{'independent runs':>20}{'break-even':>14}"
    lines = [
        f"== several GPUs: the new plan's wall hours (DDP at {efficiency:g} of linear scaling, "
        "assumed) ==",
        head,
        "-" * len(head),
    ]
    for c in launches:
        lines.append(
            f"{c.gpus:>5}{c.ddp / 3600:>26.1f}{c.independent / 3600:>20.1f}"
            f"{100 * c.break_even:>13.0f}%"
        )
    lines.append(
        "break-even: the DDP efficiency below which independent runs finish sooner; other "
        f"stages {launches[0].other / 3600:.1f} h in every column"
    )
    return lines


def count_text(n: float) -> str:
    if n >= 1e6:
        return f"{n / 1e6:.2f} M"
    return f"{n:,.0f}"


def seconds_text(s: float) -> str:
    if s == 0:
        return "0"
    if s < 1e-3:
        return f"{s * 1e6:.0f} us"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


def plan_table(cost: PlanCost) -> list[str]:
    head = f"{'stage':<54}{'items':>11}{'s/item':>11}{'hours':>9}{'GPU waits':>11}"
    lines = [f"== {cost.plan.title} ==", head, "-" * len(head)]
    for r in cost.rows:
        lines.append(
            f"{r.stage:<54}{count_text(r.items):>11}{seconds_text(r.per_item):>11}"
            f"{r.seconds / 3600:>9.2f}{100 * r.gpu_wait:>10.1f}%"
        )
    lines.append("-" * len(head))
    lines.append(f"{'total':<54}{'':>22}{cost.wall / 3600:>9.2f}{100 * cost.gpu_wait:>10.1f}%")
    return lines


def summary(cost: PlanCost, settings: Settings, costs: Costs, machine: Machine) -> dict[str, float]:
    return {
        "training images (M)": cost.training_images / 1e6,
        "GPU-hours of training": cost.training_wall * machine.gpus / 3600,
        "pipeline wall hours": cost.wall / 3600,
        "pipeline / training": cost.wall / cost.training_wall,
        "GPU-wait share (%)": 100 * cost.gpu_wait,
        "evaluate one model, 7,404 pairs (min)": cost.eval_one_model / 60,
        **{f"disk GB: {k}": v for k, v in disk(cost, settings, costs).items()},
    }


def side_by_side(sums: dict[str, dict[str, float]]) -> list[str]:
    names = list(sums)
    lines = ["== side by side ==", f"{'':<48}" + "".join(f"{n:>12}" for n in names)]
    for key in sums[names[0]]:
        lines.append(f"{key:<48}" + "".join(f"{sums[n][key]:>12.2f}" for n in names))
    return lines


def targets(costs: dict[str, PlanCost]) -> list[dict[str, Any]]:
    """The targets of the new plan, each with its measured value (and the old one)."""
    new, old = costs.get("new"), costs.get("old")
    if new is None:
        return []

    def row(
        name: str, value: Callable[[PlanCost], float], limit: float, unit: str
    ) -> dict[str, Any]:
        got = value(new)
        return {
            "target": name,
            "limit": limit,
            "new": got,
            "old": value(old) if old else None,
            "unit": unit,
            "holds": got <= limit,
        }

    return [
        row(
            "GPU waits <= 10 % of pipeline wall",
            lambda c: 100 * c.gpu_wait,
            100 * TARGET_GPU_WAIT,
            "%",
        ),
        row(
            "pipeline <= 1.25 x training time",
            lambda c: c.wall / c.training_wall,
            TARGET_PIPELINE_RATIO,
            "x",
        ),
        row(
            "training images <= 63.2 M",
            lambda c: c.training_images / 1e6,
            TARGET_TRAIN_IMAGES / 1e6,
            "M",
        ),
        row(
            "evaluate one variant <= 10 min",
            lambda c: c.eval_one_model / 60,
            TARGET_EVAL_SECONDS / 60,
            "min",
        ),
    ]


def shortfall(rows: list[dict[str, Any]], epoch_images: int) -> list[str]:
    """What a failed training-images target would take, in epochs of the paper profile."""
    row = next(r for r in rows if r["unit"] == "M")
    if row["holds"]:
        return []
    excess = (row["new"] - row["limit"]) * 1e6
    return [
        f"       training images: {excess / 1e6:.2f} M over the target = "
        f"{excess / epoch_images:.0f} epochs of {epoch_images:,} images to drop beyond the plan"
    ]


def target_lines(rows: list[dict[str, Any]], machine: Machine, epoch_images: int) -> list[str]:
    if not rows:
        return []
    lines = [
        f"== targets (new plan; stated for 500 img/s, 1 GPU, 16 cores; here {machine.train_rate:g}"
        f" img/s, {machine.gpus} GPU(s), {machine.cores} cores) =="
    ]
    for r in rows:
        old = f"  (old {r['old']:.2f} {r['unit']})" if r["old"] is not None else ""
        verdict = "HOLDS" if r["holds"] else "FAILS"
        lines.append(f"{verdict:<6} {r['target']:<40} new {r['new']:.2f} {r['unit']}{old}")
    return lines + shortfall(rows, epoch_images)


def measured_lines(costs: Costs) -> list[str]:
    big, t = HIGHRES_SUBSET, seconds_text
    w, h = SUBSETS[big].size
    prepared = 2 * costs.prepared_image_bytes[big] + costs.prepared_mask_bytes[big]
    lines = [
        "== per-item costs measured on this machine (one core) ==",
        f"decode {w}x{h} JPEG ({big}): {t(costs.decode_image[big])}, "
        f"{costs.bytes_image[big] / 1e6:.2f} MB; original pair: {t(costs.decode_pair[big])}",
        "resize (bicubic) of one RGB image: "
        + ", ".join(f"{k}: {t(v)}" for k, v in costs.resize.items()),
        "training-loader sample (prepared -> 256 crop): "
        + ", ".join(f"{k} {t(v)}" for k, v in costs.loader_sample.items()),
    ]
    for size in sorted(costs.metrics):
        lines.append(
            f"score at {size}: metrics w/o SSIM {t(costs.metrics[size])}, SSIM 2-D "
            f"{t(costs.ssim_2d[size])}, separable {t(costs.ssim_separable[size])}, "
            f"package metrics.ssim {t(costs.ssim_package[size])}"
        )
    lines += [
        f"prepared pair ({big}, longest side 1024): {prepared / 1e6:.2f} MB; prediction PNG "
        f"256: {t(costs.png_save)}, {costs.png_bytes / 1e3:.0f} kB",
        f"checkpoint (paper model + AdamW state): {costs.checkpoint_mb:.0f} MB in "
        f"{t(costs.checkpoint_write)}; md5 {costs.md5_mb_s:.0f} MB/s, copy "
        f"{costs.copy_mb_s:.0f} MB/s",
    ]
    return lines


def plan_notes(settings: Settings, plan: Plan, costs: Costs, machine: Machine) -> list[str]:
    """How the plan's training loader and evaluation run on this machine model."""
    loader = workers(plan.loader_workers, machine)
    sample = weighted(costs.loader_sample, weights("train"))
    cap = loader / sample if loader else 1 / sample
    val = ", ".join(v.name for v in validating_variants(settings, plan))
    return [
        f"loader: {loader} workers x 1 / {seconds_text(sample)} = {cap:.0f} img/s cap; GPUs "
        f"{machine.train_rate * machine.gpus:.0f} img/s",
        f"validation: {plan.val_pairs or 'all'} pairs per epoch, workers "
        f"{workers(plan.val_workers, machine)}, of {val}",
        f"evaluation: workers {workers(plan.eval_workers, machine)}, SSIM {plan.ssim}; "
        f"check_data workers {workers(plan.check_workers, machine)}",
    ]


def settings_line(settings: Settings) -> str:
    v = settings.variants
    half = [n for n, x in v.items() if x.budget < 1]
    return (
        f"params.yaml (paper switch): {len(v)} variants ({len(half)} at budget < 1: "
        f"{', '.join(half)}), {settings.seeds} seed(s), {settings.steps_per_epoch} steps/epoch "
        f"at batch {settings.batch_size}, evaluate {settings.eval_size} + highres "
        f"{list(settings.highres)}; dvc.yaml: {len(settings.stages)} stages\n"
        f"params.yaml profiles.paper.train now: {settings.paper_train} (the plans below are "
        "fixed data, not read from it)"
    )


def json_report(
    machine: Machine,
    settings: Settings,
    costs: Costs,
    plans: dict[str, PlanCost],
    sums: dict[str, dict[str, float]],
) -> dict[str, Any]:
    return {
        "machine": asdict(machine),
        "measured": asdict(costs),
        "plans": {
            name: {
                "rows": [{**asdict(r), "per_item": r.per_item} for r in c.rows],
                "summary": sums[name],
            }
            for name, c in plans.items()
        },
        "targets": targets(plans),
        "variants": {k: asdict(v) for k, v in settings.variants.items()},
    }

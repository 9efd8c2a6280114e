"""The cost of `dvc repro` for the paper profile: hours, GPU waiting and disk, per stage, for
two plans of the pipeline, old and new, side by side.

    python benchmarks/paper_cost.py                      # 1 GPU at 500 img/s, 16 cores
    python benchmarks/paper_cost.py --gpus 8 --train-rate 450 --cpu-workers 32
    python benchmarks/paper_cost.py --quick --json cost.json   # smoke test, < 20 s
    python benchmarks/paper_cost.py --plan new --launch-gpus 1 8 --cpu-workers 96  # 1 vs 8 GPUs

What it combines:

* counts read from params.yaml and dvc.yaml: the variants with their `train.budget`, the
  paper profile's epochs, batch, checkpoint interval and loader workers (resolved through
  `regionharmony.params.build_config`), the seeds and the `evaluate.highres` sizes of the paper
  switch (switches/paper.yaml, put into params.yaml as `regionharmony switch paper` does), the
  baselines, the user-study methods and the report stages;
* iHarmony4's published split sizes (65,742 train / 7,404 test; HAdobe5k test 2,160) and
  DIH99's 99 real composites;
* per-item costs MEASURED HERE, at run time, on synthetic images of the sizes below: decoding
  an original pair (HAdobe5k: 4256 x 2832 JPEG), the bicubic resizes of
  `regionharmony.data.images`, `prepare`'s per-file work and its encoded bytes at longest side
  1024, one training-loader sample from that prepared cache (decode + random-resized crop to
  256), the metrics of one image, the IIH SSIM as a 2-D correlate (old) and as two 1-D passes
  (new), a 256 px PNG written by `evaluate --save-images`, and a checkpoint of the paper model
  with its AdamW state (3 x the weights) written with `regionharmony.io.atomic_save`;
* the command line: the training rate of one GPU (`--train-rate`), `--gpus`, and the cores of
  the GPU machine (`--cpu-workers`), over which the per-item CPU costs divide where a stage
  runs parallel. This machine's single-core costs stand for one core of that machine.

The model of a stage: an item (image, pair, file) costs `worker` CPU seconds that loader
workers can share, `main` seconds in the main process and `gpu` seconds on the GPU. Without
workers they add up; with W workers an item takes max(worker / W, main + gpu). The GPU waits for
the rest of the item's time; a CPU-only stage leaves it waiting the whole time. The GPU
evaluates at 4 x the training rate (scaled by pixels at larger sizes). Training runs on all
--gpus (DDP; validation on rank 0 while the others wait); every other stage on one GPU. Stages
run one after another, as `dvc repro` runs them.

`--launch-gpus 1 8` adds a table: the new plan's wall time on each GPU count under the two ways
to use several GPUs. "ddp" is what `launch.processes` does: every training on all GPUs at once
(torchrun), the global batch of 8 split over the ranks, at `--ddp-efficiency` of linear scaling
(ASSUMED, default 1.0: an upper bound; a rank with 1 image keeps a GPU far from full, and no GPU
measurement of it exists here); the other stages as on one GPU. "independent" runs the trainings
side by side, one per GPU (longest first), each with its share of the cores, which `dvc repro`
cannot do (it runs one stage at a time; queued experiments can: README). The table prints the
DDP efficiency at which the two finish together.

This script reads the command line and prints; the model lives in benchmarks/paper_cost_model/
(one idea a module, listed in its __init__).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the package beside this script, also where the script is loaded by path (tests)
if str(ROOT / "benchmarks") not in sys.path:
    sys.path.append(str(ROOT / "benchmarks"))

from paper_cost_model.arithmetic import (  # noqa: E402
    Machine,
    PlanCost,
    checkpoint_writes_by_clock,
    checkpoint_writes_by_steps,
    item_wall,
    plan_cost,
    training_images,
    validating_variants,
)
from paper_cost_model.launch import launch_cost, makespan  # noqa: E402
from paper_cost_model.measure import blur_2d, blur_separable, iih_ssim, measure  # noqa: E402
from paper_cost_model.plans import PLANS, resolve_workers  # noqa: E402
from paper_cost_model.report import (  # noqa: E402
    TARGET_TRAIN_IMAGES,
    json_report,
    launch_lines,
    measured_lines,
    plan_notes,
    plan_table,
    settings_line,
    side_by_side,
    summary,
    target_lines,
    targets,
)
from paper_cost_model.settings import (  # noqa: E402
    epochs_run,
    images_per_run,
    paper_switch,
    read_settings,
    switched,
)

# the model's functions, importable from this script (tests/test_paper_cost.py)
__all__ = [
    "PLANS",
    "TARGET_TRAIN_IMAGES",
    "PlanCost",
    "blur_2d",
    "blur_separable",
    "checkpoint_writes_by_clock",
    "checkpoint_writes_by_steps",
    "epochs_run",
    "iih_ssim",
    "images_per_run",
    "item_wall",
    "main",
    "makespan",
    "paper_switch",
    "read_settings",
    "resolve_workers",
    "switched",
    "training_images",
    "validating_variants",
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-rate", type=float, default=500.0, help="training img/s of one GPU")
    parser.add_argument("--gpus", type=int, default=1, help="GPUs of the machine (default 1)")
    parser.add_argument(
        "--cpu-workers", type=int, default=16, help="CPU cores of the GPU machine (default 16)"
    )
    parser.add_argument("--plan", choices=["old", "new", "both"], default="both")
    parser.add_argument(
        "--launch-gpus",
        type=int,
        nargs="+",
        metavar="N",
        help="also compare DDP and independent trainings of the new plan on these GPU counts",
    )
    parser.add_argument(
        "--ddp-efficiency",
        type=float,
        default=1.0,
        help="DDP throughput over linear scaling, assumed (default 1.0, an upper bound)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny measurements (smoke test)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the tables here")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--dvc", type=Path, default=ROOT / "dvc.yaml")
    args = parser.parse_args(argv)
    if args.train_rate <= 0 or args.gpus < 1 or args.cpu_workers < 1:
        parser.error("--train-rate, --gpus and --cpu-workers must be positive")
    if not 0 < args.ddp_efficiency <= 1 or any(n < 1 for n in args.launch_gpus or []):
        parser.error("--ddp-efficiency must be in (0, 1] and --launch-gpus positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = read_settings(args.params, args.dvc)
    costs = measure(settings, args.quick, longest=1024)
    machine = Machine(args.train_rate, args.gpus, args.cpu_workers)
    names = ["old", "new"] if args.plan == "both" else [args.plan]
    plans = {n: plan_cost(settings, PLANS[n], costs, machine) for n in names}
    sums = {n: summary(c, settings, costs, machine) for n, c in plans.items()}
    epoch_images = settings.steps_per_epoch * settings.batch_size
    lines = [settings_line(settings), *measured_lines(costs), ""]
    if args.quick:
        lines.insert(0, "--quick: tiny images, costs scaled up by pixels; a smoke test, not a cost")
    for cost in plans.values():
        notes = plan_notes(settings, cost.plan, costs, machine)
        lines += [*plan_table(cost), *notes, ""]
    lines += [*side_by_side(sums), "", *target_lines(targets(plans), machine, epoch_images)]
    launches = [
        launch_cost(
            settings,
            PLANS["new"],
            costs,
            Machine(args.train_rate, n, args.cpu_workers),
            args.ddp_efficiency,
        )
        for n in args.launch_gpus or []
    ]
    if launches:
        lines += ["", *launch_lines(launches, args.ddp_efficiency)]
    print("\n".join(lines))
    if args.json:
        report = json_report(machine, settings, costs, plans, sums)
        report["launch"] = [
            {**asdict(c), "ddp": c.ddp, "independent": c.independent} for c in launches
        ]
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

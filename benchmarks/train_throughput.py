"""Training throughput, side by side: the paper recipe's step and each optimisation added in turn.

    python benchmarks/train_throughput.py --profile paper --device cuda --large-batch 128
    python benchmarks/train_throughput.py --profile mini --device cpu

One run prints one table. Rows, in order (each adds one thing to the row above):

    baseline        batch 8, fp32, eager, per-image L_HCL loop (the code before issue 10)
    + batched HCL   L_HCL over the whole batch, no host sync (`loss.region_contrastive_loss`)
    + bf16, CL      bf16 autocast + channels-last memory (the CUDA default of `train`)
    + fused AdamW   (CUDA only)
    + compile       torch.compile of generator + L_all as one module (the CUDA default)
    then the last row again at --large-batch (the largest batch tried; a larger batch is an
    explicit option, never the paper profile's default: see docs/paper-run.md "Training on GPUs").

Columns: images/s, achieved TFLOP/s (FLOPs of one eager step measured once with
torch.utils.flop_counter), the share of the step spent in L_HCL (its forward + backward timed
alone on the same batch), peak memory, the ratio to the baseline, and the GPU-hours that
`dvc repro` of the paper profile would take at that rate (65,742 pairs x epochs x the
full-budget-equivalent trainings params.yaml asks for). Synthetic batches (random images, box
masks of 5-40 % of the area) isolate the model and the loss from data loading
(benchmarks/data_loading.py measures that). Plain torch: runs without dvclive.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from hcl_reference import reference_hcl  # noqa: E402

from regionharmony.loss import HarmonizationLoss  # noqa: E402
from regionharmony.model.harmonizer import build_model  # noqa: E402
from regionharmony.params import build_config

ROOT = Path(__file__).resolve().parents[1]
PAPER_TRAIN_PAIRS = 65742


def synthetic_batch(batch: int, size: int, device: torch.device):
    gen = torch.Generator().manual_seed(0)
    composite = torch.rand(batch, 3, size, size, generator=gen)
    real = torch.rand(batch, 3, size, size, generator=gen)
    mask = torch.zeros(batch, 1, size, size)
    for b in range(batch):
        side = int(size * (0.22 + 0.41 * (b % 8) / 7))
        top, left = (torch.randint(0, size - side + 1, (2,), generator=gen) // 4 * 4).tolist()
        mask[b, :, top : top + side, left : left + side] = 1
    return composite.to(device), mask.to(device), real.to(device)


def paper_trainings() -> float:
    """Full-budget-equivalent trainings `dvc repro` runs: sum over variants of budget x seeds."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    seeds = int(params.get("seeds", 1))
    total = 0.0
    for variant in params["variants"].values():
        total += float(((variant or {}).get("train") or {}).get("budget", 1.0)) * seeds
    return total


class Step:
    """One training step of the profile under a set of options."""

    def __init__(self, cfg, batch: int, device: torch.device, opts: dict) -> None:
        self.device, self.opts = device, opts
        torch.manual_seed(0)
        self.model = build_model(cfg).to(device)
        self.criterion = HarmonizationLoss(cfg.loss).to(device)
        self.loss_cfg = cfg.loss
        if opts["channels_last"]:
            self.model = self.model.to(memory_format=torch.channels_last)
        params = list(self.model.parameters()) + list(self.criterion.parameters())
        self.optimizer = torch.optim.AdamW(params, lr=cfg.train.lr, fused=opts["fused"])
        self.composite, self.mask, self.real = synthetic_batch(batch, cfg.train.image_size, device)
        if opts["channels_last"]:
            self.composite = self.composite.contiguous(memory_format=torch.channels_last)
        self.seeds = torch.arange(batch, dtype=torch.int64, device=device) + 12345
        objective = self.objective
        self.run = torch.compile(objective) if opts["compile"] else objective

    def autocast(self):
        if self.opts["bf16"]:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def hcl(self, prediction: torch.Tensor) -> torch.Tensor:
        c = self.loss_cfg
        if self.opts["batched"]:
            return self.criterion.contrastive(prediction, self.real, self.mask, self.seeds)
        return reference_hcl(
            prediction,
            self.real,
            self.mask,
            self.criterion.projection,
            c.num_patches,
            c.patch_size,
            c.grid_stride,
            c.temperature,
            query=c.hcl_query,
            patch_source=c.patch_source,
            seeds=self.seeds.tolist(),
        )

    def objective(self) -> torch.Tensor:
        with self.autocast():
            prediction = self.model(self.composite, self.mask).float()
        c = self.loss_cfg
        terms = self.criterion(prediction, self.real, self.mask, self.seeds, hcl=False)
        return terms["total"] + c.lambda_hcl * self.hcl(prediction)

    def __call__(self) -> None:
        loss = self.run()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def hcl_only(self) -> None:
        prediction = self.composite.float().requires_grad_(True)
        self.hcl(prediction).backward()


def timed(fn: Callable[[], None], device: torch.device, warmup: int, steps: int) -> float:
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def peak_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


ROWS = (
    ("baseline (fp32 eager, per-image L_HCL)", {}),
    ("+ batched L_HCL", {"batched": True}),
    ("+ bf16 + channels-last", {"bf16": True, "channels_last": True}),
    ("+ fused AdamW", {"fused": True}),
    ("+ compile (generator + L_all)", {"compile": True}),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=["paper", "mini"], default="mini")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=8, help="the paper's batch (8)")
    parser.add_argument("--large-batch", type=int, default=0, help="also the last row at this")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per row")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", type=Path, help="append one JSON line per row here")
    parser.add_argument("--no-compile", action="store_true", help="leave the compiled rows out")
    args = parser.parse_args()

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
        # the compiled backward must keep the loss's own fp32 (pytorch issue 179804)
        torch._functorch.config.backward_pass_autocast = "off"
    cfg = build_config(args.profile)
    epochs = cfg.train.epochs
    trainings = paper_trainings()
    print(
        f"profile {args.profile}, {cfg.train.image_size} px, {device}"
        + (f" ({torch.cuda.get_device_name()})" if cuda else f", {torch.get_num_threads()} threads")
        + f", torch {torch.__version__}; paper repro = {PAPER_TRAIN_PAIRS} pairs x {epochs} "
        f"epochs x {trainings:g} full-budget trainings"
    )
    header = (
        f"{'configuration':<40}{'batch':>6}{'img/s':>9}{'TFLOP/s':>9}{'L_HCL %':>9}"
        f"{'peak GiB':>10}{'x base':>8}{'GPU-h repro':>13}"
    )
    print(header)
    opts = {"batched": False, "bf16": False, "channels_last": False, "fused": False}
    opts["compile"] = False
    plan = []
    for label, change in ROWS:
        if (change.get("fused") and not cuda) or (change.get("compile") and args.no_compile):
            continue
        opts = {**opts, **change}
        plan.append((label, dict(opts), args.batch_size))
    if args.large_batch:
        # eager first (cheap), then compiled: a run cut short still has the eager figure
        eager = {**plan[-1][1], "compile": False}
        at = 3 if cuda else 2  # after "+ fused AdamW" (CUDA) / "+ bf16" (CPU)
        plan.insert(at + 1, ("all but compile (large batch)", eager, args.large_batch))
        if not args.no_compile:
            plan.append((plan[-1][0] + " (large batch)", dict(plan[-1][1]), args.large_batch))
    baseline = None
    for label, row_opts, batch in plan:
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        step = Step(cfg, batch, device, row_opts)
        with FlopCounterMode(display=False) as counter:
            Step(cfg, min(batch, 8), device, {**row_opts, "compile": False})()
        flops_per_image = counter.get_total_flops() / min(batch, 8)
        seconds = timed(step, device, args.warmup, args.steps)
        hcl_seconds = timed(step.hcl_only, device, 1, args.steps)
        rate = batch / seconds
        baseline = baseline or rate
        gpu_hours = PAPER_TRAIN_PAIRS * epochs * trainings / rate / 3600
        row = {
            "configuration": label,
            "batch": batch,
            "images_per_s": rate,
            "tflops": flops_per_image * rate / 1e12,
            "hcl_share": min(hcl_seconds / seconds, 1.0),
            "peak_gib": peak_gib(device),
            "vs_baseline": rate / baseline,
            "repro_gpu_hours": gpu_hours,
        }
        print(
            f"{label:<40}{batch:>6}{rate:>9.1f}{row['tflops']:>9.2f}{100 * row['hcl_share']:>8.1f}%"
            f"{row['peak_gib']:>10.2f}{row['vs_baseline']:>8.2f}{gpu_hours:>13.1f}",
            flush=True,
        )
        if args.json:
            with args.json.open("a") as handle:
                handle.write(json.dumps({"profile": args.profile, "device": str(device), **row}))
                handle.write("\n")
        del step


if __name__ == "__main__":
    main()

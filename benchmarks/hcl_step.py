"""L_HCL forward + backward: the earlier per-image loop against the batched loss.

    OMP_NUM_THREADS=1 python benchmarks/hcl_step.py --device cpu --batch 8 32 --size 64
    python benchmarks/hcl_step.py --device cuda --batch 8 32 --size 256 64 --compile --check

"old" is the earlier implementation (tests/hcl_reference.py: one image at a time, dense patches
of the whole grid, patch locations drawn on the CPU with a per-image torch.Generator, so a
device-to-host read per image); "batched" is regionharmony.loss.region_contrastive_loss (one
gather, one bmm, sampling hashed on the device); "compiled" is the batched loss under
torch.compile (inductor). Each timing is the median over --repeat runs of one forward + backward
of L_HCL alone (the head included), on synthetic images with box masks covering 5-40 % of the
image. --check (CUDA) also verifies that the batched step never synchronises with the host
(torch.cuda.set_sync_debug_mode("error")) and that CPU and CUDA draw the same cells.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from hcl_reference import reference_hcl  # noqa: E402

from regionharmony.loss import (  # noqa: E402
    HCL_QUERIES,
    PatchProjection,
    region_contrastive_loss,
    region_locations,
    sample_cells,
)
from regionharmony.loss.patches import _FG_STREAM  # noqa: E402


def synthetic_batch(batch: int, size: int, device: torch.device):
    gen = torch.Generator().manual_seed(0)
    prediction = torch.rand(batch, 3, size, size, generator=gen)
    real = torch.rand(batch, 3, size, size, generator=gen)
    mask = torch.zeros(batch, 1, size, size)
    for b in range(batch):
        side = int(size * (0.22 + 0.41 * b / max(batch - 1, 1)))  # 5 % to 40 % of the area
        top, left = (torch.randint(0, size - side + 1, (2,), generator=gen) // 4 * 4).tolist()
        mask[b, :, top : top + side, left : left + side] = 1
    return prediction.to(device), real.to(device), mask.to(device)


def time_step(step: Callable[[], None], device: torch.device, warmup: int, repeat: int) -> float:
    """Median milliseconds of one call."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def make_steps(batch: int, size: int, device: torch.device, query: str, compiled: bool):
    prediction, real, mask = synthetic_batch(batch, size, device)
    prediction.requires_grad_()
    head = PatchProjection().to(device)
    seed_list = list(range(1000, 1000 + batch))
    seeds = torch.tensor(seed_list, device=device)
    batched_fn = torch.compile(region_contrastive_loss) if compiled else region_contrastive_loss

    def old() -> None:
        reference_hcl(prediction, real, mask, head, query=query, seeds=seed_list).backward()

    def batched() -> None:
        batched_fn(prediction, real, mask, head, seeds=seeds, query=query).backward()

    return old, batched


def check_cuda(batch: int, size: int, query: str) -> None:
    """No host synchronisation in the batched forward + backward (a CUDA seed tensor; a list of
    ints is reported separately), the same cells on CPU and CUDA, and the same loss value."""
    cuda = torch.device("cuda")
    prediction, real, mask = synthetic_batch(batch, size, cuda)
    prediction.requires_grad_()
    torch.manual_seed(0)
    head = PatchProjection().to(cuda)
    seed_list = [i * 7919 + 3 for i in range(batch)]
    seeds = torch.tensor(seed_list, device=cuda)
    loss = region_contrastive_loss(prediction, real, mask, head, seeds=seeds, query=query)
    loss.backward()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any host synchronisation now raises
    try:
        region_contrastive_loss(prediction, real, mask, head, seeds=seeds, query=query).backward()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            region_contrastive_loss(prediction, real, mask, head, seeds=seed_list, query=query)
        finally:
            torch.cuda.set_sync_debug_mode(0)
    valid = region_locations(mask, 4)
    on_cuda = sample_cells(valid, 256, seeds, _FG_STREAM)[0].cpu()
    on_cpu = sample_cells(valid.cpu(), 256, seeds.cpu(), _FG_STREAM)[0]
    cpu_loss = region_contrastive_loss(
        prediction.detach().cpu(), real.cpu(), mask.cpu(), head.cpu(), seeds=seed_list, query=query
    )
    head.to(cuda)
    print(
        f"check {query}: no host sync with a CUDA seed tensor; with a list of seeds "
        f"{len(caught)} sync warning(s); CPU and CUDA cells equal: {torch.equal(on_cuda, on_cpu)}; "
        f"loss CUDA {loss.item():.6f} CPU {cpu_loss.item():.6f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--size", type=int, nargs="+", default=[256, 64])
    parser.add_argument("--query", nargs="+", default=["paper", "truth_gated"], choices=HCL_QUERIES)
    parser.add_argument("--compile", action="store_true", help="also time the compiled loss")
    parser.add_argument("--check", action="store_true", help="CUDA: no host sync; CPU = CUDA cells")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, {device}"
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
        + f", {torch.get_num_threads()} CPU threads; K = 256, 8x8 patches, 1/4 grid; "
        "median ms of one L_HCL forward + backward"
    )
    header = (
        f"{'batch':>5} {'size':>5} {'query':>12} {'old ms':>9} {'batched ms':>11} {'speed-up':>9}"
    )
    if args.compile:
        header += f" {'compiled ms':>12} {'speed-up':>9}"
    print(header)
    for size in args.size:
        for batch in args.batch:
            for query in args.query:
                old, batched = make_steps(batch, size, device, query, compiled=False)
                old_ms = time_step(old, device, args.warmup, args.repeat)
                new_ms = time_step(batched, device, args.warmup, args.repeat)
                row = f"{batch:5d} {size:5d} {query:>12} {old_ms:9.2f} {new_ms:11.2f}"
                row += f" {old_ms / new_ms:8.1f}x"
                if args.compile:
                    _, compiled = make_steps(batch, size, device, query, compiled=True)
                    comp_ms = time_step(compiled, device, args.warmup + 2, args.repeat)
                    row += f" {comp_ms:12.2f} {old_ms / comp_ms:8.1f}x"
                print(row, flush=True)
    if args.check and device.type == "cuda":
        for query in args.query:
            check_cuda(max(args.batch), max(args.size), query)


if __name__ == "__main__":
    main()

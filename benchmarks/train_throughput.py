"""Training throughput of one profile: images/s, seconds per step, peak memory, TFLOP/s.

    python benchmarks/train_throughput.py --profile mini --batch-size 8 --device cpu
    python benchmarks/train_throughput.py --profile paper --device cuda \
        --bf16 --channels-last --compile

Synthetic batches (random composites, box masks) isolate the model + loss from data loading
(see benchmarks/data_loading.py for that). FLOPs per training step are measured once with
torch.utils.flop_counter on the real step (forward + L_all + backward); achieved TFLOP/s is that
count divided by the measured step time.
"""

from __future__ import annotations

import argparse
import resource
import time
from contextlib import nullcontext

import torch
from torch.utils.flop_counter import FlopCounterMode

from regionharmony.config import build_config
from regionharmony.loss import HarmonizationLoss
from regionharmony.model import build_model, count_parameters


def synthetic_batch(batch: int, size: int, device: torch.device):
    composite = torch.rand(batch, 3, size, size, device=device)
    real = torch.rand(batch, 3, size, size, device=device)
    mask = torch.zeros(batch, 1, size, size, device=device)
    mask[..., size // 4 : 3 * size // 4, size // 5 : size // 2] = 1
    return composite, mask, real


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=["paper", "mini"], default="mini")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--size", type=int, help="image side (default: the profile's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()

    cfg = build_config(args.profile)
    size = args.size or cfg.train.image_size
    device = torch.device(args.device)
    torch.manual_seed(0)
    model, criterion = build_model(cfg).to(device), HarmonizationLoss(cfg.loss).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    params = list(model.parameters()) + list(criterion.parameters())
    optimizer = torch.optim.AdamW(params, lr=cfg.train.lr)
    forward = torch.compile(model) if args.compile else model
    composite, mask, real = synthetic_batch(args.batch_size, size, device)
    if args.channels_last:
        composite = composite.contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if args.bf16 else nullcontext()

    def step(net: torch.nn.Module = forward) -> None:
        with autocast:
            loss = criterion(net(composite, mask).float(), real, mask)["total"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    with FlopCounterMode(display=False) as counter:
        step(model)  # eager: the FLOP counter cannot see inside a compiled graph
    flops_per_step = counter.get_total_flops()
    for _ in range(args.warmup):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    seconds = (time.perf_counter() - start) / args.steps

    if device.type == "cuda":
        peak = f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB (CUDA allocated)"
    else:
        peak = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB (process RSS)"
    mode = (
        "+".join(
            n
            for n, on in (
                ("bf16", args.bf16),
                ("channels_last", args.channels_last),
                ("compile", args.compile),
            )
            if on
        )
        or "fp32 eager"
    )
    print(
        f"profile {args.profile}, {count_parameters(model) / 1e6:.2f} M params, {size}x{size}, "
        f"batch {args.batch_size}, {device}, {mode}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} CPU threads"
    )
    print(f"seconds/step       {seconds:.4f}")
    print(f"images/s           {args.batch_size / seconds:.2f}")
    print(f"seconds/image      {seconds / args.batch_size:.4f} (forward + backward + step)")
    print(f"GFLOP/train image  {flops_per_step / args.batch_size / 1e9:.2f} (measured)")
    print(f"achieved TFLOP/s   {flops_per_step / seconds / 1e12:.3f}")
    print(f"peak memory        {peak}")


if __name__ == "__main__":
    main()

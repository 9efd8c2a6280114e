"""Forward-pass speed and peak memory of the generator, per inference variant, on a CPU or a GPU.

    OMP_NUM_THREADS=2 python benchmarks/inference.py --device cpu --sizes 256 --batch 1 8
    python benchmarks/inference.py --device cuda --sizes 256 1024 2048 --compile

Variants (each a column of what `regionharmony.inference.engine.Engine` can do):

    fp32            the model as trained, eval mode, inference_mode
    fp32+cl         channels_last memory format
    fold            BatchNorm folded into the convolutions
    fold+cl         both (Engine's fp32 path)
    bf16+fold+cl    bfloat16 autocast on top (Engine's bf16 path)
    jit+fold+cl     torch.jit.trace + freeze + optimize_for_inference, fp32
    compile+fold+cl torch.compile (inductor), fp32; with --compile only (slow to build)

Timing: ms per image, the median (and the minimum) over repeats after one warm-up (CUDA: CUDA
events). The variants of one size and batch are timed round-robin, one forward each per round,
so that on a shared machine a change of load hits every variant alike. Peak
memory: CPU, the process's peak resident set (VmHWM, reset before each cell through
/proc/self/clear_refs), shown as the growth over the resident set before the cell and as the
process total; CUDA, torch.cuda.max_memory_allocated. Random weights (the timing does not
depend on them). Needs only torch and numpy (plus this repository's src on the path).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
import types
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
try:
    import yaml  # noqa: F401  (regionharmony.params imports it; build_config does not use it)
except ImportError:  # a bare torch environment (a GPU machine): the benchmark needs no YAML
    sys.modules["yaml"] = types.ModuleType("yaml")

from regionharmony.inference.engine import fold_batchnorm  # noqa: E402
from regionharmony.model.harmonizer import build_model, count_parameters  # noqa: E402
from regionharmony.params import build_config

VARIANTS = ("fp32", "fp32+cl", "fold", "fold+cl", "bf16+fold+cl", "jit+fold+cl", "compile+fold+cl")


def inputs(batch: int, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    composite = torch.rand(batch, 3, size, size, device=device)
    mask = torch.zeros(batch, 1, size, size, device=device)
    mask[..., size // 4 : size // 2, size // 4 : 3 * size // 4] = 1
    return composite, mask


def prepare(model: torch.nn.Module, variant: str, example: tuple[torch.Tensor, torch.Tensor]):
    """(callable, channels_last, bf16) for a variant."""
    channels_last = "cl" in variant.split("+")
    bf16 = variant.startswith("bf16")
    net = fold_batchnorm(model) if "fold" in variant else model
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    if variant.startswith("jit"):
        with torch.inference_mode():
            traced = torch.jit.trace(net, convert(example, channels_last), check_trace=False)
        net = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
    elif variant.startswith("compile"):
        net = torch.compile(net)
    return net, channels_last, bf16


def convert(example, channels_last: bool):
    if not channels_last:
        return example
    return tuple(t.contiguous(memory_format=torch.channels_last) for t in example)


def rss_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_cpu_peak() -> None:
    with contextlib.suppress(OSError):  # not Linux: the peak then covers the whole process
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def forward_once(cell: dict, device: torch.device) -> float:
    """Seconds of one forward pass of a prepared cell."""
    with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=cell["bf16"]):
        if device.type == "cuda":
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            cell["net"](*cell["example"])
            end.record()
            torch.cuda.synchronize()
            return begin.elapsed_time(end) / 1000
        t0 = time.perf_counter()
        cell["net"](*cell["example"])
        return time.perf_counter() - t0


def prepare_cell(model, variant, size, batch, device) -> dict:
    """Build a variant and run its warm-up forward, measuring the peak memory of that pass."""
    row = {"variant": variant, "size": size, "batch": batch}
    example = inputs(batch, size, device)
    before = rss_mib("VmRSS")
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    else:
        reset_cpu_peak()
    try:
        t0 = time.perf_counter()
        net, channels_last, bf16 = prepare(model, variant, example)
        cell = {"row": row, "net": net, "example": convert(example, channels_last), "bf16": bf16}
        forward_once(cell, device)
        row["build_and_warmup_s"] = round(time.perf_counter() - t0, 1)
    except Exception as err:  # a variant that cannot run here (e.g. no compiler): say why
        row["error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"
        return {"row": row}
    if device.type == "cuda":
        row["peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
    else:
        row["peak_growth_mib"] = round(rss_mib("VmHWM") - before)
        row["peak_rss_mib"] = round(rss_mib("VmHWM"))
    cell["times"] = []
    return cell


def time_round_robin(cells: list[dict], device, min_time: float, max_reps: int) -> None:
    """Repeat rounds of one forward per cell until every cell has min_time of samples (or
    max_reps), one round at least: on a shared machine, load changes then hit every variant
    alike."""
    live = [c for c in cells if "net" in c]

    def wanted(c: dict) -> bool:
        return not c["times"] or (len(c["times"]) < max_reps and sum(c["times"]) < min_time)

    while live and any(wanted(c) for c in live):
        for cell in live:
            cell["times"].append(forward_once(cell, device))
    for cell in live:
        times, batch = cell["times"], cell["row"]["batch"]
        cell["row"]["ms_per_image"] = round(1000 * statistics.median(times) / batch, 1)
        cell["row"]["min_ms_per_image"] = round(1000 * min(times) / batch, 1)
        cell["row"]["reps"] = len(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--profile", default="paper", help="config profile (default paper)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256])
    parser.add_argument(
        "--batch",
        type=int,
        nargs="+",
        default=[1],
        help="batch sizes; batches > 1 are run at the smallest size only",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=VARIANTS,
        default=[v for v in VARIANTS if not v.startswith("compile")],
    )
    parser.add_argument("--compile", action="store_true", help="add the torch.compile variant")
    parser.add_argument("--min-time", type=float, default=3.0, help="seconds of repeats per cell")
    parser.add_argument("--max-reps", type=int, default=20)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()

    device = torch.device(args.device)
    variants = list(args.variants) + (["compile+fold+cl"] if args.compile else [])
    torch.manual_seed(0)
    model = build_model(build_config(args.profile)).eval().to(device)
    print(
        f"profile {args.profile}: {count_parameters(model) / 1e6:.2f} M parameters; "
        f"torch {torch.__version__}; {describe(device)}",
        flush=True,
    )
    rows = []
    for size in args.sizes:
        for batch in args.batch if size == min(args.sizes) else [1]:
            cells = [prepare_cell(model, v, size, batch, device) for v in variants]
            time_round_robin(cells, device, args.min_time, args.max_reps)
            for cell in cells:
                rows.append(cell["row"])
                print(json.dumps(cell["row"]), flush=True)
    print_table(rows, device)
    if args.json:
        args.json.write_text(json.dumps({"device": describe(device), "rows": rows}, indent=2))


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    caps = getattr(torch.cpu, "get_capabilities", lambda: {})()
    bf16 = bool(caps.get("amx_bf16") or caps.get("avx512_bf16"))
    return (
        f"CPU, {torch.get_num_threads()} threads, capability "
        f"{torch.backends.cpu.get_cpu_capability()}, native bf16: {bf16}"
    )


def print_table(rows: list[dict], device: torch.device) -> None:
    memory = "peak_mib" if device.type == "cuda" else "peak_growth_mib"
    print(f"\n{'size':>6} {'batch':>5} {'variant':<17} {'ms/image':>10} {'min ms':>8} {memory:>16}")
    for r in rows:
        if "error" in r:
            print(f"{r['size']:>6} {r['batch']:>5} {r['variant']:<17} {r['error']}")
        else:
            print(
                f"{r['size']:>6} {r['batch']:>5} {r['variant']:<17} "
                f"{r['ms_per_image']:>10.1f} {r['min_ms_per_image']:>8.1f} {r[memory]:>16}"
            )


if __name__ == "__main__":
    main()

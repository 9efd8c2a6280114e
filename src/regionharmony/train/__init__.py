"""Training: one model variant, resumable, logged, from a CPU to many GPUs (torchrun).

The recipe is the paper's (Sec. IV-A): AdamW at lr 1e-3, batch 8, Eq. 13 weights, K 256, tau 0.07.
The run writes a model directory:

    model.pt       final generator weights (a state dict; load with weights_only=True)
    config.json    the resolved configuration
    summary.json   parameter counts, measured GFLOPs, steps, code version, final losses
    train.log      the log
    live/train/    DVCLive: every loss term per step
    live/val/      DVCLive: validation MSE / PSNR / fMSE per epoch (Fig. 8/9 come from here),
                   and train_step, the optimiser step at which each epoch ended

Checkpoints (generator, head, optimiser, scheduler, step, RNG state) go to `checkpoint_dir`
atomically every `checkpoint_every` steps and at every epoch end. Re-running the same command
resumes from the last one and ends with the same weights as an uninterrupted run: the batch
order, the augmentations and the L_HCL patch draws are all functions of (seed, epoch, step,
image index), not of how many steps a process has already run.

Data parallel: run under `torchrun --nproc_per_node N -m regionharmony.cli train ...`. Every
rank takes its contiguous slice of the same global batch (`batch_size` is the global batch), so
the averaged gradient equals single-process training on that batch whenever the loss splits per
image; BatchNorm takes its statistics over the global batch (`train.sync_bn`: SyncBatchNorm on
GPUs, `distributed.CrossRankBatchNorm` on CPU ranks). Rank 0 logs and writes checkpoints.
`--processes N` (params.yaml `launch.processes`) starts the same command under torchrun itself.

Shared runs: a variant with `train.prefix_of: P` (params.yaml `prefix_variants`) is the first
part of P's run where the two runs are the same step for step: training P writes it, training
the variant copies it from the sibling model directory (`<OUT>/../P/seed<N>/prefix/`); the whole
mechanism is `train.prefix`.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

from regionharmony.config import Config, with_seed
from regionharmony.cpu_threads import usable_cpus
from regionharmony.errors import ConfigError, Interrupted, UserError
from regionharmony.options import add_config, add_progress, add_subsets, natural_int, positive_int
from regionharmony.params import (
    params_from_args,
    parse_assignments,
    resolve_config,
)
from regionharmony.runtime import stop_with_parent
from regionharmony.train.launch import (
    resolve_processes,
    run_under_torchrun,
    under_torchrun,
    without_option,
)
from regionharmony.train.logs import attach_log_file
from regionharmony.train.prefix import copy_shared_prefix, prefixes_of
from regionharmony.train.step import NonFiniteLossError
from regionharmony.train.trainer import Trainer

__all__ = ["NonFiniteLossError", "Trainer", "add_arguments", "attach_log_file", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Train one model variant (one model per --seeds entry); re-running resumes each from "
        "its last checkpoint."
    )
    add_config(parser)
    parser.add_argument(
        "--data-root", type=Path, required=True, help="iHarmony4-layout dataset root"
    )
    parser.add_argument("--out", type=Path, required=True, help="model directory to write")
    parser.add_argument(
        "--seeds",
        type=natural_int,
        nargs="+",
        metavar="SEED",
        help="train one model per seed (train.seed), into OUT/seed<SEED>/ (default: one model, "
        "the config's seed, into OUT/)",
    )
    parser.add_argument(
        "--num-seeds",
        type=positive_int,
        metavar="N",
        help="the same as --seeds with the N seeds train.seed, train.seed + 1, ...",
    )
    parser.add_argument(
        "--jobs",
        type=natural_int,
        default=0,
        help="with --seeds: train this many seeds at once, in separate processes (default 0: "
        "on the CPU, as many as the cores hold at torch's thread count, up to twice the cores "
        "for one-thread runs; 1 on a GPU)",
    )
    parser.add_argument(
        "--checkpoint-dir",
        type=Path,
        help="where resumable checkpoints live (default: OUT/checkpoints; with --seeds, one "
        "folder per seed below it)",
    )
    parser.add_argument(
        "--processes",
        default="1",
        metavar="N",
        help="data-parallel ranks on this machine, started through torchrun: a number, or "
        "auto (one per visible CUDA GPU; 1 without CUDA). Default 1 (launch.processes in "
        "params.yaml for `dvc repro`)",
    )
    add_subsets(parser, "train on these subsets only (default: all)")
    add_progress(parser)


def train_one(
    cfg: Config,
    data_root: Path,
    out: Path,
    checkpoint_dir: Path | None,
    subsets: list[str] | None,
    progress: bool,
    threads: int = 0,
    prefixes: dict[str, Config] | None = None,
) -> dict[str, Any]:
    """One training run into `out` (its own train.log); the model directory's summary.

    A failure to write (a full disk, a read-only folder) is one line naming the path, and the
    partial `out` it leaves is removed when this run created it: the checkpoint, outside it or
    not, keeps what a re-run needs (it carries the logs)."""
    stop_with_parent()
    if threads:
        torch.set_num_threads(threads)
    existed = out.exists()
    # OUT is created by the first thing written into it (the log, DVCLive, a checkpoint): a
    # run refused for its data root or its checkpoint leaves no empty model directory behind
    main_rank = os.environ.get("RANK", "0") == "0"  # the other ranks of torchrun log nothing
    handler = attach_log_file(out / "train.log") if main_rank else logging.NullHandler()
    try:
        trainer = Trainer(
            cfg, data_root, out, checkpoint_dir, subsets, show_progress=progress, prefixes=prefixes
        )
        if trainer.dist.main:  # one trainer per checkpoint directory (CheckpointStore.lock)
            trainer.checkpoints.lock()
        try:
            return trainer.run()
        except RuntimeError as err:
            if trainer.dist.active and "Connection closed by peer" in str(err):
                raise UserError(f"rank {trainer.dist.rank}: another rank stopped") from None
            raise
        finally:
            trainer.checkpoints.unlock()
    except OSError as err:
        if isinstance(err, FileExistsError):
            raise
        handler.close()
        if not existed:
            remove_partial_output(out, trainer_checkpoint_dir(out, checkpoint_dir))
        where = err.filename or out
        raise UserError(f"{where}: {err.strerror or err} (training into {out})") from None
    except KeyboardInterrupt:
        handler.close()
        keep = trainer_checkpoint_dir(out, checkpoint_dir)
        if not existed:
            remove_partial_output(out, keep)
        raise Interrupted(resume_hint(keep / "last.pt")) from None
    finally:
        handler.close()  # detaches it from the logger too


def resume_hint(checkpoint: Path) -> str:
    """Where an interrupted training stands, in one line."""
    if checkpoint.is_file():
        return f"the last checkpoint is {checkpoint}; run the same command again to resume from it"
    return "no checkpoint was written yet; running the same command again starts from the start"


def trainer_checkpoint_dir(out: Path, checkpoint_dir: Path | None) -> Path:
    return Path(checkpoint_dir) if checkpoint_dir else out / "checkpoints"


def remove_partial_output(out: Path, keep: Path) -> None:
    """Remove what a failed run wrote into `out`, except the checkpoint folder `keep` if it
    lies inside (a re-run resumes from it)."""
    if not out.is_dir():
        return
    if keep.is_dir() and not any(keep.iterdir()):
        keep.rmdir()  # a checkpoint folder that never got a checkpoint
    for child in out.iterdir():
        if child == keep or keep.is_relative_to(child):
            continue
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    if not any(out.iterdir()):
        out.rmdir()


def auto_jobs(cfg: Config) -> int:
    """Seeds trained at once: 1 on a GPU; on the CPU, the usable cores over torch's threads
    (each run keeps torch's thread count, so results do not depend on the number of jobs),
    and for one-thread runs up to twice the cores: 3 seeds on 2 cores share them in 56 s
    instead of a round of two and then one alone in 68 s (the portable path, mini `full`)."""
    if under_torchrun() or (cfg.train.device != "cpu" and torch.cuda.is_available()):
        return 1  # under torchrun the ranks train each seed together, one after another
    threads = torch.get_num_threads()
    return 2 * usable_cpus() if threads == 1 else max(1, usable_cpus() // threads)


def run(args: argparse.Namespace) -> int:
    params, source = params_from_args(args)
    overrides = parse_assignments(args.set)
    cfg = resolve_config(params, args.profile, args.variant, overrides, source)
    if args.num_seeds is not None and not args.seeds:
        if args.num_seeds < 1:
            raise ConfigError(f"--num-seeds must be at least 1, got {args.num_seeds}")
        args.seeds = list(range(cfg.train.seed, cfg.train.seed + args.num_seeds))
    # a shared run is copied by this one process, before any ranks start
    if cfg.train.prefix_of and not under_torchrun():
        parent = resolve_config(params, args.profile, cfg.train.prefix_of, overrides, source)
        if copy_shared_prefix(cfg, parent, args):
            return 0
    processes = resolve_processes(args.processes, cfg.train.device)
    if processes > 1 and not under_torchrun():
        command = without_option(getattr(args, "argv", None) or sys.argv[1:], "--processes")
        return run_under_torchrun(processes, command)
    progress = not args.no_progress
    prefixes = prefixes_of(params, args.profile, args.variant, overrides, source)
    if not args.seeds:
        summary = train_one(
            cfg, args.data_root, args.out, args.checkpoint_dir, args.subsets, progress, 0, prefixes
        )
        if summary:
            print(json.dumps({k: summary[k] for k in ("steps", "final_validation")}, indent=2))
        return 0
    runs = []
    for seed in args.seeds:
        ckpt = args.checkpoint_dir / f"seed{seed}" if args.checkpoint_dir else None
        out = args.out / f"seed{seed}"
        runs.append((with_seed(cfg, seed), args.data_root, out, ckpt, args.subsets))
    seeded_prefixes = [{n: with_seed(p, seed) for n, p in prefixes.items()} for seed in args.seeds]
    runs_prefixes = list(zip(runs, seeded_prefixes, strict=True))
    jobs = max(1, min(args.jobs or auto_jobs(cfg), len(runs)))
    existed = args.out.exists()
    try:
        summaries = train_seeds(runs_prefixes, jobs, progress)
    except (UserError, Interrupted, KeyboardInterrupt) as err:
        if not existed and args.out.is_dir() and not any(args.out.iterdir()):
            args.out.rmdir()  # nothing of this run is left in it
        if isinstance(err, KeyboardInterrupt):
            where = args.checkpoint_dir or args.out / "seed<N>" / "checkpoints"
            raise Interrupted(
                f"checkpoints are under {where}; run the same command again to resume"
            ) from None
        raise
    for seed, summary in zip(args.seeds, summaries, strict=True):
        if not summary:  # a rank other than 0
            continue
        print(f"seed {seed}: {summary['steps']} steps, validation {summary['final_validation']}")
    return 0


def train_seeds(runs_prefixes: list, jobs: int, progress: bool) -> list[dict[str, Any]]:
    """`train_one` of each (run, prefixes), `jobs` at a time in spawned processes."""
    if jobs == 1:
        return [train_one(*r, progress, 0, p) for r, p in runs_prefixes]
    threads = torch.get_num_threads()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context) as pool:
        futures = [pool.submit(train_one, *r, False, threads, p) for r, p in runs_prefixes]
        return [f.result() for f in futures]

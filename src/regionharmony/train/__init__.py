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
image (instance norm; with batch norm, `sync_bn` converts to SyncBatchNorm on GPUs, while CPU
ranks keep per-rank statistics). Rank 0 logs and writes checkpoints.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from regionharmony.config import config_from_args
from regionharmony.options import add_config, add_progress, add_subsets
from regionharmony.train.logs import attach_log_file
from regionharmony.train.step import NonFiniteLossError
from regionharmony.train.trainer import Trainer

__all__ = ["NonFiniteLossError", "Trainer", "add_arguments", "attach_log_file", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Train one model variant; re-running resumes from its last checkpoint."
    add_config(parser)
    parser.add_argument(
        "--data-root", type=Path, required=True, help="iHarmony4-layout dataset root"
    )
    parser.add_argument("--out", type=Path, required=True, help="model directory to write")
    parser.add_argument(
        "--checkpoint-dir",
        type=Path,
        help="where resumable checkpoints live (default: OUT/checkpoints)",
    )
    add_subsets(parser, "train on these subsets only (default: all)")
    add_progress(parser)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    # OUT is created by the first thing written into it (the log, DVCLive, a checkpoint): a
    # run refused for its data root or its checkpoint leaves no empty model directory behind
    handler = attach_log_file(args.out / "train.log")
    try:
        trainer = Trainer(
            cfg,
            args.data_root,
            args.out,
            args.checkpoint_dir,
            args.subsets,
            show_progress=not args.no_progress,
        )
        summary = trainer.run()
    finally:
        handler.close()
    if summary:
        print(json.dumps({k: summary[k] for k in ("steps", "final_validation")}, indent=2))
    return 0

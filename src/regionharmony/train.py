"""Training: one model variant from a resolved `Config`, resumable, logged, CPU to many GPUs.

The recipe is the paper's (Sec. IV-A): AdamW at lr 1e-3, batch 8, Eq. 13 weights, K 256, tau 0.07.
The run writes a model directory:

    model.pt       final generator weights (a state dict; load with weights_only=True)
    config.json    the resolved configuration
    summary.json   parameter counts, measured GFLOPs, steps, code version, final losses
    train.log      the log
    live/train/    DVCLive: every loss term per step
    live/val/      DVCLive: validation MSE / PSNR / fMSE per epoch (Fig. 8/9 come from here)

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

import hashlib
import json
import logging
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from regionharmony.config import Config
from regionharmony.data import HarmonyDataset, require_valid_root
from regionharmony.io import PACKAGE_DIR, atomic_write, atomic_write_text, code_version
from regionharmony.loss import HarmonizationLoss
from regionharmony.metrics import fmse, mse, psnr
from regionharmony.model import blend, build_model, count_parameters, forward_gflops

log = logging.getLogger("regionharmony.train")


class NonFiniteLossError(RuntimeError):
    """Raised when a loss term is NaN or infinite; the last good checkpoint is kept."""


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def init_distributed(device: torch.device) -> Distributed:
    """Join the process group torchrun describes in the environment (gloo on CPU, nccl on GPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Distributed()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), world)


def resolve_device(name: str, ddp_local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        torch.cuda.set_device(ddp_local_rank)
        return torch.device("cuda", ddp_local_rank)
    return torch.device(name)


def derive_seed(*parts: int) -> int:
    """A 63-bit seed that is a fixed function of its integer parts."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1, np.uint64)[0] >> 1)


def run_fingerprint(cfg: Config, train_names: list[str]) -> str:
    """What a checkpoint must match to be resumed: the configuration, the package source and
    the training list. Any change trains afresh instead of resuming into stale weights."""
    digest = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode())
    for source in sorted(PACKAGE_DIR.glob("*.py")):
        digest.update(source.read_bytes())
    digest.update("\n".join(train_names).encode())
    return digest.hexdigest()


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    generator = torch.Generator().manual_seed(derive_seed(seed, epoch))
    return torch.randperm(n, generator=generator).tolist()


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save through `atomic_write`."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


class Objective(nn.Module):
    """Generator + L_all in one module, so DDP sees (and averages) every trained parameter."""

    def __init__(self, generator: nn.Module, criterion: HarmonizationLoss) -> None:
        super().__init__()
        self.generator, self.criterion = generator, criterion

    def forward(self, composite, mask, real, seeds):
        prediction = self.generator(composite, mask)
        return self.criterion(prediction.float(), real, mask, seeds)


class Trainer:
    def __init__(
        self,
        cfg: Config,
        data_root: Path,
        out_dir: Path,
        checkpoint_dir: Path | None = None,
        subsets: list[str] | None = None,
        show_progress: bool = True,
    ) -> None:
        self.cfg, self.tc = cfg, cfg.train
        self.data_root, self.out_dir = Path(data_root), Path(out_dir)
        self.checkpoint_dir = (
            Path(checkpoint_dir) if checkpoint_dir else self.out_dir / "checkpoints"
        )
        self.subsets = subsets
        self.show_progress = show_progress

        self.device = resolve_device(self.tc.device, int(os.environ.get("LOCAL_RANK", "0")))
        self.dist = init_distributed(self.device)
        if self.tc.batch_size % self.dist.world:
            raise ValueError(
                f"train.batch_size {self.tc.batch_size} is not divisible by {self.dist.world} ranks"
            )
        torch.manual_seed(self.tc.seed)
        self.model = build_model(cfg).to(self.device)
        self.criterion = HarmonizationLoss(cfg.loss).to(self.device)
        if self.tc.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if self.dist.active and self.tc.sync_bn and self.device.type == "cuda":
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        # the head's parameters are in the optimiser from step 0 (DESIGN.md section 2)
        params = list(self.model.parameters()) + list(self.criterion.parameters())
        self.optimizer = torch.optim.AdamW(params, lr=self.tc.lr, weight_decay=self.tc.weight_decay)

        require_valid_root(self.data_root, split="train", subsets=subsets)
        require_valid_root(self.data_root, split=self.tc.val_split, subsets=subsets)
        self.train_set = HarmonyDataset(
            self.data_root,
            "train",
            subsets=subsets,
            train_size=self.tc.image_size,
            load_size=self.tc.load_size,
        )
        self.steps_per_epoch = len(self.train_set) // self.tc.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"{self.data_root} has {len(self.train_set)} training pairs, fewer than one "
                f"batch of {self.tc.batch_size}"
            )
        self.total_steps = self.steps_per_epoch * self.tc.epochs
        if self.tc.max_steps:
            self.total_steps = min(self.total_steps, self.tc.max_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.lr_factor)
        self.step = 0
        self.last_terms: dict[str, float] = {}
        self.last_val: dict[str, float] = {}
        self.fingerprint = run_fingerprint(cfg, [s.name for s in self.train_set.samples])

        generator = torch.compile(self.model) if self.tc.compile else self.model
        self.objective: nn.Module = Objective(generator, self.criterion)
        if self.dist.active:
            self.objective = nn.parallel.DistributedDataParallel(
                self.objective,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
            )

    # -- schedule and data ------------------------------------------------------------------
    def lr_factor(self, step: int) -> float:
        if self.tc.lr_schedule == "constant":
            return 1.0
        return 0.5 * (1 + math.cos(math.pi * min(step / max(self.total_steps, 1), 1.0)))

    def batches(self, epoch: int, start_step: int) -> DataLoader:
        """This rank's share of the global batches of `epoch`, from `start_step` on."""
        order = epoch_order(len(self.train_set), self.tc.seed, epoch)
        per_rank = self.tc.batch_size // self.dist.world
        plan = []
        for s in range(start_step, self.steps_per_epoch):
            batch = order[s * self.tc.batch_size : (s + 1) * self.tc.batch_size]
            plan.append(batch[self.dist.rank * per_rank : (self.dist.rank + 1) * per_rank])
        self.train_set.set_epoch(self.tc.seed, epoch)
        return DataLoader(
            self.train_set,
            batch_sampler=plan,
            num_workers=self.tc.num_workers,
            pin_memory=self.device.type == "cuda",
        )

    # -- checkpoints --------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.checkpoint_dir / "last.pt"

    def save_checkpoint(self) -> None:
        if not self.dist.main:
            return
        atomic_save(
            {
                "generator": self.model.state_dict(),
                "head": self.criterion.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "step": torch.tensor(self.step),
                "fingerprint": self.fingerprint,
                "last": json.dumps({"terms": self.last_terms, "val": self.last_val}),
            },
            self.checkpoint_path,
        )

    def resume(self) -> bool:
        """Load the last checkpoint if it belongs to this configuration."""
        if not self.checkpoint_path.is_file():
            return False
        state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=True)
        if state.get("fingerprint") != self.fingerprint:
            log.warning(
                "ignoring %s: it was written for another configuration", self.checkpoint_path
            )
            return False
        self.model.load_state_dict(state["generator"])
        self.criterion.load_state_dict(state["head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        last = json.loads(state["last"])
        self.last_terms, self.last_val = last["terms"], last["val"]
        log.info("resumed from %s at step %d", self.checkpoint_path, self.step)
        return True

    # -- one step ----------------------------------------------------------------------------
    def autocast(self):
        if self.tc.bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        composite, mask, real = (
            batch[k].to(self.device, non_blocking=True) for k in ("composite", "mask", "real")
        )
        if self.tc.channels_last:
            composite, mask = (
                t.contiguous(memory_format=torch.channels_last) for t in (composite, mask)
            )
        seeds = [derive_seed(self.tc.seed, self.step, int(i)) for i in batch["index"]]
        self.model.train()
        with self.autocast():
            terms = self.objective(composite, mask, real, seeds)
        values = {k: v.detach() for k, v in terms.items()}
        bad = [k for k, v in values.items() if not torch.isfinite(v)]
        if self.dist.active:  # every rank stops together, none waits in an all-reduce
            flag = torch.tensor(float(bool(bad)), device=self.device)
            dist.all_reduce(flag)
            if flag.item() and not bad:
                bad = ["on another rank"]
        if bad:
            raise NonFiniteLossError(
                f"non-finite loss at step {self.step + 1} ({', '.join(bad)}); stopping. The last "
                f"good checkpoint is {self.checkpoint_path}"
            )
        self.optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return {k: float(v) for k, v in values.items()}

    # -- validation ---------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """MSE, PSNR and fMSE of the blended prediction on the validation split (DESIGN.md §4)."""
        val_set = HarmonyDataset(
            self.data_root, self.tc.val_split, subsets=self.subsets, eval_size=self.tc.image_size
        )
        n = len(val_set) if not self.tc.val_limit else min(self.tc.val_limit, len(val_set))
        loader = DataLoader(torch.utils.data.Subset(val_set, range(n)), batch_size=8)
        self.model.eval()
        scores: dict[str, list[float]] = {"mse": [], "psnr": [], "fmse": []}
        for batch in loader:
            composite, mask = batch["composite"].to(self.device), batch["mask"].to(self.device)
            with self.autocast():
                prediction = self.model(composite, mask).float()
            out = blend(prediction, composite, mask)
            for pred, real, m in zip(out, batch["real"], batch["mask"], strict=True):
                p = np.rint(pred.permute(1, 2, 0).cpu().numpy() * 255)
                r = np.rint(real.permute(1, 2, 0).numpy() * 255)
                mm = m[0].numpy() > 0.5
                scores["mse"].append(mse(p, r))
                scores["psnr"].append(psnr(p, r))
                scores["fmse"].append(fmse(p, r, mm))
        return {k: float(np.mean(v)) for k, v in scores.items()}

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        from dvclive import Live

        self.resume()
        started = time.time()
        live_train = live_val = None
        if self.dist.main:
            trim_live_logs(self.out_dir / "live", self.step, self.step // self.steps_per_epoch)
            live_train, live_val = (
                Live(
                    str(self.out_dir / "live" / part),
                    resume=self.step > 0,
                    save_dvc_exp=False,
                    dvcyaml=False,
                    report=None,
                )
                for part in ("train", "val")
            )
        progress = tqdm(
            total=self.total_steps,
            initial=self.step,
            unit="step",
            disable=not (self.show_progress and self.dist.main),
            dynamic_ncols=True,
        )
        while self.step < self.total_steps:
            epoch, in_epoch = divmod(self.step, self.steps_per_epoch)
            tick = time.time()
            for batch in self.batches(epoch, in_epoch):
                self.last_terms = self.train_step(batch)
                if live_train is not None:
                    live_train.step = self.step
                    for key, value in self.last_terms.items():
                        live_train.log_metric(f"loss/{key}", value)
                    live_train.log_metric("lr", self.scheduler.get_last_lr()[0])
                rate = len(batch["index"]) * self.dist.world / max(time.time() - tick, 1e-9)
                tick = time.time()
                progress.set_postfix(loss=f"{self.last_terms['total']:.4f}", img_s=f"{rate:.1f}")
                progress.update(1)
                epoch_end = self.step % self.steps_per_epoch == 0
                if self.step % self.tc.checkpoint_every == 0 and not epoch_end:
                    self.save_checkpoint()
                if self.step >= self.total_steps:
                    break
            if live_train is not None:
                live_train.make_summary()
            if self.step % self.steps_per_epoch == 0 and self.dist.main:
                self.last_val = self.validate()
                live_val.step = self.step // self.steps_per_epoch
                for key, value in self.last_val.items():
                    live_val.log_metric(key, value)
                live_val.log_metric("step", self.step)
                live_val.make_summary()
                log.info("epoch %d: %s", live_val.step, self.last_val)
            # after validation, so that a run killed while validating redoes it on resume
            self.save_checkpoint()
        progress.close()
        summary: dict[str, Any] = {}
        if self.dist.main:
            summary = self.write_model_dir()
            # wall time on the terminal only: the model directory stays byte-reproducible
            print(f"trained to step {self.step} in {time.time() - started:.1f} s", file=sys.stderr)
            # a finished run leaves no checkpoint: re-running trains afresh, never "resumes"
            # into the old final weights
            self.checkpoint_path.unlink(missing_ok=True)
        if self.dist.active:
            dist.barrier()
        return summary

    def write_model_dir(self) -> dict[str, Any]:
        summary = {
            "profile": self.cfg.profile,
            "params_generator": count_parameters(self.model),
            "params_head": count_parameters(self.criterion),
            "gflops_per_image": forward_gflops(self.model, self.tc.image_size),
            "image_size": self.tc.image_size,
            "steps": self.step,
            "epochs": self.step / self.steps_per_epoch,
            "train_pairs": len(self.train_set),
            "code_version": code_version(),
            "final_train_loss": self.last_terms,
            "final_validation": self.last_val,
        }
        atomic_save(self.model.state_dict(), self.out_dir / "model.pt")
        atomic_write_text(json.dumps(self.cfg.to_dict(), indent=2), self.out_dir / "config.json")
        atomic_write_text(json.dumps(summary, indent=2), self.out_dir / "summary.json")
        return summary


def trim_live_logs(live_dir: Path, train_step: int, val_epoch: int) -> None:
    """Drop log rows written after the checkpoint a run resumes from (they will be redone)."""
    for sub, last in (("train", train_step), ("val", val_epoch)):
        for tsv in (live_dir / sub).rglob("*.tsv"):
            lines = tsv.read_text().splitlines(keepends=True)
            column = lines[0].rstrip("\n").split("\t").index("step")
            kept = [row for row in lines[1:] if int(row.split("\t")[column]) <= last]
            atomic_write_text("".join(lines[:1] + kept), tsv)


def attach_log_file(path: Path) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    # no timestamps: the log is part of the model directory, which a rerun reproduces bit for bit
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger("regionharmony").addHandler(handler)
    logging.getLogger("regionharmony").setLevel(logging.INFO)
    return handler

"""The training loop: one model variant from a resolved `Config`, resumable, logged, CPU to
many GPUs. The pieces it drives: `plan` (which images each step sees), `checkpoint`,
`step` (objective and finite-loss guard), `logs` (DVCLive), `distributed`."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from regionharmony.config import Config, TrainConfig
from regionharmony.data.check import require_valid_root
from regionharmony.data.dataset import HarmonyDataset
from regionharmony.data.shared_memory import DATALOADER_PREFETCH, workers_that_fit
from regionharmony.errors import ConfigError, DataError
from regionharmony.io import (
    TRAINING_CODE,
    atomic_directory,
    atomic_save,
    atomic_write_text,
    code_version,
)
from regionharmony.loss import HarmonizationLoss
from regionharmony.model.harmonizer import build_model, count_parameters, forward_gflops
from regionharmony.runtime import (
    autocast,
    cuda_facts,
    kernel_facts,
    resolve_device,
    switch_on,
    training_bf16,
)
from regionharmony.train.checkpoint import CheckpointStore, first_line, run_fingerprint
from regionharmony.train.distributed import (
    convert_cross_rank_batchnorm,
    init_distributed,
    local_rank,
)
from regionharmony.train.logs import TrainingLogs
from regionharmony.train.model_files import (
    log_files,
    pack_logs,
    restore_log_files,
    unpack_logs,
)
from regionharmony.train.plan import BatchPlan, patch_seeds
from regionharmony.train.prefix import PREFIX_DIR, pack_prefixes, prefix_problem, restore_prefixes
from regionharmony.train.step import NonFiniteLossError, Objective, require_finite
from regionharmony.train.validation import validation_scores

log = logging.getLogger("regionharmony.train")


def session_note(message: str, *args: object) -> None:
    """What this process did (its device, a resume) goes to the terminal, not train.log: the
    model directory of a resumed run must equal an uninterrupted run's byte for byte."""
    print(message % args, file=sys.stderr)


def require_cuda_if_asked(cfg: Config, device: torch.device) -> None:
    """Refuse to train a `require_cuda` profile on the CPU that `device: auto` fell back to."""
    if cfg.train.require_cuda and cfg.train.device == "auto" and device.type != "cuda":
        build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
        raise ConfigError(
            f"profile {cfg.profile!r} trains on a CUDA GPU, but torch {torch.__version__} "
            f"({build}) sees none; install a CUDA build of torch, or on a CPU run profile "
            "paper_smoke_cpu (docs/paper-run.md, 'A smoke run on a CPU') or set `device: cpu` "
            f"under profiles.{cfg.profile}.train in params.yaml (one `regionharmony train`: "
            "--set train.device=cpu)"
        )


class Trainer:
    def __init__(
        self,
        cfg: Config,
        data_root: Path,
        out_dir: Path,
        checkpoint_dir: Path | None = None,
        subsets: list[str] | None = None,
        show_progress: bool = True,
        prefixes: Mapping[str, Config] | None = None,
    ) -> None:
        """`prefixes`: variants whose run is this run's first part (`train.prefix_of`); each
        that is exact (`train.prefix.prefix_problem`) is written at its last step to
        OUT/prefix/<name>/, validated as it would validate itself."""
        self.cfg, self.tc = cfg, cfg.train
        self.data_root, self.out_dir = Path(data_root), Path(out_dir)
        self.subsets, self.show_progress = subsets, show_progress
        self.device = resolve_device(self.tc.device, local_rank())
        require_cuda_if_asked(cfg, self.device)
        self.dist = init_distributed(self.device)
        if self.tc.batch_size % self.dist.world:
            raise DataError(
                f"train.batch_size {self.tc.batch_size} is not divisible by {self.dist.world} ranks"
            )
        cuda = self.device.type == "cuda"
        # the CUDA defaults: on a GPU, or rehearsed on the CPU (train.rehearse_cuda)
        gpu_path = cuda or self.tc.rehearse_cuda
        self.bf16 = training_bf16(self.device, self.tc.precision, self.tc.rehearse_cuda)
        self.channels_last = switch_on(self.tc.channels_last, gpu_path)
        self.compiles = switch_on(self.tc.compile, gpu_path and not self.sync_bn_active)
        self.sync_every = self.tc.sync_every or (25 if gpu_path else 1)
        if self.dist.main and gpu_path:
            session_note(
                "device %s, precision %s, channels_last %s, compile %s, %d rank(s)",
                self.device,
                "bf16 autocast" if self.bf16 else "fp32",
                self.channels_last,
                self.compiles,
                self.dist.world,
            )
        self.model, self.criterion = self.build_networks()
        # the head's parameters are in the optimiser from step 0 (docs/model.md, 'The losses')
        params = list(self.model.parameters()) + list(self.criterion.parameters())
        self.optimizer = torch.optim.AdamW(
            params, lr=self.tc.lr, weight_decay=self.tc.weight_decay, fused=gpu_path
        )

        require_valid_root(self.data_root, split="train", subsets=subsets)
        require_valid_root(self.data_root, split=self.tc.val_split, subsets=subsets)
        self.train_set = HarmonyDataset(
            self.data_root,
            "train",
            subsets=subsets,
            train_size=self.tc.image_size,
            load_size=self.tc.load_size,
            crop=self.tc.crop,
            min_scale=self.tc.crop_scale,
        )
        self.plan = BatchPlan(
            self.train_set,
            self.tc.batch_size,
            self.tc.seed,
            self.dist.rank,
            self.dist.world,
            self.loader_workers(self.tc.batch_size // self.dist.world, BatchPlan.PREFETCH),
            pin_memory=cuda,
        )
        self.steps_per_epoch = self.plan.steps_per_epoch
        if self.steps_per_epoch == 0:
            raise DataError(
                f"{self.data_root} has {len(self.train_set)} training pairs, fewer than one "
                f"batch of {self.tc.batch_size}"
            )
        self.total_steps = self.run_steps(self.tc)
        self.prefixes = {
            name: (prefix, self.run_steps(prefix.train))
            for name, prefix in (prefixes or {}).items()
            if prefix_problem(prefix, cfg) is None
        }
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.lr_factor)
        self.step = 0
        self.saved_at = time.monotonic()
        self.last_terms: dict[str, float] = {}
        self.last_val: dict[str, float] = {}
        self.pending: list[tuple[int, dict[str, torch.Tensor]]] = []  # steps not yet synced
        self.logs: TrainingLogs | None = None
        checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else self.out_dir / "checkpoints"
        fingerprint = run_fingerprint(cfg, [s.name for s in self.train_set.samples])
        self.checkpoints = CheckpointStore(checkpoint_dir, fingerprint)
        self.eager_objective = self.wrap_objective()
        self.objective = self.compile_objective(self.eager_objective)

    @property
    def sync_bn_active(self) -> bool:
        return self.dist.active and self.tc.sync_bn

    def loader_workers(self, batch: int, prefetch: int, what: str = "train") -> int:
        """`train.num_workers`, fewer where /dev/shm cannot hold their batches of `batch`
        images (float32 composite, mask and real image), shared by the ranks on this machine."""
        batch_bytes = batch * self.tc.image_size**2 * 7 * 4
        sharers = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        return workers_that_fit(self.tc.num_workers, batch_bytes, prefetch, what, sharers)

    def build_networks(self) -> tuple[nn.Module, HarmonizationLoss]:
        """Generator and loss (with its contrastive head), seeded: the same seed, the same init."""
        torch.manual_seed(self.tc.seed)
        model = build_model(self.cfg).to(self.device)
        criterion = HarmonizationLoss(self.cfg.loss).to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if self.sync_bn_active:
            # statistics over the global batch, so N ranks train what one process would
            if self.device.type == "cuda":
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            else:
                model = convert_cross_rank_batchnorm(model)
        return model, criterion

    def wrap_objective(self) -> nn.Module:
        """Generator + L_all as one module, under DDP when there are several ranks."""
        objective: nn.Module = Objective(self.model, self.criterion)
        if self.dist.active:
            objective = nn.parallel.DistributedDataParallel(
                objective,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
            )
        return objective

    def compile_objective(self, objective: nn.Module) -> nn.Module:
        """`objective` compiled as a whole where `train.compile` says so: "auto" on CUDA, but
        not under DDP with BatchNorm over the global batch, where Dynamo breaks the graph at
        every SyncBatchNorm (pytorch issues 107372, 161302; docs/paper-run.md). The weights
        stay the eager modules': checkpoints have no `_orig_mod.` keys."""
        if not self.compiles:
            return objective
        # the compiled backward must keep L_HCL's own fp32 under bf16 autocast (pytorch
        # issue 179804)
        torch._functorch.config.backward_pass_autocast = "off"
        return torch.compile(objective)

    def run_steps(self, tc: TrainConfig) -> int:
        """Optimiser steps of a run of `tc`: its share of the epochs, capped by max_steps."""
        steps = self.steps_per_epoch * max(1, round(tc.epochs * tc.budget))
        return min(steps, tc.max_steps) if tc.max_steps else steps

    def lr_factor(self, step: int) -> float:
        if self.tc.lr_schedule == "constant":
            return 1.0
        return 0.5 * (1 + math.cos(math.pi * min(step / max(self.total_steps, 1), 1.0)))

    # -- checkpoints --------------------------------------------------------------------------
    def checkpoint_due(self) -> bool:
        """Every `checkpoint_every` steps, or once `checkpoint_minutes` have passed since the
        last checkpoint (the same decision on every rank: rank 0's clock is broadcast)."""
        if self.tc.checkpoint_every and self.step % self.tc.checkpoint_every == 0:
            return True
        if not self.tc.checkpoint_minutes or self.step % self.sync_every:
            return False  # the clock is read (and broadcast) once per sync window
        due = time.monotonic() - self.saved_at >= 60 * self.tc.checkpoint_minutes
        if self.dist.active:
            flag = torch.tensor([float(due)], device=self.device)
            torch.distributed.broadcast(flag, 0)
            due = bool(flag.item())
        return due

    def require_finite_state(self) -> None:
        """Refuse to checkpoint non-finite weights: with `sync_every` > 1 a NaN loss is read
        late, and its updates may already be in the weights (every rank holds the same)."""
        tensors = [*self.model.state_dict().values(), *self.criterion.state_dict().values()]
        floats = [t.detach().float().sum() for t in tensors if t.is_floating_point()]
        if not bool(torch.isfinite(torch.stack(floats).sum())):
            raise NonFiniteLossError(
                f"non-finite weights at step {self.step}; stopping without a checkpoint. The "
                f"last good checkpoint is {self.checkpoints.path}"
            )

    def save_checkpoint(self) -> None:
        self.saved_at = time.monotonic()
        self.require_finite_state()
        if not self.dist.main:
            return
        self.checkpoints.save(
            {
                "generator": self.model.state_dict(),
                "head": self.criterion.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "step": torch.tensor(self.step),
                "last": json.dumps({"terms": self.last_terms, "val": self.last_val}),
                "logs": pack_logs(log_files(self.out_dir)),
                "prefixes": pack_prefixes(self.out_dir / PREFIX_DIR, self.prefixes),
            }
        )

    def resume(self) -> bool:
        """Load the last checkpoint if it belongs to this configuration."""
        state = self.checkpoints.load(self.device)
        if state is None:
            return False
        self.model.load_state_dict(state["generator"])
        self.criterion.load_state_dict(state["head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        last = json.loads(state["last"])
        self.last_terms, self.last_val = last["terms"], last["val"]
        if self.dist.main:  # rank 0 alone owns the logs; the others wait until they are back
            restore_log_files(self.out_dir, unpack_logs(state["logs"]))
            restore_prefixes(self.out_dir / PREFIX_DIR, state.get("prefixes", {}))
            session_note("resumed from %s at step %d", self.checkpoints.path, self.step)
        if self.dist.active:
            torch.distributed.barrier()
        return True

    # -- one step ----------------------------------------------------------------------------
    def train_step(self, batch: dict[str, Any]) -> None:
        """Forward, backward and update, without waiting for the device: the loss terms stay on
        it until `sync` reads a window of steps at once."""
        composite, mask, real = (
            batch[k].to(self.device, non_blocking=True) for k in ("composite", "mask", "real")
        )
        if self.channels_last:
            composite, mask = (
                t.contiguous(memory_format=torch.channels_last) for t in (composite, mask)
            )
        seeds = torch.tensor(patch_seeds(self.tc.seed, self.step, batch["index"]))
        seeds = seeds.to(self.device, non_blocking=True)  # a tensor: no recompiles per step
        self.model.train()
        inputs = (composite, mask, real, seeds)
        try:
            terms = self.forward_backward(*inputs)
        except torch.OutOfMemoryError:
            raise
        except Exception as err:
            if self.objective is self.eager_objective:
                raise
            self.fall_back_to_eager(err)
            terms = self.forward_backward(*inputs)
        self.pending.append((self.step + 1, {k: v.detach() for k, v in terms.items()}))
        if len(self.pending) >= self.sync_every:
            self.sync()  # on the CPU (sync_every 1): before the update, as a guard
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1

    def forward_backward(self, *inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.bf16):
            terms = self.objective(*inputs)
        terms["total"].backward()
        return terms

    def fall_back_to_eager(self, err: Exception) -> None:
        """A failed compile (or recompile) costs speed, not the run: the step is redone eager,
        and the run goes on eager. (A backward that failed after the forward ran has moved
        BatchNorm's running statistics once more: one momentum step.)"""
        session_note(
            "torch.compile failed at step %d (%s); training eager from here. "
            "--set train.compile=never skips compiling",
            self.step + 1,
            first_line(err),
        )
        self.objective = self.eager_objective
        self.compiles = False

    def sync(self) -> None:
        """Read the pending steps' loss terms (one transfer), stop on a non-finite one, log."""
        if not self.pending:
            return
        window, self.pending = self.pending, []
        checked = require_finite(window, str(self.checkpoints.path), self.dist)
        self.last_terms = checked[-1][1]
        if self.logs is not None:
            for step, terms in checked:
                self.logs.log_step(step, terms, self.tc.lr * self.lr_factor(step - 1))

    # -- validation ---------------------------------------------------------------------------
    def validate(self) -> dict[str, float]:
        """The Fig. 8/9 validation scores of the model now (`validation.validation_scores`)."""
        workers = self.loader_workers(self.tc.batch_size, DATALOADER_PREFETCH, "validation")
        return validation_scores(self.model, self.data_root, self.tc, self.subsets, workers)

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        self.resume()
        started = time.time()
        if self.dist.main:
            self.logs = TrainingLogs(
                self.out_dir / "live", self.step, self.step // self.steps_per_epoch
            )
        progress = tqdm(
            total=self.total_steps,
            initial=self.step,
            unit="step",
            disable=not (self.show_progress and self.dist.main),
            dynamic_ncols=True,
        )
        while self.step < self.total_steps:
            self.run_epoch(progress)
        progress.close()
        summary: dict[str, Any] = {}
        if self.dist.main:
            summary = self.write_model_dir()
            # wall time on the terminal only: the model directory stays byte-reproducible
            print(f"trained to step {self.step} in {time.time() - started:.1f} s", file=sys.stderr)
            # a finished run leaves no checkpoint: re-running trains afresh, never "resumes"
            # into the old final weights
            self.checkpoints.remove()
        if self.dist.active:
            torch.distributed.barrier()
        return summary

    def run_epoch(self, progress: tqdm) -> None:
        """The rest of the current epoch; validation and a checkpoint at its end."""
        epoch, in_epoch = divmod(self.step, self.steps_per_epoch)
        for batch in self.plan.batches(epoch, in_epoch):
            self.train_step(batch)
            progress.update(1)
            if not self.pending:  # just synced: the numbers are on the host anyway
                images = (progress.format_dict.get("rate") or 0.0) * self.tc.batch_size
                progress.set_postfix(loss=f"{self.last_terms['total']:.4f}", img_s=f"{images:.1f}")
            epoch_end = self.step % self.steps_per_epoch == 0
            if self.checkpoint_due() and not epoch_end:
                self.sync()
                self.save_checkpoint()
            if self.step >= self.total_steps or self.prefix_ends_now():
                break
        self.sync()
        logs = self.logs
        if logs is not None:
            logs.end_epoch()
        # at every epoch end, and at the last step of a run capped mid-epoch (train.max_steps)
        ended = self.step % self.steps_per_epoch == 0 or self.step >= self.total_steps
        if self.validates_now(ended) and logs is not None:
            epoch = -(-self.step // self.steps_per_epoch)  # the epoch this step belongs to
            self.last_val = self.validate()
            logs.log_validation(epoch, self.step, self.last_val)
            log.info("epoch %d: %s", epoch, self.last_val)
        for name, (prefix, end) in self.prefixes.items():
            if self.step == end and self.dist.main:
                self.write_prefix(name, prefix)
        # after validation, so that a run killed while validating redoes it on resume
        if self.tc.checkpoint_every or self.checkpoint_due():
            self.save_checkpoint()

    def prefix_ends_now(self) -> bool:
        return any(self.step == end for _, end in self.prefixes.values())

    def validates_now(self, ended: bool) -> bool:
        """At an epoch end (or the run's last step) when this run validates; and at the points
        where a prefix run that validates would, up to its last step."""
        if self.tc.validate and ended:
            return True
        epoch_end = self.step % self.steps_per_epoch == 0
        return any(
            prefix.train.validate and self.step <= end and (epoch_end or self.step == end)
            for prefix, end in self.prefixes.values()
        )

    def write_prefix(self, name: str, prefix: Config) -> None:
        """OUT/prefix/<name>/: the model directory the prefix run would have written itself
        (its config, this run's weights and logs at its last step)."""
        with atomic_directory(self.out_dir / PREFIX_DIR / name, replace=True) as tmp:
            for rel, text in log_files(self.out_dir).items():
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp / rel).write_text(text, encoding="utf-8")
            self.write_model_files(tmp, prefix)
        log.info("wrote %s: the first %d steps of this run", name, self.step)

    def data_card(self) -> dict[str, Any]:
        """What the model was trained on, for its summary.json (the model card): the root as
        given, the training pairs per subset and a digest of their names (the same list, the
        same digest). Its test-split metrics are the evaluate stage's metrics/<variant>.json."""
        subsets = Counter(s.subset for s in self.train_set.samples)
        names = "\n".join(f"{s.subset}/{s.name}" for s in self.train_set.samples)
        return {
            "root": str(self.data_root),
            "train_pairs_per_subset": dict(sorted(subsets.items())),
            "train_list_sha256": hashlib.sha256(names.encode()).hexdigest()[:16],
        }

    def write_model_dir(self) -> dict[str, Any]:
        return self.write_model_files(self.out_dir, self.cfg)

    def write_model_files(self, out_dir: Path, cfg: Config) -> dict[str, Any]:
        """model.pt, config.json and summary.json of a run of `cfg` that stops at this step."""
        summary = {
            "profile": cfg.profile,
            "params_generator": count_parameters(self.model),
            "params_head": count_parameters(self.criterion),
            "gflops_per_image": forward_gflops(self.model, self.tc.image_size),
            "image_size": self.tc.image_size,
            "steps": self.step,
            "epochs": self.step / self.steps_per_epoch,
            "train_pairs": len(self.train_set),
            "data": self.data_card(),
            "code_version": code_version(TRAINING_CODE),
            # what the bytes of model.pt depend on besides the code, the config and the data
            "kernels": kernel_facts() if self.device.type == "cpu" else cuda_facts(),
            "final_train_loss": self.last_terms,
            # a run that does not validate itself reports none (a prefix's may be in its logs)
            "final_validation": self.last_val if cfg.train.validate else {},
        }
        atomic_save(self.model.state_dict(), out_dir / "model.pt")
        atomic_write_text(json.dumps(cfg.to_dict(), indent=2), out_dir / "config.json")
        atomic_write_text(json.dumps(summary, indent=2), out_dir / "summary.json")
        return summary

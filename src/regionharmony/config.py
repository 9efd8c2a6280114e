"""One typed configuration object for the model, the losses and training.

The dataclass defaults are the paper's recipe (Sec. IV-A, DESIGN.md sections 1, 2 and 5).
A *profile* is a named set of overrides on top of those defaults; `params.yaml` picks a profile
and may override any field, and a *variant* (a row of Table VI / VII or a curve of Fig. 8/9)
is one more set of overrides. Resolution order: defaults <- profile <- params overrides <- variant.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

FUSIONS = ("style", "adain", "rain", "none")


@dataclass
class ModelConfig:
    """Residual UNet + S2AM + external style fusion (DESIGN.md section 1)."""

    in_channels: int = 4  # composite RGB + foreground mask
    base_width: int = 32  # widths base * 2**level: 32-64-128-256-512
    depth: int = 5  # encoder levels; the input side must be a multiple of 2**(depth-1)
    blocks: int = 3  # residual blocks per level
    attention: bool = True  # S2AM in every decoder level
    fusion: str = "style"  # style (the paper) | adain | rain | none
    norm: str = "batch"  # batch | instance (affine in both cases)


@dataclass
class LossConfig:
    """Eq. 13 weights and the L_HCL sampling (Sec. III-B, DESIGN.md section 2)."""

    lambda_l1: float = 0.4
    lambda_pixel: float = 0.5
    lambda_hcl: float = 0.1
    num_patches: int = 256  # K
    patch_size: int = 8
    grid_stride: int = 4  # the sampling map is 1/4 of the image resolution
    temperature: float = 0.07  # tau
    mlp_hidden: int = 256
    mlp_out: int = 256
    # reading of Eq. 10-11's queries: shared | detached_keys | pull | bg_query | truth_gated
    # (loss.region_contrastive_loss derives each; truth_gated keeps the truth a minimiser)
    hcl_query: str = "truth_gated"
    # where phi of Eq. 8-9 crops: image (full resolution, Eq. 8) | sampling_map (the text's S^fg)
    patch_source: str = "image"


@dataclass
class TrainConfig:
    """Optimiser, schedule and bookkeeping (DESIGN.md section 5)."""

    image_size: int = 256  # training crop
    load_size: int = 256  # images are resized to this before the random crop
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.01  # AdamW default
    epochs: int = 120  # the paper gives none; peers train 120-180, its fusion ablation 60
    max_steps: int = 0  # 0: no cap beyond `epochs`
    lr_schedule: str = "cosine"  # cosine | constant
    checkpoint_every: int = 500  # steps; a checkpoint is also written at every epoch end
    val_split: str = "test"  # per-epoch validation (Fig. 8/9 curves) on this split
    val_limit: int = 0  # 0: all validation images
    seed: int = 0
    num_workers: int = 0
    device: str = "auto"  # auto | cpu | cuda
    sync_bn: bool = True  # SyncBatchNorm under DDP on GPUs (unsupported on CPU)
    bf16: bool = False
    channels_last: bool = False
    compile: bool = False


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    profile: str = "paper"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# The paper profile is the dataclass defaults. "mini" is the laptop-CPU profile of the embedded
# default dataset: the same code at 64 px, narrower, shallower and fewer blocks.
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {},
    "mini": {
        "model": {"base_width": 8, "depth": 4, "blocks": 1},
        "train": {"image_size": 64, "load_size": 72, "epochs": 8},
    },
}


def _merge(cfg: Config, overrides: dict[str, Any] | None, source: str) -> None:
    for section, values in (overrides or {}).items():
        if section == "profile":
            continue
        target = getattr(cfg, section, None)
        if target is None or not dataclasses.is_dataclass(target):
            raise KeyError(f"unknown config section {section!r} in {source}")
        if not isinstance(values, dict):
            raise TypeError(f"config section {section!r} in {source} must be a mapping")
        names = {f.name: f for f in dataclasses.fields(target)}
        for key, value in values.items():
            if key not in names:
                raise KeyError(f"unknown parameter {section}.{key} in {source}")
            expected = type(getattr(target, key))
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise TypeError(
                    f"{section}.{key} in {source} must be {expected.__name__}, got {value!r}"
                )
            setattr(target, key, value)


def validate(cfg: Config) -> Config:
    if cfg.model.fusion not in FUSIONS:
        raise ValueError(f"model.fusion must be one of {FUSIONS}, got {cfg.model.fusion!r}")
    if cfg.model.norm not in ("batch", "instance"):
        raise ValueError(f"model.norm must be 'batch' or 'instance', got {cfg.model.norm!r}")
    if cfg.model.depth < 2:
        raise ValueError("model.depth must be at least 2")
    if cfg.train.lr_schedule not in ("cosine", "constant"):
        raise ValueError(f"train.lr_schedule must be cosine or constant: {cfg.train.lr_schedule!r}")
    if cfg.train.checkpoint_every < 1 or cfg.train.epochs < 1 or cfg.train.batch_size < 1:
        raise ValueError("train.checkpoint_every, train.epochs and train.batch_size must be >= 1")
    if cfg.train.val_split not in ("train", "test"):
        raise ValueError(f"train.val_split must be train or test, got {cfg.train.val_split!r}")
    if cfg.loss.num_patches < 1:
        raise ValueError("loss.num_patches (K) must be positive")
    if cfg.train.image_size % 2 ** (cfg.model.depth - 1):
        raise ValueError(
            f"train.image_size {cfg.train.image_size} must be divisible by "
            f"2**(depth-1) = {2 ** (cfg.model.depth - 1)}"
        )
    return cfg


def build_config(
    profile: str = "paper",
    overrides: dict[str, Any] | None = None,
    variant: dict[str, Any] | None = None,
) -> Config:
    """Resolve defaults <- profile <- overrides <- variant into one validated `Config`."""
    if profile not in PROFILES:
        raise KeyError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    cfg = Config(profile=profile)
    _merge(cfg, PROFILES[profile], f"profile {profile!r}")
    _merge(cfg, overrides, "overrides")
    _merge(cfg, variant, "variant")
    return validate(cfg)


def config_from_dict(data: dict[str, Any]) -> Config:
    """Rebuild a `Config` saved with `Config.to_dict` (e.g. a model directory's config.json)."""
    cfg = Config(profile=data.get("profile", "paper"))
    _merge(cfg, {k: v for k, v in data.items() if k != "profile"}, "saved config")
    return validate(cfg)


def load_params(path: str | Path) -> dict[str, Any]:
    with open(path) as f:
        return yaml.safe_load(f) or {}

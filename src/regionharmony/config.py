"""One typed configuration object for the model, the losses and training.

The dataclass defaults are the paper's recipe (Sec. IV-A, docs/model.md). Each field declares
what it admits (`number`: a range; `choice`: its values) and `validate` checks them all, with
the rules that tie fields together; `apply_layer` sets the fields a layer names, refusing an
unknown section or key and a wrong type with a `ConfigError` naming the file, the key and what
is allowed. How params.yaml's profiles, variants and `--set` build one: `regionharmony.params`.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from regionharmony.errors import ConfigError

FUSIONS = ("style", "adain", "rain", "none")
# How Eq. 10-11's undefined queries v^fg, v^bg are read (loss.hcl.region_contrastive_loss
# derives each): "paper" is the reproduction's default, the others this repository's variations.
HCL_QUERIES = ("paper", "truth_gated", "detached_keys", "pull", "bg_query")
# other names accepted for a reading: "shared" is "paper"
HCL_QUERY_ALIASES = {"shared": "paper"}
# what each reading is, in one sentence (the reports print it beside the numbers)
HCL_READINGS = {
    "paper": "the paper's reading (CUT-style InfoNCE [39]): query the harmonised-foreground patch "
    "N_i, positive its ground-truth-background partner P_i, negatives the other N_k",
    "truth_gated": "this repository's extension, not the paper's loss: the same loss value, but "
    "the generator gets only the pull of N_i toward P_i, no negative's gradient, and only where "
    "the output's patch is farther from P_i than the ground-truth foreground patch T_i (a sample "
    "set the paper does not draw); the truth is a minimiser",
    "detached_keys": "a variation: the paper's reading with stop-gradient keys N_k",
    "pull": "a variation: the paper's reading with the whole denominator stop-gradient",
    "bg_query": "a variation: the background patch P_i as the query of the negatives",
}
# Where phi of Eq. 8-9 crops its 8x8 patches; see loss.hcl.region_contrastive_loss.
PATCH_SOURCES = ("image", "sampling_map")
SWITCHES = ("auto", "always", "never")
DEVICES = ("auto", "cpu", "cuda")


def number(
    default: float, low: float, high: float | None = None, *, above: bool = False, name: str = ""
) -> Any:
    """A numeric field whose range `validate` checks: finite, >= low (> low where `above`),
    <= high where given; `name` is the paper's symbol, shown in the error message."""
    return field(default=default, metadata={"range": (low, above, high), "symbol": name})


def choice(default: str, allowed: tuple[str, ...]) -> Any:
    """A string field that `validate` checks against its `allowed` values."""
    return field(default=default, metadata={"choices": allowed})


@dataclass
class ModelConfig:
    """Residual UNet + S2AM + external style fusion (docs/model.md, 'The network')."""

    in_channels: int = number(4, 1)  # composite RGB + foreground mask
    base_width: int = number(32, 1)  # widths base * 2**level: 32-64-128-256-512
    depth: int = number(5, 2)  # encoder levels; the input side must be a multiple of 2**(depth-1)
    blocks: int = number(3, 1)  # residual blocks per level
    attention: bool = True  # S2AM in every decoder level
    fusion: str = choice("style", FUSIONS)  # style (the paper) | adain | rain | none
    norm: str = choice("batch", ("batch", "instance"))  # affine in both cases


@dataclass
class LossConfig:
    """Eq. 13 weights and the L_HCL sampling (Sec. III-B, docs/model.md, 'The losses')."""

    lambda_l1: float = number(0.4, 0, name="lambda_1")
    lambda_pixel: float = number(0.5, 0, name="lambda_2")
    lambda_hcl: float = number(0.1, 0, name="lambda_3")
    num_patches: int = number(256, 1, name="K")
    patch_size: int = number(8, 1)
    grid_stride: int = number(4, 1)  # the sampling map is 1/4 of the image resolution
    temperature: float = number(0.07, 0, above=True, name="tau")
    mlp_hidden: int = number(256, 1)
    mlp_out: int = number(256, 1)
    # reading of Eq. 10-11's queries (HCL_QUERIES; loss.hcl.region_contrastive_loss derives
    # each): paper (CUT-style, the default) | truth_gated (this repository's extension) | ...
    hcl_query: str = choice("paper", HCL_QUERIES)
    # where phi of Eq. 8-9 crops: image (full resolution, Eq. 8) | sampling_map (the text's S^fg)
    patch_source: str = choice("image", PATCH_SOURCES)


@dataclass
class TrainConfig:
    """Optimiser, schedule and bookkeeping (docs/model.md, 'The training recipe')."""

    image_size: int = number(256, 1)  # training crop side
    # resized (BargainNet's random-resized crop) | resize_then_crop
    crop: str = choice("resized", ("resized", "resize_then_crop"))
    # "resized": the crop covers crop_scale-100 % of the image area
    crop_scale: float = number(0.5, 0, 1, above=True)
    load_size: int = number(256, 1)  # "resize_then_crop": images are resized to this, then cropped
    batch_size: int = number(8, 1)
    lr: float = number(1e-3, 0, above=True)
    weight_decay: float = number(0.01, 0)  # AdamW default
    epochs: int = number(120, 1)  # the paper gives none; peers train 120-180, its ablation 60
    budget: float = number(1.0, 0, 1, above=True)  # the share of `epochs` this run trains
    max_steps: int = number(0, 0)  # 0: no cap beyond `epochs`
    # constant (the paper states no schedule) | cosine
    lr_schedule: str = choice("constant", ("constant", "cosine"))
    # checkpoints (one file, written atomically): every `checkpoint_every` steps and at every
    # epoch end; and/or every `checkpoint_minutes` of wall clock (0 turns either off)
    checkpoint_every: int = number(500, 0)
    checkpoint_minutes: float = number(0.0, 0)
    validate: bool = False  # per-epoch validation: only the runs whose report draws curves
    # a variant whose run begins with this one's (a `variants` name): where the two runs are
    # the same up to this one's end (`prefix_problem`), that run's first part is this model
    prefix_of: str = ""
    val_split: str = choice("test", ("train", "test"))  # per-epoch validation on this split
    val_limit: int = number(0, 0)  # 0: every validation pair; N: N pairs spread over the split
    seed: int = number(0, 0)
    num_workers: int = number(0, 0)
    device: str = choice("auto", DEVICES)  # under torchrun, cuda is the rank's local GPU
    # with device auto and no CUDA GPU, stop rather than train for weeks on the CPU (params.yaml
    # sets it for the paper profiles); `device: cpu` trains on the CPU on purpose
    require_cuda: bool = False
    sync_bn: bool = True  # under DDP, BatchNorm over the global batch (GPU: SyncBatchNorm)
    # auto (bf16 autocast on CUDA, fp32 on CPU) | bf16 | fp32
    precision: str = choice("auto", ("auto", "bf16", "fp32"))
    channels_last: str = choice("auto", SWITCHES)  # channels-last memory: auto (on CUDA)
    compile: str = choice("auto", SWITCHES)  # torch.compile of generator + L_all: auto (on CUDA)
    # steps between host syncs (finite check, logs); 0: 1 on CPU, 25 on CUDA
    sync_every: int = number(0, 0)
    # the CUDA defaults on the CPU, for the tests and `benchmarks/gpu_check.sh --cpu-rehearsal`:
    # every auto switch above as on CUDA (compile, bf16 autocast, channels-last, sync_every 25)
    # and fused AdamW; what stays CUDA-only is listed in docs/paper-run.md
    rehearse_cuda: bool = False


# How a run executes, not what it computes: a checkpoint resumes across a change of these (e.g.
# `train.compile=never` after a compile failure, another GPU, more loader workers).
EXECUTION_KEYS = (
    "device",
    "require_cuda",
    "num_workers",
    "precision",
    "channels_last",
    "compile",
    "sync_every",
    "rehearse_cuda",
    "checkpoint_every",
    "checkpoint_minutes",
)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    profile: str = "paper"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PAPER_PROFILE = "paper"  # the dataclass defaults; params.yaml may still set bookkeeping fields
SECTIONS = ("model", "loss", "train")


def _type_name(kind: type) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        kind, kind.__name__
    )


def apply_layer(cfg: Config, layer: Mapping[str, Any] | None, source: str) -> None:
    """Set the fields a layer names ({section: {key: value}}) on `cfg`, checking each.

    `source` says where the layer comes from (e.g. "params.yaml, variants.rain") and starts
    every error message.
    """
    if layer is None:
        return
    if not isinstance(layer, Mapping):
        raise ConfigError(f"{source}: must be a mapping of sections {', '.join(SECTIONS)}")
    for section, values in layer.items():
        if section not in SECTIONS:
            raise ConfigError(
                f"{source}: unknown section {section!r}; allowed: {', '.join(SECTIONS)}"
            )
        if values is None:
            continue
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: section {section!r} must be a mapping of key: value")
        target = getattr(cfg, section)
        fields = {f.name for f in dataclasses.fields(target)}
        for key, value in values.items():
            if key not in fields:
                raise ConfigError(
                    f"{source}: unknown parameter {section}.{key}; allowed in {section}: "
                    f"{', '.join(sorted(fields))}"
                )
            setattr(target, key, _checked(value, type(getattr(target, key)), source, section, key))


def _checked(value: Any, expected: type, source: str, section: str, key: str) -> Any:
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        hint = ""
        if expected is float and isinstance(value, str) and _is_number(value):
            # YAML 1.1 reads 1e-3 (no dot) as a string
            hint = f" (YAML reads {value} as text: write it with a dot, e.g. 1.0e-3)"
        raise ConfigError(
            f"{source}: {section}.{key} must be {_type_name(expected)}, got {value!r}{hint}"
        )
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _range_problem(value: float, low: float, above: bool, high: float | None) -> str | None:
    """What is wrong with `value` for the range (low, above, high) of `number`, or None."""
    if not math.isfinite(value):
        return "a finite number"
    if high is not None and not (low < value <= high if above else low <= value <= high):
        return f"in {'(' if above else '['}{low:g}, {high:g}]"
    if above and value <= low:
        return "positive" if low == 0 else f"greater than {low:g}"
    if value < low:
        return f"at least {low:g}"
    return None


def with_seed(cfg: Config, seed: int) -> Config:
    """A copy of `cfg` with train.seed `seed`."""
    seeded = copy.deepcopy(cfg)
    seeded.train.seed = seed
    return seeded


def check_section(target: object, section: str, source: str) -> None:
    """Every field of one section (a ModelConfig, LossConfig or TrainConfig): its declared
    range or allowed values (`number`, `choice`)."""
    for f in dataclasses.fields(target):
        value, key = getattr(target, f.name), f"{section}.{f.name}"
        if f.metadata.get("symbol"):
            key += f" ({f.metadata['symbol']})"
        if "choices" in f.metadata:
            allowed = f.metadata["choices"]
            _require(
                value in allowed,
                f"{source}: {key} must be one of {', '.join(allowed)}, got {value!r}",
            )
        elif "range" in f.metadata:
            problem = _range_problem(value, *f.metadata["range"])
            _require(problem is None, f"{source}: {key} must be {problem}, got {value}")


def validate(cfg: Config, source: str = "config") -> Config:
    """Refuse values that type-check but cannot work, naming the key and what is allowed: each
    field's declared range or choices, then the rules that tie fields together."""
    m, t, loss = cfg.model, cfg.train, cfg.loss
    loss.hcl_query = HCL_QUERY_ALIASES.get(loss.hcl_query, loss.hcl_query)
    for section in SECTIONS:
        check_section(getattr(cfg, section), section, source)
    _require(
        t.checkpoint_every > 0 or t.checkpoint_minutes > 0,
        f"{source}: train.checkpoint_every or train.checkpoint_minutes must be set (> 0): a "
        "training that never checkpoints cannot resume",
    )
    multiple = 2 ** (m.depth - 1)
    _require(
        t.image_size % multiple == 0,
        f"{source}: train.image_size {t.image_size} must be divisible by 2**(model.depth-1) = "
        f"{multiple}",
    )
    _require(
        t.crop != "resize_then_crop" or t.load_size >= t.image_size,
        f"{source}: train.load_size {t.load_size} is smaller than train.image_size {t.image_size}",
    )
    return cfg


def config_from_dict(data: Mapping[str, Any], source: str = "saved config") -> Config:
    """Rebuild a `Config` saved with `Config.to_dict` (e.g. a model directory's config.json)."""
    cfg = Config(profile=data.get("profile", PAPER_PROFILE))
    apply_layer(cfg, {k: v for k, v in data.items() if k != "profile"}, source)
    return validate(cfg, source)

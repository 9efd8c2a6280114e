"""The cost of `dvc repro` for the paper profile: hours, GPU waiting and disk, per stage, for
the old pipeline plan (the code at commit acfbd9c) and the new one, side by side.

    python benchmarks/paper_cost.py                      # 1 GPU at 500 img/s, 16 cores
    python benchmarks/paper_cost.py --gpus 8 --train-rate 450 --cpu-workers 32
    python benchmarks/paper_cost.py --quick --json cost.json   # smoke test, < 20 s
    python benchmarks/paper_cost.py --plan new --launch-gpus 1 8 --cpu-workers 96  # 1 vs 8 GPUs

What it combines:

* counts read from params.yaml and dvc.yaml: the variants with their `train.budget`, the
  paper profile's epochs, batch, checkpoint interval and loader workers (resolved through
  `regionharmony.config.build_config`), the seeds and the `evaluate.highres` sizes of the paper
  switch (the commented block at the top of params.yaml), the baselines, the user-study
  methods and the report stages;
* iHarmony4's published split sizes (65,742 train / 7,404 test; HAdobe5k test 2,160) and
  DIH99's 99 real composites;
* per-item costs MEASURED HERE, at run time, on synthetic images of the sizes below: decoding
  an original pair (HAdobe5k: 4256 x 2832 JPEG), the bicubic resizes of
  `regionharmony.data.images`, `prepare`'s per-file work and its encoded bytes at longest side
  1024, one training-loader sample from that prepared cache (decode + random-resized crop to
  256), the metrics of one image, the IIH SSIM as a 2-D correlate (old) and as two 1-D passes
  (new), a 256 px PNG written by `evaluate --save-images`, and a checkpoint of the paper model
  with its AdamW state (3 x the weights) written with `regionharmony.io.atomic_save`;
* the command line: the training rate of one GPU (`--train-rate`), `--gpus`, and the cores of
  the GPU machine (`--cpu-workers`), over which the per-item CPU costs divide where a stage
  runs parallel. This machine's single-core costs stand for one core of that machine.

The model of a stage: an item (image, pair, file) costs `worker` CPU seconds that loader
workers can share, `main` seconds in the main process and `gpu` seconds on the GPU. Without
workers they add up; with W workers an item takes max(worker / W, main + gpu). The GPU waits for
the rest of the item's time; a CPU-only stage leaves it waiting the whole time. The GPU
evaluates at 4 x the training rate (scaled by pixels at larger sizes). Training runs on all
--gpus (DDP; validation on rank 0 while the others wait); every other stage on one GPU. Stages
run one after another, as `dvc repro` runs them.

`--launch-gpus 1 8` adds the issue-21 table: the new plan's wall time on each GPU count under
the two ways to use several GPUs. "ddp" is what `launch.processes` does: every training on all
GPUs at once (torchrun), the global batch of 8 split over the ranks, at `--ddp-efficiency` of
linear scaling (ASSUMED, default 1.0: an upper bound; a rank with 1 image keeps a GPU far from
full, and no GPU measurement of it exists here); the other stages as on one GPU. "independent"
runs the trainings side by side, one per GPU (longest first), each with its share of the cores,
which `dvc repro` cannot do (it runs one stage at a time; queued experiments can: README). The
table prints the DDP efficiency at which the two finish together.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image
from scipy.ndimage import correlate, correlate1d

ROOT = Path(__file__).resolve().parents[1]

# ---- the data: iHarmony4 (DoveNet, CVPR 2020, Table 1) ---------------------------------------


@dataclass(frozen=True)
class SubsetSpec:
    train: int  # composites (= pairs) in IHD_train
    test: int  # composites in IHD_test
    reals: int  # distinct real images: a real serves several composites
    size: tuple[int, int]  # (width, height) of a typical original: an ASSUMPTION, see below

    @property
    def pairs(self) -> int:
        return self.train + self.test


# Split sizes are iHarmony4's. Distinct reals: DoveNet's counts for HAdobe5k (4,328), HFlickr
# (4,833) and Hday2night (106); HCOCO's is taken as one real per composite (an upper bound).
# Sizes are assumptions for the cost model: COCO photographs ~640 x 480, MIT-Adobe FiveK photos
# ~4256 x 2832 (many reach 6048 x 4032), Flickr and day2night ~1024 x 768.
SUBSETS: dict[str, SubsetSpec] = {
    "HCOCO": SubsetSpec(38545, 4283, 42828, (640, 480)),
    "HAdobe5k": SubsetSpec(19437, 2160, 4328, (4256, 2832)),
    "HFlickr": SubsetSpec(7449, 828, 4833, (1024, 768)),
    "Hday2night": SubsetSpec(311, 133, 106, (1024, 768)),
}
HIGHRES_SUBSET = "HAdobe5k"  # Table IV: evaluate_highres runs on this subset only
REAL_COMPOSITES = 99  # DIH99 (harmonize_real), at their own resolution (~1024 x 768 assumed)
REAL_COMPOSITE_SIZE = (1024, 768)
GPU_EVAL_SPEEDUP = 4.0  # forward-only images/s at 256 px = 4 x the training rate
REPORT_SECONDS = 30.0  # ASSUMED, not measured: papermill kernel start + nbconvert per report
SUBSET_VALIDATION = 500  # the new plan's fixed validation subset

# ---- the targets of the issue (for the new plan at 500 img/s, 1 GPU, 16 cores) ---------------
TARGET_GPU_WAIT = 0.10  # share of the pipeline's wall time (old: ~50 %)
TARGET_PIPELINE_RATIO = 1.25  # pipeline wall time / training wall time
TARGET_TRAIN_IMAGES = 63.2e6  # training images of the whole pipeline (old: 74.9 M)
TARGET_EVAL_SECONDS = 600.0  # one variant (one model) on the 7,404 test pairs (old: ~35 min)

# ---- the two plans -----------------------------------------------------------------------------
# Worker specs: "main" = no workers (the main process decodes, serially with the GPU and the
# scoring); "N/rank" = N workers in each training process (all ranks together capped at the
# cores); "cores" = --cpu-workers; "cores-N" = --cpu-workers minus N. Both plans are data here,
# not read from params.yaml (which follows the code of its own commit); params.yaml gives the
# counts: variants, budgets, epochs, batch, seeds, sizes.


@dataclass(frozen=True)
class Plan:
    name: str
    title: str
    not_trained: tuple[str, ...]  # params.yaml variants this plan does not train (or evaluate)
    shares_prefixes: bool  # a prefix variant that is exact is copied from its parent's run
    switch_studies: bool  # studies: only those the paper switch keeps (else every one)
    val_variants: tuple[str, ...] | None  # None: every trained variant validates every epoch
    val_pairs: int | None  # pairs per validation; None: the whole test split
    val_workers: str
    loader_workers: str  # the training DataLoader, all ranks together
    eval_workers: str  # evaluate@*, evaluate_baseline@*, evaluate_highres@*
    ssim: str  # "2d": scipy.ndimage.correlate, 11 x 11 | "separable": two correlate1d passes
    check_workers: str
    prepare_workers: str
    cache_dataset: bool  # data.dvc: the dataset copied into .dvc/cache (cache type copy)
    checkpoint_every: int  # steps between checkpoints, plus one at every epoch end (0: none)
    checkpoint_minutes: float  # one file overwritten every N minutes of wall clock (0: none)


PLANS: dict[str, Plan] = {
    # The code at commit acfbd9c: every variant trained (fusion_style too), every epoch of every
    # variant validated on all 7,404 test pairs in the main process, 8 loader workers
    # (params.yaml), evaluation single-process with the 2-D SSIM, check_data single-process,
    # the dataset committed into .dvc/cache, a checkpoint every 2,000 steps and epoch end.
    "old": Plan(
        name="old",
        title="old plan (the code at acfbd9c)",
        not_trained=(),
        shares_prefixes=False,
        switch_studies=False,
        val_variants=None,
        val_pairs=None,
        val_workers="main",
        loader_workers="8/rank",  # acfbd9c's profiles.paper.train.num_workers
        eval_workers="main",
        ssim="2d",
        check_workers="main",
        prepare_workers="cores",
        cache_dataset=True,
        checkpoint_every=2000,  # acfbd9c's profiles.paper.train.checkpoint_every
        checkpoint_minutes=0.0,
    ),
    # The new plan, as the code now runs it: every paper variant trained but fusion_style, which
    # is l1_pixel_sf's first half (prefix_variants; exact under the paper's constant lr); the
    # studies only where the paper switch keeps them (it keeps none); only the three
    # Fig. 8/9 variants validate (train.validate), on a fixed subset of 500 test pairs decoded
    # by loader workers; training loads with all cores but two; evaluation and check_data use
    # every core, the SSIM is separable; data.dvc has cache: false; one checkpoint file is
    # overwritten every 30 minutes.
    "new": Plan(
        name="new",
        title="new plan",
        not_trained=(),
        shares_prefixes=True,
        switch_studies=True,
        val_variants=("fusion_adain", "fusion_rain", "fusion_style"),
        val_pairs=SUBSET_VALIDATION,
        val_workers="cores",
        loader_workers="cores-2",
        eval_workers="cores",
        ssim="separable",
        check_workers="cores",
        prepare_workers="cores",
        cache_dataset=False,
        checkpoint_every=0,
        checkpoint_minutes=30.0,
    ),
}


# ---- params.yaml and dvc.yaml --------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    name: str
    budget: float
    epochs: int  # epochs this variant trains: round(epochs x budget), at least 1
    steps: int
    images: int  # per model (seed)
    kind: str = "variants"  # the params.yaml mapping: variants | prefix_variants | studies
    shared: bool = False  # a prefix variant that is exactly its parent's first part (paper)
    parent: str = ""  # train.prefix_of


@dataclass(frozen=True)
class Settings:
    variants: dict[str, Variant]
    switch_studies: frozenset[str]  # the studies the paper switch keeps
    seeds: int
    eval_size: int
    highres: tuple[int, ...]
    batch_size: int
    steps_per_epoch: int
    paper_train: dict[str, Any]  # profiles.paper.train as params.yaml has it now (shown only)
    image_size: int
    baselines: tuple[str, ...]
    study_candidates: int
    mini_pairs: int
    mini_size: int
    feature_images: int
    reports: int
    stages: tuple[str, ...]


def paper_switch(text: str) -> dict[str, Any]:
    """The commented block at the top of params.yaml that switches to the paper
    ('replace this block with:'), as a mapping; {} when there is none."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if "replace this block with" in line), None)
    if start is None:
        return {}
    block = []
    for line in lines[start + 1 :]:
        if not line.startswith("#   "):
            break
        block.append(line[4:])
    loaded = yaml.safe_load("\n".join(block))
    return loaded if isinstance(loaded, dict) else {}


def switched(base: Mapping[str, Any], switch: Mapping[str, Any]) -> dict[str, Any]:
    """params.yaml with its switch block replaced by `switch`, as README says: each key the
    switch names is replaced whole (an empty `studies: {}` leaves no study)."""
    return {**base, **switch}


def epochs_run(epochs: int, budget: float) -> int:
    """Epochs a run trains (train.Trainer: round(epochs x budget), at least one)."""
    return max(1, round(epochs * budget))


def images_per_run(train_pairs: int, batch_size: int, epochs: int, budget: float) -> int:
    """Training images one model sees: whole batches per epoch (the last partial one dropped)."""
    return (train_pairs // batch_size) * batch_size * epochs_run(epochs, budget)


def resolve_variants(params: Mapping[str, Any], params_path: Path) -> dict[str, Variant]:
    """Every variant of params.yaml (all of config.VARIANT_MAPPINGS), resolved on the paper
    profile; a prefix variant is `shared` where it is its parent's first part there."""
    from regionharmony.config import VARIANT_MAPPINGS, build_config, prefix_problem

    train_pairs = sum(s.train for s in SUBSETS.values())
    out = {}
    for kind in VARIANT_MAPPINGS:
        for name, layer in (params.get(kind) or {}).items():
            cfg = build_config("paper", variant=layer or {}, params_path=params_path)
            tc = cfg.train
            shared = False
            if tc.prefix_of:
                parent_layer = (params.get("variants") or {}).get(tc.prefix_of) or {}
                parent = build_config("paper", variant=parent_layer, params_path=params_path)
                shared = prefix_problem(cfg, parent) is None
            epochs = epochs_run(tc.epochs, tc.budget)
            steps = (train_pairs // tc.batch_size) * epochs
            images = images_per_run(train_pairs, tc.batch_size, tc.epochs, tc.budget)
            out[name] = Variant(name, tc.budget, epochs, steps, images, kind, shared, tc.prefix_of)
    return out


def study_candidates(params: Mapping[str, Any]) -> int:
    """Images per user-study group: the composite and every method of params.yaml user_study."""
    return 1 + len((params.get("user_study") or {}).get("methods") or {})


def read_settings(params_path: Path, dvc_path: Path) -> Settings:
    """The counts of a paper-profile `dvc repro` from params.yaml and dvc.yaml."""
    from regionharmony.config import build_config

    text = params_path.read_text(encoding="utf-8")
    raw = yaml.safe_load(text) or {}
    params = switched(raw, paper_switch(text))
    dvc = yaml.safe_load(dvc_path.read_text(encoding="utf-8")) or {}
    tc = build_config("paper", params_path=params_path).train
    mini = params.get("mini", {})
    stages = tuple(dvc.get("stages", {}))
    return Settings(
        variants=resolve_variants(raw, params_path),
        switch_studies=frozenset(params.get("studies") or {}),
        seeds=int(params.get("seeds", 1)),
        eval_size=int(params.get("evaluate", {}).get("size", 256)),
        highres=tuple(int(s) for s in params.get("evaluate", {}).get("highres", [])),
        batch_size=tc.batch_size,
        steps_per_epoch=sum(s.train for s in SUBSETS.values()) // tc.batch_size,
        paper_train=dict(params.get("profiles", {}).get("paper", {}).get("train", {})),
        image_size=tc.image_size,
        baselines=tuple(params.get("reports", {}).get("baselines", [])),
        study_candidates=study_candidates(params),
        mini_pairs=4 * (int(mini.get("train_per_subset", 0)) + int(mini.get("test_per_subset", 0))),
        mini_size=int(mini.get("size", 256)),
        feature_images=int(params.get("figures", {}).get("feature_images", 0)),
        reports=sum(1 for name in stages if name.startswith("report_")),
        stages=stages,
    )


# ---- pure counting ---------------------------------------------------------------------------


def planned_variants(settings: Settings, plan: Plan) -> list[Variant]:
    """The variants whose models the plan makes (trained, or copied from a shared run)."""
    dropped = set(plan.not_trained)
    if plan.switch_studies:
        dropped |= {n for n, v in settings.variants.items() if v.kind == "studies"}
        dropped -= settings.switch_studies
    return [v for name, v in settings.variants.items() if name not in dropped]


def trained_variants(settings: Settings, plan: Plan) -> list[Variant]:
    """The variants the plan trains: a shared prefix costs no training of its own."""
    return [v for v in planned_variants(settings, plan) if not (plan.shares_prefixes and v.shared)]


def validating_variants(settings: Settings, plan: Plan) -> list[Variant]:
    """Runs of validation passes: a shared prefix's are done inside its parent's run."""
    planned = planned_variants(settings, plan)
    if plan.val_variants is None:
        return planned
    return [v for v in planned if v.name in plan.val_variants]


def training_images(settings: Settings, plan: Plan) -> int:
    return settings.seeds * sum(v.images for v in trained_variants(settings, plan))


def resolve_workers(spec: str, cores: int, gpus: int) -> int:
    """Worker processes of a spec (0: none, the main process does the work)."""
    if spec == "main":
        return 0
    if spec.endswith("/rank"):
        return min(int(spec.removesuffix("/rank")) * gpus, cores)
    if spec == "cores":
        return cores
    if spec.startswith("cores-"):
        return max(1, cores - int(spec.removeprefix("cores-")))
    raise ValueError(f"unknown worker spec {spec!r}")


def checkpoint_writes_by_steps(total_steps: int, steps_per_epoch: int, every: int) -> int:
    """Checkpoints one run writes: every `every` steps, and at every epoch end (once where the
    two coincide)."""
    epochs = total_steps // steps_per_epoch
    coincide = total_steps // math.lcm(every, steps_per_epoch)
    return total_steps // every - coincide + epochs


def checkpoint_writes_by_clock(wall_seconds: float, minutes: float) -> int:
    """Checkpoints one run writes when one file is overwritten every `minutes` of wall clock."""
    return int(wall_seconds // (60 * minutes))


def item_wall(worker: float, main: float, gpu: float, workers: int) -> float:
    """Seconds per item: serial without workers, else the slower of the workers and the main
    process with its GPU calls."""
    if workers == 0:
        return worker + main + gpu
    return max(worker / workers, main + gpu)


def weighted(values: Mapping[str, float], weights: Mapping[str, float]) -> float:
    total = sum(weights.values())
    return sum(values[k] * w for k, w in weights.items()) / total


# ---- measuring -------------------------------------------------------------------------------


def timed(fn: Callable[[], object], reps: int) -> float:
    """The fastest of `reps` calls after one warm-up call (no warm-up for a single rep): on a
    shared machine, the other processes only ever add time."""
    if reps > 1:
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


@dataclass(frozen=True)
class Meter:
    """How big and how often: `shrink` divides every side (quick), costs scale back by pixels."""

    reps: int
    shrink: int

    def side(self, n: int) -> int:
        return max(16, n // self.shrink)

    def dims(self, size: tuple[int, int]) -> tuple[int, int]:
        return self.side(size[0]), self.side(size[1])

    @property
    def scale(self) -> float:
        return float(self.shrink**2)

    def time(self, fn: Callable[[], object], reps: int | None = None) -> float:
        return timed(fn, reps or self.reps) * self.scale


def base_photo() -> np.ndarray:
    """A photograph (scikit-image's astronaut) as uint8 RGB."""
    from skimage import data

    return np.asarray(data.astronaut())


def synthetic_image(photo: np.ndarray, size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """`photo` resized bicubic to (width, height) with sensor-like noise, uint8 RGB."""
    big = np.asarray(Image.fromarray(photo).resize(size, Image.Resampling.BICUBIC), np.int16)
    noise = np.random.default_rng(seed).integers(-4, 5, big.shape, dtype=np.int16)
    return np.clip(big + noise, 0, 255).astype(np.uint8)


def ellipse_mask(size: tuple[int, int]) -> np.ndarray:
    """bool (height, width): a centred ellipse over about 12 % of the image."""
    w, h = size
    y, x = np.ogrid[:h, :w]
    return ((x - w / 2) / (0.25 * w)) ** 2 + ((y - h / 2) / (0.25 * h)) ** 2 <= 1


def write_pair(folder: Path, photo: np.ndarray, size: tuple[int, int]):  # -> Sample
    """An original pair of `size` in `folder`: composite and real JPEG, mask RGB PNG 0/255."""
    from regionharmony.data.layout import JPEG_SETTINGS, Sample

    folder.mkdir(parents=True, exist_ok=True)
    real = synthetic_image(photo, size)
    mask = ellipse_mask(size)
    composite = real.copy()
    composite[mask] = (composite[mask] * 0.8 + 30).astype(np.uint8)
    paths = [folder / "composite.jpg", folder / "mask.png", folder / "real.jpg"]
    Image.fromarray(composite).save(paths[0], format="JPEG", **JPEG_SETTINGS)
    Image.fromarray(np.repeat(mask[..., None] * np.uint8(255), 3, 2)).save(paths[1])
    Image.fromarray(real).save(paths[2], format="JPEG", **JPEG_SETTINGS)
    return Sample("synthetic", folder.name, *paths)


def gaussian_1d(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    g = np.exp(-((np.arange(size) - size // 2) ** 2) / (2 * sigma**2))
    return g / g.sum()


def blur_2d(x: np.ndarray) -> np.ndarray:
    """The IIH blur as a 2-D correlate per channel (the old evaluation)."""
    window = np.outer(gaussian_1d(), gaussian_1d())
    channels = [correlate(x[..., c], window, mode="constant") for c in range(x.shape[-1])]
    return np.stack(channels, -1)


def blur_separable(x: np.ndarray) -> np.ndarray:
    """The same blur as two 1-D passes (rows, then columns), zero padding."""
    g = gaussian_1d()
    return correlate1d(correlate1d(x, g, axis=0, mode="constant"), g, axis=1, mode="constant")


def iih_ssim(
    pred: np.ndarray, target: np.ndarray, blur: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """IIH's SSIM map (metrics.iih_ssim_map) with a given blur."""
    c1, c2 = 0.01**2, 0.03**2
    mu_p, mu_t = blur(pred), blur(target)
    var_p = blur(pred * pred) - mu_p**2
    var_t = blur(target * target) - mu_t**2
    cov = blur(pred * target) - mu_p * mu_t
    num = (2 * mu_p * mu_t + c1) * (2 * cov + c2)
    return num / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))


@dataclass
class Costs:
    """Per-item costs measured here (seconds, bytes); keys: subset names or pixel sizes."""

    decode_image: dict[str, float] = field(default_factory=dict)  # one original JPEG
    decode_mask: dict[str, float] = field(default_factory=dict)  # one original mask PNG
    decode_pair: dict[str, float] = field(default_factory=dict)  # load_pair of an original
    prepare_image: dict[str, float] = field(default_factory=dict)
    prepare_mask: dict[str, float] = field(default_factory=dict)
    bytes_image: dict[str, float] = field(default_factory=dict)  # original
    bytes_mask: dict[str, float] = field(default_factory=dict)
    prepared_image_bytes: dict[str, float] = field(default_factory=dict)
    prepared_mask_bytes: dict[str, float] = field(default_factory=dict)
    loader_sample: dict[str, float] = field(default_factory=dict)  # prepared -> 256 crop
    val_sample: dict[str, float] = field(default_factory=dict)  # prepared -> 256 square
    eval_load: dict[str, float] = field(default_factory=dict)  # "subset@size": original -> size
    resize: dict[str, float] = field(default_factory=dict)  # "subset@size": one RGB resize
    metrics: dict[int, float] = field(default_factory=dict)  # image_metrics without SSIM
    ssim_2d: dict[int, float] = field(default_factory=dict)
    ssim_separable: dict[int, float] = field(default_factory=dict)
    ssim_package: dict[int, float] = field(default_factory=dict)  # metrics.ssim, reference
    baseline: dict[str, float] = field(default_factory=dict)
    png_save: float = 0.0  # one 256 px prediction (evaluate --save-images)
    png_bytes: float = 0.0
    study_candidate: float = 0.0  # user-study: decode a PNG, re-encode it
    make_mini_pair: float = 0.0
    checkpoint_mb: float = 0.0
    checkpoint_write: float = 0.0
    model_mb: float = 0.0
    md5_mb_s: float = 0.0
    copy_mb_s: float = 0.0


def distinct_subsets() -> list[str]:
    """The first subset of each distinct original size: the ones measured."""
    first: dict[tuple[int, int], str] = {}
    for name, spec in SUBSETS.items():
        first.setdefault(spec.size, name)
    return list(first.values())


def share_by_size(costs: Costs) -> None:
    """Give every subset the costs measured on the subset of its size (keys "name[@size]")."""
    measured = distinct_subsets()
    for values in vars(costs).values():
        if not isinstance(values, dict):
            continue
        for key in list(values):
            subset, at, size = str(key).partition("@")
            if subset not in measured:
                continue
            for name, spec in SUBSETS.items():
                if name not in measured and spec.size == SUBSETS[subset].size:
                    values[f"{name}{at}{size}"] = values[key]


def measure_originals(costs: Costs, meter: Meter, photo: np.ndarray, tmp: Path) -> dict:
    """Decode costs and bytes of an original pair per subset; returns the pairs by subset."""
    from regionharmony.data.images import load_pair, read_image, read_mask

    pairs = {}
    for name in distinct_subsets():
        spec = SUBSETS[name]
        sample = write_pair(tmp / "orig" / name, photo, meter.dims(spec.size))
        pairs[name] = sample
        costs.decode_image[name] = meter.time(lambda s=sample: read_image(s.composite))
        costs.decode_mask[name] = meter.time(lambda s=sample: read_mask(s.mask))
        costs.decode_pair[name] = meter.time(lambda s=sample: load_pair(s))
        costs.bytes_image[name] = meter.scale * sample.composite.stat().st_size
        costs.bytes_mask[name] = meter.scale * sample.mask.stat().st_size
    return pairs


def measure_prepare(costs: Costs, meter: Meter, pairs: dict, longest: int, tmp: Path) -> dict:
    """`prepare`'s per-file work to longest side `longest` and its output; returns the
    prepared pairs by subset."""
    from regionharmony.data.layout import Sample
    from regionharmony.data.prepare import _prepare_file

    side = meter.side(longest)
    prepared = {}
    for name, src in pairs.items():
        folder = tmp / "prepared" / name
        folder.mkdir(parents=True)
        dst = [folder / p.name for p in (src.composite, src.mask, src.real)]

        def run(s: Path, d: Path, is_mask: bool) -> bool:
            return _prepare_file((s, d, is_mask, side, None, 95))

        image, mask = (src.composite, dst[0]), (src.mask, dst[1])
        costs.prepare_image[name] = meter.time(lambda a=image: run(*a, False))
        costs.prepare_mask[name] = meter.time(lambda a=mask: run(*a, True))
        run(src.real, dst[2], False)
        costs.prepared_image_bytes[name] = meter.scale * dst[0].stat().st_size
        costs.prepared_mask_bytes[name] = meter.scale * dst[1].stat().st_size
        prepared[name] = Sample("synthetic", name, *dst)
    return prepared


def measure_loading(costs: Costs, meter: Meter, prepared: dict, settings: Settings) -> None:
    """A training-loader sample and a validation sample from the prepared cache, as
    HarmonyDataset builds them (load_pair, the transform, to_tensor)."""
    from regionharmony.data.dataset import eval_transform, to_tensor, train_transform
    from regionharmony.data.images import load_pair

    crop = meter.side(settings.image_size)

    def train_item(sample, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        for image in train_transform(*load_pair(sample), crop, rng):
            to_tensor(np.ascontiguousarray(image))

    def val_item(sample) -> None:
        for image in eval_transform(*load_pair(sample), meter.side(settings.eval_size)):
            to_tensor(image)

    for name, sample in prepared.items():
        costs.loader_sample[name] = meter.time(lambda s=sample: train_item(s))
        costs.val_sample[name] = meter.time(lambda s=sample: val_item(s))


def measure_eval_loads(costs: Costs, meter: Meter, pairs: dict, settings: Settings) -> None:
    """An evaluation pair from the full-size originals: load_pair + eval_transform (+ tensors),
    at the evaluation size for every subset and at the highres sizes for HAdobe5k."""
    from regionharmony.data.dataset import load_eval_pair, to_tensor
    from regionharmony.data.images import load_pair, resize_image

    jobs = [(name, settings.eval_size) for name in pairs]
    jobs += [(HIGHRES_SUBSET, size) for size in settings.highres]
    for name, size in jobs:
        sample, side = pairs[name], meter.side(size)

        def item(s=sample, n: int = side) -> None:
            for image in load_eval_pair(s, n):
                to_tensor(image)

        costs.eval_load[f"{name}@{size}"] = meter.time(item)
        composite = load_pair(sample)[0]
        resize = meter.time(lambda c=composite, n=side: resize_image(c, (n, n)))
        costs.resize[f"{name}@{size}"] = resize


def score_images(meter: Meter, photo: np.ndarray, size: int) -> tuple[np.ndarray, ...]:
    """(prediction, target, mask) at size x size: float64 0-255 as score_batch passes them."""
    side = meter.side(size)
    target = synthetic_image(photo, (side, side), seed=1).astype(np.float64)
    pred = np.clip(target + np.random.default_rng(2).normal(0, 6, target.shape), 0, 255)
    return np.round(pred), target, ellipse_mask((side, side))


def measure_scoring(costs: Costs, meter: Meter, photo: np.ndarray, settings: Settings) -> None:
    """image_metrics without SSIM, and the SSIM (2-D, separable, the package's) per size."""
    from regionharmony.evaluation.metrics import image_metrics, ssim

    for size in sorted({settings.eval_size, 1024, *settings.highres}):
        pred, target, mask = score_images(meter, photo, size)
        reps = max(1, meter.reps if size <= 512 else meter.reps // 2)
        costs.metrics[size] = meter.time(
            lambda p=pred, t=target, m=mask: image_metrics(p, t, m, ssim_mode=None), reps
        )
        costs.ssim_2d[size] = meter.time(lambda p=pred, t=target: iih_ssim(p, t, blur_2d), reps)
        costs.ssim_separable[size] = meter.time(
            lambda p=pred, t=target: iih_ssim(p, t, blur_separable), reps
        )
        costs.ssim_package[size] = meter.time(lambda p=pred, t=target: ssim(p, t), reps)


def measure_pngs(costs: Costs, meter: Meter, photo: np.ndarray, settings: Settings, tmp: Path):
    """A prediction PNG (evaluate --save-images), a user-study candidate, the baselines."""
    from regionharmony.evaluation.baselines import histogram_baseline, reinhard_baseline

    pred, _, mask = score_images(meter, photo, settings.eval_size)
    image = pred.astype(np.uint8)
    path = tmp / "pred.png"
    costs.png_save = meter.time(lambda: Image.fromarray(image).save(path))
    costs.png_bytes = meter.scale * path.stat().st_size

    def candidate() -> None:
        data = path.read_bytes()
        hashlib.sha256(data).hexdigest()
        with Image.open(path) as opened:
            opened.convert("RGB").save(tmp / "candidate.png", format="PNG")

    costs.study_candidate = meter.time(candidate)
    costs.baseline = {
        "composite": 0.0,
        "reinhard": meter.time(lambda: reinhard_baseline(image, mask)),
        "histogram": meter.time(lambda: histogram_baseline(image, mask)),
    }


def measure_make_mini(costs: Costs, meter: Meter, settings: Settings, tmp: Path) -> None:
    """The make_mini stage per pair (one pair per subset and split, at mini.size)."""
    from regionharmony.data.mini import build_mini

    out = tmp / "mini"
    size = meter.side(settings.mini_size)
    start = time.perf_counter()
    build_mini(out, size=size, train_per_subset=1, test_per_subset=1, force=True)
    costs.make_mini_pair = (time.perf_counter() - start) / 8 * meter.scale


def state_of(model: Any) -> dict[str, Any]:
    """A checkpoint-like state: the weights and AdamW's two moments (3 x the weights)."""
    import torch

    weights = model.state_dict()
    moments = {k: torch.zeros_like(v) for k, v in weights.items() if v.is_floating_point()}
    return {"generator": weights, "exp_avg": moments, "exp_avg_sq": dict(moments)}


def nbytes(state: Mapping[str, Any]) -> int:
    return sum(v.numel() * v.element_size() for part in state.values() for v in part.values())


def file_rate(path: Path, fn: Callable[[Path], object]) -> float:
    """MB/s of `fn` over a file."""
    start = time.perf_counter()
    fn(path)
    return path.stat().st_size / 1e6 / (time.perf_counter() - start)


def md5_file(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def measure_checkpoint(costs: Costs, quick: bool, tmp: Path) -> None:
    """The paper model's checkpoint (weights + AdamW state), written as the trainer does; in
    quick mode the mini model is written and the time scaled to the paper size by bytes."""
    from regionharmony.config import build_config
    from regionharmony.io import atomic_save
    from regionharmony.model import build_model

    paper = state_of(build_model(build_config("paper")))
    costs.checkpoint_mb = nbytes(paper) / 1e6
    costs.model_mb = nbytes({"g": paper["generator"]}) / 1e6
    written = state_of(build_model(build_config("mini"))) if quick else paper
    path = tmp / "last.pt"
    start = time.perf_counter()
    atomic_save(written, path)
    seconds = time.perf_counter() - start
    costs.checkpoint_write = seconds * costs.checkpoint_mb / (path.stat().st_size / 1e6)
    costs.md5_mb_s = file_rate(path, md5_file)
    costs.copy_mb_s = file_rate(path, lambda p: shutil.copyfile(p, tmp / "copy.pt"))


def measure(settings: Settings, quick: bool, longest: int) -> Costs:
    """Every per-item cost, measured now on this machine in a temporary folder."""
    import torch

    torch.set_num_threads(1)
    meter = Meter(reps=1, shrink=4) if quick else Meter(reps=5, shrink=1)
    costs = Costs()
    photo = base_photo()
    with tempfile.TemporaryDirectory(prefix="paper_cost_") as name:
        tmp = Path(name)
        pairs = measure_originals(costs, meter, photo, tmp)
        prepared = measure_prepare(costs, meter, pairs, longest, tmp)
        measure_loading(costs, meter, prepared, settings)
        measure_eval_loads(costs, meter, pairs, settings)
        measure_scoring(costs, meter, photo, settings)
        measure_pngs(costs, meter, photo, settings, tmp)
        measure_make_mini(costs, meter, settings, tmp)
        measure_checkpoint(costs, quick, tmp)
    share_by_size(costs)
    return costs


# ---- the cost model ----------------------------------------------------------------------


@dataclass(frozen=True)
class Machine:
    train_rate: float  # training images/s of one GPU
    gpus: int
    cores: int

    def gpu_seconds(self, size: int) -> float:
        """Forward-only seconds per image of one GPU at size x size."""
        return (size / 256) ** 2 / (GPU_EVAL_SPEEDUP * self.train_rate)


@dataclass(frozen=True)
class Row:
    stage: str
    items: float
    seconds: float  # wall
    gpu_wait: float  # share of `seconds` its GPU(s) wait
    kind: str

    @property
    def per_item(self) -> float:
        return self.seconds / self.items if self.items else 0.0


def weights(split: str) -> dict[str, float]:
    return {name: float(getattr(spec, split)) for name, spec in SUBSETS.items()}


def workers(spec: str, machine: Machine) -> int:
    return resolve_workers(spec, machine.cores, machine.gpus)


def train_rows(settings: Settings, plan: Plan, costs: Costs, machine: Machine) -> list[Row]:
    """One row per trained variant: images / min(rate x gpus, loader cap)."""
    loader = workers(plan.loader_workers, machine)
    sample = weighted(costs.loader_sample, weights("train"))
    gpu = 1 / (machine.train_rate * machine.gpus)
    wall = item_wall(sample, 0.0, gpu, loader)
    rows = []
    for v in trained_variants(settings, plan):
        images = v.images * settings.seeds
        rows.append(Row(f"train@{v.name}", images, images * wall, 1 - gpu / wall, "train"))
    return rows


def validation_row(settings: Settings, plan: Plan, costs: Costs, machine: Machine) -> Row:
    """Per-epoch validation, on rank 0 (the other ranks wait for it)."""
    test_pairs = sum(s.test for s in SUBSETS.values())
    pairs = plan.val_pairs or test_pairs
    epochs = sum(v.epochs for v in validating_variants(settings, plan)) * settings.seeds
    load = weighted(costs.val_sample, weights("test"))
    gpu = machine.gpu_seconds(settings.image_size)
    per = item_wall(
        load, costs.metrics[settings.eval_size], gpu, workers(plan.val_workers, machine)
    )
    wait = 1 - gpu / (per * machine.gpus)
    n = len(validating_variants(settings, plan))
    return Row(
        f"validation in train@* ({n} variants)",
        epochs * pairs,
        epochs * pairs * per,
        wait,
        "validation",
    )


def run_walls(settings: Settings, plan: Plan, train: list[Row], val: Row) -> list[float]:
    """Wall seconds of each training run (training plus its share of the validation)."""
    trained = {v.name for v in trained_variants(settings, plan)}
    val_epochs = dict.fromkeys(trained, 0)
    for v in validating_variants(settings, plan):  # a shared prefix validates in its parent
        val_epochs[v.name if v.name in trained else v.parent] += v.epochs
    total = sum(val_epochs.values())
    walls = []
    for row, v in zip(train, trained_variants(settings, plan), strict=True):
        share = val_epochs[v.name] / total if total else 0.0
        walls.append(row.seconds / settings.seeds + val.seconds / settings.seeds * share)
    return walls


def checkpoint_count(settings: Settings, plan: Plan, walls: list[float]) -> int:
    """Checkpoint files written by all training runs: by steps (+ epoch ends) and by clock."""
    count = 0
    for v, wall in zip(trained_variants(settings, plan), walls, strict=True):
        if plan.checkpoint_every:
            count += checkpoint_writes_by_steps(
                v.steps, settings.steps_per_epoch, plan.checkpoint_every
            )
        if plan.checkpoint_minutes:
            count += checkpoint_writes_by_clock(wall, plan.checkpoint_minutes)
    return count * settings.seeds


def checkpoint_row(count: int, plan: Plan, costs: Costs) -> Row:
    how = []
    if plan.checkpoint_every:
        how.append(f"every {plan.checkpoint_every:,} steps + epoch ends")
    if plan.checkpoint_minutes:
        how.append(f"every {plan.checkpoint_minutes:g} min")
    return Row(
        f"checkpoint writes ({', '.join(how)})",
        count,
        count * costs.checkpoint_write,
        1.0,
        "checkpoint",
    )


def eval_item(
    costs: Costs, plan: Plan, subset: str, size: int, *, save: bool
) -> tuple[float, float]:
    """(worker, main) CPU seconds of one evaluated pair: loading in the worker part, scoring
    (metrics + SSIM) and the PNG in the main process."""
    ssim = costs.ssim_2d if plan.ssim == "2d" else costs.ssim_separable
    main = costs.metrics[size] + ssim[size] + (costs.png_save if save else 0.0)
    return costs.eval_load[f"{subset}@{size}"], main


def eval_seconds(
    plan: Plan, costs: Costs, machine: Machine, settings: Settings, gpu: float, extra: float = 0.0
) -> tuple[float, float]:
    """(wall seconds, GPU-busy seconds) of one model or baseline over the whole test split."""
    n = workers(plan.eval_workers, machine)
    wall = busy = 0.0
    for name, spec in SUBSETS.items():
        worker, main = eval_item(costs, plan, name, settings.eval_size, save=True)
        wall += spec.test * item_wall(worker, main + extra, gpu, n)
        busy += spec.test * gpu
    return wall, busy


def evaluate_rows(settings: Settings, plan: Plan, costs: Costs, machine: Machine) -> list[Row]:
    test_pairs = sum(s.test for s in SUBSETS.values())
    models = len(planned_variants(settings, plan)) * settings.seeds
    gpu = machine.gpu_seconds(settings.eval_size)
    wall, busy = eval_seconds(plan, costs, machine, settings, gpu)
    rows = [
        Row(
            f"evaluate@* ({models} models)",
            models * test_pairs,
            models * wall,
            1 - busy / wall,
            "evaluate",
        )
    ]
    base = sum(
        eval_seconds(plan, costs, machine, settings, 0.0, costs.baseline.get(b, 0.0))[0]
        for b in settings.baselines
    )
    n = len(settings.baselines)
    rows.append(Row(f"evaluate_baseline@* ({n})", n * test_pairs, base, 1.0, "evaluate"))
    return rows


def highres_rows(settings: Settings, plan: Plan, costs: Costs, machine: Machine) -> list[Row]:
    """evaluate_highres@<size>: `full` seed 0 and the composite baseline on HAdobe5k."""
    n = workers(plan.eval_workers, machine)
    pairs = SUBSETS[HIGHRES_SUBSET].test
    rows = []
    for size in settings.highres:
        worker, main = eval_item(costs, plan, HIGHRES_SUBSET, size, save=False)
        gpu = machine.gpu_seconds(size)
        model, composite = item_wall(worker, main, gpu, n), item_wall(worker, main, 0.0, n)
        wall = pairs * (model + composite)
        rows.append(
            Row(f"evaluate_highres@{size}", 2 * pairs, wall, 1 - pairs * gpu / wall, "highres")
        )
    return rows


def check_row(settings: Settings, plan: Plan, costs: Costs, machine: Machine) -> Row:
    """check_data: every file fully decoded once (a real shared by composites once)."""
    pairs = sum(s.pairs for s in SUBSETS.values())
    cpu = sum(
        s.pairs * (costs.decode_image[k] + costs.decode_mask[k]) + s.reals * costs.decode_image[k]
        for k, s in SUBSETS.items()
    )
    n = max(1, workers(plan.check_workers, machine))
    return Row("check_data", pairs, cpu / n, 1.0, "check_data")


def prepare_row(settings: Settings, plan: Plan, costs: Costs, machine: Machine) -> Row:
    pairs = sum(s.pairs for s in SUBSETS.values())
    cpu = sum(
        s.pairs * (costs.prepare_image[k] + costs.prepare_mask[k])
        + s.reals * costs.prepare_image[k]
        for k, s in SUBSETS.items()
    )
    n = max(1, workers(plan.prepare_workers, machine))
    return Row("prepare", pairs, cpu / n, 1.0, "prepare")


def dataset_bytes(costs: Costs) -> float:
    return sum(
        s.pairs * (costs.bytes_image[k] + costs.bytes_mask[k]) + s.reals * costs.bytes_image[k]
        for k, s in SUBSETS.items()
    )


def prepared_bytes(costs: Costs) -> float:
    return sum(
        s.pairs * (costs.prepared_image_bytes[k] + costs.prepared_mask_bytes[k])
        + s.reals * costs.prepared_image_bytes[k]
        for k, s in SUBSETS.items()
    )


def data_dvc_row(plan: Plan, costs: Costs) -> Row:
    """data.dvc: DVC hashes the dataset; with the cache, it also copies it into .dvc/cache."""
    mb = dataset_bytes(costs) / 1e6
    per = 1 / costs.md5_mb_s + (1 / costs.copy_mb_s if plan.cache_dataset else 0.0)
    what = "md5 + copy into .dvc/cache" if plan.cache_dataset else "md5 only (cache: false)"
    return Row(f"data.dvc ({what}), MB", mb, mb * per, 1.0, "data")


def small_rows(settings: Settings, costs: Costs, machine: Machine) -> list[Row]:
    """make_mini, features + harmonize_real, user_study and the reports (single-process)."""
    rows = [
        Row(
            "make_mini",
            settings.mini_pairs,
            settings.mini_pairs * costs.make_mini_pair,
            1.0,
            "other",
        )
    ]
    gpu = machine.gpu_seconds(max(REAL_COMPOSITE_SIZE))
    pixels = REAL_COMPOSITE_SIZE[0] * REAL_COMPOSITE_SIZE[1] / settings.eval_size**2
    per = costs.decode_pair["HFlickr"] + costs.png_save * pixels + gpu  # decode, run, write
    items = settings.feature_images + REAL_COMPOSITES
    rows.append(
        Row("features + harmonize_real (DIH99)", items, items * per, 1 - gpu / per, "other")
    )
    study = sum(s.test for s in SUBSETS.values()) * settings.study_candidates
    rows.append(Row("user_study", study, study * costs.study_candidate, 1.0, "user_study"))
    rows.append(
        Row(
            f"report_* ({settings.reports}, assumed {REPORT_SECONDS:.0f} s each)",
            settings.reports,
            settings.reports * REPORT_SECONDS,
            1.0,
            "reports",
        )
    )
    return rows


@dataclass
class PlanCost:
    plan: Plan
    rows: list[Row]
    training_images: int
    checkpoints: int
    eval_one_model: float

    @property
    def wall(self) -> float:
        return sum(r.seconds for r in self.rows)

    @property
    def training_wall(self) -> float:
        return sum(r.seconds for r in self.rows if r.kind == "train")

    @property
    def gpu_wait(self) -> float:
        return sum(r.seconds * r.gpu_wait for r in self.rows) / self.wall


def plan_cost(settings: Settings, plan: Plan, costs: Costs, machine: Machine) -> PlanCost:
    train = train_rows(settings, plan, costs, machine)
    val = validation_row(settings, plan, costs, machine)
    count = checkpoint_count(settings, plan, run_walls(settings, plan, train, val))
    rows = [
        *train,
        val,
        checkpoint_row(count, plan, costs),
        *evaluate_rows(settings, plan, costs, machine),
        *highres_rows(settings, plan, costs, machine),
        check_row(settings, plan, costs, machine),
        prepare_row(settings, plan, costs, machine),
        data_dvc_row(plan, costs),
        *small_rows(settings, costs, machine),
    ]
    gpu = machine.gpu_seconds(settings.eval_size)
    one = eval_seconds(plan, costs, machine, settings, gpu)[0]
    return PlanCost(plan, rows, training_images(settings, plan), count, one)


def disk(cost: PlanCost, settings: Settings, costs: Costs) -> dict[str, float]:
    """GB on disk after a paper-profile run (estimates from the measured bytes)."""
    planned = planned_variants(settings, cost.plan)
    # a shared prefix is on disk twice: in its parent's model directory and copied out
    copies = sum(1 for v in planned if v.shared and cost.plan.shares_prefixes)
    models = (len(planned) + copies) * settings.seeds
    test_pairs = sum(s.test for s in SUBSETS.values())
    pngs = (models + len(settings.baselines) + settings.study_candidates) * test_pairs
    data = dataset_bytes(costs) / 1e9
    return {
        "dataset (originals, est.)": data,
        "dataset copy in .dvc/cache": data if cost.plan.cache_dataset else 0.0,
        "data/prepared (est., longest side 1024)": prepared_bytes(costs) / 1e9,
        "evaluation + user-study PNGs": pngs * costs.png_bytes / 1e9,
        "models/ (model.pt)": models * costs.model_mb / 1e3,
        "checkpoints kept (1 x last.pt)": costs.checkpoint_mb / 1e3,
        "checkpoint GB written": cost.checkpoints * costs.checkpoint_mb / 1e3,
    }


# ---- several GPUs: DDP (launch.processes) or independent trainings --------------------------


def makespan(durations: list[float], machines: int) -> float:
    """Longest-first list scheduling of independent jobs on `machines` identical GPUs."""
    loads = [0.0] * machines
    for d in sorted(durations, reverse=True):
        loads[loads.index(min(loads))] += d
    return max(loads)


@dataclass(frozen=True)
class LaunchCost:
    gpus: int
    ddp_train: float  # wall seconds of all trainings under DDP on every GPU
    independent_train: float  # wall seconds of all trainings side by side, one per GPU
    other: float  # every other stage (validation, checkpoints, evaluation, ...), as on one GPU
    break_even: float  # DDP efficiency at which both finish together

    @property
    def ddp(self) -> float:
        return self.ddp_train + self.other

    @property
    def independent(self) -> float:
        return self.independent_train + self.other


def launch_cost(
    settings: Settings, plan: Plan, costs: Costs, machine: Machine, efficiency: float
) -> LaunchCost:
    """The plan on `machine.gpus` GPUs, both ways (module docstring)."""
    one = Machine(machine.train_rate, 1, machine.cores)
    cost = plan_cost(settings, plan, costs, one)
    other = cost.wall - cost.training_wall
    sample = weighted(costs.loader_sample, weights("train"))
    images = [v.images * settings.seeds for v in trained_variants(settings, plan)]
    n = machine.gpus
    all_cores = workers(plan.loader_workers, Machine(machine.train_rate, n, machine.cores))
    ddp_rate = 1 / item_wall(sample, 0.0, 1 / (machine.train_rate * n * efficiency), all_cores)
    share = max(1, all_cores // n)  # each independent run's loader workers
    run_rate = 1 / item_wall(sample, 0.0, 1 / machine.train_rate, share)
    independent = makespan([i / run_rate for i in images], n)
    ideal_ddp = sum(images) / min(machine.train_rate * n, all_cores / sample)
    return LaunchCost(
        n, sum(images) / ddp_rate, independent, other, min(1.0, ideal_ddp / independent)
    )


def launch_lines(launches: list[LaunchCost], efficiency: float) -> list[str]:
    head = f"{'GPUs':>5}{'DDP (launch.processes)':>26}{'independent runs':>20}{'break-even':>14}"
    lines = [
        f"== several GPUs: the new plan's wall hours (DDP at {efficiency:g} of linear scaling, "
        "assumed) ==",
        head,
        "-" * len(head),
    ]
    for c in launches:
        lines.append(
            f"{c.gpus:>5}{c.ddp / 3600:>26.1f}{c.independent / 3600:>20.1f}"
            f"{100 * c.break_even:>13.0f}%"
        )
    lines.append(
        "break-even: the DDP efficiency below which independent runs finish sooner; other "
        f"stages {launches[0].other / 3600:.1f} h in every column"
    )
    return lines


# ---- printing ------------------------------------------------------------------------------


def count_text(n: float) -> str:
    if n >= 1e6:
        return f"{n / 1e6:.2f} M"
    return f"{n:,.0f}"


def seconds_text(s: float) -> str:
    if s == 0:
        return "0"
    if s < 1e-3:
        return f"{s * 1e6:.0f} us"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


def plan_table(cost: PlanCost) -> list[str]:
    head = f"{'stage':<54}{'items':>11}{'s/item':>11}{'hours':>9}{'GPU waits':>11}"
    lines = [f"== {cost.plan.title} ==", head, "-" * len(head)]
    for r in cost.rows:
        lines.append(
            f"{r.stage:<54}{count_text(r.items):>11}{seconds_text(r.per_item):>11}"
            f"{r.seconds / 3600:>9.2f}{100 * r.gpu_wait:>10.1f}%"
        )
    lines.append("-" * len(head))
    lines.append(f"{'total':<54}{'':>22}{cost.wall / 3600:>9.2f}{100 * cost.gpu_wait:>10.1f}%")
    return lines


def summary(cost: PlanCost, settings: Settings, costs: Costs, machine: Machine) -> dict[str, float]:
    return {
        "training images (M)": cost.training_images / 1e6,
        "GPU-hours of training": cost.training_wall * machine.gpus / 3600,
        "pipeline wall hours": cost.wall / 3600,
        "pipeline / training": cost.wall / cost.training_wall,
        "GPU-wait share (%)": 100 * cost.gpu_wait,
        "evaluate one model, 7,404 pairs (min)": cost.eval_one_model / 60,
        **{f"disk GB: {k}": v for k, v in disk(cost, settings, costs).items()},
    }


def side_by_side(sums: dict[str, dict[str, float]]) -> list[str]:
    names = list(sums)
    lines = ["== side by side ==", f"{'':<48}" + "".join(f"{n:>12}" for n in names)]
    for key in sums[names[0]]:
        lines.append(f"{key:<48}" + "".join(f"{sums[n][key]:>12.2f}" for n in names))
    return lines


def targets(costs: dict[str, PlanCost]) -> list[dict[str, Any]]:
    """The issue's targets for the new plan, each with its measured value (and the old one)."""
    new, old = costs.get("new"), costs.get("old")
    if new is None:
        return []

    def row(name: str, value: Callable[[PlanCost], float], limit: float, unit: str) -> dict:
        got = value(new)
        return {
            "target": name,
            "limit": limit,
            "new": got,
            "old": value(old) if old else None,
            "unit": unit,
            "holds": got <= limit,
        }

    return [
        row(
            "GPU waits <= 10 % of pipeline wall",
            lambda c: 100 * c.gpu_wait,
            100 * TARGET_GPU_WAIT,
            "%",
        ),
        row(
            "pipeline <= 1.25 x training time",
            lambda c: c.wall / c.training_wall,
            TARGET_PIPELINE_RATIO,
            "x",
        ),
        row(
            "training images <= 63.2 M",
            lambda c: c.training_images / 1e6,
            TARGET_TRAIN_IMAGES / 1e6,
            "M",
        ),
        row(
            "evaluate one variant <= 10 min",
            lambda c: c.eval_one_model / 60,
            TARGET_EVAL_SECONDS / 60,
            "min",
        ),
    ]


def shortfall(rows: list[dict[str, Any]], epoch_images: int) -> list[str]:
    """What a failed training-images target would take, in epochs of the paper profile."""
    row = next(r for r in rows if r["unit"] == "M")
    if row["holds"]:
        return []
    excess = (row["new"] - row["limit"]) * 1e6
    return [
        f"       training images: {excess / 1e6:.2f} M over the target = "
        f"{excess / epoch_images:.0f} epochs of {epoch_images:,} images to drop beyond the plan"
    ]


def target_lines(rows: list[dict[str, Any]], machine: Machine, epoch_images: int) -> list[str]:
    if not rows:
        return []
    lines = [
        f"== targets (new plan; stated for 500 img/s, 1 GPU, 16 cores; here {machine.train_rate:g}"
        f" img/s, {machine.gpus} GPU(s), {machine.cores} cores) =="
    ]
    for r in rows:
        old = f"  (old {r['old']:.2f} {r['unit']})" if r["old"] is not None else ""
        verdict = "HOLDS" if r["holds"] else "FAILS"
        lines.append(f"{verdict:<6} {r['target']:<40} new {r['new']:.2f} {r['unit']}{old}")
    return lines + shortfall(rows, epoch_images)


def measured_lines(costs: Costs) -> list[str]:
    big, t = HIGHRES_SUBSET, seconds_text
    w, h = SUBSETS[big].size
    prepared = 2 * costs.prepared_image_bytes[big] + costs.prepared_mask_bytes[big]
    lines = [
        "== per-item costs measured on this machine (one core) ==",
        f"decode {w}x{h} JPEG ({big}): {t(costs.decode_image[big])}, "
        f"{costs.bytes_image[big] / 1e6:.2f} MB; original pair: {t(costs.decode_pair[big])}",
        "resize (bicubic) of one RGB image: "
        + ", ".join(f"{k}: {t(v)}" for k, v in costs.resize.items()),
        "training-loader sample (prepared -> 256 crop): "
        + ", ".join(f"{k} {t(v)}" for k, v in costs.loader_sample.items()),
    ]
    for size in sorted(costs.metrics):
        lines.append(
            f"score at {size}: metrics w/o SSIM {t(costs.metrics[size])}, SSIM 2-D "
            f"{t(costs.ssim_2d[size])}, separable {t(costs.ssim_separable[size])}, "
            f"package metrics.ssim {t(costs.ssim_package[size])}"
        )
    lines += [
        f"prepared pair ({big}, longest side 1024): {prepared / 1e6:.2f} MB; prediction PNG "
        f"256: {t(costs.png_save)}, {costs.png_bytes / 1e3:.0f} kB",
        f"checkpoint (paper model + AdamW state): {costs.checkpoint_mb:.0f} MB in "
        f"{t(costs.checkpoint_write)}; md5 {costs.md5_mb_s:.0f} MB/s, copy "
        f"{costs.copy_mb_s:.0f} MB/s",
    ]
    return lines


def plan_notes(settings: Settings, plan: Plan, costs: Costs, machine: Machine) -> list[str]:
    """How the plan's training loader and evaluation run on this machine model."""
    loader = workers(plan.loader_workers, machine)
    sample = weighted(costs.loader_sample, weights("train"))
    cap = loader / sample if loader else 1 / sample
    val = ", ".join(v.name for v in validating_variants(settings, plan))
    return [
        f"loader: {loader} workers x 1 / {seconds_text(sample)} = {cap:.0f} img/s cap; GPUs "
        f"{machine.train_rate * machine.gpus:.0f} img/s",
        f"validation: {plan.val_pairs or 'all'} pairs per epoch, workers "
        f"{workers(plan.val_workers, machine)}, of {val}",
        f"evaluation: workers {workers(plan.eval_workers, machine)}, SSIM {plan.ssim}; "
        f"check_data workers {workers(plan.check_workers, machine)}",
    ]


def settings_line(settings: Settings) -> str:
    v = settings.variants
    half = [n for n, x in v.items() if x.budget < 1]
    return (
        f"params.yaml (paper switch): {len(v)} variants ({len(half)} at budget < 1: "
        f"{', '.join(half)}), {settings.seeds} seed(s), {settings.steps_per_epoch} steps/epoch "
        f"at batch {settings.batch_size}, evaluate {settings.eval_size} + highres "
        f"{list(settings.highres)}; dvc.yaml: {len(settings.stages)} stages\n"
        f"params.yaml profiles.paper.train now: {settings.paper_train} (the plans below are "
        "fixed data, not read from it)"
    )


# ---- main --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-rate", type=float, default=500.0, help="training img/s of one GPU")
    parser.add_argument("--gpus", type=int, default=1, help="GPUs of the machine (default 1)")
    parser.add_argument(
        "--cpu-workers", type=int, default=16, help="CPU cores of the GPU machine (default 16)"
    )
    parser.add_argument("--plan", choices=["old", "new", "both"], default="both")
    parser.add_argument(
        "--launch-gpus",
        type=int,
        nargs="+",
        metavar="N",
        help="also compare DDP and independent trainings of the new plan on these GPU counts",
    )
    parser.add_argument(
        "--ddp-efficiency",
        type=float,
        default=1.0,
        help="DDP throughput over linear scaling, assumed (default 1.0, an upper bound)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny measurements (smoke test)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the tables here")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--dvc", type=Path, default=ROOT / "dvc.yaml")
    args = parser.parse_args(argv)
    if args.train_rate <= 0 or args.gpus < 1 or args.cpu_workers < 1:
        parser.error("--train-rate, --gpus and --cpu-workers must be positive")
    if not 0 < args.ddp_efficiency <= 1 or any(n < 1 for n in args.launch_gpus or []):
        parser.error("--ddp-efficiency must be in (0, 1] and --launch-gpus positive")
    return args


def json_report(
    machine: Machine, settings: Settings, costs: Costs, plans: dict[str, PlanCost], sums: dict
) -> dict[str, Any]:
    return {
        "machine": asdict(machine),
        "measured": asdict(costs),
        "plans": {
            name: {
                "rows": [{**asdict(r), "per_item": r.per_item} for r in c.rows],
                "summary": sums[name],
            }
            for name, c in plans.items()
        },
        "targets": targets(plans),
        "variants": {k: asdict(v) for k, v in settings.variants.items()},
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = read_settings(args.params, args.dvc)
    costs = measure(settings, args.quick, longest=1024)
    machine = Machine(args.train_rate, args.gpus, args.cpu_workers)
    names = ["old", "new"] if args.plan == "both" else [args.plan]
    plans = {n: plan_cost(settings, PLANS[n], costs, machine) for n in names}
    sums = {n: summary(c, settings, costs, machine) for n, c in plans.items()}
    epoch_images = settings.steps_per_epoch * settings.batch_size
    lines = [settings_line(settings), *measured_lines(costs), ""]
    if args.quick:
        lines.insert(0, "--quick: tiny images, costs scaled up by pixels; a smoke test, not a cost")
    for cost in plans.values():
        notes = plan_notes(settings, cost.plan, costs, machine)
        lines += [*plan_table(cost), *notes, ""]
    lines += [*side_by_side(sums), "", *target_lines(targets(plans), machine, epoch_images)]
    launches = [
        launch_cost(
            settings,
            PLANS["new"],
            costs,
            Machine(args.train_rate, n, args.cpu_workers),
            args.ddp_efficiency,
        )
        for n in args.launch_gpus or []
    ]
    if launches:
        lines += ["", *launch_lines(launches, args.ddp_efficiency)]
    print("\n".join(lines))
    if args.json:
        report = json_report(machine, settings, costs, plans, sums)
        report["launch"] = [
            {**asdict(c), "ddp": c.ddp, "independent": c.independent} for c in launches
        ]
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

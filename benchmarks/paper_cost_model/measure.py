"""Per-item costs measured on this machine at run time, on synthetic images of the sizes of
iHarmony4's originals."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image
from scipy.ndimage import correlate, correlate1d

from .data import HIGHRES_SUBSET, SUBSETS
from .settings import Settings

if TYPE_CHECKING:
    from regionharmony.data.layout import Sample


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


def write_pair(folder: Path, photo: np.ndarray, size: tuple[int, int]) -> Sample:
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
    """The IIH blur as a 2-D correlate per channel (the old plan's evaluation)."""
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


def measure_originals(
    costs: Costs, meter: Meter, photo: np.ndarray, tmp: Path
) -> dict[str, Sample]:
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


def measure_prepare(
    costs: Costs, meter: Meter, pairs: dict[str, Sample], longest: int, tmp: Path
) -> dict[str, Sample]:
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


def measure_loading(
    costs: Costs, meter: Meter, prepared: dict[str, Sample], settings: Settings
) -> None:
    """A training-loader sample and a validation sample from the prepared cache, as
    HarmonyDataset builds them (load_pair, the transform, to_tensor)."""
    from regionharmony.data.dataset import eval_transform, to_tensor, train_transform
    from regionharmony.data.images import load_pair

    crop = meter.side(settings.image_size)

    def train_item(sample: Sample, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        for image in train_transform(*load_pair(sample), crop, rng):
            to_tensor(np.ascontiguousarray(image))

    def val_item(sample: Sample) -> None:
        for image in eval_transform(*load_pair(sample), meter.side(settings.eval_size)):
            to_tensor(image)

    for name, sample in prepared.items():
        costs.loader_sample[name] = meter.time(lambda s=sample: train_item(s))
        costs.val_sample[name] = meter.time(lambda s=sample: val_item(s))


def measure_eval_loads(
    costs: Costs, meter: Meter, pairs: dict[str, Sample], settings: Settings
) -> None:
    """An evaluation pair from the full-size originals: load_pair + eval_transform (+ tensors),
    at the evaluation size for every subset and at the highres sizes for HAdobe5k."""
    from regionharmony.data.dataset import load_eval_pair, to_tensor
    from regionharmony.data.images import load_pair, resize_image

    jobs = [(name, settings.eval_size) for name in pairs]
    jobs += [(HIGHRES_SUBSET, size) for size in settings.highres]
    for name, size in jobs:
        sample, side = pairs[name], meter.side(size)

        def item(s: Sample = sample, n: int = side) -> None:
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


def measure_pngs(
    costs: Costs, meter: Meter, photo: np.ndarray, settings: Settings, tmp: Path
) -> None:
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
    from regionharmony.io import atomic_save
    from regionharmony.model import build_model
    from regionharmony.params import build_config

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

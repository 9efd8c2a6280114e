"""Fig. 10: background feature maps of the encoder and of the decoder, from one forward pass.

    regionharmony features --checkpoint models/full --data-root DIR --out features/full.npz
                           [--split test] [--count 4] [--size 256] [--channels 4]
                           [--pick spread|random] [--seed 0] [--subsets HCOCO ...]

Picks `count` pairs of the split deterministically (`spread`: evenly spaced over the split
sorted by (subset, name); `random`: drawn with `seed`), reads and resizes them exactly as the
evaluation does (`regionharmony.data`: composite and real bicubic to `size` x `size`, the
binarised mask nearest), runs the
model ONCE with `return_features=True` and keeps, for every level i = 1 .. depth-1 (1 is the
finest, at input resolution), the encoder feature E_i and the decoder feature D_i of the same
shape (D_i before its fusion block, the D_i of Eq. 2-5), both restricted to the BACKGROUND:
x * (1 - M_i), with M_i the mask resized nearest to the level (as the fusion blocks resize it).

The npz (written atomically: a temporary file, then a rename) holds, with N images and S = size:

    composite        (N, S, S, 3) uint8    the network input
    real             (N, S, S, 3) uint8    the ground truth
    mask             (N, S, S)    uint8    foreground mask, 0/1
    names            (N,)         str      "<Subset>/<composite file stem>" (as evaluation images)
    levels           (L,)         int64    the level numbers i, finest first
    bg_<i>           (N, h, w)    uint8    background mask 1 - M_i
    enc_<i>, dec_<i> (N, h, w)    float32  channel mean of |E_i| * (1 - M_i), of |D_i| * (1 - M_i)
    enc_ch_<i>, dec_ch_<i>         (N, C, h, w) float16  C single channels, background only
    enc_ch_index_<i>, dec_ch_index_<i>  (C,) int64  which channels those are
    meta             ()           str      JSON: checkpoint, data root, split, subsets, size,
                                           pick, seed, profile, code version, fusion, depth,
                                           definitions

Channel choice (the same rule for E_i and D_i, each in its own channel space): the C channels
with the largest spatial standard deviation over the background, averaged over the N images,
largest first. E_i and D_i channels with the same index are NOT the same feature.

Bad input (a missing checkpoint, data root, list or image) exits 1 with a message naming the path.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from regionharmony.data.dataset import load_eval_pair
from regionharmony.data.layout import Sample, list_samples
from regionharmony.errors import DataError, UserError
from regionharmony.io import atomic_write
from regionharmony.model.harmonizer import Harmonizer, load_checkpoint
from regionharmony.model.layers import downsample_mask
from regionharmony.options import add_data_root, add_split, add_subsets

FP16_MAX = float(np.finfo(np.float16).max)


class FeaturesError(UserError):
    """Bad input (missing checkpoint, data root, list or image): the message names it."""


def read_split(root: Path, split: str, subsets: list[str] | None = None) -> list[Sample]:
    """The pairs of the split (all subsets, or those given), sorted by (subset, name)."""
    if not root.is_dir():
        raise FeaturesError(f"data root not found: {root}")
    try:
        samples = list_samples(root, split, subsets)
    except DataError as err:
        raise FeaturesError(str(err)) from err
    if not samples:
        raise FeaturesError(f"no {split} pairs listed under {root}")
    return sorted(samples, key=lambda s: (s.subset, s.name))


def pick(samples: list[Sample], count: int, how: str, seed: int) -> list[Sample]:
    """`count` pairs: evenly spaced over the sorted list (`spread`) or drawn with `seed`."""
    if count < 1:
        raise FeaturesError(f"--count must be at least 1, got {count}")
    if count > len(samples):
        raise FeaturesError(f"asked for {count} pairs, the split has {len(samples)}")
    if how == "spread":
        index = np.linspace(0, len(samples) - 1, count).round().astype(int)
    else:
        index = np.sort(np.random.default_rng(seed).choice(len(samples), count, replace=False))
    return [samples[i] for i in index]


def load_inputs(sample: Sample, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Composite, real (S, S, 3) uint8 and mask (S, S) uint8 0/1: the evaluation transform."""
    try:
        composite, mask, real = load_eval_pair(sample, size)
    except DataError as err:
        raise FeaturesError(str(err)) from err
    return composite, real, mask.astype(np.uint8)


def level_features(
    model: Harmonizer, composite: torch.Tensor, mask: torch.Tensor
) -> list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """One forward pass -> [(i, E_i, D_i, M_i)] for i = 1 .. depth-1, finest first.

    The model pads the input (replicate) to a multiple of 2**(depth-1); M_i is the padded mask
    resized nearest to the level, exactly what the fusion blocks see, and everything is cropped
    back to the part of the level that covers the unpadded image.
    """
    with torch.no_grad():
        _, feats = model(composite, mask, return_features=True)
    encoder, decoder = feats["encoder"], feats["decoder"]
    depth = len(encoder)
    height, width = composite.shape[-2:]
    padded = model.pad(mask)
    out = []
    for i in range(1, depth):
        enc, dec = encoder[i - 1], decoder[depth - 1 - i]
        if enc.shape != dec.shape:  # the model contract; a clear message if it ever breaks
            raise FeaturesError(f"level {i}: encoder {enc.shape} != decoder {dec.shape}")
        m = downsample_mask(padded, enc.shape[-2:])
        scale = 2 ** (i - 1)
        h, w = -(-height // scale), -(-width // scale)
        out.append((i, enc[..., :h, :w], dec[..., :h, :w], m[..., :h, :w]))
    return out


def top_channels(x: torch.Tensor, background: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of the n channels with the largest background spatial std (mean over images)."""
    area = background.sum(dim=(2, 3), keepdim=True).clamp_min(1)
    mean = (x * background).sum(dim=(2, 3), keepdim=True) / area
    var = (((x - mean) * background) ** 2).sum(dim=(2, 3), keepdim=True) / area
    score = var.sqrt().mean(dim=0).flatten()
    return torch.argsort(score, descending=True, stable=True)[: min(n, x.shape[1])]


def feature_summaries(
    levels: list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]], channels: int
) -> dict[str, np.ndarray]:
    """The display summaries of every level, background only (see the module docstring)."""
    arrays: dict[str, np.ndarray] = {"levels": np.array([i for i, *_ in levels], dtype=np.int64)}
    for i, enc, dec, m in levels:
        background = 1 - m
        arrays[f"bg_{i}"] = background[:, 0].to(torch.uint8).numpy()
        for key, x in (("enc", enc), ("dec", dec)):
            masked = x * background
            arrays[f"{key}_{i}"] = masked.abs().mean(dim=1).float().numpy()
            index = top_channels(x, background, channels)
            picked = masked[:, index].float().clamp(-FP16_MAX, FP16_MAX)
            arrays[f"{key}_ch_{i}"] = picked.numpy().astype(np.float16)
            arrays[f"{key}_ch_index_{i}"] = index.numpy().astype(np.int64)
    return arrays


def model_provenance(checkpoint: Path, model: Harmonizer) -> dict[str, Any]:
    """Profile and code version from the model directory's summary.json / config.json."""
    folder = checkpoint if checkpoint.is_dir() else checkpoint.parent
    info: dict[str, Any] = {"fusion": model.cfg.fusion, "depth": model.cfg.depth}
    for name in ("config.json", "summary.json"):
        path = folder / name
        if path.is_file():
            data = json.loads(path.read_text())
            for key in ("profile", "code_version"):
                if key in data:
                    info[key] = data[key]
    info.setdefault("code_version", "unknown")
    info.setdefault("profile", "unknown")
    return info


def atomic_savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez_compressed through `atomic_write` (a file object: no '.npz' appended)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)

    atomic_write(path, write)


def compute(
    checkpoint: Path,
    data_root: Path,
    split: str = "test",
    count: int = 4,
    size: int = 256,
    channels: int = 4,
    how: str = "spread",
    seed: int = 0,
    subsets: list[str] | None = None,
) -> dict[str, np.ndarray]:
    """Everything the npz holds, as arrays (see the module docstring)."""
    if not checkpoint.exists():
        raise FeaturesError(f"checkpoint not found: {checkpoint}")
    pairs = pick(read_split(data_root, split, subsets), count, how, seed)
    model = load_checkpoint(checkpoint, map_location="cpu")
    torch.manual_seed(seed)
    loaded = [load_inputs(p, size) for p in pairs]
    composite = np.stack([c for c, _, _ in loaded])
    real = np.stack([r for _, r, _ in loaded])
    mask = np.stack([m for _, _, m in loaded])
    comp_t = torch.from_numpy(composite).permute(0, 3, 1, 2).float() / 255
    mask_t = torch.from_numpy(mask)[:, None].float()
    arrays = feature_summaries(level_features(model, comp_t, mask_t), channels)
    meta = {
        "checkpoint": str(checkpoint),
        "data_root": str(data_root),
        "split": split,
        "size": size,
        "count": count,
        "pick": how,
        "seed": seed,
        "subsets": subsets or "all",
        "channels": channels,
        **model_provenance(checkpoint, model),
        "level_definition": "i = 1 .. depth-1, 1 finest; E_i = encoder output at level i, "
        "D_i = decoder feature of the same shape before its fusion block",
        "map_definition": "enc_i/dec_i = channel mean of |x| * (1 - M_i); "
        "*_ch_i = single channels x * (1 - M_i), top background std",
    }
    arrays.update(
        composite=composite,
        real=real,
        mask=mask,
        names=np.array([f"{p.subset}/{p.name}" for p in pairs]),
        meta=np.array(json.dumps(meta, sort_keys=True)),
    )
    return arrays


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Fig. 10: background feature maps of the encoder and decoder (one forward)."
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="model dir or its model.pt")
    add_data_root(parser, "iHarmony4-layout root")
    parser.add_argument("--out", type=Path, required=True, help="the .npz to write")
    add_split(parser)
    parser.add_argument("--count", type=int, default=4, help="how many pairs (default 4)")
    parser.add_argument("--size", type=int, default=256, help="square input side (default 256)")
    parser.add_argument(
        "--channels", type=int, default=4, help="single channels kept per level (default 4)"
    )
    parser.add_argument(
        "--pick",
        choices=("spread", "random"),
        default="spread",
        help="evenly spaced over the sorted split list (default) or random with --seed",
    )
    parser.add_argument("--seed", type=int, default=0, help="for --pick random (default 0)")
    add_subsets(parser, "only these subsets (default: all)")


def run(args: argparse.Namespace) -> int:
    if args.out.suffix != ".npz":
        raise FeaturesError(f"--out must end in .npz: {args.out}")
    arrays = compute(
        args.checkpoint,
        args.data_root,
        args.split,
        args.count,
        args.size,
        args.channels,
        args.pick,
        args.seed,
        args.subsets,
    )
    atomic_savez(args.out, arrays)
    levels = ", ".join(str(i) for i in arrays["levels"])
    print(f"wrote {args.out}: {len(arrays['names'])} images, levels {levels}")
    return 0

"""Which way of carrying the network's correction to full resolution works best?

Scores the strategies of `regionharmony.harmonize` (regionharmony.inference.strategies) on a dataset
split at FULL image size with the Table IV protocol (the blended 8-bit output against the real
image: MSE, PSNR, fMSE, SSIM, fSSIM; `regionharmony.evaluation.metrics.image_metrics`), next to the
identity composite:

    identity        the composite itself
    full            the network at the image's own size (padded to a multiple of 16; refused
                    when it would not fit in memory, regionharmony.inference.memory)
    resize          the network at max_side, its blended output upsampled bicubic (the naive way)
    residual        the network at max_side, correction carried by `carry_residual`
    color           the network at max_side, correction carried by `carry_color`
    color-square    as color, but the network sees a max_side x max_side square (the training
                    shape, aspect ratio squashed) instead of the aspect-kept downscale

max_side defaults to the model's training size. Usage:

    OMP_NUM_THREADS=1 python benchmarks/harmonize_strategies.py --checkpoint models/full \
        --data-root data/mini [--split test] [--max-side N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from regionharmony.data import list_samples, load_pair, resize_binary_mask, resize_image
from regionharmony.evaluation.metrics import image_metrics
from regionharmony.inference.engine import load_engine
from regionharmony.inference.strategies import (
    carry_color,
    harmonize_arrays,
    paste,
    run_network,
    working_size,
)

ROWS = ("identity", "full", "resize", "residual", "color", "color-square")


def low_resolution(composite, mask, height, width):
    return resize_image(composite, (width, height)), resize_binary_mask(mask, (width, height))


def predict(row: str, composite, mask, engine, side: int) -> np.ndarray:
    if row == "identity":
        return composite
    if row in ("full", "residual", "color"):
        return harmonize_arrays(composite, mask, engine, max_side=side, strategy=row)
    height, width = mask.shape
    if row == "resize":
        low_h, low_w = working_size(height, width, side)
        comp_low, mask_low = low_resolution(composite, mask, low_h, low_w)
        out_low = run_network(engine, comp_low, mask_low)
        low = Image.fromarray(np.round(out_low * 255).astype(np.uint8))
        up = np.asarray(low.resize((width, height), Image.Resampling.BICUBIC))
        return np.where(mask[..., None], up, composite)
    if row == "color-square":
        comp_low, mask_low = low_resolution(composite, mask, side, side)
        out_low = run_network(engine, comp_low, mask_low)
        return paste(carry_color(composite, mask, comp_low, mask_low, out_low), composite, mask)
    raise ValueError(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--max-side", type=int, help="default: the model's training size")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--json", type=Path, help="write the table as JSON here")
    args = parser.parse_args()

    engine = load_engine(args.checkpoint, device="cpu", precision=args.precision)
    side = args.max_side or engine.train_size
    records = []
    for sample in list_samples(args.data_root, args.split):
        composite, mask, real = load_pair(sample)
        for row in ROWS:
            pred = predict(row, composite, mask, engine, side)
            scores = image_metrics(pred.astype(np.float64), real.astype(np.float64), mask)
            records.append({"row": row, "subset": sample.subset, **scores})
    table = pd.DataFrame(records)
    summary = table.groupby("row", sort=False)[["mse", "psnr", "fmse", "ssim", "fssim"]].mean()
    summary["n"] = table.groupby("row", sort=False).size()
    identity = summary.loc["identity"]
    summary["mse vs identity"] = summary["mse"] / identity["mse"] - 1
    summary["fmse vs identity"] = summary["fmse"] / identity["fmse"] - 1
    print(f"{args.split} split of {args.data_root}, full image size, network at max_side={side}")
    display = ("display.float_format", "{:.4f}".format, "display.width", 160)
    with pd.option_context(*display, "display.max_columns", 20):
        print(summary)
    if args.json:
        args.json.write_text(json.dumps(summary.reset_index().to_dict("records"), indent=2))


if __name__ == "__main__":
    main()

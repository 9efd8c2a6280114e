"""The evaluator: metrics of a trained model, or of the identity baseline, on an iHarmony4 split.

Protocol (docs/evaluation.md): composite and real resized to size x size bicubic, the
binarised mask nearest; the model's raw output H is blended, ``H * M + I' * (1 - M)``, clipped
to [0, 1] and quantised to 8 bits (``round(255 * x)``), the image the official protocol scores after
saving it, and the one ``--save-images`` writes. The identity baseline ("input composite" row of
Table II) scores the resized composite itself. Metrics per image: `metrics.image_metrics`.

Output, written only when the whole evaluation succeeded (a temporary sibling of OUTDIR renamed
into place; an existing OUTDIR is replaced only then):

    OUTDIR/per_image.csv   subset, name, fg_ratio, composite_fmse (the input's own fMSE), mse,
                           psnr, fmse, ssim, fssim (SSIM raw 0-1)
    OUTDIR/metrics.json    split, size, source, psnr_range, ssim_mode, per-subset and "All"
                           means, foreground-ratio bins, composite-error bins (mild /
                           medium / strong by the input's fMSE); "no_background" when some masks
                           cover the whole image (`no_background_note`)
    OUTDIR/images/<subset>/<name>.png   with --save-images

Decoding the full-size originals (about 0.6 s per HAdobe5k pair) and resizing them is done by
DataLoader worker processes (`--workers`, default auto: `auto_workers`); the model and the
metrics stay in the main process, and the loader keeps the list order, so the results are the
same for any worker count. A worker does numpy / Pillow work only: torch runs each worker with
one intra-op thread (its DataLoader worker loop calls ``torch.set_num_threads(1)``), so the
workers do not compete with the main process's thread team (`regionharmony.cpu_threads`).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset, default_collate
from tqdm import tqdm

from regionharmony.cpu_threads import usable_cpus
from regionharmony.data.check import parse_workers, require_valid_root
from regionharmony.data.dataset import HarmonyDataset
from regionharmony.data.layout import SUBSETS
from regionharmony.data.shared_memory import DATALOADER_PREFETCH, workers_that_fit
from regionharmony.errors import DataError
from regionharmony.evaluation import predictions as predicted_pairs
from regionharmony.evaluation.baselines import baseline_network
from regionharmony.evaluation.metrics import (
    ERROR_EDGES,
    PSNR_RANGES,
    SSIM_MODES,
    aggregate,
    headline,
    seed_summary,
)
from regionharmony.evaluation.no_background import no_background_note, warn_no_background
from regionharmony.evaluation.protocol import DEFAULT_SSIM_MODE, score_batch
from regionharmony.io import EVALUATION_CODE, atomic_directory, atomic_write_text, code_version
from regionharmony.options import (
    add_data_root,
    add_device,
    add_progress,
    add_split,
    add_subsets,
    positive_int,
)
from regionharmony.runtime import resolve_device

log = logging.getLogger("regionharmony.evaluation.evaluate")

COLUMNS = ["subset", "name", "fg_ratio", "composite_fmse", "mse", "psnr", "fmse", "ssim", "fssim"]
MAX_AUTO_WORKERS = 16  # `auto_workers`' cap: each worker holds a full-size pair and 2 batches


def limited(dataset: HarmonyDataset, limit: int | None) -> HarmonyDataset | Subset:
    """At most `limit` pairs of each subset (the first ones in list order)."""
    if not limit:
        return dataset
    seen: dict[str, int] = {}
    keep = []
    for i, sample in enumerate(dataset.samples):
        seen[sample.subset] = seen.get(sample.subset, 0) + 1
        if seen[sample.subset] <= limit:
            keep.append(i)
    return Subset(dataset, keep)


def auto_workers(batches: int, device: torch.device, batch_bytes: int = 0) -> int:
    """`--workers auto`: the usable CPUs less the main process's share (one core beside a GPU,
    which runs the model while the main process scores; torch's intra-op threads when the model
    runs on the CPU), at least 1, at most `MAX_AUTO_WORKERS` and one per batch; fewer (down to
    0, loading in this process) where /dev/shm is too small for the batches of `batch_bytes`
    that workers pass through it (a container's 64 MB default)."""
    main_share = 1 if device.type != "cpu" else torch.get_num_threads()
    wanted = max(1, min(usable_cpus() - main_share, MAX_AUTO_WORKERS, batches))
    if not batch_bytes:
        return wanted
    return workers_that_fit(wanted, batch_bytes, DATALOADER_PREFETCH, "evaluate")


class _Guarded(Dataset):
    """A dataset whose failures come back as values: an item that raises returns the exception,
    which `_collate` passes on and the main process raises as it was (a worker's exception
    would otherwise be re-raised with the worker's traceback folded into its message)."""

    def __init__(self, data: Dataset) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        try:
            return self.data[index]
        except Exception as err:
            return err


def _collate(items: Sequence[Any]) -> Any:
    for item in items:
        if isinstance(item, BaseException):
            return item
    return default_collate(items)


@torch.no_grad()
def evaluate_model(
    model: nn.Module | None,
    data_root: Path,
    out: Path,
    *,
    split: str = "test",
    size: int = 256,
    subsets: list[str] | None = None,
    psnr_range: str = "official",
    ssim_mode: str = DEFAULT_SSIM_MODE,
    save_images: bool = False,
    limit: int | None = None,
    device: str = "cpu",
    batch_size: int = 8,
    workers: int | str = 0,
    source: str | None = None,
    progress: bool = True,
    error_edges: tuple[float, float] = ERROR_EDGES,
    predictions: Path | None = None,
    allow_missing: bool = False,
    paste_back: bool = True,
) -> dict:
    """Evaluate `model` (None: the identity baseline, prediction = composite) and write OUTDIR.

    `model(composite, mask)` takes (B, 3, H, W) in [0, 1] and (B, 1, H, W) in {0, 1} and returns
    the raw harmonised image, which `score_batch` blends. Returns the metrics.json content.
    `workers`: DataLoader worker processes, 0 (the default here) loads in this process, "auto"
    `auto_workers` (the command line's default). `predictions`: a folder of another method's
    saved outputs to score instead of a model (`evaluation.predictions`), all listed pairs
    present unless `allow_missing`; `paste_back` puts the composite's background back first.
    """
    if psnr_range not in PSNR_RANGES:
        raise DataError(f"psnr_range must be one of {PSNR_RANGES}, got {psnr_range!r}")
    if ssim_mode not in SSIM_MODES:
        raise DataError(f"ssim_mode must be one of {SSIM_MODES}, got {ssim_mode!r}")
    if size < 11:
        raise DataError(f"--size must be at least 11 pixels, the SSIM window; got {size}")
    if not 0 < error_edges[0] < error_edges[1]:
        raise DataError(
            f"--error-bins must be two increasing positive fMSE values, got {list(error_edges)}"
        )
    data_root, out = Path(data_root), Path(out)
    require_valid_root(data_root, split=split, subsets=subsets)
    dataset = HarmonyDataset(data_root, split, subsets, eval_size=size)
    data = limited(dataset, limit)
    scanned = None
    if predictions is not None:
        if model is not None:
            raise DataError("score a model or --predictions, not both")
        listed = data.indices if isinstance(data, Subset) else range(len(dataset))
        scanned = predicted_pairs.scan(predictions, [(i, dataset.samples[i]) for i in listed], size)
        scanned.require_complete(allow_missing)
        data = predicted_pairs.PredictedPairs(dataset, scanned, size)
    if len(data) == 0:
        raise DataError(f"{data_root}: the {split} split has no pairs to evaluate")
    target = resolve_device(device)
    if model is not None:
        model = model.to(target).eval()
    workers = parse_workers(workers)
    if workers == "auto":
        batch_bytes = batch_size * size * size * 7 * 4  # float32 composite, mask and real
        workers = auto_workers(-(-len(data) // batch_size), target, batch_bytes)
    log.info("evaluate: %d pairs, %d loader worker(s)", len(data), workers)
    loader = DataLoader(
        _Guarded(data),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=_collate,
    )

    with atomic_directory(out, replace=True) as tmp:
        rows = []
        no_background: list[str] = []
        for batch in tqdm(loader, desc=f"evaluate {split}", unit="batch", disable=not progress):
            if isinstance(batch, BaseException):
                raise batch
            composite, mask = batch["composite"].to(target), batch["mask"].to(target)
            raw = None if model is None else model(composite, mask)
            if scanned is not None:
                raw = batch["prediction"]
            preds, scores = score_batch(
                raw,
                composite,
                mask,
                batch["real"],
                psnr_range=psnr_range,
                ssim_mode=ssim_mode,
                paste_back=paste_back,
            )
            for pred, subset, name, score in zip(
                preds, batch["subset"], batch["name"], scores, strict=True
            ):
                rows.append({"subset": subset, "name": name, **score})
                if score["fg_ratio"] == 1.0:
                    no_background.append(f"{subset}/{name}")
                if save_images:
                    folder = tmp / "images" / subset
                    folder.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(pred).save(folder / f"{name}.png")
        per_image = pd.DataFrame(rows, columns=COLUMNS)
        protocol = protocol_block(size, psnr_range, ssim_mode, paste_back, len(data), scanned)
        per_image["protocol"] = protocol["id"]
        if scanned is not None:
            per_image["prediction"] = [
                str(scanned.found[i].relative_to(scanned.folder)) for i in data.indices
            ]
        default_source = "composite" if model is None else "model"
        summary = {
            "split": split,
            "size": size,
            "source": source or (str(predictions) if scanned else default_source),
            "psnr_range": psnr_range,
            "ssim_mode": ssim_mode,
            "protocol": protocol,
            **aggregate(per_image, SUBSETS, error_edges),
        }
        if no_background:
            warn_no_background(no_background, size)
            summary["no_background"] = no_background_note(no_background, size, model is not None)
        per_image.to_csv(tmp / "per_image.csv", index=False)
        (tmp / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def protocol_block(
    size: int,
    psnr_range: str,
    ssim_mode: str,
    paste_back: bool,
    n: int,
    scanned: predicted_pairs.PredictionSet | None,
) -> dict[str, Any]:
    """How the numbers were made, in metrics.json (and its `id` in every per_image.csv row)."""
    block: dict[str, Any] = {
        "size": size,
        "resize": "PIL bicubic to SIZE x SIZE (composite, real, prediction); mask binarised at "
        "> 127, then nearest",
        "quantisation": "clipped to [0, 1], rounded to 8 bits",
        "psnr_range": psnr_range,
        "ssim_mode": ssim_mode,
        "paste_back": paste_back,
        "n": n,
        "code_version": code_version(EVALUATION_CODE),
    }
    if scanned is not None:
        block.update(
            predictions=str(scanned.folder),
            predictions_sha256=scanned.digest(),
            n_listed=scanned.listed,
            coverage=round(scanned.coverage, 6),
        )
    paste = "paste-back" if paste_back else "as-saved"
    block["id"] = f"{size}px-bicubic-{psnr_range}-psnr-{ssim_mode}-ssim-{paste}"
    return block


def format_summary(summary: dict) -> str:
    """The per-subset table, SSIM and fSSIM on the paper's 0-100 scale."""
    seeds = f" (mean of seeds {', '.join(summary['seeds'])})" if "seeds" in summary else ""
    lines = [
        f"{'':<12}{'n':>6}{'MSE':>10}{'PSNR':>8}{'fMSE':>10}{'SSIM':>8}{'fSSIM':>8}{seeds}",
    ]
    for name, s in summary["subsets"].items():
        lines.append(
            f"{name:<12}{s['n']:>6}{s['mse']:>10.2f}{s['psnr']:>8.2f}{s['fmse']:>10.2f}"
            f"{100 * s['ssim']:>8.2f}{100 * s['fssim']:>8.2f}"
        )
    protocol = summary.get("protocol", {})
    if "coverage" in protocol:
        lines.append(
            f"predictions: {protocol['n']} of {protocol['n_listed']} listed pairs "
            f"(coverage {100 * protocol['coverage']:.2f} %), paste_back {protocol['paste_back']}"
        )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Score a trained model (--checkpoint) or the identity baseline (--baseline composite, "
        "the 'input composite' row of Table II) on an iHarmony4-layout split: MSE, PSNR, fMSE, "
        "SSIM and fSSIM per image, per subset, over all images and by foreground ratio. Images "
        "are resized to SIZE x SIZE (bicubic; masks nearest); the model output is blended "
        "through the mask, clipped and quantised to 8 bits. Writes OUTDIR/per_image.csv and "
        "OUTDIR/metrics.json (SSIM values raw, 0-1), only when the whole evaluation succeeds."
    )
    add_data_root(parser)
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="OUTDIR",
        help="output directory (replaced only when the evaluation succeeds)",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--checkpoint",
        type=Path,
        metavar="PATH",
        help="model directory (model.pt + config.json), its model.pt, or a variant directory "
        "of several seeds (seed<N>/ folders: each is evaluated into OUTDIR/seed<N>/ and "
        "OUTDIR/metrics.json holds their mean and spread)",
    )
    which.add_argument(
        "--baseline",
        choices=["composite", "reinhard", "histogram"],
        help="score a method without a network: the input composite itself (the identity, "
        "Table II's 'input composite'), Reinhard colour transfer of the foreground to the "
        "background's Lab statistics, or histogram matching of the foreground to the background",
    )
    which.add_argument(
        "--predictions",
        type=Path,
        metavar="DIR",
        help="score another method's saved result images, named as in the pairing list: "
        f"{predicted_pairs.layouts_help()}; each at the composite's size or SIZE x SIZE. "
        "A missing, unreadable or wrong-size file stops the evaluation in one line",
    )
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="with --predictions: score the pairs found and record the coverage (found / "
        "listed) in metrics.json; unreadable or wrong-size files are still refused",
    )
    parser.add_argument(
        "--paste-back",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --predictions: put the composite's background back through the mask before "
        "scoring, as this repository's model output is (default); --no-paste-back scores the "
        "images as saved. metrics.json records which",
    )
    add_split(parser)
    parser.add_argument(
        "--size",
        type=positive_int,
        default=256,
        help="evaluation resolution, SIZE x SIZE (default: 256; Table IV: 512, 1024)",
    )
    add_subsets(parser, "evaluate only these (default: all present)")
    parser.add_argument(
        "--psnr-range",
        choices=PSNR_RANGES,
        default="official",
        help="PSNR peak: 'official' pred.max()-pred.min() as the dataset's evaluation.py "
        "(default), '255', or 'target' target.max()",
    )
    parser.add_argument(
        "--ssim-mode",
        choices=SSIM_MODES,
        default=DEFAULT_SSIM_MODE,
        help="'iih': IIH's script that the paper's fSSIM numbers come from (zero padding, "
        "constants scaled for [0, 1] on 0-255 values; default); 'standard': scikit-image "
        "(reflect border, C1=(0.01*255)^2, C2=(0.03*255)^2)",
    )
    parser.add_argument(
        "--save-images",
        action="store_true",
        help="save the blended predictions as OUTDIR/images/<subset>/<name>.png",
    )
    parser.add_argument(
        "--limit",
        type=positive_int,
        metavar="N",
        help="evaluate at most N pairs of each subset, N >= 1 (default: all)",
    )
    parser.add_argument(
        "--error-bins",
        type=float,
        nargs=2,
        default=list(ERROR_EDGES),
        metavar=("MILD_BELOW", "STRONG_FROM"),
        help="composite-error bins of metrics.json by the input composite's own fMSE: mild "
        "below the first, strong from the second (default %(default)s; params.yaml "
        "error_bins)",
    )
    add_device(parser)
    parser.add_argument(
        "--batch-size", type=positive_int, default=8, help="images per batch (default 8)"
    )
    parser.add_argument(
        "--workers",
        type=parse_workers,
        default="auto",
        help="processes that decode and resize the pairs: a number (0: in this process) or "
        f"'auto' (default): the usable CPUs less one (less torch's threads on --device cpu), at "
        f"most {MAX_AUTO_WORKERS}, fewer where /dev/shm cannot hold their batches; results "
        "are the same for any number",
    )
    parser.add_argument(
        "--headline",
        type=Path,
        metavar="JSON",
        help="also write the 'All' means (and their spread over seeds) to this small file, the "
        "one `dvc metrics` and `dvc exp show` read",
    )
    add_progress(parser)


def seed_dirs(checkpoint: Path) -> list[Path]:
    """The `seed<N>` model directories of a multi-seed variant (`train --seeds`), in seed order;
    empty for a single model directory or model.pt."""
    if not checkpoint.is_dir() or (checkpoint / "model.pt").is_file():
        return []
    found = [p for p in checkpoint.glob("seed*") if (p / "model.pt").is_file()]
    return sorted(found, key=lambda p: int(p.name[4:]) if p.name[4:].isdigit() else 0)


def run(args: argparse.Namespace) -> int:
    from regionharmony.model.harmonizer import load_checkpoint

    settings = dict(
        split=args.split,
        size=args.size,
        subsets=args.subsets,
        psnr_range=args.psnr_range,
        ssim_mode=args.ssim_mode,
        save_images=args.save_images,
        limit=args.limit,
        device=args.device,
        batch_size=args.batch_size,
        workers=args.workers,
        progress=not args.no_progress,
        error_edges=tuple(args.error_bins),
        paste_back=args.paste_back,
    )
    seeds = seed_dirs(args.checkpoint) if args.checkpoint is not None else []
    if seeds:
        per_seed = {}
        for folder in seeds:
            model = load_checkpoint(folder, map_location="cpu")
            per_seed[folder.name] = evaluate_model(
                model, args.data_root, args.out / folder.name, source=str(folder), **settings
            )
        summary = seed_summary(per_seed)
        atomic_write_text(json.dumps(summary, indent=2) + "\n", args.out / "metrics.json")
    else:
        model, source = None, args.baseline
        if args.predictions is not None:
            settings.update(predictions=args.predictions, allow_missing=args.allow_missing)
            source = str(args.predictions)
        elif args.checkpoint is not None:
            model = load_checkpoint(args.checkpoint, map_location="cpu")
            source = str(args.checkpoint)
        elif args.baseline != "composite":
            model = baseline_network(args.baseline)
        summary = evaluate_model(model, args.data_root, args.out, source=source, **settings)
    if args.headline:
        atomic_write_text(json.dumps(headline(summary), indent=2) + "\n", args.headline)
    print(format_summary(summary))
    print(f"wrote {args.out / 'metrics.json'}")
    return 0

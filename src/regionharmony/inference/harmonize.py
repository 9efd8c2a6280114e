"""Harmonise your own composites (one pair or a folder) at their native resolution.

    regionharmony harmonize --checkpoint MODEL_DIR COMPOSITE MASK --out OUT.png
    regionharmony harmonize --checkpoint MODEL_DIR --input-dir DIR --out-dir DIR [pairing options]

Python: ``regionharmony.harmonize(composite, mask, model) -> PIL.Image`` (the command calls it).

Working resolution. The network is not scale-free: it works at the resolution it was trained
at (a model trained at 64 px that helps at 64 px harms at 256 px). So by default the network
runs at ``max_side`` = the model's training size (config.json ``train.image_size``): the
composite and mask are downscaled so that the longest side is ``max_side`` (aspect ratio kept),
the network harmonises that, and the correction is carried back to the full-resolution
composite by one of these strategies:

* ``color`` (the default; for every composite larger than the training size): a per-image
  affine colour transform A (3 x 4), fitted by least squares on the foreground pixels from
  the low-resolution composite to the low-resolution harmonised output, then applied to every
  foreground pixel at full resolution: ``H(x) = A [I'(x); 1]``. The full-resolution detail is
  untouched; only colour is changed. Fast, and the best-scoring strategy.
* ``residual``: the low-resolution correction ``H_low - I'_low`` on the foreground, upsampled
  to full resolution (mask-normalised bilinear, so that the correction does not fade at the
  object boundary) and added to the full-resolution composite. For a correction that varies
  across the object (a shading gradient), which one global colour map cannot follow.
* ``full``: the network runs on the full-resolution image itself (padded to a multiple of 16).
  Only for a model trained at a comparable resolution and small images: its memory grows with
  the pixel count (~10 GB at 16.6 megapixels with the mini model), so it is refused in one
  line when it would not fit (`regionharmony.inference.memory`). On a 4992 x 3328 composite
  it took 52 s and 4.5 GB and scored worse than the composite itself (fMSE 4565 vs 2419).

An image whose longest side is at most ``max_side`` is harmonised directly at its own size. The
default strategy was chosen by measured quality (benchmarks/harmonize_strategies.py, the
Table IV protocol at full image size); see README.

Output: always ``H * M + I' * (1 - M)`` with the full-resolution binary mask, quantised to 8
bits: outside the mask the output equals the (converted) composite bit for bit.

Inputs as people have them (`regionharmony.inference.user_images`): a path, a PIL image or a
numpy array: bool, uint8 (0-255), uint16 or float in [0, 1]. A float array with values outside
[0, 1] (a float array in 0-255) is refused with a HarmonizeError, not clipped: pass it as uint8
or divide it by 255.
EXIF orientation is applied; palette, grayscale, 16-bit, RGBA/LA (alpha dropped) and CMYK
images are converted to 8-bit RGB. A greyscale composite (mode L, LA, I;16, ..., or RGB with
three equal channels) gets a greyscale result: the network's output (which has colour: it
was trained on colour photographs) is converted to its ITU-R 601 luma (PIL's "L"), so the
three channels are equal and the background keeps the composite's grey levels bit for bit.
A file of several frames (an animated GIF, a multi-page TIFF) is harmonised as its first frame,
with a one-line warning naming it. A mask is any single-channel or RGB(A) image; a pixel is
foreground when its 8-bit grayscale value (ITU-R 601 luma, PIL's "L") is above
``MASK_THRESHOLD`` = 127; a mask whose alpha channel is not fully opaque (a cut-out) uses the
alpha channel instead. So a soft mask (feathered or anti-aliased edges, grey levels) is cut at
half its range: grey 128-255 is foreground, 0-127 background; nothing is blended. Bad input
raises `HarmonizeError` (a ValueError) naming the file.

Inverted masks: ``--invert-mask`` (``invert_mask=True``) harmonises the background to the
foreground: the thresholded mask is inverted before the network sees it, so the output keeps
the composite's pixels inside the original mask and changes those outside it.

Writing: atomically, through a hidden ``.NAME.PID.tmp`` beside each result. Before it writes,
the command removes such temporaries left by a killed run (their PID is not running), and in
folder mode it checks that the output folder can be written before it harmonises anything.

Engines: ``--engine torch`` (the default) runs the checkpoint with torch; ``--engine
onnxruntime`` runs an ONNX file from `regionharmony export` (``--checkpoint model.onnx``, or a
folder holding model.onnx) with onnxruntime, in fp32, without importing torch (the optional
extra ``.[onnx]``). In single-pair mode the command loads the engine in a second thread while
it decodes the images (torch's import takes about a second and Pillow's decoders release the
GIL).

Reproducible bytes: ``--precision auto`` (the default) means bf16 on a CPU with AMX-BF16 or
AVX512-BF16 and on a GPU of compute capability >= 8, fp32 elsewhere, and ``--device auto`` a GPU
when present; so a pipeline stage whose output must not depend on the machine passes
``--device cpu --precision fp32``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from regionharmony.errors import HarmonizeError
from regionharmony.inference.engine_choice import (
    ENGINES,
    as_engine,
    collector_paused,
    configured_train_size,
    note_demonstration_model,
)
from regionharmony.inference.pairing import (
    Pair,
    pairs_by_mask_dir,
    pairs_by_suffix,
    pairs_from_list,
    prepare_out_dir,
    resolved_or_self,
)
from regionharmony.inference.strategies import (
    DEFAULT_STRATEGY,
    STRATEGIES,
    harmonize_arrays,
    mask_box,
    working_pair,
)
from regionharmony.inference.user_images import (
    MASK_THRESHOLD,
    OUTPUT_FORMATS,
    ImageSource,
    check_not_a_symlink_loop,
    check_output_folder,
    check_pair,
    is_greyscale,
    label_of,
    load_composite,
    load_mask,
    output_format,
    remove_stale_temporaries,
    resolved,
    same_file,
    save_image,
)

if TYPE_CHECKING:
    from regionharmony.inference.engine import Engine
    from regionharmony.inference.onnx_runtime import OnnxEngine


def harmonize(
    composite: ImageSource,
    mask: ImageSource,
    model: Any,
    *,
    max_side: int | None = None,
    strategy: str = DEFAULT_STRATEGY,
    device: str = "auto",
    precision: str = "auto",
    invert_mask: bool = False,
    engine: str = "torch",
) -> Image.Image:
    """Harmonise `composite` through `mask` with `model`; returns the RGB image, full size.

    composite, mask: paths, PIL images or numpy arrays (see the module docstring for the
    conversions). A numpy array is bool, uint8 (0-255), uint16 or float
    in [0, 1]; a float array with values above 1 or below 0 (e.g. floats in 0-255) raises
    HarmonizeError instead of being clipped: pass such an array as uint8 or divide it by 255.
    The mask is binary: a pixel whose 8-bit grey level is above ``MASK_THRESHOLD`` = 127 is
    foreground, any other background, so a soft (feathered, anti-aliased) mask is cut at half
    its range, not blended; a cut-out (an RGBA or LA image with transparent pixels) can be the
    mask: its alpha channel is used, with the same threshold.
    invert_mask: swap the roles of the two regions: harmonise the background to the
    foreground (the thresholded mask is inverted before the network sees it, and the result
    keeps the composite's pixels where the mask is foreground).
    model: a model directory (model.pt + config.json), its
    model.pt, a loaded network or an `inference.Engine` (reuse one for many images).
    max_side: the working resolution (default: the model's training size); strategy: how the
    correction reaches full resolution ("color", "residual", "full"). device: auto|cpu|cuda;
    precision: auto|fp32|bf16 (auto: bf16 where the hardware has native bf16: an AMX-BF16 or
    AVX512-BF16 CPU, a GPU of compute capability >= 8; fp32 elsewhere, so the output bytes
    depend on the machine; pass fp32 for bytes that do not). engine: "torch" or
    "onnxruntime" (`model` is then an .onnx file from `regionharmony export`).
    A greyscale composite gives a greyscale result (three equal channels).
    Raises HarmonizeError for bad input (a missing, unreadable or symlink-loop path, ...).
    """
    image, fg = load_inputs(composite, mask, invert_mask)
    try:
        network = as_engine(model, device, precision, engine)
    except ValueError as err:
        raise HarmonizeError(str(err)) from None
    result = harmonize_loaded(image, fg, network, max_side=max_side, strategy=strategy)
    return Image.fromarray(result)


def load_inputs(
    composite: ImageSource, mask: ImageSource, invert_mask: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The uint8 RGB composite and the bool foreground, checked to fit each other."""
    image = load_composite(composite)
    fg = load_mask(mask)
    if invert_mask:
        fg = ~fg
    check_pair(image, fg, label_of(mask, "mask"), inverted=invert_mask)
    return image, fg


def harmonize_loaded(
    image: np.ndarray,
    fg: np.ndarray,
    engine: Engine | OnnxEngine,
    *,
    max_side: int | None = None,
    strategy: str = DEFAULT_STRATEGY,
    low: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """`harmonize` on inputs `load_inputs` read, as a uint8 RGB array (the command writes it
    without a round trip through PIL): greyscale in, greyscale out. `low`: see
    `harmonize_arrays`."""
    result = harmonize_arrays(image, fg, engine, max_side=max_side, strategy=strategy, low=low)
    if not is_greyscale(image):
        return result
    # the network gives colour even to a grey image; its luma is the grey result (a grey
    # pixel's luma is its grey level: the background is kept bit for bit)
    luma = np.asarray(Image.fromarray(result).convert("L"))
    return np.repeat(luma[..., None], 3, axis=2)


# -- folder mode ------------------------------------------------------------------------------


def run_pair(pair: Pair, engine: Engine, options: dict[str, Any]) -> None:
    if pair.mask is None:
        raise HarmonizeError(f"{pair.composite}: no mask found for this composite")
    image = harmonize(pair.composite, pair.mask, engine, **options)
    save_image(image, pair.out, (pair.composite, pair.mask))


def run_folder(pairs: list[Pair], engine: Engine, options: dict[str, Any], progress: bool) -> int:
    """Harmonise every pair; a bad pair is reported on stderr and skipped. Returns the number
    of failed pairs."""
    from tqdm import tqdm

    inputs = {resolved_or_self(p.composite) for p in pairs}
    inputs |= {resolved_or_self(p.mask) for p in pairs if p.mask}
    failed = 0
    for pair in tqdm(pairs, desc="harmonize", unit="image", disable=not progress):
        try:
            if resolved(pair.out, "output") in inputs:
                raise HarmonizeError(f"{pair.out}: refusing to overwrite an input file")
            run_pair(pair, engine, options)
        except HarmonizeError as err:
            failed += 1
            tqdm.write(f"error: {pair.name}: {err}", file=sys.stderr)
    return failed


# -- command line ------------------------------------------------------------------------------


def optional_path(text: str) -> Path | None:
    """A path, or None for an empty string (a DVC stage passes "" for "not used")."""
    return Path(text) if text else None


def yes_no(text: str) -> bool:
    """true/false, yes/no, 1/0 (a DVC stage renders a params.yaml boolean as true/false)."""
    value = text.strip().lower()
    if value in ("true", "yes", "1"):
        return True
    if value in ("false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Harmonise a composite through its foreground mask with a trained model, at the "
        "composite's full resolution. One pair: COMPOSITE MASK --out OUT. A folder: --input-dir "
        "DIR --out-dir DIR, pairing NAME.jpg with NAME_mask.png (--mask-suffix), masks of the "
        "same name in another folder (--mask-dir, the DIH99 layout), RealHM's NAME_composite.jpg "
        "with NAME_mask.jpg (--composite-suffix _composite --recursive), or an iHarmony4 list "
        "(--list). A mask pixel is foreground when its grayscale value is above 127 (a "
        "cut-out's alpha channel, when it has transparent pixels); --invert-mask harmonises "
        "the background to the foreground instead."
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        required=True,
        metavar="MODEL_DIR",
        help="model directory (model.pt + config.json) or its model.pt; with --engine "
        "onnxruntime an exported .onnx file",
    )
    parser.add_argument("composite", nargs="?", type=Path, help="the composite image")
    parser.add_argument(
        "mask",
        nargs="?",
        type=Path,
        help="its foreground mask: a pixel is foreground when its 8-bit grey level is above "
        f"{MASK_THRESHOLD}, so a soft mask is cut at half its range, not blended; a cut-out "
        "(RGBA or LA with transparent pixels) works too: its alpha channel is the mask",
    )
    parser.add_argument("--out", type=Path, help="output image (.png, .jpg, .tif, .webp)")
    parser.add_argument("--input-dir", type=Path, metavar="DIR", help="folder of composites")
    parser.add_argument("--out-dir", type=Path, metavar="DIR", help="folder for the results")
    parser.add_argument(
        "--mask-suffix",
        default="_mask",
        help="folder mode: mask of NAME<suffix>.EXT is NAME_mask.* (default _mask)",
    )
    parser.add_argument(
        "--composite-suffix",
        default="",
        help="folder mode: only NAME<suffix>.* are composites (RealHM: _composite)",
    )
    parser.add_argument(
        "--mask-dir",
        type=optional_path,
        metavar="DIR",
        help="folder mode: masks have the composites' names in DIR (DIH99)",
    )
    parser.add_argument(
        "--list",
        type=optional_path,
        metavar="FILE",
        help="folder mode: an iHarmony4 list (IHD_test.txt); --input-dir is the dataset root",
    )
    parser.add_argument(
        "--recursive",
        nargs="?",
        const=True,
        default=False,
        type=yes_no,
        metavar="true|false",
        help="folder mode: walk subfolders (a bare --recursive means true)",
    )
    parser.add_argument(
        "--invert-mask",
        nargs="?",
        const=True,
        default=False,
        type=yes_no,
        metavar="true|false",
        help="harmonise the background to the foreground: the mask (after the threshold) is "
        "inverted before the network sees it, and the foreground keeps the composite's pixels "
        "(single and folder mode; a bare --invert-mask means true)",
    )
    parser.add_argument(
        "--ext",
        default=".png",
        choices=sorted(OUTPUT_FORMATS),
        help="folder mode: output format (default .png, lossless)",
    )
    parser.add_argument(
        "--max-side",
        type=int,
        metavar="PX",
        help="run the network with the longest side at most PX (default: the "
        "model's training size, from its config.json)",
    )
    parser.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default=DEFAULT_STRATEGY,
        help="how the correction reaches a composite larger than the working size. color "
        "(default): the network at the working size, its colour change fitted as one affine "
        "colour map and applied at full resolution (detail untouched; the best score; the "
        "whole command takes ~1.3 s for 16.6 megapixels on 2 cores). residual: the "
        "low-resolution correction upsampled and added (for "
        "a correction that varies across the object). full: the network on every full-size "
        "pixel, only for a model trained near that size and small images: ~600 bytes a pixel "
        "with the mini model, ~1.6 KB with the paper's (a 4992x3328 composite took 52 s and "
        "scored worse than the composite itself); refused when it would not fit in memory",
    )
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="torch",
        help="torch (default): the model directory; onnxruntime: an ONNX file from "
        "`regionharmony export` (--checkpoint model.onnx), fp32, without torch "
        "(pip install -e '.[onnx]')",
    )
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="auto (default): a GPU when present, else the CPU",
    )
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="auto (default): bf16 where the hardware has native bf16 (AMX-BF16 or "
        "AVX512-BF16 CPUs, GPUs of compute capability >= 8), else fp32, so the output bytes "
        "depend on the machine; pass fp32 (with --device cpu) for bytes that do not",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def collect_pairs(args: argparse.Namespace) -> list[Pair]:
    input_dir, out_dir = args.input_dir, args.out_dir
    if not input_dir.is_dir():
        raise HarmonizeError(f"{input_dir}: --input-dir is not a folder")
    if args.list is not None:
        return pairs_from_list(input_dir, args.list, out_dir, args.ext)
    if args.mask_dir is not None:
        if not args.mask_dir.is_dir():
            raise HarmonizeError(f"{args.mask_dir}: --mask-dir is not a folder")
        return pairs_by_mask_dir(input_dir, args.mask_dir, out_dir, args.ext, args.recursive)
    return pairs_by_suffix(
        input_dir, out_dir, args.ext, args.mask_suffix, args.composite_suffix, args.recursive
    )


def check_mode(args: argparse.Namespace) -> str:
    single = args.composite is not None or args.mask is not None or args.out is not None
    folder = args.input_dir is not None or args.out_dir is not None
    if single == folder:
        raise HarmonizeError(
            "give either COMPOSITE MASK --out OUT or --input-dir DIR --out-dir DIR"
        )
    if single and (args.composite is None or args.mask is None or args.out is None):
        raise HarmonizeError("one pair needs COMPOSITE, MASK and --out")
    if folder and (args.input_dir is None or args.out_dir is None):
        raise HarmonizeError("folder mode needs both --input-dir and --out-dir")
    return "single" if single else "folder"


def load_beside_engine(args: argparse.Namespace) -> tuple[Any, np.ndarray, np.ndarray, Any, Any]:
    """The engine, loaded in a second thread (torch's import alone takes ~1 s, mostly holding
    the GIL) while this one decodes the composite and the mask and downscales them to the
    working size (Pillow releases the GIL as it decodes and resizes). A model error is raised
    before an image error, as when the model was loaded first."""
    from concurrent.futures import ThreadPoolExecutor

    from regionharmony.inference.png import encoder_ahead

    problem: HarmonizeError | None = None
    side = args.max_side
    if side is None and args.engine == "torch":
        side = configured_train_size(args.checkpoint)
    low = None
    with collector_paused(), ThreadPoolExecutor(1) as pool:
        pending = pool.submit(as_engine, args.checkpoint, args.device, args.precision, args.engine)
        try:
            image, fg = load_inputs(args.composite, args.mask, args.invert_mask)
            # the rows the mask does not reach are final: compressed while torch loads
            encoder = (
                encoder_ahead(image, mask_box(fg)[0]) if output_format(args.out) == "PNG" else None
            )
            if side and args.strategy != "full":
                low = working_pair(image, fg, side)
        except HarmonizeError as err:
            problem = err
        engine = pending.result()
    if problem is not None:
        raise problem
    if args.max_side is None and engine.train_size != side:
        low = None  # the model's own size is another: harmonize_arrays downscales again
    return engine, image, fg, low, encoder


def run(args: argparse.Namespace) -> int:
    options = {
        "max_side": args.max_side,
        "strategy": args.strategy,
        "invert_mask": args.invert_mask,
        "engine": args.engine,
    }
    try:
        mode = check_mode(args)
        if args.max_side is not None and args.max_side < 1:
            raise HarmonizeError(f"--max-side must be a positive number of pixels: {args.max_side}")
        if mode == "single":
            output_format(args.out)
            check_not_a_symlink_loop(args.out, "--out")
            check_not_a_symlink_loop(args.composite, "composite")
            check_not_a_symlink_loop(args.mask, "mask")
            for source in (args.composite, args.mask):
                if same_file(args.out, source):
                    raise HarmonizeError(f"{args.out}: refusing to overwrite an input file")
            check_output_folder(args.out.parent, "the folder of --out", create=False)
            remove_stale_temporaries(args.out.parent, args.out.name)
            engine, image, fg, low, encoder = load_beside_engine(args)
            note_demonstration_model(args.checkpoint)
            result = harmonize_loaded(
                image, fg, engine, max_side=args.max_side, strategy=args.strategy, low=low
            )
            save_image(result, args.out, (args.composite, args.mask), encoder)
            print(f"wrote {args.out}")
            return 0
        pairs = collect_pairs(args)
        if not pairs:
            raise HarmonizeError(f"{args.input_dir}: no composites found")
        with collector_paused():
            engine = as_engine(args.checkpoint, args.device, args.precision, args.engine)
        note_demonstration_model(args.checkpoint)
        prepare_out_dir(args.out_dir, pairs)
    except (HarmonizeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    failed = run_folder(pairs, engine, options, progress=not args.no_progress)
    print(
        f"wrote {len(pairs) - failed} of {len(pairs)} images to {args.out_dir}"
        + (f"; {failed} failed (listed above)" if failed else "")
    )
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="regionharmony harmonize")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

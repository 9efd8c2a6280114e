"""`export`: write a trained model as an ONNX file (opset 18, any height and width).

    regionharmony export --format onnx --checkpoint MODEL_DIR --out model.onnx

The file holds the generator with its BatchNorm folded into the convolutions (as the inference
engine runs it), in fp32, with ONNX operator set ``OPSET`` = 18 (recorded in the file's
opset_import). Inputs: ``composite`` float32 (N, 3, H, W) in [0, 1] and ``mask`` float32
(N, 1, H, W) in {0, 1}, the foreground mask as its own input; N, H and W are dynamic (any size:
the graph pads each side up to a multiple of 2 ** (depth - 1), replicating the border, and
crops the output back, as the torch network does). Output: ``harmonized`` (N, 3, H, W), the
raw network output H (unclipped, not yet blended through the mask; ``H * M + I' * (1 - M)``
clipped to [0, 1] is the image). The metadata (metadata_props) carries the training size
(``regionharmony.train_size``, the working resolution of `harmonize`) and the network's base
width. `harmonize --engine onnxruntime --checkpoint model.onnx` runs it without torch.

The export uses torch.onnx.export's dynamo exporter (which needs onnxscript) and then checks
the file with onnxruntime against the torch network on a probe of odd size; all three come with
the optional extra: ``pip install -e '.[onnx]'``.
"""

from __future__ import annotations

import argparse
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from regionharmony.errors import CheckpointError, UserError
from regionharmony.inference.onnx_runtime import (
    BASE_WIDTH_KEY,
    INSTALL_HINT,
    TRAIN_SIZE_KEY,
)

if TYPE_CHECKING:
    from torch import nn

OPSET = 18
FORMATS = ("onnx",)
INPUTS = ("composite", "mask")
OUTPUT = "harmonized"
TOLERANCE = 1e-4  # max |onnxruntime - torch| on the probe, in the 0-1 scale of the output
PROBE_SIZE = (37, 53)  # odd sides: the padding and cropping are part of the check


def require_onnx_extra() -> None:
    """A one-line UserError naming the install command when the onnx extra is missing."""
    missing = []
    for name in ("onnx", "onnxscript", "onnxruntime"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise UserError(
            f"export --format onnx needs {', '.join(missing)} (the onnx extra): {INSTALL_HINT}"
        )


def padded_network(network: nn.Module) -> nn.Module:
    """`network` behind an always-taken pad to its size multiple and a crop back: the graph
    then holds the padding for any size instead of the branch the tracing size took."""
    import torch.nn.functional as F
    from torch import nn

    class Padded(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.network, self.multiple = network, network.multiple

        def forward(self, composite, mask):
            height, width = composite.shape[-2:]
            pad = (0, (-width) % self.multiple, 0, (-height) % self.multiple)
            composite = F.pad(composite, pad, mode="replicate")
            mask = F.pad(mask, pad, mode="replicate")
            return self.network(composite, mask)[..., :height, :width]

    return Padded().eval()


def probe(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A random composite and a box mask, float32 (1, 3, H, W) and (1, 1, H, W)."""
    rng = np.random.default_rng(seed)
    composite = rng.random((1, 3, height, width), dtype=np.float32)
    mask = np.zeros((1, 1, height, width), np.float32)
    mask[..., height // 4 : height * 3 // 4 + 1, width // 4 : width * 3 // 4 + 1] = 1
    return composite, mask


def export_network(network: nn.Module, train_size: int, out: Path) -> None:
    """Write `network` (a Harmonizer in eval mode) to `out` as ONNX, atomically."""
    import torch

    from regionharmony.io import atomic_write
    from regionharmony.model.fold import fold_batchnorm

    model = padded_network(fold_batchnorm(network))
    example = tuple(torch.from_numpy(a) for a in probe(*PROBE_SIZE))
    axes = {0: "batch", 2: "height", 3: "width"}
    # the exporter's progress lines, its notes on torchvision's absent operators and its
    # warnings about axis names shared by the two inputs say nothing to a user
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model,
            example,
            None,
            input_names=list(INPUTS),
            output_names=[OUTPUT],
            dynamic_shapes={name: axes for name in INPUTS},
            opset_version=OPSET,
            dynamo=True,
            verbose=False,
        )
    program.model.metadata_props[TRAIN_SIZE_KEY] = str(int(train_size))
    program.model.metadata_props[BASE_WIDTH_KEY] = str(int(network.cfg.base_width))
    program.model.producer_name = "regionharmony export"
    atomic_write(out, lambda tmp: program.save(str(tmp)))


def max_difference(network: nn.Module, path: Path, height: int, width: int) -> float:
    """max |onnxruntime(path) - network| on a random probe of height x width, fp32 CPU."""
    import onnxruntime as ort
    import torch

    composite, mask = probe(height, width, seed=1)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"composite": composite, "mask": mask})[0]
    with torch.no_grad():
        expected = network(torch.from_numpy(composite), torch.from_numpy(mask)).numpy()
    return float(np.abs(got - expected).max())


def export_onnx(checkpoint: Path, out: Path) -> float:
    """Export the model directory `checkpoint` to `out`; returns the max difference to torch
    on the probe (a UserError when it is over `TOLERANCE`: the file is removed)."""
    import json

    from regionharmony.model.harmonizer import load_checkpoint

    require_onnx_extra()
    if not checkpoint.exists():
        raise CheckpointError(f"{checkpoint}: no such model directory (--checkpoint)")
    network = load_checkpoint(checkpoint, map_location="cpu")
    folder = checkpoint if checkpoint.is_dir() else checkpoint.parent
    train_size = json.loads((folder / "config.json").read_text())["train"]["image_size"]
    export_network(network, train_size, out)
    difference = max_difference(network, out, *PROBE_SIZE)
    if not difference <= TOLERANCE:
        out.unlink(missing_ok=True)
        raise UserError(
            f"{out}: the ONNX model differs from the torch network by {difference:.2e} "
            f"(over {TOLERANCE:g}) on a {PROBE_SIZE[1]}x{PROBE_SIZE[0]} probe; not written"
        )
    return difference


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        f"Export a trained model as an ONNX file: operator set (opset) {OPSET}, inputs "
        "`composite` float32 (N, 3, H, W) in [0, 1] and `mask` float32 (N, 1, H, W) in {0, 1}, "
        "with N, H and W dynamic; output `harmonized`, the raw network output (blend it "
        "through the mask). The file is checked against torch with onnxruntime before it is "
        "kept. Run it with `regionharmony harmonize --engine onnxruntime --checkpoint "
        f"model.onnx`. Needs the onnx extra: {INSTALL_HINT}."
    )
    parser.add_argument("--format", choices=FORMATS, default="onnx", help="onnx (the only one)")
    parser.add_argument(
        "--checkpoint",
        type=Path,
        required=True,
        metavar="MODEL_DIR",
        help="trained model directory (model.pt + config.json), as `harmonize` takes",
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="FILE", help="the ONNX file to write"
    )


def run(args: argparse.Namespace) -> int:
    if args.out.suffix.lower() != ".onnx":
        raise UserError(f"{args.out}: --out must end in .onnx")
    difference = export_onnx(args.checkpoint, args.out)
    print(
        f"wrote {args.out} (ONNX opset {OPSET}, dynamic height and width; onnxruntime "
        f"matches torch to {difference:.1e})"
    )
    return 0

"""`harmonize --engine onnxruntime`: the network of an exported ONNX file (`regionharmony export`)
run by onnxruntime, without torch (which alone takes about a second to import).

`OnnxEngine` has what `regionharmony.inference.strategies` uses of `Engine`: ``train_size``,
``base_width``, ``device`` and ``run_arrays``. It computes in fp32 on the CPU (onnxruntime's
CUDA provider where installed and asked for); its output matches the torch engine's fp32 output
to within float rounding (1e-4, tests/test_onnx_export.py), which can move a foreground pixel
by one 8-bit level.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from regionharmony.errors import HarmonizeError

INSTALL_HINT = "pip install -e '.[onnx]'"
MODEL_FILE = "model.onnx"  # what `harmonize --engine onnxruntime` looks for in a model folder
# metadata_props `regionharmony export` writes: what the engine needs besides the graph
TRAIN_SIZE_KEY = "regionharmony.train_size"
BASE_WIDTH_KEY = "regionharmony.base_width"


def import_onnxruntime():
    """The onnxruntime module, or a one-line HarmonizeError saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise HarmonizeError(f"--engine onnxruntime needs the onnx extra: {INSTALL_HINT}") from None
    return onnxruntime


def onnx_file(path: Path) -> Path:
    """`path` itself (an .onnx file) or the model.onnx in the folder `path`."""
    candidate = path / MODEL_FILE if path.is_dir() else path
    if not candidate.is_file():
        raise HarmonizeError(
            f"{candidate}: no ONNX model (--engine onnxruntime takes the file that "
            "`regionharmony export --format onnx` writes, or a folder holding model.onnx)"
        )
    return candidate


def providers(ort, device: str) -> list[str]:
    """The execution providers for `device` (auto|cpu|cuda)."""
    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if device == "cuda" and not has_cuda:
        raise HarmonizeError(
            "--device cuda: this onnxruntime has no CUDA provider (install onnxruntime-gpu)"
        )
    if device != "cpu" and has_cuda:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxEngine:
    """An exported network run by onnxruntime: `run_arrays(composite, mask)` -> raw output."""

    def __init__(self, path: str | Path, *, device: str = "auto") -> None:
        ort = import_onnxruntime()
        self.path = onnx_file(Path(path))
        try:
            self.session = ort.InferenceSession(str(self.path), providers=providers(ort, device))
        except HarmonizeError:
            raise
        except Exception as err:  # not an ONNX file, a truncated one, an unknown operator
            reason = " ".join(str(err).split())[:300]
            raise HarmonizeError(f"{self.path}: not a usable ONNX model ({reason})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if TRAIN_SIZE_KEY not in meta:
            raise HarmonizeError(
                f"{self.path}: no {TRAIN_SIZE_KEY} in its metadata: not written by "
                "`regionharmony export`"
            )
        self.train_size = int(meta[TRAIN_SIZE_KEY])
        self.base_width = int(meta[BASE_WIDTH_KEY]) if BASE_WIDTH_KEY in meta else None
        on_gpu = self.session.get_providers()[0] == "CUDAExecutionProvider"
        self.device = SimpleNamespace(type="cuda" if on_gpu else "cpu")
        self.precision = "fp32"
        self.inputs = [item.name for item in self.session.get_inputs()]

    def describe(self) -> str:
        return f"onnxruntime, {self.device.type}, fp32"

    def run_arrays(self, composite: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """float32 (1, 3, H, W) composite and (1, 1, H, W) mask -> raw output (1, 3, H, W)."""
        feed = dict(zip(self.inputs, (composite, mask), strict=True))
        return self.session.run(None, feed)[0]

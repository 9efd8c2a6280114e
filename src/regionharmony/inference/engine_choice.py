"""Which engine runs the network: torch's `Engine` for a model directory, onnxruntime's
`OnnxEngine` for an exported ONNX file (`as_engine`). torch is imported only for the first."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regionharmony.errors import CheckpointError, HarmonizeError

if TYPE_CHECKING:
    from regionharmony.inference.engine import Engine
    from regionharmony.inference.onnx_runtime import OnnxEngine

ENGINES: tuple[str, ...] = ("torch", "onnxruntime")


def as_engine(
    model: Any, device: str = "auto", precision: str = "auto", engine: str = "torch"
) -> Engine | OnnxEngine:
    """An engine from a model directory / model.pt path, a Harmonizer network (working size
    256, the paper's) or an Engine (returned as is); with ``engine="onnxruntime"`` an
    `OnnxEngine` from an exported .onnx file (or a folder holding model.onnx)."""
    if engine not in ENGINES:
        raise HarmonizeError(f"engine must be one of {ENGINES}, got {engine!r}")
    if is_engine(model):
        return model
    if engine == "onnxruntime":
        return onnx_engine(model, device, precision)
    return torch_engine(model, device, precision)


def is_engine(model: Any) -> bool:
    from regionharmony.inference.onnx_runtime import OnnxEngine

    # an Engine exists only once its (torch-importing) module has been imported
    module = sys.modules.get("regionharmony.inference.engine")
    return isinstance(model, OnnxEngine) or (
        module is not None and isinstance(model, module.Engine)
    )


def onnx_engine(model: Any, device: str, precision: str) -> OnnxEngine:
    from regionharmony.inference.onnx_runtime import OnnxEngine

    if precision == "bf16":
        raise HarmonizeError("--precision bf16 needs --engine torch (onnxruntime runs fp32)")
    if not isinstance(model, str | os.PathLike):
        raise HarmonizeError("--engine onnxruntime takes the path of an exported .onnx file")
    return OnnxEngine(model, device=device)


def torch_engine(model: Any, device: str, precision: str) -> Engine:
    # torch is imported only here: --engine onnxruntime runs without it
    from torch import nn

    from regionharmony.inference.engine import Engine, load_engine

    if isinstance(model, nn.Module):
        size = getattr(model, "train_size", 256)
        return Engine(model, size, device=device, precision=precision)
    if isinstance(model, str | os.PathLike):
        path = Path(model)
        if path.suffix.lower() == ".onnx":
            raise HarmonizeError(f"{path}: an ONNX model: run it with --engine onnxruntime")
        try:
            return load_engine(path, device=device, precision=precision)
        # load_checkpoint's one line names the file and why: unreadable, or weights that do
        # not fit config.json (the keys and shapes that differ)
        except (FileNotFoundError, CheckpointError) as err:
            raise HarmonizeError(str(err)) from None
        # anything else of a user's file: a config.json without train.image_size, ...
        except Exception as err:
            reason = " ".join(line.strip() for line in str(err).splitlines()[:2])[:300]
            raise HarmonizeError(f"{path}: not a usable model ({reason})") from None
    raise HarmonizeError(
        f"model must be a model directory, an nn.Module or an Engine, got {type(model).__name__}"
    )

"""Which engine runs the network: torch's `Engine` for a model directory, onnxruntime's
`OnnxEngine` for an exported ONNX file (`as_engine`; torch is imported only for the first);
loading it quickly (`collector_paused`); saying when it is a demonstration model."""

from __future__ import annotations

import atexit
import gc
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off inside (torch's import makes some 10^5 objects,
    and the collections they trigger cost ~0.2 s of a 1 s import), and everything frozen at
    exit (the interpreter's last collection over torch's objects costs ~0.2 s more; the
    memory of a process that ends is freed all the same)."""
    global _freeze_at_exit
    if not _freeze_at_exit:
        atexit.register(gc.freeze)
        _freeze_at_exit = True
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_freeze_at_exit = False


def note_demonstration_model(checkpoint: Path) -> None:
    """Say once when the model is the embedded default's: trained in seconds on the embedded
    dataset's strong light changes, it is a demonstration, not the paper's model."""
    folder = checkpoint if checkpoint.is_dir() else checkpoint.parent
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        return
    if summary.get("profile") == "mini":
        print(
            f"note: {folder} is a demonstration model (profile mini, trained on the embedded "
            "dataset); for a real one train the paper profile on iHarmony4 (README: "
            "'Reproducing the paper')",
            file=sys.stderr,
        )


def configured_train_size(checkpoint: Path) -> int | None:
    """config.json's ``train.image_size`` beside a model directory's weights (read without
    torch), or None when it cannot be read (loading the engine then says why)."""
    folder = checkpoint if checkpoint.is_dir() else checkpoint.parent
    try:
        return int(json.loads((folder / "config.json").read_text())["train"]["image_size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None

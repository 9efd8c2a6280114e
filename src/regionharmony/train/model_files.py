"""What a checkpoint carries of the model directory besides the weights: the run's logs, so a
resume makes them exactly what they were at the checkpoint (the prefix model directories:
`train.prefix`). As uint8 tensors, so that the checkpoint still loads with weights_only."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import torch

from regionharmony.io import atomic_write_text


def as_tensor(data: bytes) -> torch.Tensor:
    return torch.from_numpy(np.frombuffer(data, dtype=np.uint8).copy())


def log_files(out_dir: Path) -> dict[str, str]:
    """The run's logs so far (train.log and DVCLive's files), by path relative to `out_dir`."""
    paths = sorted(p for p in (out_dir / "live").rglob("*") if p.is_file())
    paths += [out_dir / "train.log"] if (out_dir / "train.log").is_file() else []
    return {p.relative_to(out_dir).as_posix(): p.read_text(encoding="utf-8") for p in paths}


def pack_logs(files: dict[str, str]) -> torch.Tensor:
    """The logs as a zlib-compressed JSON byte tensor."""
    return as_tensor(zlib.compress(json.dumps(files, sort_keys=True).encode(), 6))


def unpack_logs(packed: torch.Tensor) -> dict[str, str]:
    return json.loads(zlib.decompress(packed.cpu().numpy().tobytes()))


def restore_log_files(out_dir: Path, files: dict[str, str]) -> None:
    """Make the logs exactly what they were at the checkpoint: files a killed run wrote after
    it are removed or cut back, and files DVC deleted with the stage's output are rebuilt."""
    for path in (out_dir / "live").rglob("*"):
        if path.is_file() and path.relative_to(out_dir).as_posix() not in files:
            path.unlink()
    for name, text in files.items():
        path = out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name == "train.log":  # in place: the log handler may hold the file open (append)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
        else:
            atomic_write_text(text, path)

"""What a checkpoint carries of the model directory besides the weights: the run's logs (so a
resume makes them exactly what they were at the checkpoint) and the prefix model directories
written so far (`dvc repro` deletes a stage's outputs before it re-runs it, which would lose
them). Both as uint8 tensors, so that the checkpoint still loads with weights_only."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import torch

from regionharmony.io import atomic_directory, atomic_write_text


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


def pack_prefixes(prefix_dir: Path, names: Iterable[str]) -> dict[str, torch.Tensor]:
    """The prefix model directories `prefix_dir/<name>/` written so far, file by file
    (`<name>/<path>` -> bytes)."""
    packed = {}
    for name in names:
        folder = prefix_dir / name
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            packed[f"{name}/{path.relative_to(folder).as_posix()}"] = as_tensor(path.read_bytes())
    return packed


def restore_prefixes(prefix_dir: Path, packed: Mapping[str, torch.Tensor]) -> None:
    """Write back the prefix directories a checkpoint holds, where they are missing."""
    by_name: dict[str, dict[str, bytes]] = {}
    for key, tensor in packed.items():
        name, _, rel = key.partition("/")
        by_name.setdefault(name, {})[rel] = tensor.cpu().numpy().tobytes()
    for name, files in by_name.items():
        if (prefix_dir / name / "model.pt").is_file():
            continue
        with atomic_directory(prefix_dir / name, replace=True) as tmp:
            for rel, data in files.items():
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp / rel).write_bytes(data)

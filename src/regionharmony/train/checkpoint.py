"""Resumable checkpoints: written atomically, resumed only into the run that wrote them."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch

from regionharmony.config import Config
from regionharmony.io import atomic_save, source_digest

log = logging.getLogger("regionharmony.train")


def run_fingerprint(cfg: Config, train_names: list[str]) -> str:
    """What a checkpoint must match to be resumed: the configuration, the package source and
    the training list. Any change trains afresh instead of resuming into stale weights."""
    digest = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode())
    digest.update(source_digest().encode())
    digest.update("\n".join(train_names).encode())
    return digest.hexdigest()


class CheckpointStore:
    """`directory/last.pt`, stamped with the run's fingerprint."""

    def __init__(self, directory: Path, fingerprint: str) -> None:
        self.path = Path(directory) / "last.pt"
        self.fingerprint = fingerprint

    def save(self, state: dict[str, Any]) -> None:
        atomic_save({**state, "fingerprint": self.fingerprint}, self.path)

    def load(self, device: torch.device) -> dict[str, Any] | None:
        """The last checkpoint of this run, or None (none yet, or one of another run)."""
        if not self.path.is_file():
            return None
        state = torch.load(self.path, map_location=device, weights_only=True)
        if state.get("fingerprint") != self.fingerprint:
            log.warning("ignoring %s: it was written for another configuration", self.path)
            return None
        return state

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

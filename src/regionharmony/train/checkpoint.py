"""Resumable checkpoints: written atomically, resumed only into the run that wrote them."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from regionharmony.config import EXECUTION_KEYS, Config
from regionharmony.errors import CheckpointError
from regionharmony.io import TRAINING_CODE, atomic_save, source_digest

log = logging.getLogger("regionharmony.train")

# what `Trainer.save_checkpoint` writes (plus the fingerprint) and `Trainer.resume` reads
CHECKPOINT_KEYS = frozenset({"generator", "head", "optimizer", "scheduler", "step", "last", "logs"})


def first_line(err: BaseException) -> str:
    """The first line of an exception's message, or its type name when it has none."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def run_fingerprint(cfg: Config, train_names: list[str]) -> str:
    """What a checkpoint must match to be resumed: the configuration but for how it executes
    (`config.EXECUTION_KEYS`: a compiled run resumes eager, a bf16 run in fp32), the training
    code (`io.TRAINING_CODE`, the same files the train@ stages depend on) and the training list.
    Any other change trains afresh instead of resuming into stale weights; an edit elsewhere in
    the package (a report, the user study, `harmonize`) keeps the checkpoint."""
    what = cfg.to_dict()
    for key in EXECUTION_KEYS:
        what["train"].pop(key)
    digest = hashlib.sha256(json.dumps(what, sort_keys=True).encode())
    digest.update(source_digest(TRAINING_CODE).encode())
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
        """The last checkpoint of this run, or None (none yet, or one of another run).

        A file that cannot be read as a checkpoint (truncated, damaged, not written by the
        trainer) is refused with a `CheckpointError` naming it, rather than silently trained
        over: checkpoints are written atomically, so a damaged one means something outside the
        trainer touched it, and only the user can tell whether it is worth restoring.
        """
        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location=device, weights_only=True)
        except Exception as err:  # truncated zip, pickle error, not a torch file at all
            raise self.unusable(first_line(err)) from None
        if not isinstance(state, dict):
            raise self.unusable(f"it holds a {type(state).__name__}, not a checkpoint")
        if state.get("fingerprint") != self.fingerprint:
            log.warning("ignoring %s: it was written for another configuration", self.path)
            return None
        missing = sorted(CHECKPOINT_KEYS - set(state))
        if missing:
            raise self.unusable(f"missing {', '.join(missing)}")
        return state

    def unusable(self, why: str) -> CheckpointError:
        return CheckpointError(
            f"{self.path}: unreadable training checkpoint ({why}); delete it to train from "
            "the start, or restore a good copy to resume"
        )

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def lock(self) -> None:
        """Hold `directory/.lock` for this process's lifetime: a second trainer on the same
        checkpoint directory (a stale one, a second `dvc repro`) is refused, not interleaved."""
        lock_path = self.path.parent / ".lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock_path, "a+")  # noqa: SIM115 (held until the process ends)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise CheckpointError(
                f"{self.path.parent} is in use by another training (pid {owner}); wait for it "
                "or stop it, then run again"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock = handle

    def unlock(self) -> None:
        handle = getattr(self, "_lock", None)
        if handle is not None:
            (self.path.parent / ".lock").unlink(missing_ok=True)
            handle.close()
            self._lock = None
            with contextlib.suppress(OSError):  # a folder the lock alone created goes with it
                self.path.parent.rmdir()

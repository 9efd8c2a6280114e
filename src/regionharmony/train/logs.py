"""What a run records: DVCLive curves (every loss term per step, validation per epoch) and the
plain-text train.log."""

from __future__ import annotations

import logging
from pathlib import Path

from regionharmony.io import atomic_write_text


class TrainingLogs:
    """DVCLive under `live_dir`: `train/` per step, `val/` per epoch; resumes after a restart."""

    def __init__(self, live_dir: Path, step: int, epoch: int) -> None:
        from dvclive import Live

        trim_live_logs(live_dir, step, epoch)
        self.train, self.val = (
            Live(
                str(live_dir / part),
                resume=step > 0,
                save_dvc_exp=False,
                dvcyaml=False,
                report=None,
            )
            for part in ("train", "val")
        )

    def log_step(self, step: int, terms: dict[str, float], lr: float) -> None:
        self.train.step = step
        for key, value in terms.items():
            self.train.log_metric(f"loss/{key}", value)
        self.train.log_metric("lr", lr)

    def end_epoch(self) -> None:
        self.train.make_summary()

    def log_validation(self, epoch: int, step: int, scores: dict[str, float]) -> None:
        """One row per metric at DVCLive step `epoch`; `train_step` records the optimiser step.

        (Not a metric named "step": DVCLive's own step column has that name, so such a metric
        would replace the epoch in its row, and a resume would trim it by the wrong number.)
        """
        self.val.step = epoch
        for key, value in scores.items():
            self.val.log_metric(key, value)
        self.val.log_metric("train_step", step)
        self.val.make_summary()


def trim_live_logs(live_dir: Path, train_step: int, val_epoch: int) -> None:
    """Drop log rows written after the checkpoint a run resumes from (they will be redone):
    `train/` rows after step `train_step`, `val/` rows after epoch `val_epoch`."""
    for sub, last in (("train", train_step), ("val", val_epoch)):
        for tsv in (live_dir / sub).rglob("*.tsv"):
            lines = tsv.read_text().splitlines(keepends=True)
            if not lines:
                continue
            column = lines[0].rstrip("\n").split("\t").index("step")
            kept = [row for row in lines[1:] if int(row.split("\t")[column]) <= last]
            atomic_write_text("".join(lines[:1] + kept), tsv)


class _LazyFileHandler(logging.FileHandler):
    """A FileHandler that creates its file (and folder) only when the first record arrives, so
    a command that fails before logging anything leaves no file behind."""

    def _open(self):
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()

    def close(self) -> None:
        # detached too: a closed FileHandler that still receives records reopens its file
        logging.getLogger("regionharmony").removeHandler(self)
        super().close()


def attach_log_file(path: Path) -> logging.Handler:
    """Send the package's log records to `path` (created on the first record)."""
    handler = _LazyFileHandler(path, delay=True)
    # no timestamps: the log is part of the model directory, which a rerun reproduces bit for bit
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger("regionharmony").addHandler(handler)
    logging.getLogger("regionharmony").setLevel(logging.INFO)
    return handler

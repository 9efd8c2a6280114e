"""A stand-in for `dvclive.Live` writing its TSV layout (see README.md beside this folder)."""

from __future__ import annotations

import json
from pathlib import Path


class Live:
    def __init__(self, directory: str, resume: bool = False, **_options) -> None:
        self.dir, self.step, self.latest = Path(directory), 0, {}

    def log_metric(self, name: str, value: float) -> None:
        path = self.dir / "plots" / "metrics" / f"{name}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        leaf = name.rsplit("/", 1)[-1]
        new = not path.exists()
        with path.open("a", encoding="utf-8") as handle:
            handle.write(f"step\t{leaf}\n" if new else "")
            handle.write(f"{self.step}\t{value}\n")
        self.latest[name] = value

    def make_summary(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        summary = {"step": self.step, **self.latest}
        (self.dir / "metrics.json").write_text(json.dumps(summary, indent=4))

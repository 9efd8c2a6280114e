"""Write the digests of the code a model and an evaluation depend on, for dvc.yaml.

`dvc repro` re-runs a stage when one of its dependencies changes. The trainings depend on the
code of `io.TRAINING_CODE` (the method, its data, the trainer) and the evaluations on
`io.EVALUATION_CODE`; rather than repeat those lists in dvc.yaml, its `code_digest` stage (which
depends on the whole package, and is cheap) writes one digest file per list, and the trainings
and evaluations depend on that file: an edit to a report, the user study or `harmonize`
rewrites the same digest and re-runs neither. The digest is the one the resume fingerprint and
the models' `code_version` use.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from regionharmony.io import EVALUATION_CODE, TRAINING_CODE, atomic_write_text, source_digest

DIGESTS = {"training": TRAINING_CODE, "evaluation": EVALUATION_CODE}


def digest_text(parts: tuple[str, ...]) -> str:
    return f"{source_digest(parts)}\n# src/regionharmony/: {' '.join(parts)}\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for training.digest, evaluation.digest"
    )


def run(args: argparse.Namespace) -> int:
    for name, parts in DIGESTS.items():
        atomic_write_text(digest_text(parts), args.out / f"{name}.digest")
    return 0

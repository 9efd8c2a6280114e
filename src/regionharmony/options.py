"""Command-line flags that several subcommands share, defined once so they cannot drift."""

from __future__ import annotations

import argparse
from pathlib import Path

from regionharmony.data.layout import SPLITS, SUBSETS


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1 (argparse names the flag in its one-line error)."""
    return _int_at_least(text, 1)


def natural_int(text: str) -> int:
    """An argparse type: an integer >= 0."""
    return _int_at_least(text, 0)


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
    return value


def add_data_root(parser: argparse.ArgumentParser, help: str = "dataset root") -> None:
    parser.add_argument("--data-root", type=Path, required=True, metavar="DIR", help=help)


def add_split(parser: argparse.ArgumentParser, default: str = "test", all_: bool = False) -> None:
    choices = [*SPLITS, "all"] if all_ else list(SPLITS)
    parser.add_argument(
        "--split", choices=choices, default=default, help=f"split (default: {default})"
    )


def add_subsets(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument(
        "--subsets",
        nargs="+",
        choices=SUBSETS,
        metavar="SUBSET",
        help=f"{help} ({' '.join(SUBSETS)})",
    )


def add_progress(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="where the model runs (default: auto, a GPU when present)",
    )


def add_config(parser: argparse.ArgumentParser) -> None:
    """--params / --profile / --variant / --set: the layers of `params.resolve_config`."""
    parser.add_argument(
        "--params",
        type=Path,
        help="params.yaml with profile, profiles and variants (default: ./params.yaml when "
        "present; without it only the paper profile, the dataclass defaults, is known)",
    )
    parser.add_argument("--profile", help="overrides the params file's `profile`")
    parser.add_argument("--variant", help="a variant name from the params file's `variants`")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config field, e.g. --set train.epochs=3 (repeatable)",
    )

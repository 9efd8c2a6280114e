"""One run, two models: a variant whose run is the first part of another's (`train.prefix_of`,
params.yaml `prefix_variants`; Fig. 8/9's style fusion is Table VI row 3's run at half its
budget).

Where the two runs are the same step for step (`prefix_problem`), training the longer one
writes the shorter one's model directory at its last step, validated as that run would validate
itself, to OUT/prefix/<variant>/ (`Trainer.write_prefix`); its checkpoints carry those folders
(`pack_prefixes`, `restore_prefixes`: `dvc repro` deletes a stage's outputs before it re-runs
it). Training the variant then copies it (`copy_shared_prefix`) instead of training again, after
`shared_run_problem` found it to be this very run. Where it is not exact (the mini profile's
cosine schedule) or was not written, the variant trains on its own, and says why.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from regionharmony.config import Config, with_seed
from regionharmony.io import TRAINING_CODE, atomic_directory, code_version
from regionharmony.params import layer_prefix_of, resolve_config, variant_layers
from regionharmony.train.model_files import as_tensor

PREFIX_DIR = "prefix"  # OUT/prefix/<variant>/: a shared run's first part, as its own model dir
# what may differ between a prefix run and the run it is the beginning of
PREFIX_FREE_KEYS = ("budget", "validate", "prefix_of")


def prefix_problem(prefix: Config, parent: Config) -> str | None:
    """Why `prefix`'s run is not the first part of `parent`'s run, or None where it is.

    The two runs are the same step for step up to the prefix's end when everything that shapes
    a step is equal (init, data order, crops, patch draws and lr are functions of the seed,
    step and image: `train.plan`), apart from `PREFIX_FREE_KEYS`, and the learning rate does
    not depend on the run's length (a constant schedule; cosine decays over the whole run).
    Per-epoch validation does not touch the training state (eval mode, no gradients).
    """
    if parent.train.lr_schedule != "constant":
        return f"train.lr_schedule is {parent.train.lr_schedule}, not constant"
    a, b = prefix.to_dict(), parent.to_dict()
    for key in PREFIX_FREE_KEYS:
        a["train"].pop(key), b["train"].pop(key)
    for section in a:
        if a[section] != b[section]:
            if not isinstance(a[section], dict):
                return f"{section} differs"
            keys = sorted(k for k in a[section] if a[section][k] != b[section].get(k))
            return f"{', '.join(f'{section}.{k}' for k in keys)} differ"
    if prefix.train.budget > parent.train.budget:
        return f"train.budget {prefix.train.budget} is longer than {parent.train.budget}"
    return None


def prefixes_of(
    params: Mapping[str, Any],
    profile: str | None,
    variant: str | None,
    overrides: Mapping[str, Any] | None = None,
    source: str = "params.yaml",
) -> dict[str, Config]:
    """The resolved configs of the variants whose `train.prefix_of` names `variant`."""
    names = [
        name
        for name, layer in variant_layers(params, source).items()
        if variant and layer_prefix_of(layer) == variant
    ]
    return {name: resolve_config(params, profile, name, overrides, source) for name in names}


def copy_shared_prefix(cfg: Config, parent: Config, args: argparse.Namespace) -> bool:
    """Copy this variant's models from the run of `parent` it is the first part of (module
    docstring); False, saying why, where it must train on its own."""
    parent_name = cfg.train.prefix_of
    problem = prefix_problem(cfg, parent)
    if problem is not None:
        print(f"{args.variant}: trained on its own, not shared with {parent_name} ({problem})")
        return False
    parent_dir = args.out.parent / parent_name
    pairs = [(cfg, parent_dir, args.out)]
    if args.seeds:
        pairs = [
            (with_seed(cfg, seed), parent_dir / f"seed{seed}", args.out / f"seed{seed}")
            for seed in args.seeds
        ]
    sources = []
    for seeded, parent_run, out in pairs:
        shared = parent_run / PREFIX_DIR / args.variant
        problem = shared_run_problem(shared, seeded, args.data_root)
        if problem is not None:
            print(f"{args.variant}: trained on its own: {shared} {problem}")
            return False
        sources.append((shared, out))
    for shared, out in sources:
        with atomic_directory(out, replace=True) as tmp:
            shutil.copytree(shared, tmp, dirs_exist_ok=True)
        steps = json.loads((shared / "summary.json").read_text())["steps"]
        print(f"{out}: the first {steps} steps of {shared.parent.parent} (one shared run)")
    return True


def shared_run_problem(shared: Path, cfg: Config, data_root: Path) -> str | None:
    """Why the model directory `shared` is not this run of `cfg` on `data_root`, or None."""
    try:
        config = json.loads((shared / "config.json").read_text())
        summary = json.loads((shared / "summary.json").read_text())
    except (OSError, ValueError):
        return "holds no finished run"
    if config != cfg.to_dict():
        return "holds a run of another config"
    if summary.get("code_version") != code_version(TRAINING_CODE):
        return "was trained by other training code"
    if summary.get("data", {}).get("root") != str(data_root):
        return f"was trained on {summary.get('data', {}).get('root')}, not {data_root}"
    return None


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

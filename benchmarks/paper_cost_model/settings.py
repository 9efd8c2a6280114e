"""The counts of a paper-profile `dvc repro`, read from params.yaml and dvc.yaml."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .data import SUBSETS


@dataclass(frozen=True)
class Variant:
    name: str
    budget: float
    epochs: int  # epochs this variant trains: round(epochs x budget), at least 1
    steps: int
    images: int  # per model (seed)
    kind: str = "variants"  # the params.yaml mapping: variants | prefix_variants | studies
    shared: bool = False  # a prefix variant that is exactly its parent's first part (paper)
    parent: str = ""  # train.prefix_of


@dataclass(frozen=True)
class Settings:
    variants: dict[str, Variant]
    switch_studies: frozenset[str]  # the studies the paper switch keeps
    seeds: int
    eval_size: int
    highres: tuple[int, ...]
    batch_size: int
    steps_per_epoch: int
    paper_train: dict[str, Any]  # profiles.paper.train of params.yaml (printed only)
    image_size: int
    baselines: tuple[str, ...]
    study_candidates: int
    mini_pairs: int
    mini_size: int
    feature_images: int
    reports: int
    stages: tuple[str, ...]


def paper_switch(text: str) -> dict[str, Any]:
    """A paper switch written as a commented block of params.yaml ('replace this block
    with:'), as a mapping; {} when there is none."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if "replace this block with" in line), None)
    if start is None:
        return {}
    block = []
    for line in lines[start + 1 :]:
        if not line.startswith("#   "):
            break
        block.append(line[4:])
    loaded = yaml.safe_load("\n".join(block))
    return loaded if isinstance(loaded, dict) else {}


def switched(base: Mapping[str, Any], switch: Mapping[str, Any]) -> dict[str, Any]:
    """params.yaml with a commented switch block's keys put in: each key the switch names is
    replaced whole (an empty `studies: {}` leaves no study)."""
    return {**base, **switch}


def paper_params(text: str, params_path: Path) -> dict[str, Any]:
    """params.yaml (`text`) as the paper switch makes it: its '# switch: NAME' block replaced by
    switches/paper.yaml, as `regionharmony switch paper` does; a params.yaml without that
    marker takes the keys of its commented block (`paper_switch`)."""
    from regionharmony.switch import MARKER
    from regionharmony.switch import switched as switch_block

    if any(MARKER.match(line) for line in text.splitlines()):
        return yaml.safe_load(switch_block(text, params_path, "paper", force=True)) or {}
    return switched(yaml.safe_load(text) or {}, paper_switch(text))


def epochs_run(epochs: int, budget: float) -> int:
    """Epochs a run trains (train.Trainer: round(epochs x budget), at least one)."""
    return max(1, round(epochs * budget))


def images_per_run(train_pairs: int, batch_size: int, epochs: int, budget: float) -> int:
    """Training images one model sees: whole batches per epoch (the last partial one dropped)."""
    return (train_pairs // batch_size) * batch_size * epochs_run(epochs, budget)


def resolve_variants(params: Mapping[str, Any], params_path: Path) -> dict[str, Variant]:
    """Every variant of params.yaml (all of config.VARIANT_MAPPINGS), resolved on the paper
    profile; a prefix variant is `shared` where it is its parent's first part there."""
    from regionharmony.params import VARIANT_MAPPINGS, build_config
    from regionharmony.train.prefix import prefix_problem

    train_pairs = sum(s.train for s in SUBSETS.values())
    out = {}
    for kind in VARIANT_MAPPINGS:
        for name, layer in (params.get(kind) or {}).items():
            cfg = build_config("paper", variant=layer or {}, params_path=params_path)
            tc = cfg.train
            shared = False
            if tc.prefix_of:
                parent_layer = (params.get("variants") or {}).get(tc.prefix_of) or {}
                parent = build_config("paper", variant=parent_layer, params_path=params_path)
                shared = prefix_problem(cfg, parent) is None
            epochs = epochs_run(tc.epochs, tc.budget)
            steps = (train_pairs // tc.batch_size) * epochs
            images = images_per_run(train_pairs, tc.batch_size, tc.epochs, tc.budget)
            out[name] = Variant(name, tc.budget, epochs, steps, images, kind, shared, tc.prefix_of)
    return out


def study_candidates(params: Mapping[str, Any]) -> int:
    """Images per user-study group: the composite and every method of params.yaml user_study."""
    return 1 + len((params.get("user_study") or {}).get("methods") or {})


def read_settings(params_path: Path, dvc_path: Path) -> Settings:
    """The counts of a paper-profile `dvc repro` from params.yaml and dvc.yaml."""
    from regionharmony.params import build_config

    text = params_path.read_text(encoding="utf-8")
    raw = yaml.safe_load(text) or {}
    params = paper_params(text, params_path)
    dvc = yaml.safe_load(dvc_path.read_text(encoding="utf-8")) or {}
    tc = build_config("paper", params_path=params_path).train
    mini = params.get("mini", {})
    stages = tuple(dvc.get("stages", {}))
    return Settings(
        variants=resolve_variants(raw, params_path),
        switch_studies=frozenset(params.get("studies") or {}),
        seeds=int(params.get("seeds", 1)),
        eval_size=int(params.get("evaluate", {}).get("size", 256)),
        highres=tuple(int(s) for s in params.get("evaluate", {}).get("highres", [])),
        batch_size=tc.batch_size,
        steps_per_epoch=sum(s.train for s in SUBSETS.values()) // tc.batch_size,
        paper_train=dict(params.get("profiles", {}).get("paper", {}).get("train", {})),
        image_size=tc.image_size,
        baselines=tuple(params.get("reports", {}).get("baselines", [])),
        study_candidates=study_candidates(params),
        mini_pairs=4 * (int(mini.get("train_per_subset", 0)) + int(mini.get("test_per_subset", 0))),
        mini_size=int(mini.get("size", 256)),
        feature_images=int(params.get("figures", {}).get("feature_images", 0)),
        reports=sum(1 for name in stages if name.startswith("report_")),
        stages=stages,
    )

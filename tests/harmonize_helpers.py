"""What the harmonize tests share: a random mini network standing in for a trained model, saved
as a training saves one, and textured composite/mask pairs (conftest.py's `random_model_dir`
and `random_engine` are made from it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from regionharmony.model.harmonizer import build_model
from regionharmony.params import build_config

TRAIN_SIZE = 32


def random_network(seed: int = 0) -> torch.nn.Module:
    """The mini profile with random weights standing in for a trained model: BatchNorm running
    statistics calibrated on random batches (as training would set them) and a small non-zero
    output layer, so that the network changes the foreground by about 10 levels (a fresh model
    is the identity map, which would hide every bug)."""
    torch.manual_seed(seed)
    model = build_model(build_config("mini"))
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # running statistics = the average over the batches below
    torch.nn.init.normal_(model.to_rgb.weight, std=0.005)
    model.train()
    with torch.no_grad():
        for _ in range(4):
            mask = torch.zeros(4, 1, 64, 64)
            mask[..., 10:40, 20:50] = 1
            model(torch.rand(4, 3, 64, 64), mask)
    return model.eval()


def save_random_model(folder: Path, seed: int = 0) -> Path:
    """A model directory as train.py writes it (model.pt + config.json) of `random_network`;
    conftest.py's `random_model_dir` is one."""
    cfg = build_config("mini", {"train": {"image_size": TRAIN_SIZE}})
    torch.save(random_network(seed).state_dict(), folder / "model.pt")
    (folder / "config.json").write_text(json.dumps(cfg.to_dict()))
    return folder


def make_pair(height: int = 53, width: int = 71, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A textured composite (odd, non-square) with a brightened box foreground."""
    rng = np.random.default_rng(seed)
    composite = rng.integers(0, 200, (height, width, 3), dtype=np.uint8)
    mask = np.zeros((height, width), bool)
    mask[height // 5 : height // 2 + 3, width // 4 : width // 2 + 5] = True
    composite[mask] = np.clip(composite[mask].astype(int) + 50, 0, 255).astype(np.uint8)
    return composite, mask


def write_pair(folder: Path, name: str, height=53, width=71, seed=1) -> tuple[Path, Path]:
    composite, mask = make_pair(height, width, seed)
    folder.mkdir(parents=True, exist_ok=True)
    comp_path, mask_path = folder / f"{name}.jpg", folder / f"{name}_mask.png"
    Image.fromarray(composite).save(comp_path, quality=95)
    Image.fromarray(mask.astype(np.uint8) * 255).save(mask_path)
    return comp_path, mask_path


def single_image_args(model_dir: Path, composite: Path, mask: Path, out: Path) -> list[str]:
    """`harmonize`'s arguments for one composite: --checkpoint MODEL COMPOSITE MASK --out OUT."""
    return ["--checkpoint", str(model_dir), str(composite), str(mask), "--out", str(out)]

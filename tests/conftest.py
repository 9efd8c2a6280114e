"""Shared fixtures: small iHarmony4-layout roots written by the tests themselves."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from regionharmony.data import SPLITS, SUBSETS, parse_composite_name
from regionharmony.data.mini import build_mini

# subset -> split -> composite names; ids with '-' and '_', several k per mask
DEFAULT_PAIRS: dict[str, dict[str, list[str]]] = {
    "HCOCO": {"train": ["c1_1_1.jpg", "c1_1_2.jpg", "c1_2_1.jpg"], "test": ["c2_1_1.jpg"]},
    "HAdobe5k": {"train": ["a0001_1_1.jpg", "a0001_1_2.jpg"], "test": ["a0002_3_1.jpg"]},
    "HFlickr": {"train": ["f_x_7_1_1.jpg"], "test": ["f9_1_1.jpg", "f9_1_2.jpg"]},
    "Hday2night": {"train": ["d90000-10_1_3.jpg"], "test": ["d90001-2_1_1.jpg"]},
}


def write_root(
    root: Path,
    pairs: dict[str, dict[str, list[str]]] | None = None,
    size: tuple[int, int] = (40, 32),
    seed: int = 0,
) -> Path:
    """Write an iHarmony4-layout root: random real images, a box mask per mask id, composites
    equal to the real image with a brightened foreground; lists for every split."""
    pairs = DEFAULT_PAIRS if pairs is None else pairs
    rng = np.random.default_rng(seed)
    w, h = size
    for split in SPLITS:
        lines = []
        for subset in SUBSETS:
            if subset not in pairs:
                continue
            names = pairs[subset].get(split, [])
            folder = root / subset
            for sub in ("composite_images", "masks", "real_images"):
                (folder / sub).mkdir(parents=True, exist_ok=True)
            for name in names:
                image_id, mask_id, _ = parse_composite_name(name)
                real_path = folder / "real_images" / f"{image_id}.jpg"
                mask_path = folder / "masks" / f"{image_id}_{mask_id}.png"
                if not real_path.exists():
                    real = rng.integers(0, 200, (h, w, 3), dtype=np.uint8)
                    Image.fromarray(real).save(real_path, quality=95)
                real = np.asarray(Image.open(real_path))
                if not mask_path.exists():
                    mask = np.zeros((h, w), np.uint8)
                    mask[h // 4 : h // 2 + 2, w // 4 : w // 2 + 3] = 255
                    Image.fromarray(np.stack([mask] * 3, -1)).save(mask_path)
                fg = np.asarray(Image.open(mask_path))[..., 0] > 127
                composite = real.copy()
                composite[fg] = np.clip(real[fg].astype(int) + 50, 0, 255)
                Image.fromarray(composite).save(folder / "composite_images" / name, quality=95)
            (folder / f"{subset}_{split}.txt").write_text("".join(f"{n}\n" for n in names))
            lines += [f"{subset}/composite_images/{n}" for n in names]
        (root / f"IHD_{split}.txt").write_text("".join(f"{line}\n" for line in lines))
    return root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The default small root (`DEFAULT_PAIRS`, 40 x 32 images) at tmp_path/root."""
    return write_root(tmp_path / "root")


@pytest.fixture
def make_root(tmp_path: Path):
    """`make_root(name, **write_root_kwargs)` writes another root under tmp_path."""
    return lambda name, **kwargs: write_root(tmp_path / name, **kwargs)


@pytest.fixture(scope="session")
def mini_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small embedded dataset (64 px, 6 train / 4 test pairs per subset), built once."""
    out = tmp_path_factory.mktemp("mini") / "mini"
    build_mini(out, seed=0, size=64, train_per_subset=6, test_per_subset=4)
    return out


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """The embedded dataset, small: 4 train / 2 test pairs per subset at 64 px."""
    root = tmp_path_factory.mktemp("data") / "mini"
    build_mini(root, seed=0, size=64, train_per_subset=4, test_per_subset=2)
    return root


@pytest.fixture(scope="session")
def hermetic_kernel(tmp_path_factory):
    """A `python3` kernelspec that runs this interpreter, first on JUPYTER_PATH."""
    spec = tmp_path_factory.mktemp("jupyter") / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "Python 3", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel))
    saved = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = str(spec.parent.parent)
    yield
    if saved is None:
        os.environ.pop("JUPYTER_PATH", None)
    else:
        os.environ["JUPYTER_PATH"] = saved


@pytest.fixture
def interrupted_run(monkeypatch):
    """interrupted_run(trainer_factory, step): run a Trainer that dies with KeyboardInterrupt
    as it starts step `step + 1` (as a killed process would, after its last checkpoint)."""
    from regionharmony.train import Trainer

    def run(make_trainer, step: int) -> None:
        original = Trainer.train_step

        def dying_step(self, batch):
            if self.step == step:
                raise KeyboardInterrupt
            return original(self, batch)

        monkeypatch.setattr(Trainer, "train_step", dying_step)
        try:
            with pytest.raises(KeyboardInterrupt):
                make_trainer().run()
        finally:
            monkeypatch.setattr(Trainer, "train_step", original)

    return run


@pytest.fixture(scope="module")
def model_dir(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained (two steps) tiny model directory."""
    from cli_helpers import TINY

    from regionharmony.params import build_config
    from regionharmony.train import Trainer

    out = tmp_path_factory.mktemp("models") / "tiny"
    cfg = build_config("mini", {**TINY, "train": {**TINY["train"], "max_steps": 2}})
    Trainer(cfg, tiny_root, out, show_progress=False).run()
    return out


@pytest.fixture(scope="session")
def random_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random mini network saved as a training saves a model (tests/harmonize_helpers.py)."""
    from harmonize_helpers import save_random_model

    return save_random_model(tmp_path_factory.mktemp("random_model"))


@pytest.fixture(scope="session")
def random_engine(random_model_dir: Path):
    """`random_model_dir` loaded for inference on the CPU in fp32."""
    from regionharmony.inference.engine import load_engine

    return load_engine(random_model_dir, device="cpu", precision="fp32")

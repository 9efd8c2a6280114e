"""Checkpoints that cannot be used: damaged files, weights that do not fit their config.json,
a resumable checkpoint without its state; each refused in one line that names the file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import files_of, one_error_line, truncate, write_tiny_params
from PIL import Image

from regionharmony.cli import main
from regionharmony.cli import main as cli_main
from regionharmony.errors import CheckpointError
from regionharmony.io import atomic_save
from regionharmony.params import build_config
from regionharmony.train import Trainer


def _model_dir(folder: Path, state: dict[str, torch.Tensor]) -> Path:
    folder.mkdir(parents=True)
    cfg = build_config("mini", {"train": {"image_size": 32}})
    (folder / "config.json").write_text(json.dumps(cfg.to_dict()))
    torch.save(state, folder / "model.pt")
    return folder


def _mini_state(**model) -> dict[str, torch.Tensor]:
    from regionharmony.model.harmonizer import build_model

    return build_model(build_config("mini", {"model": model} if model else None)).state_dict()


@pytest.fixture
def wider(tmp_path) -> Path:
    """model.pt of a base_width 16 network beside the config.json of a base_width 8 one."""
    return _model_dir(tmp_path / "wider", _mini_state(base_width=16))


@pytest.fixture
def renamed(tmp_path) -> Path:
    """model.pt with two keys missing and one it should not have."""
    state = _mini_state()
    first, second = list(state)[:2]
    del state[first], state[second]
    state["extra.weight"] = torch.zeros(1)
    return _model_dir(tmp_path / "renamed", state)


def test_differing_shapes_are_named_with_a_count(wider):
    from regionharmony.model.harmonizer import load_checkpoint

    expected, saved = _mini_state(), _mini_state(base_width=16)
    differ = sum(expected[k].shape != saved[k].shape for k in expected)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(wider)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{wider / 'model.pt'}: not a usable checkpoint")
    assert str(wider / "config.json") in message
    assert f"{differ} shapes differ" in message and "encoder.0." in message
    assert "[16, 4, 3, 3]" in message and "[8, 4, 3, 3]" in message
    assert "missing" not in message and "unexpected" not in message


def test_missing_and_unexpected_keys_are_named(renamed):
    from regionharmony.model.harmonizer import load_checkpoint

    names = list(_mini_state())[:2]
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(renamed)
    message = str(caught.value)
    assert "\n" not in message and str(renamed / "config.json") in message
    assert "2 missing" in message and all(name in message for name in names)
    assert "1 unexpected" in message and "extra.weight" in message


def test_harmonize_and_evaluate_say_why_the_weights_do_not_fit(wider, renamed, root, capsys):
    pixels = np.zeros((20, 24, 3), np.uint8)
    mask = np.zeros((20, 24), np.uint8)
    mask[5:12, 6:14] = 255
    folder = wider.parent
    Image.fromarray(pixels).save(folder / "c.png")
    Image.fromarray(mask).save(folder / "m.png")
    pair = [str(folder / "c.png"), str(folder / "m.png"), "--out", str(folder / "o.png")]
    assert cli_main(["harmonize", "--checkpoint", str(wider), *pair, "--no-progress"]) == 1
    line = one_error_line(capsys)
    assert str(wider / "model.pt") in line and str(wider / "config.json") in line
    assert "shapes differ" in line and "[16, 4, 3, 3]" in line
    assert not (folder / "o.png").exists()

    argv = ["evaluate", "--checkpoint", str(renamed), "--data-root", str(root)]
    out = folder / "evaluation"
    assert cli_main([*argv, "--out", str(out), "--size", "32", "--no-progress"]) == 1
    line = one_error_line(capsys)
    assert str(renamed / "model.pt") in line and "2 missing" in line and "extra.weight" in line


def test_many_differences_are_cut_to_a_few(wider):
    from regionharmony.model.harmonizer import load_checkpoint

    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(wider)
    message = str(caught.value)
    assert len(message) < 900, message
    assert "..." in message


def other_architecture(path: Path) -> None:
    from regionharmony.model.harmonizer import build_model

    atomic_save(build_model(build_config("mini", {"model": {"base_width": 16}})).state_dict(), path)


CHECKPOINT_MISTAKES = {
    "truncated_model": ("model.pt", truncate, "not a usable checkpoint"),
    "other_architecture": ("model.pt", other_architecture, "not a usable checkpoint"),
    "no_config": ("config.json", Path.unlink, "model config not found"),
    "config_not_json": (
        "config.json",
        lambda p: p.write_text("{"),
        "unreadable model config",
    ),
    "config_key_typo": (
        "config.json",
        lambda p: p.write_text(json.dumps({"model": {"widht": 3}})),
        "unknown parameter model.widht",
    ),
}


@pytest.mark.parametrize("case", sorted(CHECKPOINT_MISTAKES))
def test_evaluate_refuses_a_bad_checkpoint_in_one_line(
    case, model_dir, tiny_root, tmp_path, capsys
):
    name, damage, expected = CHECKPOINT_MISTAKES[case]
    broken = tmp_path / "model"
    shutil.copytree(model_dir, broken)
    damage(broken / name)
    evaluation = tmp_path / "evaluations" / "e"
    argv = ["evaluate", "--checkpoint", str(broken), "--data-root", str(tiny_root)]
    assert main([*argv, "--out", str(evaluation), "--size", "32", "--no-progress"]) == 1
    line = one_error_line(capsys)
    assert str(broken / name) in line and expected in line, line
    assert not evaluation.parent.exists()


def test_a_damaged_resumable_checkpoint_is_refused_naming_it(tiny_root, tmp_path, capsys):
    """A truncated last.pt, and one with the run's fingerprint but without its optimiser state
    (once a KeyError), stop `train` with one line that names the file and says to delete it;
    the model directory is left as it was."""
    params = write_tiny_params(tmp_path / "params.yaml")
    out = tmp_path / "models" / "m"
    last = out / "checkpoints" / "last.pt"
    cfg = build_config("mini", params_path=params)
    fingerprint = Trainer(cfg, tiny_root, out, show_progress=False).checkpoints.fingerprint
    argv = ["train", "--params", str(params), "--data-root", str(tiny_root), "--out", str(out)]
    for damage in ("truncated", "incomplete"):
        atomic_save({"fingerprint": fingerprint, "step": torch.tensor(2)}, last)
        if damage == "truncated":
            truncate(last)
        before = files_of(out)
        assert main([*argv, "--no-progress"]) == 1
        line = one_error_line(capsys)
        assert str(last) in line and "delete it" in line, line
        assert damage != "incomplete" or "missing generator, head, last, logs, optimizer" in line
        assert files_of(out) == before

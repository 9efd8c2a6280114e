"""Shared runs (`train.prefix_of`): where a variant's run is the first part of another's, the
copy taken from that run equals the variant trained on its own, byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest

from regionharmony.cli import main
from regionharmony.errors import ConfigError
from regionharmony.params import build_config, load_params, resolve_config
from regionharmony.train.prefix import prefix_problem


def write_params(folder: Path, schedule: str, prefixes: bool = True) -> Path:
    """full: 2 epochs of 4 steps on the tiny root; half: its first epoch, validated."""
    train = (
        "{batch_size: 4, epochs: 2, image_size: 32, load_size: 32, val_limit: 4, "
        f"checkpoint_every: 3, lr_schedule: {schedule}}}"
    )
    text = (
        "profile: mini\nprofiles:\n  mini:\n    model: {base_width: 8, depth: 4, blocks: 1}\n"
        f"    loss: {{num_patches: 8}}\n    train: {train}\nvariants:\n  full: {{}}\n"
    )
    if prefixes:
        half = "{train: {budget: 0.5, validate: true, prefix_of: full}}"
        text += f"prefix_variants:\n  half: {half}\n"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.yaml").write_text(text)
    return folder / "params.yaml"


def train(params: Path, variant: str, root: Path, out: Path) -> None:
    argv = ["train", "--params", str(params), "--variant", variant, "--num-seeds", "1"]
    assert main([*argv, "--data-root", str(root), "--out", str(out), "--no-progress"]) == 0


def tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_the_shared_prefix_equals_the_variant_trained_on_its_own(tiny_root, tmp_path, capsys):
    params = write_params(tmp_path / "shared", "constant")
    models = tmp_path / "shared" / "models"
    train(params, "full", tiny_root, models / "full")
    assert (models / "full/seed0/prefix/half/model.pt").is_file()
    capsys.readouterr()
    train(params, "half", tiny_root, models / "half")
    assert "the first 4 steps of" in capsys.readouterr().out
    shared = tree(models / "half/seed0")
    # the same variant with no parent run beside it trains on its own
    train(params, "half", tiny_root, tmp_path / "alone" / "half")
    assert "trained on its own" in capsys.readouterr().out
    alone = tree(tmp_path / "alone" / "half/seed0")
    assert sorted(shared) == sorted(alone) and "live/val/plots/metrics/psnr.tsv" in alone
    assert [name for name in alone if shared[name] != alone[name]] == []
    # a parent run on another data root is not taken (here the same files under another name)
    link = tmp_path / "elsewhere"
    link.symlink_to(tiny_root)
    train(params, "half", link, models / "half_elsewhere")
    assert f"was trained on {tiny_root}, not {link}" in capsys.readouterr().out
    # validating for the prefix leaves full's own training untouched
    plain = write_params(tmp_path / "plain", "constant", prefixes=False)
    train(plain, "full", tiny_root, tmp_path / "plain" / "models" / "full")
    own = (tmp_path / "plain/models/full/seed0/model.pt").read_bytes()
    assert (models / "full/seed0/model.pt").read_bytes() == own


def test_under_a_cosine_schedule_the_prefix_trains_on_its_own(tiny_root, tmp_path, capsys):
    params = write_params(tmp_path, "cosine")
    train(params, "full", tiny_root, tmp_path / "models" / "full")
    assert not (tmp_path / "models/full/seed0/prefix").exists()
    assert not (tmp_path / "models/full/seed0/live/val/plots").exists()  # no validation
    capsys.readouterr()
    train(params, "half", tiny_root, tmp_path / "models" / "half")
    out = capsys.readouterr().out
    assert "not shared with full (train.lr_schedule is cosine, not constant)" in out
    assert (tmp_path / "models/half/seed0/model.pt").is_file()


def test_prefix_problem_names_what_differs():
    parent = build_config("paper")
    prefix = build_config("paper", variant={"train": {"budget": 0.5, "validate": True}})
    assert prefix_problem(prefix, parent) is None
    other = build_config("paper", variant={"train": {"budget": 0.5}, "loss": {"num_patches": 8}})
    assert prefix_problem(other, parent) == "loss.num_patches differ"
    cosine = build_config("paper", variant={"train": {"lr_schedule": "cosine"}})
    assert "cosine" in prefix_problem(prefix, cosine)


def test_the_repository_shares_fusion_style_only_under_the_paper_profile():
    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    for profile, exact in (("paper", True), ("paper_smoke", True), ("mini", False)):
        prefix = resolve_config(params, profile, "fusion_style")
        parent = resolve_config(params, profile, "l1_pixel_sf")  # Table VI row 3
        assert (prefix_problem(prefix, parent) is None) == exact, profile


def test_a_prefix_of_an_unknown_variant_is_refused(tmp_path):
    params = {"variants": {"full": {}}, "prefix_variants": {"x": {"train": {"prefix_of": "nope"}}}}
    with pytest.raises(ConfigError, match="prefix_variants.x.train.prefix_of"):
        resolve_config(params, "paper", "full")
    twice = {"variants": {"full": {}}, "studies": {"full": {}}}
    with pytest.raises(ConfigError, match="defined twice"):
        resolve_config(twice, "paper", "full")


def test_a_resumed_parent_run_keeps_the_prefix_it_wrote(tiny_root, tmp_path, interrupted_run):
    """`dvc repro` deletes a stage's outputs before it re-runs it: a parent run killed after its
    prefix's last step restores the prefix directory from its checkpoint, byte for byte."""
    import shutil

    from regionharmony.train import Trainer

    params = load_params(write_params(tmp_path, "constant"))
    parent, half = resolve_config(params, None, "full"), resolve_config(params, None, "half")

    def trainer(out: Path) -> Trainer:
        return Trainer(parent, tiny_root, out, tmp_path / f"{out.name}_ckpt",
                       show_progress=False, prefixes={"half": half})  # fmt: skip

    trainer(tmp_path / "whole").run()
    interrupted_run(lambda: trainer(tmp_path / "killed"), 6)  # after the checkpoint at step 6
    assert (tmp_path / "killed/prefix/half/model.pt").is_file()
    shutil.rmtree(tmp_path / "killed")  # what dvc repro does to the stage's outputs
    trainer(tmp_path / "killed").run()
    assert tree(tmp_path / "killed/prefix/half") == tree(tmp_path / "whole/prefix/half")

"""benchmarks/paper_cost.py: the smoke run (--quick) and its pure counting functions."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "paper_cost.py"
TRAIN_PAIRS = 65742  # iHarmony4's training split


@pytest.fixture(scope="module")
def cost() -> ModuleType:
    spec = importlib.util.spec_from_file_location("paper_cost", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["paper_cost"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def settings(cost: ModuleType):
    return cost.read_settings(ROOT / "params.yaml", ROOT / "dvc.yaml")


def test_quick_run_prints_both_plans(tmp_path: Path) -> None:
    out = tmp_path / "cost.json"
    command = [sys.executable, str(SCRIPT), "--quick", "--json", str(out)]
    command += ["--launch-gpus", "1", "8", "--cpu-workers", "128"]  # 8 GPUs not loader-bound
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "== old plan" in result.stdout and "== new plan" in result.stdout
    assert "== side by side ==" in result.stdout and "== targets" in result.stdout
    report = json.loads(out.read_text())
    old, new = (report["plans"][n]["summary"] for n in ("old", "new"))
    assert new["training images (M)"] < old["training images (M)"]
    assert new["pipeline wall hours"] < old["pipeline wall hours"]
    one, eight = report["launch"]
    assert one["gpus"] == 1 and one["ddp"] == pytest.approx(one["independent"])
    assert eight["ddp"] < one["ddp"] and eight["independent"] < one["independent"]
    assert 0 < eight["break_even"] <= 1 and "== several GPUs" in result.stdout
    assert {t["target"] for t in report["targets"]} and all(
        isinstance(t["holds"], bool) for t in report["targets"]
    )


def test_images_per_run(cost: ModuleType) -> None:
    per_epoch = (TRAIN_PAIRS // 8) * 8
    assert per_epoch == 65736
    assert cost.images_per_run(TRAIN_PAIRS, 8, 120, 1.0) == 120 * per_epoch
    assert cost.images_per_run(TRAIN_PAIRS, 8, 120, 0.5) == 60 * per_epoch
    assert cost.epochs_run(3, 0.5) == 2 and cost.epochs_run(1, 0.1) == 1


def test_settings_from_params(cost: ModuleType, settings) -> None:
    assert settings.seeds == 1  # the paper switch of params.yaml
    assert settings.eval_size == 256 and settings.highres == (512, 1024)
    assert settings.steps_per_epoch == TRAIN_PAIRS // settings.batch_size
    for name in ("fusion_adain", "fusion_rain", "fusion_style"):
        assert settings.variants[name].budget == 0.5
        assert settings.variants[name].epochs == 60
    assert settings.variants["full"].images == 120 * 65736
    assert settings.reports >= 1 and settings.study_candidates == 5


def test_training_images_of_the_plans(cost: ModuleType, settings) -> None:
    old = cost.training_images(settings, cost.PLANS["old"])
    new = cost.training_images(settings, cost.PLANS["new"])
    expected = sum(
        cost.images_per_run(TRAIN_PAIRS, 8, 120, v.budget) for v in settings.variants.values()
    )
    assert old == expected  # acfbd9c trained every variant, its L_HCL study too
    # the new plan: fusion_style is full's first half, the paper switch keeps no study
    shared = [v.name for v in settings.variants.values() if v.shared]
    studies = [v for v in settings.variants.values() if v.kind == "studies"]
    assert shared == ["fusion_style"] and studies and not settings.switch_studies
    dropped = sum(
        cost.images_per_run(TRAIN_PAIRS, 8, 120, v.budget)
        for v in settings.variants.values()
        if v.shared or v.kind == "studies"
    )
    assert new == old - dropped
    assert new <= cost.TARGET_TRAIN_IMAGES
    names = [v.name for v in cost.validating_variants(settings, cost.PLANS["new"])]
    assert sorted(names) == ["fusion_adain", "fusion_rain", "fusion_style"]
    assert len(cost.validating_variants(settings, cost.PLANS["old"])) == len(settings.variants)


def test_paper_switch(cost: ModuleType) -> None:
    text = (
        "# replace this block with:\n#   profile: paper\n#   evaluate: {highres: [512]}\n"
        "#   seeds: 1\nprofile: mini\nseeds: 3\n"
    )
    switch = cost.paper_switch(text)
    assert switch == {"profile": "paper", "evaluate": {"highres": [512]}, "seeds": 1}
    params = cost.switched({"seeds": 3, "evaluate": {"size": 64}, "studies": {"a": {}}}, switch)
    assert params["evaluate"] == {"highres": [512]} and params["seeds"] == 1
    assert cost.switched({"studies": {"a": {}}}, {"studies": {}})["studies"] == {}
    assert cost.paper_switch("profile: mini\n") == {}


def test_checkpoint_writes(cost: ModuleType) -> None:
    def brute(total: int, per_epoch: int, every: int) -> int:
        steps = range(1, total + 1)
        return sum(1 for s in steps if s % every == 0 or s % per_epoch == 0)

    for total, per_epoch, every in [(100, 25, 10), (986040, 8217, 2000), (60, 20, 7)]:
        assert cost.checkpoint_writes_by_steps(total, per_epoch, every) == brute(
            total, per_epoch, every
        )
    assert cost.checkpoint_writes_by_clock(3 * 3600 + 5, 30) == 6
    assert cost.checkpoint_writes_by_clock(1000, 30) == 0


def test_workers_and_item_wall(cost: ModuleType) -> None:
    assert cost.resolve_workers("main", 16, 1) == 0
    assert cost.resolve_workers("8/rank", 16, 1) == 8
    assert cost.resolve_workers("8/rank", 16, 8) == 16
    assert cost.resolve_workers("cores-2", 16, 8) == 14
    assert cost.resolve_workers("cores", 32, 1) == 32
    with pytest.raises(ValueError):
        cost.resolve_workers("many", 16, 1)
    assert cost.item_wall(0.02, 0.001, 0.002, 0) == pytest.approx(0.023)
    assert cost.item_wall(0.02, 0.001, 0.002, 10) == pytest.approx(0.003)
    assert cost.item_wall(0.08, 0.001, 0.002, 10) == pytest.approx(0.008)


def test_separable_ssim_equals_2d(cost: ModuleType) -> None:
    from regionharmony.evaluation.metrics import iih_ssim_map

    rng = np.random.default_rng(0)
    target = rng.uniform(0, 255, (40, 48, 3))
    pred = np.clip(target + rng.normal(0, 10, target.shape), 0, 255)
    two_d = cost.iih_ssim(pred, target, cost.blur_2d)
    assert np.allclose(cost.iih_ssim(pred, target, cost.blur_separable), two_d, atol=1e-9)
    assert np.allclose(iih_ssim_map(pred, target), two_d, atol=1e-9)


def test_makespan_schedules_longest_first(cost: ModuleType) -> None:
    assert cost.makespan([120, 120, 60, 60, 60], 8) == 120
    assert cost.makespan([120] * 8 + [60] * 3, 8) == 180
    assert cost.makespan([3, 3, 2, 2, 2], 2) == 7  # longest first (the optimum is 6)
    assert cost.makespan([5, 1], 1) == 6

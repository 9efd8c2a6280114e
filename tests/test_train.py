"""The trainer: learning, exact resume, non-finite losses, DDP with gloo, the model directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from regionharmony.cli import main
from regionharmony.data.mini import build_mini
from regionharmony.loss import HarmonizationLoss
from regionharmony.params import build_config, load_params
from regionharmony.train import NonFiniteLossError, Trainer

ROOT = Path(__file__).resolve().parents[1]


def tiny_config(**train):
    overrides = {
        "train": {
            "batch_size": 4,
            "epochs": 2,
            "checkpoint_every": 2,
            "image_size": 32,
            "load_size": 40,
            "val_limit": 4,
            "validate": True,
            **train,
        },
        "loss": {"num_patches": 16},
    }
    return build_config("mini", overrides)


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_a_few_steps_lower_the_loss(tiny_root, tmp_path):
    trainer = Trainer(tiny_config(lr=2e-3), tiny_root, tmp_path / "m", show_progress=False)
    batch = next(iter(trainer.plan.batches(0, 0)))
    composite, mask, real = batch["composite"], batch["mask"], batch["real"]

    def loss() -> float:
        with torch.no_grad():
            seeds = list(range(len(composite)))
            return trainer.criterion(trainer.model(composite, mask), real, mask, seeds)[
                "total"
            ].item()

    before = loss()
    for step_batch in trainer.plan.batches(0, 0):
        trainer.train_step(step_batch)
    for step_batch in trainer.plan.batches(1, 0):
        trainer.train_step(step_batch)
    assert loss() < before


def test_interrupted_training_resumes_to_the_same_weights(tiny_root, tmp_path, interrupted_run):
    cfg = tiny_config()
    straight = Trainer(cfg, tiny_root, tmp_path / "straight", show_progress=False)
    straight.run()
    expected = weights(straight)
    assert straight.step == straight.total_steps == 8
    # a finished run leaves no checkpoint, so running it again trains afresh
    assert not straight.checkpoints.path.exists()

    # kill the second run during step 5 (checkpoints exist at steps 2 and 4)
    interrupted_run(lambda: Trainer(cfg, tiny_root, tmp_path / "resumed", show_progress=False), 4)
    assert not (tmp_path / "resumed" / "model.pt").exists()

    # a checkpoint written for other code or configuration is never resumed
    other = Trainer(tiny_config(lr=5e-4), tiny_root, tmp_path / "resumed", show_progress=False)
    assert not other.resume() and other.step == 0

    resumed = Trainer(cfg, tiny_root, tmp_path / "resumed", show_progress=False)
    resumed.run()
    got = weights(resumed)
    assert resumed.step == 8
    assert all(torch.equal(got[k], expected[k]) for k in expected)
    # the logs hold each step once
    tsv = tmp_path / "resumed" / "live" / "train" / "plots" / "metrics" / "loss" / "total.tsv"
    steps = [int(line.split("\t")[0]) for line in tsv.read_text().splitlines()[1:]]
    assert steps == list(range(1, 9))


def test_a_non_finite_loss_stops_with_the_step_and_keeps_the_checkpoint(
    tiny_root, tmp_path, monkeypatch
):
    trainer = Trainer(tiny_config(), tiny_root, tmp_path / "m", show_progress=False)
    original = HarmonizationLoss.forward

    def poisoned(self, prediction, real, mask, seeds=None):
        terms = original(self, prediction, real, mask, seeds)
        if trainer.step == 2:
            terms["l1"] = terms["l1"] * float("nan")
        return terms

    monkeypatch.setattr(HarmonizationLoss, "forward", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"step 3 \(l1\)") as err:
        trainer.run()
    assert str(trainer.checkpoints.path) in str(err.value)
    state = torch.load(trainer.checkpoints.path, weights_only=True)
    assert int(state["step"]) == 2
    tensors = [v for v in state["generator"].values() if v.is_floating_point()]
    assert all(torch.isfinite(v).all() for v in tensors)


def tiny_params(folder: Path, variant: str) -> Path:
    """A params.yaml of one mini-profile variant (given as `name: {...}`), a few steps long."""
    params = folder / "params.yaml"
    params.write_text(
        "profile: mini\n"
        "profiles:\n  mini:\n"
        "    model: {base_width: 8, depth: 4, blocks: 1}\n"
        "    train: {batch_size: 4, epochs: 1, image_size: 32, load_size: 32}\n"
        f"variants:\n  {variant}\n"
    )
    return params


def test_cli_writes_the_model_directory(tiny_root, tmp_path):
    params = tiny_params(
        tmp_path, "rain: {model: {fusion: rain}, loss: {num_patches: 8}, train: {validate: true}}"
    )
    out = tmp_path / "models" / "rain"
    args = f"train --params {params} --variant rain --data-root {tiny_root} --out {out}"
    code = main([*args.split(), "--no-progress"])
    assert code == 0
    written = {p.name for p in out.iterdir()}
    assert {"model.pt", "config.json", "summary.json", "train.log"} <= written
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["fusion"] == "rain" and config["loss"]["num_patches"] == 8
    summary = json.loads((out / "summary.json").read_text())
    assert summary["params_generator"] > 0 and summary["steps"] == 4
    # the model card: profile, size, steps and the data it was trained on
    assert summary["profile"] == "mini" and summary["data"]["root"] == str(tiny_root)
    assert summary["data"]["train_pairs_per_subset"] == {
        "HAdobe5k": 4,
        "HCOCO": 4,
        "HFlickr": 4,
        "Hday2night": 4,
    }
    assert len(summary["data"]["train_list_sha256"]) == 16
    assert (out / "live" / "val" / "plots" / "metrics" / "psnr.tsv").is_file()
    state = torch.load(out / "model.pt", weights_only=True)
    assert "to_rgb.weight" in state


def test_seeds_in_parallel_give_the_bytes_of_seeds_in_turn(tiny_root, tmp_path):
    """`--num-seeds 2` writes seed0/ and seed1/, different models, and the same bytes whether
    the seeds train one after the other or in two processes at once."""
    params = tiny_params(tmp_path, "full: {loss: {num_patches: 8}}")
    outs = {}
    for jobs in ("1", "2"):
        out = outs[jobs] = tmp_path / f"jobs{jobs}"
        argv = ["train", "--params", str(params), "--variant", "full", "--num-seeds", "2"]
        argv += ["--jobs", jobs, "--data-root", str(tiny_root), "--out", str(out), "--no-progress"]
        assert main(argv) == 0
    for seed in ("seed0", "seed1"):
        assert (outs["1"] / seed / "model.pt").read_bytes() == (
            outs["2"] / seed / "model.pt"
        ).read_bytes()
    assert (outs["1"] / "seed0/model.pt").read_bytes() != (
        outs["1"] / "seed1/model.pt"
    ).read_bytes()
    assert json.loads((outs["2"] / "seed1" / "config.json").read_text())["train"]["seed"] == 1


def test_a_broken_root_is_refused_naming_the_file(tiny_root, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_root, broken)
    victim = next((broken / "HCOCO" / "real_images").iterdir())
    victim.unlink()
    with pytest.raises(ValueError, match=victim.name):
        Trainer(tiny_config(), broken, tmp_path / "m", show_progress=False)


DDP_WORKER = """
import sys, torch
from pathlib import Path
from regionharmony.params import build_config
from regionharmony.train import Trainer
root, out = Path(sys.argv[1]), Path(sys.argv[2])
cfg = build_config("mini", {"model": {"norm": "instance"}, "loss": {"num_patches": 16},
    "train": {"batch_size": 8, "image_size": 32, "load_size": 40, "epochs": 1}})
trainer = Trainer(cfg, root, out, show_progress=False)
trainer.train_step(next(iter(trainer.plan.batches(0, 0))))
if trainer.dist.main:
    objective = getattr(trainer.objective, "module", trainer.objective)
    grads = {n: p.grad for n, p in objective.named_parameters()}
    torch.save(grads, out / "grads.pt")
"""


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_ddp_gradients_equal_single_process_for_the_same_global_batch(tiny_root, tmp_path, norm):
    """Two gloo processes on CPU, each with half of the global batch of 8, give the gradients
    one process computes on the whole batch: with instance norm the loss splits per image; with
    batch norm the statistics are the global batch's (distributed.CrossRankBatchNorm)."""
    script = tmp_path / "worker.py"
    script.write_text(DDP_WORKER.replace('"norm": "instance"', f'"norm": "{norm}"'))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name, launcher in (
        ("ddp", ["-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone"]),
        ("single", []),
    ):
        out = tmp_path / name
        out.mkdir()
        subprocess.run(
            [sys.executable, *launcher, str(script), str(tiny_root), str(out)],
            check=True,
            env=env,
            timeout=300,
        )
    ddp = torch.load(tmp_path / "ddp" / "grads.pt", weights_only=True)
    single = torch.load(tmp_path / "single" / "grads.pt", weights_only=True)
    assert ddp.keys() == single.keys()
    for name in single:
        torch.testing.assert_close(ddp[name], single[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.slow
def test_full_variant_beats_the_identity_baseline_on_the_embedded_default(tmp_path):
    """The mini profile's budget from params.yaml on the default embedded dataset: the full
    method removes at least half of the input composite's fMSE and 30 % of its MSE on the test
    split, in every foreground-ratio bin (issue 13; measured over seeds 0-2: 54-64 %)."""
    from regionharmony.evaluation.evaluate import evaluate_model
    from regionharmony.model.harmonizer import load_checkpoint

    params = load_params(ROOT / "params.yaml")
    root = tmp_path / "mini"
    build_mini(
        root,
        **{k: params["mini"][k] for k in ("seed", "size", "train_per_subset", "test_per_subset")},
    )
    out = tmp_path / "models" / "full"
    args = f"train --params {ROOT / 'params.yaml'} --profile mini --variant full"
    assert main([*args.split(), "--data-root", str(root), "--out", str(out), "--no-progress"]) == 0
    size = params["evaluate"]["size"]
    evaluate_model(load_checkpoint(out), root, tmp_path / "ev_full", size=size, progress=False)
    evaluate_model(None, root, tmp_path / "ev_comp", size=size, progress=False)
    full = json.loads((tmp_path / "ev_full" / "metrics.json").read_text())
    comp = json.loads((tmp_path / "ev_comp" / "metrics.json").read_text())
    groups = {"All": "subsets", **dict.fromkeys(comp["fg_ratio_bins"], "fg_ratio_bins")}
    for name, table in groups.items():
        model, composite = full[table][name], comp[table][name]
        assert composite["n"] > 0, name
        assert model["fmse"] <= 0.5 * composite["fmse"], (name, model, composite)
        assert model["mse"] <= 0.7 * composite["mse"], (name, model, composite)


def test_a_cuda_profile_without_cuda_stops_with_one_line(tiny_root, tmp_path, capsys):
    """The paper profile (train.require_cuda) on a machine without CUDA stops before anything is
    written, saying how to train on the CPU on purpose; `train.device=cpu` does that."""
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    params = tmp_path / "params.yaml"
    params.write_text(
        "profile: mini\nprofiles:\n  mini:\n"
        "    model: {base_width: 8, depth: 4, blocks: 1}\n"
        "    train: {batch_size: 4, epochs: 1, image_size: 32, load_size: 32, require_cuda: true}\n"
    )
    out = tmp_path / "models" / "m"
    argv = ["train", "--params", str(params), "--data-root", str(tiny_root), "--out", str(out)]
    assert main([*argv, "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CUDA" in err[0] and "--set train.device=cpu" in err[0], err
    assert not out.parent.exists()
    assert main([*argv, "--no-progress", "--set", "train.device=cpu"]) == 0
    assert (out / "model.pt").is_file()


def test_validation_pairs_spread_over_the_list():
    from regionharmony.train.validation import validation_indices

    assert validation_indices(10, 0) == list(range(10))
    assert validation_indices(10, 4) == [0, 3, 6, 9]
    assert validation_indices(3, 8) == [0, 1, 2]


def test_wall_clock_checkpoints_resume_to_the_same_weights(
    tiny_root, tmp_path, interrupted_run, monkeypatch
):
    """checkpoint_every 0 with checkpoint_minutes: checkpoints come from the clock only (here a
    clock that advances a minute a step), and a resumed run still ends with the same weights."""
    import regionharmony.train.trainer as trainer_module

    ticks = iter(range(0, 10**6, 60))
    monkeypatch.setattr(trainer_module.time, "monotonic", lambda: float(next(ticks)))
    cfg = tiny_config(checkpoint_every=0, checkpoint_minutes=1.5)
    straight = Trainer(cfg, tiny_root, tmp_path / "straight", show_progress=False)
    straight.run()
    saved = []
    original = Trainer.save_checkpoint
    monkeypatch.setattr(
        Trainer, "save_checkpoint", lambda self: (saved.append(self.step), original(self))[1]
    )
    interrupted_run(lambda: Trainer(cfg, tiny_root, tmp_path / "resumed", show_progress=False), 5)
    assert saved == [2, 4]  # by the clock (every 1.5 of its minutes), not by steps
    resumed = Trainer(cfg, tiny_root, tmp_path / "resumed", show_progress=False)
    assert resumed.resume() and 0 < resumed.step <= 5
    resumed.run()
    got, expected = weights(resumed), weights(straight)
    assert all(torch.equal(got[k], expected[k]) for k in expected)

"""The CUDA path's guards, on the CPU: a torch.compile failure falls back to eager, a checkpoint
is never written from non-finite weights, loader workers fit /dev/shm, bf16 only where the
hardware has it, and a checkpoint resumes across a change of how the run executes."""

from __future__ import annotations

import logging

import pytest
import torch

from regionharmony.config import Config
from regionharmony.inference.engine import resolve_precision
from regionharmony.params import build_config
from regionharmony.runtime import training_bf16
from regionharmony.train import NonFiniteLossError, Trainer
from regionharmony.train import trainer as trainer_module
from regionharmony.train.checkpoint import run_fingerprint


def tiny_config(**train):
    overrides = {
        "train": {
            "batch_size": 4,
            "epochs": 1,
            "checkpoint_every": 2,
            "image_size": 32,
            "load_size": 40,
            **train,
        },  # fmt: skip
        "loss": {"num_patches": 16},
    }
    return build_config("mini", overrides)


def test_a_failing_compile_falls_back_to_eager_once(tiny_root, tmp_path, monkeypatch, capsys):
    calls = []

    class Broken(torch.nn.Module):
        def forward(self, *inputs):
            calls.append(len(inputs))
            raise RuntimeError("inductor: C++ compile failed\nlong traceback")

    monkeypatch.setattr(trainer_module.torch, "compile", lambda objective: Broken())
    trainer = Trainer(tiny_config(compile="always"), tiny_root, tmp_path / "m", show_progress=False)
    batches = iter(trainer.plan.batches(0, 0))
    trainer.train_step(next(batches))
    trainer.train_step(next(batches))
    assert calls == [4] and trainer.step == 2 and trainer.objective is trainer.eager_objective
    err = capsys.readouterr().err
    assert err.count("torch.compile failed at step 1 (inductor: C++ compile failed)") == 1
    assert "train.compile=never" in err
    assert all(torch.isfinite(torch.tensor(v)) for v in trainer.last_terms.values())


def test_an_eager_failure_is_not_retried(tiny_root, tmp_path, monkeypatch):
    trainer = Trainer(tiny_config(), tiny_root, tmp_path / "m", show_progress=False)

    def broken(*inputs):
        raise RuntimeError("a genuine bug")

    monkeypatch.setattr(trainer, "objective", broken)
    monkeypatch.setattr(trainer, "eager_objective", broken)
    with pytest.raises(RuntimeError, match="a genuine bug"):
        trainer.train_step(next(iter(trainer.plan.batches(0, 0))))


def test_no_checkpoint_from_non_finite_weights(tiny_root, tmp_path):
    """With sync_every > 1 (the CUDA default) a NaN is read late; the checkpoint refuses it."""
    trainer = Trainer(tiny_config(sync_every=25), tiny_root, tmp_path / "m", show_progress=False)
    trainer.train_step(next(iter(trainer.plan.batches(0, 0))))
    trainer.save_checkpoint()
    good = trainer.checkpoints.path.read_bytes()
    with torch.no_grad():
        next(trainer.model.parameters())[0].fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match="non-finite weights at step 1"):
        trainer.save_checkpoint()
    assert trainer.checkpoints.path.read_bytes() == good


def test_training_workers_fit_dev_shm(tiny_root, tmp_path, monkeypatch, caplog):
    """A container's 64 MB /dev/shm holds no worker's batches at the paper's sizes: load in the
    main process, and say so, rather than die with a bus error."""
    from regionharmony.data import shared_memory

    seen = []

    def room(batch_bytes, prefetch=2, folder=None, sharers=1):
        seen.append((batch_bytes, prefetch, sharers))
        return 64 * 2**20 // 2 // sharers // ((prefetch + 1) * batch_bytes)

    monkeypatch.setattr(shared_memory, "shared_memory_workers", room)
    caplog.set_level(logging.WARNING, "regionharmony")
    paper_sized = tiny_config(num_workers=14, image_size=256, load_size=256)
    trainer = Trainer(paper_sized, tiny_root, tmp_path / "m", show_progress=False)
    assert trainer.plan.loader.num_workers == 0
    assert seen[0] == (4 * 256 * 256 * 28, 4, 1)
    assert "/dev/shm holds the batches of 0 loader worker(s), not 14" in caplog.text
    small = Trainer(tiny_config(num_workers=2), tiny_root, tmp_path / "s", show_progress=False)
    assert small.plan.loader.num_workers == 2  # 32 px batches fit


@pytest.mark.parametrize(("capability", "expected"), [((7, 0), False), ((8, 0), True)])
def test_bf16_only_on_gpus_that_have_it(monkeypatch, capability, expected) -> None:
    """V100 / TITAN V (7.0) and T4 (7.5) emulate bf16: "auto" is fp32 there, in training and
    inference alike; an A100 (8.0) and newer get bf16."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    cuda = torch.device("cuda", 0)
    assert training_bf16(cuda, "auto") is expected
    assert resolve_precision("auto", cuda) == ("bf16" if expected else "fp32")
    assert training_bf16(cuda, "bf16") and not training_bf16(cuda, "fp32")
    cpu = torch.device("cpu")
    assert not training_bf16(cpu, "auto") and training_bf16(cpu, "auto", rehearse_cuda=True)


def test_a_checkpoint_resumes_across_execution_settings_only() -> None:
    base = run_fingerprint(Config(), ["a"])
    for key, value in (("compile", "never"), ("precision", "fp32"), ("num_workers", 3),
                       ("device", "cpu"), ("rehearse_cuda", True), ("sync_every", 5)):  # fmt: skip
        cfg = Config()
        setattr(cfg.train, key, value)
        assert run_fingerprint(cfg, ["a"]) == base, key
    cfg = Config()
    cfg.train.lr = 2e-3
    assert run_fingerprint(cfg, ["a"]) != base

"""The evaluator: identity baseline, blending, output files, all-or-nothing writes."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch
from torch import nn

from regionharmony.cli import main as cli_main
from regionharmony.data import SUBSETS, DataError, shared_memory
from regionharmony.evaluation.evaluate import COLUMNS, evaluate_model
from regionharmony.evaluation.metrics import error_bin


def main(argv: list[str]) -> int:
    return cli_main(["evaluate", *argv])


class Identity(nn.Module):
    def forward(self, composite, mask):
        return composite


class White(nn.Module):
    def forward(self, composite, mask):
        return torch.ones_like(composite) * 2  # clipped to 1 by the blend


class FailsOnThirdBatch(nn.Module):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, composite, mask):
        self.calls += 1
        if self.calls == 3:
            raise RuntimeError("out of memory, say")
        return composite


def test_identity_baseline_on_the_mini_test_split(mini_root, tmp_path, capsys):
    out = tmp_path / "composite"
    args = ["--data-root", str(mini_root), "--baseline", "composite", "--size", "32"]
    assert main([*args, "--out", str(out), "--save-images", "--no-progress"]) == 0
    assert "All" in capsys.readouterr().out
    summary = json.loads((out / "metrics.json").read_text())
    assert {k: summary[k] for k in ("split", "size", "source", "psnr_range", "ssim_mode")} == {
        "split": "test",
        "size": 32,
        "source": "composite",
        "psnr_range": "official",
        "ssim_mode": "iih",
    }
    assert list(summary["subsets"]) == [*SUBSETS, "All"]
    for scores in summary["subsets"].values():
        assert all(math.isfinite(v) for v in scores.values())
        assert scores["mse"] > 0 and scores["fmse"] > scores["mse"]
        assert 0 < scores["ssim"] < 1 and 0 < scores["fssim"] < 1
    assert summary["subsets"]["All"]["n"] == 16
    assert list(summary["fg_ratio_bins"]) == ["0-5", "5-15", "15-100"]
    assert sum(b["n"] for b in summary["fg_ratio_bins"].values()) == 16
    assert list(summary["composite_error_bins"]) == ["mild", "medium", "strong"]
    assert sum(b["n"] for b in summary["composite_error_bins"].values()) == 16
    per_image = pd.read_csv(out / "per_image.csv")
    for name, b in summary["composite_error_bins"].items():  # the input's own fMSE, per bin
        rows = per_image["composite_fmse"].map(error_bin) == name
        assert b["n"] == rows.sum()
    assert list(per_image.columns) == [*COLUMNS, "protocol"] and len(per_image) == 16
    assert (per_image["protocol"] == summary["protocol"]["id"]).all()
    saved = sorted((out / "images").rglob("*.png"))
    assert len(saved) == 16 and saved[0].parent.parent == out / "images"


def test_a_model_is_blended_through_the_mask(mini_root, tmp_path):
    baseline = evaluate_model(None, mini_root, tmp_path / "a", size=32, progress=False)
    identity = evaluate_model(
        Identity(), mini_root, tmp_path / "b", size=32, progress=False, source="identity"
    )
    assert identity["subsets"] == baseline["subsets"] and identity["source"] == "identity"
    evaluate_model(White(), mini_root, tmp_path / "c", size=32, progress=False)
    white = pd.read_csv(tmp_path / "c" / "per_image.csv")
    base = pd.read_csv(tmp_path / "a" / "per_image.csv")
    # only the foreground changed: the change of the whole-image error is the change of the
    # foreground error, diluted by the foreground ratio
    assert (white["fmse"] > base["fmse"]).all()
    assert (white["mse"] - base["mse"]).to_numpy() == pytest.approx(
        ((white["fmse"] - base["fmse"]) * white["fg_ratio"]).to_numpy()
    )


def test_options_limit_subsets_and_metric_conventions(mini_root, tmp_path):
    summary = evaluate_model(
        None,
        mini_root,
        tmp_path / "out",
        split="train",
        size=48,
        subsets=["Hday2night", "HFlickr"],
        psnr_range="255",
        ssim_mode="standard",
        limit=2,
        batch_size=3,
        workers=1,
        progress=False,
    )
    assert list(summary["subsets"]) == ["HFlickr", "Hday2night", "All"]
    assert summary["subsets"]["All"]["n"] == 4
    assert (summary["psnr_range"], summary["ssim_mode"], summary["size"]) == ("255", "standard", 48)


def test_nothing_is_written_when_the_model_fails_halfway(mini_root, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="out of memory"):
        evaluate_model(FailsOnThirdBatch(), mini_root, out, size=32, batch_size=2, progress=False)
    assert not out.exists()
    # an earlier result stays as it was
    evaluate_model(None, mini_root, out, size=32, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(RuntimeError):
        evaluate_model(FailsOnThirdBatch(), mini_root, out, size=32, batch_size=2, save_images=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary leftovers


def test_a_corrupt_image_found_late_leaves_no_output(root, tmp_path, capsys):
    # header intact, data cut: the quick up-front check passes, decoding fails at the end
    late = root / "Hday2night" / "composite_images" / "d90001-2_1_1.jpg"
    late.write_bytes(late.read_bytes()[:-200])
    out = tmp_path / "out"
    with pytest.raises(DataError, match="d90001-2_1_1.jpg"):
        evaluate_model(None, root, out, size=16, batch_size=1, progress=False)
    assert not out.exists()
    args = ["--data-root", str(root), "--baseline", "composite", "--size", "16"]
    assert main([*args, "--out", str(out), "--no-progress"]) == 1
    assert "d90001-2_1_1.jpg" in capsys.readouterr().err and not out.exists()


def test_loader_workers_do_not_change_the_results(mini_root, tmp_path):
    outputs = {}
    for workers in (0, 2):
        out = tmp_path / f"w{workers}"
        settings = dict(size=32, batch_size=3, save_images=True, progress=False)
        evaluate_model(Identity(), mini_root, out, workers=workers, **settings)
        outputs[workers] = {
            p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()
        }
    assert outputs[0] == outputs[2]  # per_image.csv, metrics.json and every image, byte for byte
    assert len(outputs[0]) == 2 + 16


def test_a_corrupt_image_in_a_worker_raises_the_same_error(root, tmp_path):
    late = root / "Hday2night" / "composite_images" / "d90001-2_1_1.jpg"
    late.write_bytes(late.read_bytes()[:-200])
    messages = []
    for workers in (0, 2):
        with pytest.raises(DataError, match="d90001-2_1_1.jpg") as info:
            evaluate_model(None, root, tmp_path / "out", size=16, batch_size=1, workers=workers)
        messages.append(str(info.value))
    assert messages[0] == messages[1] and "\n" not in messages[0]  # not the worker's traceback
    assert not (tmp_path / "out").exists()


def test_the_command_line_loads_with_workers_by_default(mini_root, tmp_path, monkeypatch):
    import regionharmony.evaluation.evaluate as evaluation

    used = []

    class Recording(evaluation.DataLoader):
        def __init__(self, *args, **kwargs):
            used.append(kwargs["num_workers"])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(evaluation, "DataLoader", Recording)
    monkeypatch.setattr(evaluation, "usable_cpus", lambda: 4)
    args = ["--data-root", str(mini_root), "--baseline", "composite", "--size", "16"]
    assert main([*args, "--out", str(tmp_path / "a"), "--device", "cpu", "--no-progress"]) == 0
    assert main([*args, "--out", str(tmp_path / "b"), "--workers", "0", "--no-progress"]) == 0
    threads = torch.get_num_threads()
    assert used == [max(1, min(4 - threads, evaluation.MAX_AUTO_WORKERS, 2)), 0]  # 16 pairs / 8
    assert (tmp_path / "a" / "per_image.csv").read_bytes() == (
        tmp_path / "b" / "per_image.csv"
    ).read_bytes()
    assert evaluation.auto_workers(100, torch.device("cuda")) == 3  # one core for the main process
    # a small /dev/shm (a container's 64 MB) caps them: 3 x 14.7 MB batches of 8 at 256 px each
    free = 64 * 2**20
    assert shared_memory.shared_memory_workers(8 * 256 * 256 * 28, folder=tmp_path) >= 0

    def room(batch_bytes: int, prefetch: int, sharers: int = 1) -> int:
        return free // 2 // ((prefetch + 1) * batch_bytes)

    monkeypatch.setattr(shared_memory, "shared_memory_workers", room)
    assert evaluation.auto_workers(100, torch.device("cuda"), 8 * 256 * 256 * 28) == 0
    assert evaluation.auto_workers(100, torch.device("cuda"), 8 * 64 * 64 * 28) == 3
    with pytest.raises(SystemExit):
        main([*args, "--out", str(tmp_path / "c"), "--workers", "-1"])

"""regionharmony.harmonize, the network's part: native and bounded resolution, the strategies,
the engine (BatchNorm folding, bf16), the package import. The shared helpers are in
tests/harmonize_helpers.py, the random model's fixtures in conftest.py."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from harmonize_helpers import make_pair, random_network

from regionharmony.inference.engine import fold_batchnorm, load_engine
from regionharmony.inference.harmonize import harmonize
from regionharmony.inference.strategies import carry_color, fit_color_transform, working_size

# -- the network at native and bounded resolution ------------------------------------------------


@pytest.mark.parametrize("strategy", ["color", "residual", "full"])
def test_odd_non_square_image_round_trips_and_keeps_the_background(random_engine, strategy):
    composite, mask = make_pair(97, 131)  # larger than TRAIN_SIZE: the low-resolution path
    out = np.asarray(harmonize(composite, mask, random_engine, strategy=strategy))
    assert out.shape == composite.shape and out.dtype == np.uint8
    assert np.array_equal(out[~mask], composite[~mask])  # bit for bit outside the mask
    assert not np.array_equal(out[mask], composite[mask])  # and the network did something


def test_small_image_runs_at_its_own_size(random_engine):
    composite, mask = make_pair(21, 27)  # below max_side: every strategy is the same
    outs = [
        np.asarray(harmonize(composite, mask, random_engine, strategy=s)) for s in ("color", "full")
    ]
    assert outs[0].shape == (21, 27, 3)
    assert np.array_equal(outs[0], outs[1])


def test_working_size_keeps_the_aspect_ratio():
    assert working_size(3000, 4000, 256) == (192, 256)
    assert working_size(100, 50, 256) == (100, 50)
    assert working_size(1, 5000, 64) == (1, 64)


def test_color_fit_recovers_an_affine_map():
    rng = np.random.default_rng(0)
    source = rng.random((500, 3))
    true = np.array([[0.9, 0.1, 0.0], [0.0, 1.1, 0.05], [0.02, 0.0, 0.8], [0.05, -0.02, 0.1]])
    target = source @ true[:3] + true[3]
    assert np.allclose(fit_color_transform(source, target), true, atol=5e-3)


def test_color_strategy_applies_the_low_resolution_map_at_full_resolution():
    composite, mask = make_pair(40, 60)
    comp_low, mask_low = composite[::2, ::2], mask[::2, ::2]
    out_low = np.clip(comp_low / 255.0 * 0.8 + 0.05, 0, 1)  # a known colour change
    foreground = carry_color(composite, mask, comp_low, mask_low, out_low)
    expected = composite[mask] / 255.0 * 0.8 + 0.05
    assert np.abs(foreground - expected).max() < 0.01


def test_batchnorm_folding_keeps_the_output():
    network = random_network(3).double()
    folded = fold_batchnorm(network)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.rand(1, 3, 40, 56, dtype=torch.float64)
    m = torch.zeros(1, 1, 40, 56, dtype=torch.float64)
    m[..., 8:24, 10:30] = 1
    with torch.no_grad():
        assert torch.allclose(network(x, m), folded(x, m), atol=1e-9)


def test_bf16_output_is_within_tolerance_of_fp32(random_model_dir):
    """The bf16 path (autocast) against fp32, on the 8-bit output of the network at the image's
    own size. Stated tolerance: over the foreground, mean |bf16 - fp32| <= 1 level and
    max <= 8 levels, for a network that changes the foreground by ~10 levels on average.
    (The trained mini model on the embedded test split: mean 0.31, max 5 levels; see README.)"""
    composite, mask = make_pair(64, 96, seed=5)
    outputs = {
        p: np.asarray(
            harmonize(
                composite,
                mask,
                load_engine(random_model_dir, device="cpu", precision=p),
                strategy="full",
            )
        ).astype(int)
        for p in ("fp32", "bf16")
    }
    change = np.abs(outputs["fp32"] - composite)[mask].mean()
    assert change > 3  # the comparison means something
    diff = np.abs(outputs["fp32"] - outputs["bf16"])[mask]
    assert diff.max() <= 8, f"max {diff.max()}, mean {diff.mean():.3f}"
    assert diff.mean() <= 1.0, f"max {diff.max()}, mean {diff.mean():.3f}"


def test_batchnorm_folding_finds_its_layers_by_type():
    """Folding does not depend on attribute names: a block with names of its own is folded,
    and one whose convolution output is also used beside its BatchNorm is left alone."""

    class Odd(torch.nn.Module):
        def __init__(self, reuse: bool) -> None:
            super().__init__()
            self.alpha, self.beta = torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4)
            self.reuse = reuse

        def forward(self, x, mask):
            y = self.alpha(x)
            return self.beta(y) + (y if self.reuse else 0)

    for reuse in (False, True):
        net = Odd(reuse).double()
        net.beta.running_mean.uniform_(-1, 1)
        net.beta.running_var.uniform_(0.5, 2)
        probe = (torch.rand(1, 3, 8, 8, dtype=torch.float64), torch.zeros(1, 1, 8, 8))
        if reuse:
            with pytest.raises(RuntimeError, match="changed the network's output"):
                fold_batchnorm(net, probe)
        else:
            folded = fold_batchnorm(net, probe)
            assert isinstance(folded.beta, torch.nn.Identity)
            with torch.no_grad():
                assert torch.allclose(folded(*probe), net.eval()(*probe), atol=1e-9)


def test_package_import_stays_light():
    code = (
        "import sys, regionharmony; assert 'torch' not in sys.modules; "
        "import regionharmony.inference.harmonize; "  # the submodule must not shadow the function
        "print(regionharmony.harmonize.__module__, regionharmony.harmonize.__name__)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["regionharmony.inference.harmonize", "harmonize"]


def test_precision_auto_follows_native_bf16_support():
    from regionharmony.inference.engine import resolve_precision
    from regionharmony.runtime import cpu_has_native_bf16

    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == ("bf16" if cpu_has_native_bf16() else "fp32")
    assert resolve_precision("fp32", cpu) == "fp32"
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("fp16", cpu)

"""Classical baselines: Reinhard colour transfer and histogram matching of the foreground."""

from __future__ import annotations

import json

import numpy as np
import pytest
from skimage import color

from regionharmony.evaluation.baselines import (
    BASELINES,
    baseline_network,
    histogram_baseline,
    reinhard_baseline,
)


def scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A textured background and a foreground box with another colour cast and contrast."""
    rng = np.random.default_rng(seed)
    image = rng.normal(120, 30, (48, 64, 3)).clip(0, 255)
    mask = np.zeros((48, 64), bool)
    mask[10:30, 15:45] = True
    image[mask] = (image[mask] - 120) * 0.5 + np.array([200, 90, 60])
    return image.clip(0, 255).astype(np.uint8), mask


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_background_is_untouched_and_foreground_changes(name):
    composite, mask = scene()
    out = BASELINES[name](composite, mask)
    assert out.dtype == np.uint8 and out.shape == composite.shape
    assert np.array_equal(out[~mask], composite[~mask])
    assert np.abs(out[mask].astype(int) - composite[mask]).mean() > 20


def test_reinhard_moves_lab_statistics_to_the_background():
    composite, mask = scene()
    out = reinhard_baseline(composite, mask)
    lab_out = color.rgb2lab(out / 255.0)
    lab_in = color.rgb2lab(composite / 255.0)
    bg = lab_in[~mask]
    assert np.allclose(lab_out[mask].mean(0), bg.mean(0), atol=1.0)
    assert np.allclose(lab_out[mask].std(0), bg.std(0), rtol=0.1)


def test_histogram_matching_moves_the_channel_distributions():
    composite, mask = scene(1)
    out = histogram_baseline(composite, mask)
    quantiles = [5, 25, 50, 75, 95]
    for c in range(3):
        target = np.percentile(composite[~mask][:, c], quantiles)
        before = np.percentile(composite[mask][:, c], quantiles)
        after = np.percentile(out[mask][:, c], quantiles)
        assert np.abs(after - target).max() <= 2
        assert np.abs(before - target).max() > 20


def test_flat_foreground_is_shifted_not_divided_by_zero():
    composite, mask = scene()
    composite[mask] = (30, 200, 30)
    out = reinhard_baseline(composite, mask)
    assert np.isfinite(out).all() and len(np.unique(out[mask], axis=0)) == 1


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_bad_masks_are_refused(name):
    composite, mask = scene()
    for bad, message in ((np.zeros_like(mask), "empty"), (np.ones_like(mask), "whole image")):
        with pytest.raises(ValueError, match=message):
            BASELINES[name](composite, bad)
    with pytest.raises(ValueError, match="uint8"):
        BASELINES[name](composite.astype(np.float32), mask)


def test_baseline_network_is_scored_by_the_evaluator(root, tmp_path):
    """The fixture's composites are the real image with a brightened foreground (+50): moving
    the foreground statistics back to the background's must lower the foreground error."""
    from regionharmony.evaluation.evaluate import evaluate_model

    scores = {}
    for name in (None, "reinhard", "histogram"):
        model = None if name is None else baseline_network(name)
        out = tmp_path / str(name)
        evaluate_model(model, root, out, size=32, progress=False)
        scores[name] = json.loads((out / "metrics.json").read_text())["subsets"]["All"]["fmse"]
    assert scores["reinhard"] < scores[None] and scores["histogram"] < scores[None]
    with pytest.raises(ValueError, match="unknown baseline"):
        baseline_network("nope")

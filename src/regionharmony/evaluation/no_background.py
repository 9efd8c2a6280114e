"""Images whose mask covers the whole image at the evaluation size: nothing to harmonise
against. They are scored like every other image; the evaluator warns and metrics.json says so."""

from __future__ import annotations

import logging

log = logging.getLogger("regionharmony.evaluation.evaluate")

MAX_NAMED = 10  # how many images the warning names


def no_background_note(names: list[str], size: int, with_model: bool) -> dict:
    """What metrics.json says about images whose mask covers the whole image at `size`:
    nothing to harmonise against. They are scored like every other image (and kept in every
    mean), which makes their foreground metrics whole-image ones."""
    scoring = (
        "scored like every other image and kept in every mean: with no background, the "
        "foreground is the whole image, so fMSE equals MSE and fSSIM is the SSIM map's mean"
    )
    if with_model:
        scoring += (
            "; the prediction is the model's whole output, and its style fusion used mean 0 / "
            "std 1 for the empty background (the decoder features pass through unnormalised)"
        )
    return {"count": len(names), "images": names, "mask_size": size, "scoring": scoring}


def warn_no_background(names: list[str], size: int) -> None:
    shown = ", ".join(names[:MAX_NAMED]) + (" ..." if len(names) > MAX_NAMED else "")
    log.warning(
        "%d image(s) have a mask that covers the whole %dx%d image, so there is no background "
        "to harmonise against: %s. They are scored over the whole image; metrics.json lists "
        "them under no_background.",
        len(names),
        size,
        size,
        shown,
    )

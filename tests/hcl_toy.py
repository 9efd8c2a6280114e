"""Toy optimisations of L_all on one image: free foreground pixels, the contrastive head trained
jointly (AdamW, lr 1e-3). Used by tests/test_loss.py; run it to print every reading's numbers:

    OMP_NUM_THREADS=1 PYTHONPATH=src python tests/hcl_toy.py [reading,reading,...]

drift: 200 steps of AdamW (lr 1e-3, as a new user would) on pixels starting at the truth.
intent: from a foreground shifted away from the background colour, the colour gap to the truth
after 60 steps of plain SGD on the pixels. SGD, because under Adam's per-element normalisation
L1 alone already moves every shifted pixel toward the truth at the optimiser's top rate (about lr
per step), so no extra term can speed it up and the comparison would only show the noise a term
adds; the AdamW numbers are printed as well.
"""

from __future__ import annotations

import dataclasses
import sys

import torch

from regionharmony.config import LossConfig
from regionharmony.loss import HCL_QUERIES, HarmonizationLoss

SIZE = 64
FG_COLOUR, BG_COLOUR = (0.2, 0.5, 0.7), (0.8, 0.3, 0.2)
DRIFT_STEPS, INTENT_STEPS, INTENT_SHIFT, SGD_LR = 200, 60, 0.15, 1.5


def toy_image(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A 64x64 ground truth (1, 3, H, W) and mask (1, 1, H, W): a 32x32 foreground box and the
    background, each a flat colour with its own stripes (amplitude 0.1, period about 5 px) and
    pixel noise (sigma 0.05)."""
    gen = torch.Generator().manual_seed(seed)
    mask = torch.zeros(1, 1, SIZE, SIZE)
    mask[..., 16:48, 16:48] = 1
    y, x = torch.meshgrid(torch.linspace(0, 1, SIZE), torch.linspace(0, 1, SIZE), indexing="ij")
    bg = torch.tensor(BG_COLOUR)[:, None, None] + 0.1 * torch.sin(4 * (6 * x + 3 * y))
    fg = torch.tensor(FG_COLOUR)[:, None, None] + 0.1 * torch.cos(4 * (5 * y - 2 * x))
    bg = bg + 0.05 * torch.randn(3, SIZE, SIZE, generator=gen)
    fg = fg + 0.05 * torch.randn(3, SIZE, SIZE, generator=gen)
    return torch.where(mask.bool(), fg, bg).clamp(0, 1), mask


@dataclasses.dataclass
class ToyResult:
    mae: float  # mean |output - truth| over the foreground, in 1/255
    std: float  # foreground standard deviation (per channel, averaged), in 1/255
    gap: float  # |mean foreground colour of output - of truth| (RGB norm), in 1/255


def measure(image: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> ToyResult:
    inside = mask[0, 0].bool()
    out, truth = image.detach()[0][:, inside], real[0][:, inside]  # (3, n)
    return ToyResult(
        mae=255 * (out - truth).abs().mean().item(),
        std=255 * out.std(dim=1).mean().item(),
        gap=255 * (out.mean(dim=1) - truth.mean(dim=1)).norm().item(),
    )


def optimise(
    query: str | None,
    steps: int,
    shift: float = 0.0,
    pixel_optimiser: str = "adamw",
    seed: int = 0,
) -> tuple[ToyResult, ToyResult]:
    """Minimise L_all (Eq. 13 weights; L_HCL read as `query`, left out when None) over free
    foreground pixels that start at the truth, shifted by `shift` (RGB norm) away from the
    background colour. The head is trained jointly (AdamW, lr 1e-3); the pixels by AdamW at
    1e-3 or SGD at SGD_LR. Returns the result at the start and after the last step."""
    real, mask = toy_image(seed)
    direction = torch.tensor(FG_COLOUR) - torch.tensor(BG_COLOUR)
    start = real + mask * (shift * direction / direction.norm())[:, None, None]
    cfg = LossConfig(hcl_query=query or "paper", lambda_hcl=0.1 if query else 0.0)
    torch.manual_seed(seed)
    criterion = HarmonizationLoss(cfg)
    free = torch.nn.Parameter(start.clone())
    optimisers = [torch.optim.AdamW(criterion.parameters(), lr=1e-3)] if query else []
    if pixel_optimiser == "sgd":
        optimisers.append(torch.optim.SGD([free], lr=SGD_LR))
    else:
        optimisers.append(torch.optim.AdamW([free], lr=1e-3))
    for step in range(steps):
        output = free * mask + real * (1 - mask)
        total = criterion(output, real, mask, torch.tensor([step]))["total"]
        for opt in optimisers:
            opt.zero_grad()
        total.backward()
        for opt in optimisers:
            opt.step()
    return measure(start, real, mask), measure(free, real, mask)


def table(queries: list[str | None]) -> str:
    lines = [
        f"drift: {DRIFT_STEPS} AdamW steps from the truth; intent: {INTENT_STEPS} steps from a "
        f"foreground shifted {255 * INTENT_SHIFT:.0f}/255 away from the background (all in 1/255)",
        f"{'reading':14s} {'drift MAE':>9s} {'fg std before->after':>20s} {'gap':>6s}   "
        f"{'intent gap SGD':>15s} {'intent gap AdamW':>17s}",
    ]
    for query in queries:
        start, drift = optimise(query, DRIFT_STEPS)
        before, sgd = optimise(query, INTENT_STEPS, INTENT_SHIFT, "sgd")
        _, adamw = optimise(query, INTENT_STEPS, INTENT_SHIFT, "adamw")
        lines.append(
            f"{query or 'no L_HCL':14s} {drift.mae:9.2f} {start.std:10.2f} -> {drift.std:6.2f} "
            f"{drift.gap:6.2f}   {before.gap:5.2f} -> {sgd.gap:5.2f} {before.gap:7.2f} -> "
            f"{adamw.gap:5.2f}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    names = sys.argv[1].split(",") if len(sys.argv) > 1 else ["none", *HCL_QUERIES]
    print(table([None if name == "none" else name for name in names]))

"""The harmonisation network: residual UNet + S2AM + external style fusion (Fig. 1).

Input: the composite I' (B, 3, H, W) in [0, 1] and the foreground mask M' (B, 1, H, W), stacked
into 4 channels. Output: the harmonised image H, formed as a residual on the composite,

    H = I' + conv1x1(decoder features),

and returned raw (not clipped). The prediction scored by the metrics is blended through the
mask, H * M + I' * (1 - M), clipped to [0, 1] (see `blend`); the losses see the raw H.

Sizes: the encoder halves the resolution depth - 1 times, so a side must be a multiple of
2 ** (depth - 1) (16 at depth 5). Any other size is padded (replicate) up to the next multiple
and the output cropped back, so every input size works.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from regionharmony.config import Config, ModelConfig, config_from_dict
from regionharmony.errors import CheckpointError
from regionharmony.model.blocks import DecoderLevel, ResidualStack
from regionharmony.model.fusion import make_fusion


class Harmonizer(nn.Module):
    """G_dec(G_enc(I')) with S2AM in the decoder and a fusion block after every decoder level."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        widths = [cfg.base_width * 2**i for i in range(cfg.depth)]
        self.encoder = nn.ModuleList(
            ResidualStack(cin, cout, cfg.blocks, cfg.norm)
            for cin, cout in zip([cfg.in_channels, *widths[:-1]], widths, strict=True)
        )
        # decoder level j goes from widths[-1-j] to widths[-2-j], coarsest first
        ups = list(zip(widths[:0:-1], widths[-2::-1], strict=True))
        self.decoder = nn.ModuleList(
            DecoderLevel(cin, cout, cfg.blocks, cfg.norm, cfg.attention) for cin, cout in ups
        )
        self.fusion = nn.ModuleList(make_fusion(cfg.fusion, cout) for _, cout in ups)
        self.to_rgb = nn.Conv2d(widths[0], 3, 1)
        # start as the identity map H = I' (the "input composite" baseline) and learn the
        # correction from there
        nn.init.zeros_(self.to_rgb.weight)
        nn.init.zeros_(self.to_rgb.bias)

    @property
    def multiple(self) -> int:
        return 2 ** (self.cfg.depth - 1)

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """Replicate-pad the bottom and right of `x` up to a multiple of `self.multiple`."""
        pad_h, pad_w = -x.shape[-2] % self.multiple, -x.shape[-1] % self.multiple
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        return x

    def forward(
        self, composite: torch.Tensor, mask: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, list[torch.Tensor]]]:
        """Harmonise; with `return_features` also return the per-level feature maps.

        Features: {"encoder": [E_1 .. E_depth], "decoder": [D_{depth-1} .. D_1]} where E_i is the
        encoder output at level i (finest first) and D_i the decoder feature at the same
        resolution, before its fusion block (the D_i of Eq. 2-5), coarsest first.
        """
        height, width = composite.shape[-2:]
        composite, mask = self.pad(composite), self.pad(mask)

        x = torch.cat([composite, mask], dim=1)
        skips = []
        for i, level in enumerate(self.encoder):
            if i:
                x = F.max_pool2d(x, 2)
            x = level(x)
            skips.append(x)

        decoded = []
        for level, fuse, skip in zip(self.decoder, self.fusion, skips[-2::-1], strict=True):
            x = level(x, skip, mask)
            decoded.append(x)
            x = fuse(x, skip, mask)

        out = (composite + self.to_rgb(x))[..., :height, :width]
        if return_features:
            return out, {"encoder": skips, "decoder": decoded}
        return out


def blend(prediction: torch.Tensor, composite: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The prediction the metrics score: H * M + I' * (1 - M), clipped to [0, 1]."""
    return (prediction * mask + composite * (1 - mask)).clamp(0, 1)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def forward_gflops(model: Harmonizer, size: int) -> float:
    """Forward GFLOPs per image at size x size, measured by torch.utils.flop_counter."""
    from torch.utils.flop_counter import FlopCounterMode

    device = next(model.parameters()).device
    composite = torch.rand(1, 3, size, size, device=device)
    mask = torch.zeros(1, 1, size, size, device=device)
    mask[..., size // 4 : size // 2, size // 4 : size // 2] = 1
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(composite, mask)
    model.train(was_training)
    return counter.get_total_flops() / 1e9


def build_model(cfg: Config) -> Harmonizer:
    return Harmonizer(cfg.model)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Harmonizer:
    """Load a trained generator in eval mode.

    `path` is a model directory (holding model.pt and config.json) or its model.pt. A missing,
    truncated or foreign file raises `CheckpointError` naming it, in one line; weights that do
    not fit the network config.json describes are refused naming the keys that are missing or
    unexpected and the shapes that differ (the first three of each, with their count).
    """
    from collections.abc import Mapping

    path = Path(path)
    weights = path / "model.pt" if path.is_dir() else path
    config_file = weights.parent / "config.json"
    if not weights.is_file():
        raise CheckpointError(f"{weights}: checkpoint not found")
    if not config_file.is_file():
        raise CheckpointError(f"{config_file}: model config not found beside the checkpoint")
    try:
        saved = json.loads(config_file.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{config_file}: unreadable model config ({err})") from None
    model = build_model(config_from_dict(saved, str(config_file)))

    def unusable(reason: str) -> CheckpointError:
        reason = " ".join(reason.split()) or "no reason given"  # one line
        reason = reason if len(reason) <= 400 else reason[:397] + "..."
        return CheckpointError(f"{weights}: not a usable checkpoint for {config_file} ({reason})")

    def listed(count: int, what: str, items: list[str], sep: str = ", ") -> str:
        more = f"{sep}..." if len(items) > 3 else ""
        return f"{count} {what} ({sep.join(items[:3])}{more})"

    try:
        state = torch.load(weights, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated zip, pickle error, a pickled object of another kind
        text = str(err) or type(err).__name__
        marker = "WeightsUnpickler error:"  # torch's refusal: a paragraph around one sentence
        if marker in text:
            detail = text.split(marker, 1)[1].split("Please use", 1)[0]
            text = "not weights that torch.load reads safely: " + detail.split("Check the doc")[0]
        raise unusable(text) from None
    if not isinstance(state, Mapping):
        raise unusable(f"it holds a {type(state).__name__}, not a state dict of weights")
    if isinstance(state.get("generator"), Mapping):
        raise unusable(
            "a resumable training checkpoint (last.pt), not a model directory's model.pt"
        )
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [str(key) for key in state if key not in expected]
    shapes = [
        f"{key} {list(state[key].shape)} vs {list(tensor.shape)}"
        for key, tensor in expected.items()
        if isinstance(state.get(key), torch.Tensor) and state[key].shape != tensor.shape
    ]
    parts = []
    if missing:
        parts.append(listed(len(missing), "missing key" + "s" * (len(missing) > 1), missing))
    if unexpected:
        many = "s" * (len(unexpected) > 1)
        parts.append(listed(len(unexpected), f"unexpected key{many}", unexpected))
    if shapes:
        what = "shapes differ" if len(shapes) > 1 else "shape differs"
        what += f", {weights.name} vs {config_file.name}"
        parts.append(listed(len(shapes), what, shapes, "; "))
    if parts:
        raise CheckpointError(
            f"{weights}: not a usable checkpoint for {config_file}: the weights do not fit the "
            f"network it describes: {', '.join(parts)}"
        )
    try:
        model.load_state_dict(state)
    except Exception as err:  # e.g. a value that is not a tensor
        raise unusable(str(err)) from None
    return model.to(map_location).eval()

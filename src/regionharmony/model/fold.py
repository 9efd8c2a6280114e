"""BatchNorm folded into the convolution before it, for inference: in eval mode a BatchNorm is
a per-channel affine map, so ``bn(conv(x))`` is one convolution with rescaled weights and a
shifted bias.

Which convolution feeds which BatchNorm is found by type, from one probe forward pass (a hook on
every convolution records the tensor it returns, one on every BatchNorm the tensor it is given),
not from the blocks' attribute names: renaming or rearranging a block cannot silently stop the
folding. A fold that would change what the network computes (a convolution whose output is also
used elsewhere) is refused by comparing the probe's output before and after.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

CONVS = (nn.Conv2d, nn.ConvTranspose2d)


def conv_bn_pairs(
    model: nn.Module, probe: tuple[torch.Tensor, ...]
) -> list[tuple[nn.Module, nn.Module]]:
    """(convolution, BatchNorm2d) for every BatchNorm whose input is a convolution's output in
    `model(*probe)`; each convolution at most once."""
    produced: dict[int, tuple[torch.Tensor, nn.Module]] = {}  # tensors kept: ids stay unique
    pairs: dict[nn.Module, nn.Module] = {}
    seen_twice: set[nn.Module] = set()

    def after_conv(module, _inputs, output):
        produced[id(output)] = (output, module)

    def before_norm(module, inputs):
        entry = produced.get(id(inputs[0]))
        if entry is not None:
            conv = entry[1]
            if conv in pairs and pairs[conv] is not module:
                seen_twice.add(conv)
            pairs[conv] = module

    hooks = [
        m.register_forward_hook(after_conv) for m in model.modules() if isinstance(m, CONVS)
    ] + [
        m.register_forward_pre_hook(before_norm)
        for m in model.modules()
        if isinstance(m, nn.BatchNorm2d)
    ]
    try:
        with torch.no_grad():
            model(*probe)
    finally:
        for hook in hooks:
            hook.remove()
    return [(conv, norm) for conv, norm in pairs.items() if conv not in seen_twice]


def default_probe(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """A composite and a mask for `Harmonizer`-like networks, on the model's device and dtype."""
    weight = next(model.parameters())
    side = 2 * getattr(model, "multiple", 16)
    composite = torch.rand(1, 3, side, side, dtype=weight.dtype, device=weight.device)
    mask = torch.zeros(1, 1, side, side, dtype=weight.dtype, device=weight.device)
    mask[..., side // 4 : side // 2, side // 4 : side // 2] = 1
    return composite, mask


def fold_batchnorm(model: nn.Module, probe: tuple[torch.Tensor, ...] | None = None) -> nn.Module:
    """A copy of `model` (in eval mode) with every BatchNorm2d that directly follows a
    convolution folded into it and replaced by nn.Identity. Other norms (instance norm) are
    left alone. `probe`: inputs of one forward pass (default: `default_probe`)."""
    model = copy.deepcopy(model).eval()
    probe = probe if probe is not None else default_probe(model)
    with torch.no_grad():
        before = model(*probe)
    owners = {
        id(child): (parent, name)
        for parent in model.modules()
        for name, child in parent.named_children()
    }
    for conv, norm in conv_bn_pairs(model, probe):
        if not norm.track_running_stats:
            continue
        transposed = isinstance(conv, nn.ConvTranspose2d)
        conv_owner, conv_name = owners[id(conv)]
        norm_owner, norm_name = owners[id(norm)]
        setattr(conv_owner, conv_name, fuse_conv_bn_eval(conv, norm, transpose=transposed))
        setattr(norm_owner, norm_name, nn.Identity())
    with torch.no_grad():
        after = model(*probe)
    scale = before.abs().max().clamp_min(1.0)
    if not torch.allclose(after, before, rtol=0, atol=1e-3 * float(scale)):
        raise RuntimeError(
            "folding BatchNorm changed the network's output: a convolution's "
            "output is used beside its BatchNorm"
        )
    return model

"""BatchNorm folded into the convolution before it, for inference: in eval mode a BatchNorm is
a per-channel affine map, so ``bn(conv(x))`` is one convolution with rescaled weights and a
shifted bias."""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from regionharmony.model.attention import LearningBlock
from regionharmony.model.blocks import DecoderLevel, ResidualStack


def _fold_pairs(module: nn.Module) -> list[tuple[nn.Module, str, nn.Module, str, bool]]:
    """(conv owner, conv attribute, norm owner, norm attribute, transposed) for every
    convolution that a BatchNorm directly follows in this package's blocks."""
    pairs = []
    for sub in module.modules():
        if isinstance(sub, ResidualStack):
            pairs.append((sub, "conv_in", sub, "norm_in", False))
            for i in range(len(sub.convs)):
                pairs.append((sub.convs, str(i), sub.norms, str(i), False))
        elif isinstance(sub, DecoderLevel):
            pairs.append((sub, "up", sub, "norm_up", True))
        elif isinstance(sub, LearningBlock):
            layers = sub.body
            for i in range(len(layers) - 1):
                if isinstance(layers[i], nn.Conv2d):
                    pairs.append((layers, str(i), layers, str(i + 1), False))
    return pairs


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of `model` (in eval mode) with every BatchNorm2d folded into the convolution
    before it and replaced by nn.Identity. Other norms (instance norm) are left alone."""
    model = copy.deepcopy(model).eval()
    for conv_owner, conv_name, norm_owner, norm_name, transposed in _fold_pairs(model):
        conv, norm = getattr(conv_owner, conv_name), getattr(norm_owner, norm_name)
        if not isinstance(norm, nn.BatchNorm2d) or not norm.track_running_stats:
            continue
        setattr(conv_owner, conv_name, fuse_conv_bn_eval(conv, norm, transpose=transposed))
        setattr(norm_owner, norm_name, nn.Identity())
    return model

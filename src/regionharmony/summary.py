"""`summary`: parameter counts and the measured forward GFLOPs of a configuration."""

from __future__ import annotations

import argparse
import json

from regionharmony.io import code_version
from regionharmony.options import add_config
from regionharmony.params import config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Print the generator's and the contrastive head's parameter counts and the forward "
        "GFLOPs per image measured with torch.utils.flop_counter."
    )
    add_config(parser)
    parser.add_argument(
        "--size", type=int, help="image side for the FLOP count (default: train size)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    from regionharmony.loss import HarmonizationLoss
    from regionharmony.model.harmonizer import build_model, count_parameters, forward_gflops

    cfg = config_from_args(args)
    model = build_model(cfg)
    size = args.size or cfg.train.image_size
    report = {
        "profile": cfg.profile,
        "fusion": cfg.model.fusion,
        "params_generator": count_parameters(model),
        "params_head": count_parameters(HarmonizationLoss(cfg.loss)),
        "image_size": size,
        "gflops_per_image": round(forward_gflops(model, size), 3),
        "code_version": code_version(),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    generator, head = report["params_generator"], report["params_head"]
    print(f"profile            {report['profile']} (fusion: {report['fusion']})")
    print(f"code version       {code_version()}")
    print(f"generator params   {generator:,} ({generator / 1e6:.2f} M)")
    print(f"contrastive head   {head:,} ({head / 1e6:.3f} M)")
    print(
        f"forward GFLOPs     {report['gflops_per_image']:.3f} per {size}x{size} image "
        "(torch.utils.flop_counter)"
    )
    return 0

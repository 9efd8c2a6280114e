"""`regionharmony` command line: one subcommand per pipeline step.

regionharmony summary     --profile paper|mini          parameter counts and forward GFLOPs
regionharmony make-mini   --out DIR                      build the embedded default dataset
regionharmony check-data  --data-root DIR                validate an iHarmony4-layout root
regionharmony prepare     --data-root SRC --out DST      resized copy of a root
regionharmony train       --variant NAME --out DIR       train one model variant
regionharmony evaluate    --data-root DIR --out DIR      metrics of a model or a baseline
regionharmony features    --checkpoint DIR --out F.npz   feature maps for Fig. 10
regionharmony report      NOTEBOOK --out HTML            execute a notebook, render HTML
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from regionharmony.config import PROFILES, build_config, load_params

# subcommands whose module parses its own arguments
DELEGATED = {
    "make-mini": ("regionharmony.mini", "main"),
    "check-data": ("regionharmony.data", "check_main"),
    "prepare": ("regionharmony.data", "prepare_main"),
    "evaluate": ("regionharmony.evaluate", "main"),
    "features": ("regionharmony.features", "main"),
    "report": ("regionharmony.report", "main"),
}


def parse_set(items: list[str]) -> dict[str, dict[str, Any]]:
    """`--set train.epochs=3` -> {"train": {"epochs": 3}} (values parsed as YAML scalars)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        section, dot, name = key.partition(".")
        if not (sep and dot and section and name):
            raise SystemExit(f"--set expects SECTION.KEY=VALUE, got {item!r}")
        out.setdefault(section, {})[name] = yaml.safe_load(value)
    return out


def merge(*layers: dict[str, dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for section, values in (layer or {}).items():
            merged.setdefault(section, {}).update(values)
    return merged


def resolve(args: argparse.Namespace):
    """Config from params.yaml (profile, overrides, variants) and the command line."""
    params: dict[str, Any] = load_params(args.params) if args.params else {}
    profile = args.profile or params.get("profile", "paper")
    variant: dict[str, Any] = {}
    if args.variant:
        variants = params.get("variants", {})
        if args.variant not in variants:
            raise SystemExit(
                f"unknown variant {args.variant!r}"
                + (
                    f" in {args.params}; choose one of {sorted(variants)}"
                    if args.params
                    else ": variants are defined in params.yaml (pass --params)"
                )
            )
        variant = variants[args.variant] or {}
    overrides = params.get("overrides", {}).get(profile, {}) if params else {}
    return build_config(profile, merge(overrides, parse_set(args.set)), variant)


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", type=Path, help="params.yaml with profile, overrides and variants")
    p.add_argument("--profile", choices=sorted(PROFILES), help="overrides the params profile")
    p.add_argument("--variant", help="a variant name from params.yaml `variants`")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config field, e.g. --set train.epochs=3 (repeatable)",
    )


def cmd_summary(args: argparse.Namespace) -> int:
    from regionharmony.loss import HarmonizationLoss
    from regionharmony.model import build_model, count_parameters, forward_gflops

    cfg = resolve(args)
    model = build_model(cfg)
    size = args.size or cfg.train.image_size
    report = {
        "profile": cfg.profile,
        "fusion": cfg.model.fusion,
        "params_generator": count_parameters(model),
        "params_head": count_parameters(HarmonizationLoss(cfg.loss)),
        "image_size": size,
        "gflops_per_image": round(forward_gflops(model, size), 3),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"profile            {report['profile']} (fusion: {report['fusion']})")
    print(
        f"generator params   {report['params_generator']:,} "
        f"({report['params_generator'] / 1e6:.2f} M)"
    )
    print(f"contrastive head   {report['params_head']:,} ({report['params_head'] / 1e6:.3f} M)")
    print(
        f"forward GFLOPs     {report['gflops_per_image']:.3f} per {size}x{size} image "
        "(torch.utils.flop_counter)"
    )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from regionharmony.train import NonFiniteLossError, Trainer, attach_log_file

    cfg = resolve(args)
    args.out.mkdir(parents=True, exist_ok=True)
    handler = attach_log_file(args.out / "train.log")
    try:
        trainer = Trainer(
            cfg,
            args.data_root,
            args.out,
            args.checkpoint_dir,
            args.subsets,
            show_progress=not args.no_progress,
        )
        summary = trainer.run()
    except (NonFiniteLossError, ValueError, FileNotFoundError) as err:
        # DataError (a broken root, naming the file) is a ValueError
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        handler.close()
    if summary:
        print(json.dumps({k: summary[k] for k in ("steps", "final_validation")}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="regionharmony",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("summary", help="parameter counts and measured forward GFLOPs")
    add_config_args(p)
    p.add_argument("--size", type=int, help="image side for the FLOP count (default: train size)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("train", help="train one model variant (resumes from its last checkpoint)")
    add_config_args(p)
    p.add_argument("--data-root", type=Path, required=True, help="iHarmony4-layout dataset root")
    p.add_argument("--out", type=Path, required=True, help="model directory to write")
    p.add_argument(
        "--checkpoint-dir",
        type=Path,
        help="where resumable checkpoints live (default: OUT/checkpoints)",
    )
    p.add_argument("--subsets", nargs="+", help="train on these subsets only (default: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    for name in DELEGATED:
        sub.add_parser(name, add_help=False, help=f"see `regionharmony {name} --help`")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:
        module, func = DELEGATED[argv[0]]
        return getattr(importlib.import_module(module), func)(argv[1:])
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())

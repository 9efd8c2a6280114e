"""`regionharmony`: one subcommand per pipeline step, each in its own module.

Every module listed in `COMMANDS` exposes `add_arguments(parser)` and `run(args) -> int`; the
first line of its docstring is the subcommand's one-line help. A mistake in the input (a
`UserError`: a broken dataset, a bad parameter, an unusable checkpoint, an existing output)
ends in one line `error: ...` and exit status 1, never a traceback; so does an OSError (a
full disk, a read-only or missing output folder), naming the path. Ctrl-C ends in one line
`interrupted: ...` and exit status 130 (`train` names its checkpoint, which a re-run resumes).
`regionharmony --kernels portable COMMAND` runs COMMAND on the portable CPU kernel path
(`cpu_threads`), chosen before the command's module loads torch.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys

from regionharmony.cpu_threads import choose_kernels
from regionharmony.errors import ConfigError, Interrupted, UserError

# subcommand -> module, in pipeline order
COMMANDS: dict[str, str] = {
    "switch": "regionharmony.switch",
    "code-digest": "regionharmony.code_digest",
    "summary": "regionharmony.summary",
    "make-mini": "regionharmony.data.mini",
    "check-data": "regionharmony.data.check",
    "prepare": "regionharmony.data.prepare",
    "train": "regionharmony.train",
    "evaluate": "regionharmony.evaluation.evaluate",
    "features": "regionharmony.evaluation.features",
    "harmonize": "regionharmony.inference.harmonize",
    "export": "regionharmony.inference.onnx_export",
    "report": "regionharmony.report.render",
    "user-study": "regionharmony.study.build",
}


def one_line(module) -> str:
    """The module docstring's first line, without a leading "`command`: " label."""
    line = (module.__doc__ or "").strip().splitlines()[0].rstrip(".")
    line = re.sub(r"^`[\w-]+`: ", "", line)
    return line[:1].upper() + line[1:]


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand, or of `command` alone: a pipeline stage imports only
    its own module (the full list imports torch, SciPy and the notebook tooling: ~3 s a call)."""
    parser = argparse.ArgumentParser(
        prog="regionharmony",
        description="Image Harmonization with Region-wise Contrastive Learning: every step of "
        "the reproduction. `regionharmony COMMAND --help` describes each command.",
    )
    parser.add_argument(
        "--kernels",
        choices=("native", "portable"),
        help="CPU kernel path of the command: native (torch's fastest for this CPU; the "
        "default, or REGIONHARMONY_KERNELS) or portable (the same bytes on any x86-64 kind, "
        "one thread; params.yaml cpu_kernels for `dvc repro`)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        if command in COMMANDS and name != command:
            continue
        module = importlib.import_module(module_name)
        help_text = one_line(module)
        subparser = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(subparser)
        subparser.set_defaults(run=module.run)
    return parser


def take_kernels(argv: list[str]) -> list[str]:
    """`argv` without a leading `--kernels PATH` (or `--kernels=PATH`), whose path is chosen
    here, before the subcommand's module (and torch) loads."""
    if not argv or not argv[0].startswith("--kernels"):
        return argv
    option, _, value = argv[0].partition("=")
    if option != "--kernels":
        return argv
    rest = argv[1:]
    if not value:
        if not rest:
            raise ConfigError("--kernels needs a value: native or portable")
        value, rest = rest[0], rest[1:]
    try:
        choose_kernels(value)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return rest


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        argv = take_kernels(argv)
        args = build_parser(argv[0] if argv else None).parse_args(argv)
        args.argv = argv  # `train --processes` re-runs it (the kernel path: in the environment)
        return args.run(args)
    except Interrupted as err:
        print(f"interrupted: {err}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:  # every output is written atomically: nothing half-written stays
        print("interrupted: nothing was left half-written; run the command again", file=sys.stderr)
        return 130
    except (UserError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # the machine's refusal: a full disk, a read-only or missing folder
        where = f"{err.filename}: " if err.filename else ""
        print(f"error: {where}{err.strerror or err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())

"""`train --processes N`: the same command, N data-parallel ranks on this machine, started by
PyTorch's own launcher (torchrun, `torch.distributed.run`) rather than by this package.

`auto` is one rank per visible CUDA GPU, and one process on a machine without CUDA (or with
`train.device: cpu`); a number asks for that many ranks (on the CPU: gloo). Under torchrun
already (several machines: docs/paper-run.md, 'Several GPUs and machines'), the option is
ignored: the ranks come from the environment torchrun sets. A failed rank stops the others
(torchrun's agent) and the command with one line naming the rank.
"""

from __future__ import annotations

import logging
import os

import torch

from regionharmony.errors import ConfigError, UserError


def under_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or int(os.environ.get("WORLD_SIZE", "1")) > 1


def resolve_processes(spec: str, device: str) -> int:
    """Ranks on this machine for a `--processes` value (see the module docstring)."""
    text = str(spec).strip().lower()
    if text == "auto":
        if device == "cpu" or not torch.cuda.is_available():
            return 1
        return max(1, torch.cuda.device_count())
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"--processes (launch.processes) must be auto or >= 1, got {spec!r}")
    return int(text)


def without_option(argv: list[str], option: str) -> list[str]:
    """`argv` without `option VALUE` / `option=VALUE`."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            out.append(arg)
    return out


def run_under_torchrun(processes: int, command: list[str]) -> int:
    """`torchrun --standalone --nproc-per-node PROCESSES -m regionharmony.cli COMMAND...`."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    launcher = get_args_parser().parse_args(
        ["--standalone", f"--nproc-per-node={processes}", "--module", "regionharmony.cli"] + command
    )
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # our line says it
    try:
        run(launcher)
    except ChildFailedError as err:
        rank, failure = err.get_first_failure()
        how = (
            f"killed by {failure.signal_name()}"
            if failure.exitcode < 0
            else f"exit code {failure.exitcode}"
        )
        raise UserError(
            f"rank {rank} of {processes} stopped ({how}); torchrun stopped the other ranks. "
            "Its own message is above; re-running resumes from the last checkpoint"
        ) from None
    return 0

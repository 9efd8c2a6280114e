"""Put switches/NAME.yaml (mini, paper, paper_smoke, paper_smoke_cpu) into params.yaml's switch.

params.yaml holds one switch block: the top-level keys that say which profile runs on which
data (profile, data root, evaluation sizes, seeds, studies, the real-composite sets, Table V's
inputs), between the line ``# switch: NAME`` and the next ``# ----`` line. Each choice is a real
YAML file beside params.yaml, `switches/<NAME>.yaml` (mini, the default; paper; paper_smoke;
paper_smoke_cpu), and this command is the one place that reads and writes them: it replaces the
block with the file's text, comments included, and names the new switch on the marker line.

A block that is not exactly its marker's file (a hand edit, a `dvc exp run -S` result) is
refused unless --force, so no edit is lost without being asked for.
"""

from __future__ import annotations

import argparse
import difflib
import re
from pathlib import Path

from regionharmony.errors import ConfigError

MARKER = re.compile(r"^# switch: (?P<name>[\w-]+)\s*$")
END = "# ----"


def switch_dir(params: Path) -> Path:
    return params.resolve().parent / "switches"


def available(params: Path) -> list[str]:
    return sorted(p.stem for p in switch_dir(params).glob("*.yaml"))


def read_switch(params: Path, name: str) -> str:
    """The text of switches/<name>.yaml beside `params`."""
    path = switch_dir(params) / f"{name}.yaml"
    if not path.is_file():
        choices = ", ".join(available(params)) or "none"
        raise ConfigError(f"{path}: no such switch; choose one of {choices}")
    return path.read_text(encoding="utf-8")


def block_span(lines: list[str], params: Path) -> tuple[int, int, str]:
    """(first line of the block, its end line, the marker's name) in params.yaml's `lines`."""
    starts = [(i, m["name"]) for i, line in enumerate(lines) if (m := MARKER.match(line))]
    if len(starts) != 1:
        raise ConfigError(f"{params}: needs exactly one '# switch: NAME' line, found {len(starts)}")
    start, name = starts[0]
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith(END)), None)
    if end is None:
        raise ConfigError(f"{params}: no '{END}' line after '# switch: {name}'")
    return start + 1, end, name


def current_switch(params: Path) -> str:
    """The name on params.yaml's marker line."""
    return block_span(Path(params).read_text(encoding="utf-8").splitlines(True), params)[2]


def switched(text: str, params: Path, name: str, force: bool = False) -> str:
    """params.yaml's `text` with its switch block replaced by switches/<name>.yaml."""
    lines = text.splitlines(keepends=True)
    first, end, current = block_span(lines, params)
    block = "".join(lines[first:end])
    if not force and (current not in available(params) or block != read_switch(params, current)):
        expected = read_switch(params, current).splitlines() if current in available(params) else []
        changed = [
            line
            for line in difflib.unified_diff(expected, block.splitlines(), lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))
        ]
        raise ConfigError(
            f"{params}: the switch block is not switches/{current}.yaml as written (first "
            f"change: {changed[0] if changed else '?'}); keep what you need, then run again "
            "with --force"
        )
    new = read_switch(params, name)
    lines[first - 1] = f"# switch: {name}\n"
    return (
        "".join(lines[:first]) + new + ("" if new.endswith("\n") else "\n") + "".join(lines[end:])
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="a file of switches/ without .yaml: mini, paper, ...")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params.yaml")
    parser.add_argument(
        "--force", action="store_true", help="replace a block that was edited by hand"
    )


def run(args: argparse.Namespace) -> int:
    from regionharmony.io import atomic_write_text
    from regionharmony.params import load_params, resolve_config

    if not args.params.is_file():
        raise ConfigError(f"{args.params}: parameters file not found")
    text = switched(args.params.read_text(encoding="utf-8"), args.params, args.name, args.force)
    tmp = args.params.with_name(f".{args.params.name}.switch-check")
    try:  # the new file must load and resolve before it replaces the old one
        tmp.write_text(text, encoding="utf-8")
        resolve_config(load_params(tmp), source=str(args.params))
    finally:
        tmp.unlink(missing_ok=True)
    atomic_write_text(text, args.params)
    print(f"{args.params}: switch {args.name} (switches/{args.name}.yaml)")
    return 0

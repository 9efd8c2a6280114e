"""The package tree keeps the method apart from the tooling (README: "The package").

The method (model/, loss/) and what trains it (data/, train/) never import a tooling module: the
harmonize command and its engine, the user study, the reports, the evaluate / features commands,
`summary` or the CLI. Checked on the source, so a function-level import counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "regionharmony"
TOOLING = (
    "regionharmony.inference",
    "regionharmony.study",
    "regionharmony.report",
    "regionharmony.evaluation.evaluate",
    "regionharmony.evaluation.features",
    "regionharmony.summary",
    "regionharmony.cli",
)
GUARDED = ("model", "loss", "data", "train")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every regionharmony module `path` imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("regionharmony")}


def is_tooling(name: str) -> bool:
    return any(name == t or name.startswith(t + ".") for t in TOOLING)


GUARDED_FILES = sorted(p for area in GUARDED for p in (PACKAGE / area).rglob("*.py"))


def test_every_area_exists() -> None:
    for area in (*GUARDED, "evaluation", "inference", "study", "report"):
        assert (PACKAGE / area / "__init__.py").is_file(), area


@pytest.mark.parametrize("path", GUARDED_FILES, ids=lambda p: module_name(p))
def test_method_imports_no_tooling(path: Path) -> None:
    tooling = sorted(name for name in imported_modules(path) if is_tooling(name))
    assert not tooling, f"{module_name(path)} imports tooling: {tooling}"


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    source = tmp_path / "bad.py"
    source.write_text("def f():\n    from regionharmony.inference.engine import Engine\n")
    assert any(is_tooling(name) for name in imported_modules(source))


def test_top_level_holds_only_shared_modules() -> None:
    """The method sits in its folders; the top level keeps the few modules everything shares."""
    top = sorted(p.stem for p in PACKAGE.glob("*.py"))
    shared = [
        "__init__",
        "cli",
        "config",
        "cpu_threads",
        "errors",
        "io",
        "options",
        "runtime",
        "summary",
    ]
    assert top == sorted(shared)


def test_a_stage_command_imports_only_its_own_module() -> None:
    """`regionharmony report ...` (11 stages of `dvc repro`) starts without torch: the parser is
    built for the named subcommand alone (cli.build_parser), the full list only for --help."""
    import subprocess
    import sys

    probe = (
        "import sys; from regionharmony import cli; cli.build_parser('{}'); "
        "print('torch' in sys.modules); cli.build_parser(); print('torch' in sys.modules)"
    )
    for command in ("make-mini", "report"):  # the first command and one after `train`
        argv = [sys.executable, "-c", probe.format(command)]
        out = subprocess.run(argv, capture_output=True, text=True, check=True)
        assert out.stdout.split() == ["False", "True"], command

"""The package tree keeps the method apart from the tooling (docs/package.md); README.md stays a
landing page and every relative link of README.md and docs/*.md resolves.

The method (model/, loss/) and what trains it (data/, train/) never import a tooling module: the
harmonize command and its engine, the user study, the reports, the evaluate / features commands,
`summary` or the CLI. Checked on the source, so a function-level import counts too.
"""

from __future__ import annotations

import ast
import re
import subprocess
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
        "code_digest",
        "config",
        "cpu_threads",
        "errors",
        "io",
        "options",
        "params",
        "runtime",
        "summary",
        "switch",
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


# ---- README and docs/: a landing page that stays short, links that resolve ----------------------

ROOT = PACKAGE.parents[1]
README_MAX_LINES = 160
FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
INLINE_LINK = re.compile(  # [text](target "title") and ![alt](target): the target
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]"  # the text, one level of nested brackets
    r"\(\s*<?([^()<>\s]*(?:\([^()\s]*\)[^()<>\s]*)*)>?"  # the target, balanced parentheses
    r"(?:\s+[\"'(][^)]*)?\s*\)"  # an optional title
)
REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def link_targets(text: str) -> list[str]:
    """The targets of every inline link, image and reference definition outside code."""
    text = INLINE_CODE.sub("", FENCE.sub("", text))
    return INLINE_LINK.findall(text) + REFERENCE_DEF.findall(text)


def tracked_paths(root: Path) -> set[Path] | None:
    """The files git tracks under `root` and their folders (what a clean clone holds); None
    outside a git checkout, where the files on disk stand in."""
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z"], capture_output=True, check=True
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        return None
    files = {(root / name).resolve() for name in out.split("\0") if name}
    return files | {parent for f in files for parent in f.parents}


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """Relative targets of `path` (anchors stripped) that a clean clone of `root` lacks: no
    tracked file or folder (a pipeline output such as reports/ is not one), or outside `root`."""
    tracked = tracked_paths(root)
    broken = []
    for target in link_targets(path.read_text()):
        if not target or target.startswith("#") or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):
            continue  # an anchor on the same page, or a URL (https:, mailto:)
        relative = target.split("#", 1)[0].split("?", 1)[0]
        resolved = (path.parent / relative).resolve()
        present = resolved.exists() if tracked is None else resolved in tracked
        if not resolved.is_relative_to(root) or not present:
            broken.append(target)
    return broken


def test_readme_stays_a_landing_page() -> None:
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines (at most {README_MAX_LINES}): move reference to docs/"
    )


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    broken = broken_links(path)
    assert not broken, f"{path.relative_to(ROOT)} links to files that do not exist: {broken}"


def test_the_link_checker_sees_a_broken_link(tmp_path: Path) -> None:
    text = (
        "[a](docs/x.md#part) ![b](img/g.png 'title') `[c](code.md)` [d](https://e.org)\n"
        "```\n[e](fenced.md)\n```\n[r]: ref.md\n"
    )
    assert link_targets(text) == ["docs/x.md#part", "img/g.png", "https://e.org", "ref.md"]
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "[here](page.md) [up](../docs) [gone](missing.md#part) [top](#top) [out](../..)\n"
    )
    assert broken_links(page, root=tmp_path) == ["missing.md#part", "../.."]

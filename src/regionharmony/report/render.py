"""Reports: execute a notebook with papermill, render self-contained, deterministic HTML.

    regionharmony report NOTEBOOK --out reports/NAME.html [-p KEY VALUE ...] [-r KEY VALUE ...]
                         [--cwd DIR] [--kernel python3]
                         [--executed-out reports/NAME.ipynb] [--title TEXT] [--no-input]
                         [--timeout SECONDS]
    regionharmony report --index --out reports/index.html --reports reports/*.html
                         [--profile P] [--data DIR] [--code-version V] [--title TEXT]

Execution and rendering happen in one process: the papermill Python API runs the notebook in a
`python3` kernel (working directory `--cwd`, default the current one, i.e. the repository root
under `dvc repro`), then nbconvert's HTMLExporter (lab template) renders it. Figures are PNG
outputs, embedded as data URIs: the HTML is self-contained (only MathJax would come from a CDN).

Parameters: `-p KEY VALUE` parses VALUE as YAML (`-p count 3`, `-p variants "[l1, full]"`),
`-r KEY VALUE` keeps it a string; -r wins over -p. A name that the notebook's `parameters` cell
does not define is refused. Numbers that live in params.yaml (the variants of a table, the
evaluation sizes) are read by the notebooks themselves through
`regionharmony.report.notebook.params`.

Determinism: papermill records start/end times and durations, nbclient records execution
timestamps, and nbformat gives an injected cell a random id. `normalise` strips the times, keeps
the parameters, and gives the injected-parameters cell the fixed id `injected-parameters`, so two
renders of the same notebook with the same inputs are byte-identical (the report's title comes from
the notebook, never from the output path). The kernel runs with PYTHONHASHSEED=0 and the inline
matplotlib backend (an inherited MPLBACKEND=Agg would silently drop every figure).

Failure: a raising cell (or a dead kernel, a timeout) prints the error and exits 1; nothing is
written at `--out` or `--executed-out` (every file is written to a temporary name, then renamed).

The kernel: `python3` must run this interpreter (the venv), or the notebooks would see other
packages; `check_kernel` verifies it before executing and says how to fix it if not.

The helpers the notebooks import live in `regionharmony.report.notebook`.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from regionharmony.errors import UserError
from regionharmony.io import atomic_write_text, code_version
from regionharmony.report.notebook import dataset_description

KERNEL_ENV = {
    "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    "PYTHONHASHSEED": "0",
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",
}
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class ReportError(UserError):
    """A report could not be produced; the message says why."""


# -- execution ----------------------------------------------------------------------------------
def kernel_interpreter(kernel: str) -> str:
    """The Python executable that jupyter_client will start for `kernel`."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(kernel)
    except NoSuchKernel as err:
        raise ReportError(
            f"no Jupyter kernel named {kernel!r}; install one for this interpreter with "
            f"`{sys.executable} -m ipykernel install --sys-prefix`"
        ) from err
    exe = spec.argv[0]
    major, minor = sys.version_info[:2]
    # jupyter_client runs these names as sys.executable (KernelManager.format_kernel_cmd)
    if exe in {"python", f"python{major}", f"python{major}.{minor}"}:
        return sys.executable
    return exe


def check_kernel(kernel: str) -> None:
    """Refuse a kernel that would run another interpreter than this one (not this venv)."""
    exe = kernel_interpreter(kernel)
    if os.path.abspath(exe) == os.path.abspath(sys.executable):
        return
    try:
        prefix = subprocess.run(
            [exe, "-c", "import sys; print(sys.prefix)"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as err:
        raise ReportError(f"kernel {kernel!r} runs {exe}, which does not start: {err}") from err
    if os.path.realpath(prefix) != os.path.realpath(sys.prefix):
        raise ReportError(
            f"kernel {kernel!r} runs {exe} (prefix {prefix}), not this interpreter "
            f"{sys.executable} (prefix {sys.prefix}); fix with "
            f"`{sys.executable} -m ipykernel install --sys-prefix` and check `jupyter kernelspec "
            "list` (a JUPYTER_PATH entry may shadow it)"
        )


@contextmanager
def kernel_environment() -> Iterator[None]:
    """Set KERNEL_ENV in os.environ (the kernel inherits it), restore afterwards."""
    saved = {key: os.environ.get(key) for key in KERNEL_ENV}
    os.environ.update(KERNEL_ENV)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def notebook_parameters(notebook: Path) -> dict[str, Any]:
    """The names and defaults of the notebook's `parameters` cell."""
    import papermill

    declared = papermill.inspect_notebook(str(notebook))
    if not declared:
        raise ReportError(f"{notebook} has no cell tagged `parameters`")
    return declared


def execute(
    notebook: Path,
    parameters: Mapping[str, Any],
    cwd: Path,
    kernel: str = "python3",
    timeout: int | None = None,
):
    """Run the notebook with papermill (no file written); return the executed NotebookNode."""
    import matplotlib.font_manager  # noqa: F401  builds the font cache once, outside the report
    import papermill

    if not notebook.is_file():
        raise ReportError(f"notebook not found: {notebook}")
    if not cwd.is_dir():
        raise ReportError(f"working directory not found: {cwd}")
    unknown = sorted(set(parameters) - set(notebook_parameters(notebook)))
    if unknown:
        raise ReportError(f"{notebook} has no parameter(s) {', '.join(unknown)}")
    check_kernel(kernel)
    with kernel_environment():
        return papermill.execute_notebook(
            str(notebook),
            None,
            parameters=dict(parameters),
            kernel_name=kernel,
            cwd=str(cwd),
            progress_bar=False,
            log_output=False,
            execution_timeout=timeout,
            # the kernel's own log (ipykernel 7 notes the TCP transport at start and a
            # KeyboardInterrupt at shutdown) clutters the stage log; cell errors and warnings
            # still reach the notebook, a kernel that dies still fails the report
            extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
        )


def normalise(nb, notebook_name: str, parameters: Mapping[str, Any]):
    """Strip what varies between runs (times, durations, random ids); keep the parameters."""
    nb.metadata["papermill"] = {
        "input_path": notebook_name,
        "parameters": json.loads(json.dumps(dict(parameters), default=str)),
    }
    seen: set[str] = set()
    for index, cell in enumerate(nb.cells):
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.id = "injected-parameters"
        elif not cell.get("id") or cell.id in seen:
            cell.id = f"cell-{index}"
        seen.add(cell.id)
    return nb


def notebook_title(nb, fallback: str) -> str:
    """The first `# ` heading of the notebook, in a Markdown cell or in a Markdown output (a
    notebook rendered once per table displays its title), else `fallback`."""
    for cell in nb.cells:
        texts = [cell.source] if cell.cell_type == "markdown" else []
        for output in cell.get("outputs", []):
            texts.append(output.get("data", {}).get("text/markdown", ""))
        for text in texts:
            for line in "".join(text).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def render_html(nb, title: str, no_input: bool = False) -> str:
    """nbconvert HTMLExporter (lab template); PNG outputs are embedded as data URIs."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input = no_input
    exporter.exclude_input_prompt = no_input
    exporter.exclude_output_prompt = no_input
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
    return body


def explain(err: BaseException) -> str:
    """A readable message for a failed execution (the failing cell's error and traceback)."""
    ename, evalue = getattr(err, "ename", None), getattr(err, "evalue", None)
    if ename is None:
        return f"{type(err).__name__}: {err}"
    lines = [f"cell [{getattr(err, 'exec_count', '?')}] raised {ename}: {evalue}"]
    lines += [ANSI.sub("", line) for line in getattr(err, "traceback", [])]
    return "\n".join(lines)


def report(
    notebook: Path,
    out: Path,
    parameters: Mapping[str, Any] | None = None,
    cwd: Path = Path("."),
    kernel: str = "python3",
    executed_out: Path | None = None,
    title: str | None = None,
    no_input: bool = False,
    timeout: int | None = None,
) -> None:
    """Execute, normalise, render; write the HTML (and the executed notebook) atomically."""
    import nbformat

    parameters = dict(parameters or {})
    try:
        nb = execute(notebook, parameters, cwd, kernel, timeout)
    except ReportError:
        raise
    except Exception as err:  # the cell's error, a dead kernel, a timeout
        raise ReportError(f"executing {notebook} failed:\n{explain(err)}") from err
    nb = normalise(nb, notebook.name, parameters)
    text = render_html(nb, title or notebook_title(nb, notebook.stem), no_input)
    if executed_out is not None:
        atomic_write_text(nbformat.writes(nb) + "\n", executed_out)
    atomic_write_text(text, out)


# -- the index page -----------------------------------------------------------------------------
def report_facts(path: Path) -> dict[str, str]:
    """Title and provenance (the banner's data-* attributes) of a rendered report."""
    text = path.read_text(encoding="utf-8")
    facts = {"title": path.stem}
    found = re.search(r"<title>(.*?)</title>", text, re.S)
    if found:
        facts["title"] = html.unescape(found.group(1).strip())
    # nbconvert re-serialises output HTML (attributes sorted): match the tag, not its layout
    banner = re.search(r'<div[^>]*class="rh-provenance"[^>]*>', text)
    if banner:
        for key, value in re.findall(r'data-([\w-]+)="([^"]*)"', banner.group(0)):
            facts[key] = html.unescape(value)
    return facts


def _same(key: str, value: str, expected: str) -> bool:
    """Report fact == index fact; dataset roots compare as resolved paths."""
    if key == "dataset":
        return os.path.realpath(value) == os.path.realpath(expected)
    return value == expected


def build_index(
    reports: Sequence[Path],
    out: Path,
    profile: str,
    data: str,
    commit: str,
    title: str = "Reports: Image Harmonization with Region-wise Contrastive Learning",
) -> str:
    """HTML linking every report, with the profile, dataset and code version behind them."""
    e = html.escape
    dataset, official = dataset_description(data)
    paper_run = profile == "paper" and official
    rows = []
    for path in reports:
        if not path.is_file():
            raise ReportError(f"report not found: {path}")
        facts = report_facts(path)
        link = os.path.relpath(path, out.parent).replace(os.sep, "/")
        cells = [f'<a href="{e(link)}">{e(facts["title"])}</a>', f"<code>{e(link)}</code>"]
        for key, expected in (("profile", profile), ("dataset", data), ("code-version", None)):
            value = facts.get(key, "?")
            differs = expected is not None and value != "?" and not _same(key, value, expected)
            cells.append(f"<code>{e(value)}</code>" + (" &#9888; differs" if differs else ""))
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    if paper_run:
        warning = "<p>Paper profile on the official iHarmony4 split.</p>"
    else:
        warning = (
            "<p class='warn'><b>NOT a reproduction of the paper's numbers:</b> these reports "
            f"come from the <code>{e(profile)}</code> profile on <code>{e(data)}</code> "
            f"({e(dataset)}). Each report shows the paper's numbers beside the measured ones, in "
            "separate columns.</p>"
        )
    head = "".join(
        f"<th>{h}</th>" for h in ("report", "file", "profile", "dataset", "code version")
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{e(title)}</title>
<style>
body {{ font-family: sans-serif; max-width: 70em; margin: 2em auto; padding: 0 1em; }}
table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }}
.warn {{ border: 3px solid #b71c1c; background: #ffebee; padding: 0.6em 1em; }}
</style>
</head>
<body>
<h1>{e(title)}</h1>
<p>Produced by profile <code>{e(profile)}</code> on dataset <code>{e(data)}</code>
({e(dataset)}) with code version <code>{e(commit)}</code> (a digest of the package source).</p>
{warning}
<table>
<tr>{head}</tr>
{chr(10).join(rows)}
</table>
{SCOPE}
</body>
</html>
"""


SCOPE = """<h2>What this pipeline reproduces, and what it cannot here</h2>
<ul>
<li>Measured here, on whatever data <code>data.root</code> names: Tables II, III, IV, VI, VII,
Fig. 4, 7, 8, 9, 10 and the classical baselines. Their numbers are the paper's only with the
paper profile on iHarmony4, which cannot be downloaded by this pipeline (see
<code>data.dvc</code>).</li>
<li>Not in the paper: this repository's L_HCL reading study,
<a href="loss_reading.html">loss_reading.html</a>, built where params.yaml <code>studies</code>
names it (the embedded default; the paper switch leaves it out).</li>
<li>Fig. 5 and Fig. 6 need the real composites of DIH99 and RealHM (not shipped); the report shows
the embedded test composites instead until <code>real_composites</code> and
<code>realhm_composites</code> in params.yaml point at them (the paper block does).</li>
<li>Table V needs people: the pipeline builds a blind study page
(<code>user_study/study/index.html</code>) and tallies the votes placed in
<code>user_study/votes/</code>; with none, its report says so.</li>
</ul>
"""


# -- command line -------------------------------------------------------------------------------
def parse_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """Notebook parameters: -p KEY VALUE (VALUE parsed as YAML), then -r KEY VALUE (a string)."""
    params: dict[str, Any] = {key: yaml.safe_load(value) for key, value in args.param}
    params.update(dict(args.raw_param))
    return params


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Execute a notebook (papermill) and render self-contained HTML, or with --index write "
        "the index page of rendered reports."
    )
    parser.add_argument("notebook", nargs="?", type=Path, help="the .ipynb to execute")
    parser.add_argument("--out", type=Path, required=True, help="the HTML file to write")
    parser.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        default=[],
        metavar=("KEY", "VALUE"),
        help="a notebook parameter; VALUE parsed as YAML (repeatable)",
    )
    parser.add_argument(
        "-r",
        "--raw-param",
        nargs=2,
        action="append",
        default=[],
        metavar=("KEY", "VALUE"),
        help="a notebook parameter kept as a string (repeatable)",
    )
    parser.add_argument("--cwd", type=Path, default=Path("."), help="kernel working directory")
    parser.add_argument("--kernel", default="python3", help="Jupyter kernel (default python3)")
    parser.add_argument("--executed-out", type=Path, help="also save the executed .ipynb here")
    parser.add_argument("--title", help="HTML title (default: the notebook's first # heading)")
    parser.add_argument("--no-input", action="store_true", help="hide the code cells")
    parser.add_argument("--timeout", type=int, help="seconds allowed per cell (default: none)")
    index = parser.add_argument_group("index page (--index)")
    index.add_argument("--index", action="store_true", help="write the index page instead")
    index.add_argument("--reports", nargs="+", type=Path, default=[], help="rendered reports")
    index.add_argument("--profile", default="unknown", help="the profile that produced them")
    index.add_argument("--data", default="", help="the dataset root that produced them")
    index.add_argument("--code-version", help="default: the digest of this package's source")


def run(args: argparse.Namespace) -> int:
    if args.index:
        if args.notebook is not None:
            raise ReportError("--index takes no NOTEBOOK")
        if not args.reports:
            raise ReportError("--index needs --reports")
        commit = args.code_version or code_version()
        kwargs = {"title": args.title} if args.title else {}
        text = build_index(args.reports, args.out, args.profile, args.data, commit, **kwargs)
        atomic_write_text(text, args.out)
    else:
        if args.notebook is None:
            raise ReportError("NOTEBOOK is required (or --index)")
        report(
            args.notebook,
            args.out,
            parse_parameters(args),
            args.cwd,
            args.kernel,
            args.executed_out,
            args.title,
            args.no_input,
            args.timeout,
        )
    print(f"wrote {args.out}")
    return 0

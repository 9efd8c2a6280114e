"""What the report notebooks share: the setup, the provenance banner, labels and formats, and
readers of the pipeline's results and parameters. The notebooks only load results and draw;
everything they compute comes from here or from the package. Torch-free.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from regionharmony.data.layout import MINI_MANIFEST, OFFICIAL_TOTALS

# metrics.json keys -> the paper's column labels; SSIM is stored 0-1, printed x100 as the paper
LABELS = {
    "mse": "MSE ↓",
    "psnr": "PSNR ↑",
    "fmse": "fMSE ↓",
    "ssim": "SSIM ×100 ↑",
    "fssim": "fSSIM ×100 ↑",
}
SCALE = {"ssim": 100, "fssim": 100}
PARAMS_FILE = Path("params.yaml")


def setup() -> None:
    """The first cell of every notebook: work from the repository root, one plotting theme."""
    import seaborn as sns

    enter_repo_root()
    sns.set_theme(style="whitegrid", context="notebook")


def fmt(value: float | None, digits: int = 2) -> str:
    """A number as the tables print it; a dash for a missing one."""
    if value is None or value != value:  # None or NaN
        return "—"
    return f"{value:.{digits}f}"


def load_json(path: str | Path) -> dict[str, Any]:
    """A result file; the error names the path if it is missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"result file not found: {path} (run `dvc repro` first)")
    return json.loads(path.read_text())


def params(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
    """params.yaml, the one place of every number (variants, evaluation sizes, tables)."""
    from regionharmony.params import load_params

    return load_params(path)


def known_profiles() -> set[str]:
    """The profiles params.yaml defines (only `paper` where there is no params.yaml)."""
    if not PARAMS_FILE.is_file():
        return {"paper"}
    return {"paper", *(params().get("profiles") or {})}


def live_curve(model_dir: str | Path, part: str, metric: str):
    """A DVCLive curve of a model directory as a DataFrame (step, metric):
    `part` "train" (per step, e.g. metric "loss/total") or "val" (per epoch, e.g. "psnr")."""
    import pandas as pd

    path = Path(model_dir, "live", part, "plots", "metrics", f"{metric}.tsv")
    if not path.is_file():
        raise FileNotFoundError(f"training curve not found: {path}")
    return pd.read_csv(path, sep="\t")


def enter_repo_root() -> Path:
    """Paths in the notebooks are relative to the repository root, where papermill runs them.

    Opened interactively from `notebooks/` (e.g. `make lab`), step up to the root once.
    Returns the working directory.
    """
    here = Path.cwd()
    if here.name == "notebooks" and (here.parent / "pyproject.toml").is_file():
        os.chdir(here.parent)
    return Path.cwd()


def _count_lines(path: Path) -> int | None:
    if not path.is_file():
        return None
    return sum(1 for line in path.read_text().splitlines() if line.strip())


def dataset_description(data_root: str | Path) -> tuple[str, bool]:
    """(description, is the official iHarmony4 split) of a dataset root.

    Official means IHD_train.txt / IHD_test.txt list 65742 / 7404 pairs (Table I); the embedded
    dataset is recognised by the manifest `make-mini` writes into its root.
    """
    if not str(data_root):
        return "dataset root not given: not verified to be iHarmony4", False
    root = Path(data_root)
    counts = {split: _count_lines(root / f"IHD_{split}.txt") for split in OFFICIAL_TOTALS}
    if counts == OFFICIAL_TOTALS:
        return f"iHarmony4, official split: {counts['train']} train / {counts['test']} test", True
    if not root.is_dir():
        return "not found on this machine: not verified to be iHarmony4", False
    sizes = " / ".join(f"{counts[s] if counts[s] is not None else '?'} {s}" for s in counts)
    embedded = (root / MINI_MANIFEST).is_file()
    kind = "the embedded mini dataset" if embedded else "not the official iHarmony4"
    return f"{kind}: {sizes} pairs", False


def _read_source(source: str | Path | Mapping[str, Any]) -> tuple[str, dict[str, Any] | None]:
    if isinstance(source, Mapping):
        return str(source.get("_name", "given values")), dict(source)
    path = Path(source)
    if not path.is_file():
        return str(path), None
    return str(path), json.loads(path.read_text())


def _one(values: Iterable[Any], fallback: str = "unknown") -> str:
    found = {v for v in values if v not in (None, "")}
    numeric = all(isinstance(v, int | float) for v in found)
    distinct = [str(v) for v in sorted(found, key=lambda v: v if numeric else str(v))]
    if not distinct:
        return fallback
    return distinct[0] if len(distinct) == 1 else "mixed: " + ", ".join(distinct)


def provenance_html(
    profile: str = "",
    data_root: str | Path = "",
    code_version: str = "",
    sources: Sequence[str | Path | Mapping[str, Any]] = (),
) -> str:
    """The banner every report shows first: profile, dataset, code version, evaluation settings.

    Blank `profile` / `code_version` are filled from the `profile` / `code_version` fields of the
    JSON `sources` (summary.json, config.json, metrics.json, or dicts such as an npz's meta);
    the evaluation line comes from the metrics.json fields `split`, `size`, `psnr_range`,
    `ssim_mode`. Unless the profile is `paper` and the data is the official iHarmony4 split,
    the banner says plainly that the measured numbers are NOT a reproduction of the paper's.
    The outer div carries data-* attributes that `build_index` reads back.
    """
    read = [_read_source(s) for s in sources]
    found = [data for _, data in read if data is not None]
    missing = [name for name, data in read if data is None]
    from_files = _one(d.get("profile") for d in found)
    profile = profile or from_files
    code_version = code_version or _one(d.get("code_version") for d in found)
    dataset, official = dataset_description(data_root)
    paper_run = profile == "paper" and official

    e = html.escape
    lines = [
        f"<b>Provenance.</b> Profile <code>{e(profile)}</code> &middot; dataset "
        f"<code>{e(str(data_root) or '?')}</code>: {e(dataset)} &middot; code version "
        f"<code>{e(code_version)}</code>"
    ]
    settings = []
    for key, label in (
        ("split", "split"),
        ("size", "size (px)"),
        ("psnr_range", "PSNR data range"),
        ("ssim_mode", "SSIM mode"),
    ):
        value = _one((d.get(key) for d in found if "subsets" in d), "")
        if value:
            settings.append(f"{label} <code>{e(value)}</code>")
    if settings:
        lines.append("Measured evaluation: " + ", ".join(settings) + ".")
    if from_files not in ("unknown", profile):
        lines.append(f"Note: the result files say profile <code>{e(from_files)}</code>.")
    if missing:
        lines.append("Not found: " + ", ".join(f"<code>{e(m)}</code>" for m in missing) + ".")
    if paper_run:
        lines.append(
            "Measured with the paper profile on iHarmony4: the measured columns are this "
            "repository's attempt at the paper's numbers."
        )
        colour, fill = "#1b5e20", "#e8f5e9"
    else:
        if profile == "paper":
            why = "the paper profile"
        elif profile in known_profiles():
            why = f"the small <code>{e(profile)}</code> profile"
        else:
            why = f"an unverified profile (<code>{e(profile)}</code>)"
        if official:
            where = "iHarmony4"
        elif "embedded" in dataset:
            where = f"the embedded dataset <code>{e(str(data_root))}</code>"
        else:
            where = "a dataset that is not verified to be the official iHarmony4 split"
        lines.append(
            f"<b>NOT a reproduction of the paper's numbers.</b> The measured numbers come from "
            f"{why} on {where}; they show that the pipeline runs end to end and how the "
            "variants compare with each other, not what the paper's model scores."
        )
        colour, fill = "#b71c1c", "#ffebee"
    attrs = " ".join(
        f'data-{k}="{e(str(v))}"'
        for k, v in (
            ("profile", profile),
            ("dataset", data_root),
            ("code-version", code_version),
            ("reproduction", "yes" if paper_run else "no"),
        )
    )
    body = "<br>".join(lines)
    return (
        f'<div class="rh-provenance" {attrs} style="border: 3px solid {colour}; '
        f"background: {fill}; padding: 0.8em 1em; margin: 0.5em 0; font-size: 1.05em; "
        f'line-height: 1.5;">{body}</div>'
    )


# -- escaped HTML ---------------------------------------------------------------------------------
# Strings from result or votes files (file names, participant ids, choices, method and group
# names) never reach a report as markup: notebooks show them through these helpers, which escape
# every character that HTML gives a meaning (and wrap the output so MathJax leaves `$` alone),
# never through Markdown or a pandas Styler (neither escapes).
ESCAPED_CLASS = "rh-escaped tex2jax_ignore mathjax_ignore"


def escape(value: Any) -> str:
    """`value` as HTML text: `str(value)` with & < > " ' escaped; a dash for None / NaN."""
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    return html.escape(str(value), quote=True)


def code_html(value: Any) -> str:
    """`value` in a <code> element, escaped."""
    return f"<code>{escape(value)}</code>"


def _escaped_labels(index: Any) -> Any:
    import pandas as pd

    if isinstance(index, pd.MultiIndex):
        labels = pd.MultiIndex.from_tuples(
            [tuple(escape(part) for part in label) for label in index],
            names=[None if n is None else escape(n) for n in index.names],
        )
    else:
        labels = pd.Index([escape(label) for label in index], dtype=object)
        labels.name = None if index.name is None else escape(index.name)
    return labels


def html_table(frame: Any, index: bool = True) -> str:
    """A DataFrame (or Series) as an HTML table in which every label and cell is escaped
    text (`escape`); MultiIndex columns keep their spans."""
    import pandas as pd

    if isinstance(frame, pd.Series):
        frame = frame.to_frame()
    cells = pd.DataFrame(
        [[escape(v) for v in row] for row in frame.itertuples(index=False, name=None)],
        index=_escaped_labels(frame.index),
        columns=_escaped_labels(frame.columns),
    )
    table = cells.to_html(escape=False, index=index, border=0, na_rep="—")
    return f'<div class="{ESCAPED_CLASS}">{table}</div>'


# -- seeds, noise and claims ----------------------------------------------------------------------
LOWER_IS_BETTER = {"mse": True, "fmse": True, "psnr": False, "ssim": False, "fssim": False}


def seed_values(metrics: Mapping[str, Any], metric: str, subset: str = "All") -> list[float]:
    """A metric's value for every seed of a metrics.json (one value for a single model)."""
    entry = metrics["subsets"].get(subset, {})
    values = entry.get(f"{metric}_seeds") or [entry.get(metric)]
    return [float(v) * SCALE.get(metric, 1) for v in values if v is not None]


def mean_spread(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    import numpy as np

    array = np.asarray(values, dtype=float)
    spread = float(array.std(ddof=1)) if array.size > 1 else 0.0
    return float(array.mean()), spread


def fmt_spread(values: Sequence[float], digits: int = 2) -> str:
    """'mean ± std (n)' for several seeds, the value alone for one."""
    if not values:
        return "—"
    mean, spread = mean_spread(values)
    if len(values) == 1:
        return fmt(mean, digits)
    return f"{fmt(mean, digits)} ± {fmt(spread, digits)}"


def compare(
    better: Sequence[float], worse: Sequence[float], metric: str
) -> dict[str, float | bool | str]:
    """Is `better` better than `worse` on `metric`, and by more than the noise?

    The noise margin is twice the standard error of the difference of the two means,
    2 * sqrt(s_a^2 / n_a + s_b^2 / n_b) (about a 95 % interval for normal seed-to-seed spread);
    a side with one value (a deterministic baseline such as the composite) adds no spread; with
    one value on both sides there is no spread to measure and the verdict says so.
    """
    mean_a, sd_a = mean_spread(better)
    mean_b, sd_b = mean_spread(worse)
    delta = mean_a - mean_b
    improves = delta < 0 if LOWER_IS_BETTER.get(metric, False) else delta > 0
    if max(len(better), len(worse)) < 2:
        margin, verdict = float("nan"), "no spread"
    else:
        margin = 2 * (sd_a**2 / len(better) + sd_b**2 / len(worse)) ** 0.5
        direction = "agrees" if improves else "disagrees"
        verdict = "inside the noise" if abs(delta) <= margin else direction
    return {"delta": delta, "margin": margin, "improves": improves, "verdict": verdict}


VERDICT_COLOURS = {
    "agrees": ("#1b5e20", "#e8f5e9"),
    "disagrees": ("#b71c1c", "#ffebee"),
    "inside the noise": ("#8d6e00", "#fff8e1"),
    "no spread": ("#555555", "#f2f2f2"),
}


def claim_html(claim: str, verdict: str, detail: str) -> str:
    """A one-line box: the paper's claim, whether the measurement agrees, and the numbers."""
    colour, fill = VERDICT_COLOURS.get(verdict, VERDICT_COLOURS["no spread"])
    e = html.escape
    return (
        f'<div style="border-left: 6px solid {colour}; background: {fill}; padding: 0.4em 0.8em; '
        f'margin: 0.3em 0;"><b>Paper:</b> {e(claim)} <b>Measured: {e(verdict)}</b> '
        f"&mdash; {e(detail)}</div>"
    )


# -- figure grids ---------------------------------------------------------------------------------
def evenly_spread(items: Sequence[Any], count: int) -> list[Any]:
    """`count` items picked evenly over `items` (first and last included), not by quality."""
    import numpy as np

    index = np.linspace(0, len(items) - 1, min(count, len(items))).round().astype(int)
    return [items[i] for i in index]


def foreground_box(ax: Any, mask: Any, scale: float = 1.0) -> None:
    """The mask's bounding box drawn in green on `ax` (an image shown `scale` times its size)."""
    import numpy as np
    from matplotlib.patches import Rectangle

    ys, xs = np.nonzero(mask)
    if not xs.size:
        return
    ax.add_patch(
        Rectangle(
            (xs.min() * scale - 0.5, ys.min() * scale - 0.5),
            (xs.max() - xs.min() + 1) * scale,
            (ys.max() - ys.min() + 1) * scale,
            fill=False,
            edgecolor="lime",
            linewidth=1.5,
        )
    )


def paper_footnotes_html(
    tables: Sequence[str], path: str | Path = "paper_results/footnotes.csv"
) -> str:
    """The paper's own inconsistencies that touch `tables` (e.g. "Table II"), as footnotes to
    show beside its numbers (paper_results/footnotes.csv: checked against the paper's text)."""
    import pandas as pd

    notes = pd.read_csv(path)
    wanted = set(tables)
    rows = [
        n for t, n in zip(notes["tables"], notes["note"], strict=True) if wanted & set(t.split(";"))
    ]
    if not rows:
        return ""
    items = "".join(f"<li>{escape(note)}</li>" for note in rows)
    head = "<p><b>Notes on the paper's numbers</b> (printed as the paper has them):</p>"
    return f"{head}<ol>{items}</ol>"

"""Reports: every notebook executed end to end on a fake result tree, deterministic HTML.

The fake tree follows the pipeline's contracts (models/<variant>/, evaluation/<name>/, a tiny
iHarmony4-layout data root, a features npz from `regionharmony features`); the paper CSVs are the
repository's own. The kernel is pinned to this interpreter through a JUPYTER_PATH kernelspec, so
the tests do not depend on the machine's Jupyter configuration (a separate test checks that the
plain `python3` kernel resolves to this interpreter too).
"""

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from nbformat.v4 import new_code_cell, new_notebook
from PIL import Image

from regionharmony.cli import main as cli_main
from regionharmony.data.layout import MINI_MANIFEST as MANIFEST
from regionharmony.evaluation.metrics import seed_summary
from regionharmony.model.harmonizer import build_model
from regionharmony.params import build_config, load_params
from regionharmony.report import notebook
from regionharmony.report import render as report

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SUBSETS = ("HCOCO", "HAdobe5k", "HFlickr", "Hday2night")
PARAMS = load_params(ROOT / "params.yaml")
LAYERS = {**PARAMS["variants"], **PARAMS["prefix_variants"], **PARAMS["studies"]}
VARIANTS = tuple(LAYERS)  # every model the pipeline makes (config.VARIANT_MAPPINGS)
SIZE, HIGHRES = 32, (64,)
BANNER = "NOT a reproduction of the paper's numbers"


def features_main(argv: list[str]) -> int:
    return cli_main(["features", *argv])


def report_main(argv: list[str]) -> int:
    return cli_main(["report", *argv])


# -- the fake result tree -----------------------------------------------------------------------
def write_dataset(root: Path, per_subset: int = 2) -> list[tuple[str, str]]:
    """Tiny iHarmony4-layout root; returns [(subset, composite file name)]."""
    rng = np.random.default_rng(0)
    pairs, lines = [], []
    for subset in SUBSETS:
        for sub in ("composite_images", "masks", "real_images"):
            (root / subset / sub).mkdir(parents=True)
        for n in range(per_subset):
            image_id = f"{subset[1].lower()}{n}-a"
            real = rng.integers(0, 256, (36, 44, 3), dtype=np.uint8)
            mask = np.zeros((36, 44), dtype=np.uint8)
            mask[6:20, 8 + n : 26 + n] = 255
            Image.fromarray(real).save(root / subset / "real_images" / f"{image_id}.jpg")
            Image.fromarray(np.stack([mask] * 3, -1)).save(
                root / subset / "masks" / f"{image_id}_1.png"
            )
            comp = np.where(mask[..., None] > 0, real // 2, real).astype(np.uint8)
            name = f"{image_id}_1_1.jpg"
            Image.fromarray(comp).save(root / subset / "composite_images" / name)
            pairs.append((subset, name))
            lines.append(f"{subset}/composite_images/{name}")
    (root / "IHD_test.txt").write_text("\n".join(lines) + "\n")
    (root / "IHD_train.txt").write_text("\n".join(lines) + "\n")
    return pairs


def metric_block(rng: np.random.Generator, n: int) -> dict:
    return {
        "n": n,
        "mse": float(rng.uniform(20, 200)),
        "psnr": float(rng.uniform(25, 38)),
        "fmse": float(rng.uniform(200, 2000)),
        "ssim": float(rng.uniform(0.9, 0.99)),
        "fssim": float(rng.uniform(0.6, 0.9)),
    }


def write_evaluation(folder: Path, pairs, size: int, seed: int, subsets=SUBSETS, images=True):
    """metrics.json, per_image.csv and (optionally) images/<subset>/<stem>.png."""
    rng = np.random.default_rng(seed)
    kept = [(s, n) for s, n in pairs if s in subsets]
    blocks = {s: metric_block(rng, sum(1 for k, _ in kept if k == s)) for s in subsets}
    blocks["All"] = metric_block(rng, len(kept))
    metrics = {
        "split": "test",
        "size": size,
        "source": "fake",
        "psnr_range": "official",
        "ssim_mode": "iih",
        "subsets": blocks,
        "fg_ratio_bins": {b: metric_block(rng, 1) for b in ("0-5", "5-15", "15-100")},
    }
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    rows = [{"subset": s, "name": n, "fg_ratio": 0.2, **metric_block(rng, 1)} for s, n in kept]
    pd.DataFrame(rows).drop(columns="n").to_csv(folder / "per_image.csv", index=False)
    if images:
        for subset, name in kept:
            out = folder / "images" / subset / f"{Path(name).stem}.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(out)


def write_model_dir(folder: Path, variant: str, seed: int, weights: bool = False) -> None:
    """config.json, summary.json and DVCLive TSVs (and model.pt when `weights`)."""
    overrides = LAYERS[variant]
    cfg = build_config("mini", variant=overrides)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(cfg.to_dict()))
    summary = {
        "profile": "mini",
        "params_generator": 321_000,
        "params_head": 115_200,
        "gflops_per_image": 0.1,
        "image_size": 64,
        "steps": 30,
        "epochs": 3,
        "train_pairs": 8,
        "code_version": "fakecommit",
        "final_train_loss": {"total": 0.1},
        "final_validation": {"mse": 50.0, "psnr": 30.0, "fmse": 400.0},
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    rng = np.random.default_rng(seed)
    val = folder / "live" / "val" / "plots" / "metrics"
    val.mkdir(parents=True)
    for name in ("mse", "psnr", "fmse"):
        rows = "".join(f"{1000 + e}\t{e}\t{rng.uniform(10, 40):.4f}\n" for e in (1, 2, 3))
        (val / f"{name}.tsv").write_text(f"timestamp\tstep\t{name}\n" + rows)
    loss = folder / "live" / "train" / "plots" / "metrics" / "loss"
    loss.mkdir(parents=True)
    for name in ("total", "l1", "pixel", "hcl"):
        rows = "".join(f"{s}\t{rng.uniform(0, 1):.4f}\n" for s in range(1, 31))
        (loss / f"{name}.tsv").write_text(f"step\t{name}\n" + rows)
    if weights:
        torch.save(build_model(cfg).state_dict(), folder / "model.pt")


def build_tree(root: Path) -> None:
    """A repository-shaped tree of fake pipeline outputs, under `root`."""
    pairs = write_dataset(root / "data" / "mini")
    (root / "data" / "mini" / MANIFEST).write_text("{}")  # what make-mini leaves in its root
    for number, variant in enumerate(VARIANTS):
        per_seed = {}
        for seed in (0, 1):
            folder = f"seed{seed}"
            weights = variant == "full" and seed == 0
            write_model_dir(root / "models" / variant / folder, variant, number, weights=weights)
            write_evaluation(
                root / "evaluation" / variant / folder, pairs, SIZE, 10 * number + seed
            )
            per_seed[folder] = json.loads(
                (root / "evaluation" / variant / folder / "metrics.json").read_text()
            )
        (root / "evaluation" / variant / "metrics.json").write_text(
            json.dumps(seed_summary(per_seed))
        )
    for number, baseline in enumerate(PARAMS["reports"]["baselines"]):
        write_evaluation(root / "evaluation" / baseline, pairs, SIZE, 99 + number)
    for number, name in enumerate(PARAMS.get("external_methods") or {}):
        folder = root / "evaluation" / "external" / name
        write_evaluation(folder, pairs, SIZE, 199 + number)
        metrics = json.loads((folder / "metrics.json").read_text())
        metrics["protocol"] = {"n": 7, "n_listed": 8, "coverage": 0.875}
        (folder / "metrics.json").write_text(json.dumps(metrics))
    for size in HIGHRES:
        for name in ("full", "composite"):
            write_evaluation(
                root / "evaluation" / "highres" / f"{name}_{size}",
                pairs,
                size,
                size,
                subsets=("HAdobe5k",),
                images=False,
            )
    shutil.copytree(ROOT / "paper_results", root / "paper_results")
    params = load_params(ROOT / "params.yaml")
    params["evaluate"]["highres"] = list(HIGHRES)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    rc = features_main(
        [
            "--checkpoint",
            str(root / "models" / "full" / "seed0"),
            "--data-root",
            str(root / "data" / "mini"),
            "--out",
            str(root / "features" / "full.npz"),
            "--size",
            str(SIZE),
            "--count",
            "2",
        ]
    )
    assert rc == 0


# -- what is rendered ---------------------------------------------------------------------------
TABLE7 = ["-r", "table", "table7"]  # its rows come from params.yaml reports.table7
RENDERS = {
    "table2_table3": ("table2_table3", []),
    "table4_highres": ("table4_highres", []),
    "table6": ("ablation", []),
    "table7": ("ablation", TABLE7),
    "loss_reading": ("ablation", ["-r", "table", "loss_reading"]),
    "fusion_curves": ("fusion_curves", []),
    "feature_maps": ("feature_maps", []),
    "figure_grids": ("figure_grids", ["-p", "count", "2"]),
}
FIGURES = {"fusion_curves": 2, "feature_maps": 2, "figure_grids": 2}  # others: 1
EMBEDDED = 'src="data:image/png;base64,'  # an output image (the template's CSS has one too)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("repo")
    build_tree(root)
    return root


def render(tree: Path, notebook: str, extra: list[str], out: Path, *more: str) -> int:
    argv = [str(NOTEBOOKS / f"{notebook}.ipynb"), "--out", str(out), "--cwd", str(tree)]
    return report_main([*argv, *extra, *more])


@pytest.fixture(scope="module")
def rendered(tree, hermetic_kernel):
    out = {}
    for name, (notebook_name, extra) in RENDERS.items():
        html = tree / "reports" / f"{name}.html"
        executed = tree / "reports" / f"{name}.ipynb"
        assert render(tree, notebook_name, extra, html, "--executed-out", str(executed)) == 0, name
        out[name] = html
    return out


# -- tests --------------------------------------------------------------------------------------
def test_python3_kernel_runs_this_interpreter(monkeypatch):
    """The plain environment (no test kernelspec): `python3` must resolve to the venv's Python."""
    monkeypatch.delenv("JUPYTER_PATH", raising=False)
    assert report.kernel_interpreter("python3") == sys.executable
    report.check_kernel("python3")


def test_a_kernel_of_another_interpreter_is_refused(tmp_path, monkeypatch):
    other = shutil.which("python3", path="/usr/bin:/bin")
    if other is None or os.path.realpath(other) == os.path.realpath(sys.executable):
        pytest.skip("no second interpreter on this machine")
    spec = tmp_path / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [other, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    with pytest.raises(report.ReportError, match="not this interpreter"):
        report.check_kernel("python3")


@pytest.mark.parametrize("name", sorted(RENDERS))
def test_every_report_renders_with_banner_and_embedded_figures(rendered, name):
    text = rendered[name].read_text(encoding="utf-8")
    assert text.count(EMBEDDED) == FIGURES.get(name, 1)
    assert 'class="rh-provenance"' in text and BANNER in text
    assert "small <code>mini</code> profile on the embedded dataset" in text
    assert 'data-profile="mini"' in text and 'data-code-version="fakecommit"' in text
    executed = nbformat.read(rendered[name].with_suffix(".ipynb"), as_version=4)
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert not [o for o in outputs if o.get("name") == "stderr"], "warnings in the report"


def test_executed_notebook_keeps_parameters_and_no_timestamps(rendered):
    executed = nbformat.read(rendered["table7"].with_suffix(".ipynb"), as_version=4)
    nbformat.validate(executed)
    meta = executed.metadata["papermill"]
    assert meta["parameters"]["table"] == "table7"
    assert set(meta) == {"input_path", "parameters"}
    for cell in executed.cells:
        assert "papermill" not in cell.metadata and "execution" not in cell.metadata
    assert executed.cells[2].id == "injected-parameters"


def test_tables_show_paper_and_measured_in_separate_columns(rendered):
    text = rendered["table2_table3"].read_text(encoding="utf-8")
    assert "paper, Table II" in text and "measured: evaluation/full" in text
    assert "37.50" in text and "25.90" in text  # the paper's Ours, All
    for name in PARAMS.get("external_methods") or {}:  # saved outputs of another method
        assert f"{name} (external)" in text and "7/8 pairs (87.5 %)" in text
    assert "Notes on the paper" in text and "172.47" in text  # the paper's own inconsistencies
    table6 = rendered["table6"].read_text(encoding="utf-8")
    assert "25.92" in table6 and "Notes on the paper" in table6
    table7 = rendered["table7"].read_text(encoding="utf-8")
    assert "Table VII" in table7 and "K = 1024" in table7 and "99.04" in table7


def test_a_second_render_is_byte_identical(rendered, tree, tmp_path):
    for name in ("table2_table3",):
        notebook, extra = RENDERS[name]
        again = tmp_path / "elsewhere" / f"{name}-again.html"
        assert render(tree, notebook, extra, again) == 0
        assert again.read_bytes() == rendered[name].read_bytes(), name


def test_a_raising_notebook_fails_and_writes_nothing(tree, tmp_path, hermetic_kernel, capsys):
    params = new_code_cell("x = 1")
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[params, new_code_cell("raise ValueError('boom in cell')")])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    source = tmp_path / "bad.ipynb"
    nbformat.write(nb, source)
    out, executed = tmp_path / "out" / "bad.html", tmp_path / "out" / "bad.ipynb"
    rc = report_main([str(source), "--out", str(out), "--executed-out", str(executed)])
    assert rc == 1
    err = capsys.readouterr().err
    assert "ValueError" in err and "boom in cell" in err
    assert not out.exists() and not executed.exists()
    assert not out.parent.exists() or not list(out.parent.iterdir())


def test_unknown_parameters_and_missing_inputs_are_refused(tree, tmp_path, capsys):
    out = tmp_path / "x.html"
    assert render(tree, "fusion_curves", ["-p", "varaints", "[a]"], out) == 1
    assert "no parameter(s) varaints" in capsys.readouterr().err
    assert report_main([str(tmp_path / "none.ipynb"), "--out", str(out)]) == 1
    assert "notebook not found" in capsys.readouterr().err
    assert not out.exists()


def test_parameters_parse_yaml_and_raw_strings_win():
    def parse(*argv: str) -> dict:
        parser = argparse.ArgumentParser()
        report.add_arguments(parser)
        return report.parse_parameters(parser.parse_args(["nb.ipynb", "--out", "x.html", *argv]))

    assert parse("-p", "metrics", "[ssim]", "-p", "count", "3") == {"metrics": ["ssim"], "count": 3}
    assert parse("-p", "x", "3", "-r", "x", "3") == {"x": "3"}


def test_index_links_every_report_with_its_provenance(rendered, tree):
    out = tree / "reports" / "index.html"
    reports = [rendered[name] for name in sorted(rendered)]
    argv = ["--index", "--out", str(out), "--reports", *map(str, reports)]
    argv += ["--profile", "mini", "--data", str(tree / "data" / "mini"), "--code-version", "c0ffee"]
    assert report_main(argv) == 0
    text = out.read_text()
    for path in reports:
        assert f'href="{path.name}"' in text
    assert "c0ffee" in text and "<code>mini</code>" in text and "NOT a reproduction" in text
    assert "Tables II and III" in text and "fakecommit" in text
    first = out.read_bytes()
    assert report_main(argv) == 0 and out.read_bytes() == first


def test_banner_for_the_paper_profile_on_official_data(tmp_path):
    root = tmp_path / "iHarmony4"
    root.mkdir()
    for split, n in notebook.OFFICIAL_TOTALS.items():
        (root / f"IHD_{split}.txt").write_text("HCOCO/composite_images/c_1_1.jpg\n" * n)
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"profile": "paper", "code_version": "abc"}))
    banner = notebook.provenance_html("", root, "", [summary])
    assert "NOT a reproduction" not in banner and 'data-reproduction="yes"' in banner
    assert "iHarmony4, official split" in banner
    mini = notebook.provenance_html("mini", root, "abc")
    assert "NOT a reproduction" in mini and "small <code>mini</code> profile" in mini
    elsewhere = notebook.provenance_html("paper", tmp_path / "mini", "abc")
    assert "NOT a reproduction" in elsewhere and "not verified" in elsewhere
    embedded = tmp_path / "embedded"
    embedded.mkdir()
    (embedded / MANIFEST).write_text("{}")
    (embedded / "IHD_test.txt").write_text("HCOCO/composite_images/c_1_1.jpg\n")
    text, official = notebook.dataset_description(embedded)
    assert not official and text.startswith("the embedded mini dataset: ? train / 1 test")
    assert "on the embedded dataset" in notebook.provenance_html("mini", embedded, "abc")


def test_notebooks_are_committed_clean():
    names = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
    assert set(names) >= {n for n, _ in RENDERS.values()}
    for path in NOTEBOOKS.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert nb.metadata["kernelspec"]["name"] == "python3", path
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, path
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, path
                assert "matplotlib.use(" not in cell.source, path
        assert "papermill" not in nb.metadata


def test_paper_csvs_hold_the_papers_numbers():
    paper = ROOT / "paper_results"
    t2 = pd.read_csv(paper / "table2.csv").set_index("method")
    assert t2.loc["Ours", ["params_m", "All_mse", "All_psnr"]].tolist() == [28.37, 25.90, 37.50]
    assert t2.loc["input composite", "All_mse"] == 170.25 and len(t2) == 10
    t3 = pd.read_csv(paper / "table3.csv").set_index("method")
    assert t3.loc["Ours", ["All_fmse", "All_fssim"]].tolist() == [279.46, 90.69]
    t4 = pd.read_csv(paper / "table4.csv").set_index("resolution")
    assert t4.loc[1024, "Ours"] == 37.55 and t4.loc[512, "S2AM"] == 32.55
    t6 = pd.read_csv(paper / "table6.csv")
    assert t6[["l1", "l_pixel", "style_fusion", "l_hcl"]].sum().tolist() == [4, 3, 2, 1]
    assert t6.iloc[3][["mse", "psnr", "fssim"]].tolist() == [25.92, 37.50, 90.69]
    t7 = pd.read_csv(paper / "table7.csv").set_index("K")
    assert t7.loc[256].tolist() == [25.90, 37.50, 99.04]
    t1 = pd.read_csv(paper / "table1.csv").set_index("subset")
    assert t1.loc["All"].tolist() == [65742, 7404] == t1.drop("All").sum().tolist()

"""`regionharmony export --format onnx` and `harmonize --engine onnxruntime`: the file matches
torch on two sizes, carries its opset and working size, runs without torch; the one-line errors
(the extra missing, no checkpoint directory)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from harmonize_helpers import TRAIN_SIZE, make_pair, random_network, save_random_model, write_pair
from PIL import Image

from regionharmony.cli import main as cli_main
from regionharmony.errors import HarmonizeError
from regionharmony.inference.harmonize import harmonize
from regionharmony.inference.onnx_export import OPSET, max_difference, probe
from regionharmony.inference.onnx_runtime import OnnxEngine


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_random_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def exported(model_dir: Path) -> Path:
    """The mini profile's random network exported through the command (one export, ~10 s)."""
    out = model_dir.parent / "onnx" / "model.onnx"
    out.parent.mkdir()
    argv = ["export", "--format", "onnx", "--checkpoint", str(model_dir), "--out", str(out)]
    assert cli_main(argv) == 0
    return out


@pytest.mark.parametrize("size", [(37, 53), (64, 96)], ids=["odd", "even"])
def test_onnx_output_matches_torch(exported, size):
    """Max |onnxruntime - torch| <= 1e-4 on the raw output, at an odd size (padding and crop in
    the graph) and another, neither of them the export's probe size."""
    network = random_network().eval()
    difference = max_difference(network, exported, *size)
    assert difference <= 1e-4
    # the comparison means something: the network changes its input
    composite, mask = probe(*size, seed=1)
    with torch.no_grad():
        change = network(torch.from_numpy(composite), torch.from_numpy(mask)) - torch.from_numpy(
            composite
        )
    assert float(change.abs().max()) > 1e-2


def test_the_file_states_its_opset_dynamic_axes_and_working_size(exported, capsys):
    model = onnx.load(str(exported))
    assert [(o.domain, o.version) for o in model.opset_import if o.domain == ""] == [("", OPSET)]
    names = [i.name for i in model.graph.input]
    assert names == ["composite", "mask"]
    dims = [
        [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
        for i in model.graph.input
    ]
    assert dims == [["batch", 3, "height", "width"], ["batch", 1, "height", "width"]]
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["regionharmony.train_size"] == str(TRAIN_SIZE)
    assert not list(exported.parent.glob(".*tmp"))  # written through a temporary, renamed


def test_export_help_states_the_opset(capsys):
    with pytest.raises(SystemExit):
        cli_main(["export", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"opset) {OPSET}" in text and "pip install -e '.[onnx]'" in text


def test_harmonize_with_onnxruntime_matches_torch(exported, model_dir, tmp_path):
    composite, mask = make_pair(97, 131)
    by_torch = np.asarray(harmonize(composite, mask, model_dir, device="cpu", precision="fp32"))
    by_onnx = np.asarray(harmonize(composite, mask, exported, engine="onnxruntime"))
    assert np.array_equal(by_onnx[~mask], composite[~mask])
    assert np.abs(by_onnx.astype(int) - by_torch).max() <= 1  # float rounding: one 8-bit level
    assert not np.array_equal(by_onnx[mask], composite[mask])
    # the command, given the file or a folder holding model.onnx
    comp_path, mask_path = write_pair(tmp_path, "a")
    for checkpoint in (exported, exported.parent):
        out = tmp_path / "out.png"
        argv = ["harmonize", "--engine", "onnxruntime", "--checkpoint", str(checkpoint)]
        assert cli_main([*argv, str(comp_path), str(mask_path), "--out", str(out)]) == 0
        assert Image.open(out).size == (71, 53)


def test_harmonize_with_onnxruntime_does_not_import_torch(exported, tmp_path):
    comp_path, mask_path = write_pair(tmp_path, "a")
    code = (
        "import sys; from regionharmony.cli import main; "
        "code = main(sys.argv[1:]); assert 'torch' not in sys.modules, 'torch imported'; "
        "raise SystemExit(code)"
    )
    argv = ["harmonize", "--engine", "onnxruntime", "--checkpoint", str(exported)]
    argv += [str(comp_path), str(mask_path), "--out", str(tmp_path / "o.png")]
    result = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_missing_extra_is_one_line_naming_the_install(model_dir, tmp_path, capsys, monkeypatch):
    for name in ("onnxruntime", "onnxscript"):
        monkeypatch.setitem(sys.modules, name, None)  # `import name` raises ImportError
    out = tmp_path / "m.onnx"
    argv = ["export", "--format", "onnx", "--checkpoint", str(model_dir), "--out", str(out)]
    assert cli_main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install -e '.[onnx]'" in err and "onnxruntime" in err
    assert not out.exists()
    with pytest.raises(HarmonizeError, match=r"pip install -e '\.\[onnx\]'"):
        harmonize(*make_pair(), out, engine="onnxruntime")


def test_missing_checkpoint_and_wrong_files_are_one_line_errors(model_dir, tmp_path, capsys):
    missing = tmp_path / "no_such_model"
    argv = ["export", "--format", "onnx", "--checkpoint", str(missing), "--out"]
    assert cli_main([*argv, str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert err == f"error: {missing}: no such model directory (--checkpoint)\n"
    assert cli_main(["export", "--checkpoint", str(model_dir), "--out", str(tmp_path / "m.pt")])
    assert "--out must end in .onnx" in capsys.readouterr().err
    not_onnx = tmp_path / "fake.onnx"
    not_onnx.write_bytes(b"not a model")
    for path, message in ((not_onnx, "not a usable ONNX model"), (model_dir, "no ONNX model")):
        with pytest.raises(HarmonizeError, match=message):
            OnnxEngine(path)
    with pytest.raises(HarmonizeError, match="run it with --engine onnxruntime"):
        harmonize(*make_pair(), not_onnx)

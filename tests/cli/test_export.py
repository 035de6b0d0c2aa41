import json

import pytest
from typer.testing import CliRunner

from siamese.cli.app import app

runner = CliRunner(env={"COLUMNS": "250"})


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
@pytest.mark.parametrize(("fmt", "name"), [("onnx", "enc.onnx"), ("torchscript", "enc.pt")])
def test_export_prints_parity_and_writes_files(tiny_run, tmp_path, fmt, name):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    out = tmp_path / name
    result = runner.invoke(app, ["export", "--model", str(tiny_run[0]), "--format", fmt, "--out", str(out)])
    assert result.exit_code == 0, result.output
    diff = float(result.stdout.split("max abs diff ")[1].split()[0])
    assert 0 <= diff <= 1e-4
    assert f"wrote {out} and {out}.json" in result.stdout
    meta = json.loads((tmp_path / f"{name}.json").read_text())
    assert meta["model_format"] == fmt and meta["parity"]["max_abs_diff"] == pytest.approx(
        diff, rel=1e-2, abs=1e-9
    )
    assert out.stat().st_size > 1000


def test_export_missing_model_is_one_line_error(tmp_path):
    result = runner.invoke(
        app,
        [
            "export",
            "--model",
            str(tmp_path / "nope"),
            "--format",
            "torchscript",
            "--out",
            str(tmp_path / "x.pt"),
        ],
    )
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: model not found")


def test_export_unknown_format_lists_choices(tiny_run, tmp_path):
    result = runner.invoke(app, ["export", "--model", str(tiny_run[0]), "--format", "tflite", "--out", "x"])
    assert result.exit_code == 2 and "onnx" in result.output and "torchscript" in result.output

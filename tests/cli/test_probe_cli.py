"""`siamese probe` through Typer's CliRunner: table, JSON, flags, one-line errors, pretrain runs."""

import json

from typer.testing import CliRunner

from siamese.cli.app import app
from tests.conftest import write_identity_folder

runner = CliRunner(env={"COLUMNS": "250"})


def test_probe_prints_its_table_and_writes_json(tiny_run, tmp_path):
    run, data = tiny_run
    out = tmp_path / "probe.json"
    args = ["probe", str(data), "--model", str(run), "--neighbours", "3"]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "k-NN accuracy (k=3)" in result.output and "linear-probe accuracy" in result.output
    report = json.loads(out.read_text())
    assert report["identities"] == 8 and report["images"] == 40 and report["options"]["k"] == 3
    as_json = runner.invoke(app, [*args, "--json"])
    assert json.loads(as_json.stdout)["knn_accuracy"] == report["knn_accuracy"]


def test_probe_without_inputs_is_a_one_line_error(tiny_run):
    run, _ = tiny_run
    result = runner.invoke(app, ["probe", "--model", str(run)])
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "DATA" in result.stderr


def test_probe_rejects_a_bad_fraction(tiny_run):
    run, data = tiny_run
    result = runner.invoke(app, ["probe", str(data), "--model", str(run), "--test-fraction", "1.5"])
    assert result.exit_code == 2


def test_probe_works_on_a_pretrain_run(tmp_path):
    data = write_identity_folder(tmp_path / "ids", n_identities=4, n_images=4)
    pre = tmp_path / "pre"
    tiny = ["--preset", "digits", "--epochs", "1", "--batch-size", "8", "--embedding-dim", "8"]
    assert runner.invoke(app, ["pretrain", str(data), *tiny, "--out", str(pre)]).exit_code == 0
    result = runner.invoke(app, ["probe", str(data), "--model", str(pre), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["images"] == 16 and report["identities"] == 4 and report["spread"] > 0


def test_cli_defaults_are_the_library_defaults():
    import inspect

    from siamese.cli.probe import probe_command
    from siamese.inference.probe import ProbeOptions

    params = inspect.signature(probe_command).parameters
    lib = ProbeOptions()
    for name in ("k", "knn_temperature", "test_fraction", "c", "seed", "batch_size"):
        assert params[name].default == getattr(lib, name), name

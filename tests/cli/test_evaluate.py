"""`siamese evaluate` through Typer's CliRunner on the session's tiny trained run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import typing

import pytest
from typer.testing import CliRunner

from siamese.cli.app import app
from siamese.cli.options import Protocol, SplitName
from siamese.data import SPLITS
from siamese.inference.evaluate import PROTOCOLS
from tests.data.test_oneshot_runs import write_oneshot_run

runner = CliRunner(env={"COLUMNS": "250"})


def test_table_and_files(tiny_run, tmp_path) -> None:
    run_dir, data = tiny_run
    out = tmp_path / "eval"
    args = ["evaluate", str(data), "--model", str(run_dir), "--split", "all", "--num-pairs", "40"]
    result = runner.invoke(app, [*args, "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    text = result.stdout
    for row in ("40 (20 genuine / 20 impostor)", "EER", "AUC", "TAR @ FAR=1e-2", "TAR @ FAR=1e-3"):
        assert row in text, row
    assert "at stored threshold" in text and "precision@1" in text and "MAP@R" in text
    assert str(out / "report.json") in text and "roc.png, det.png, distances.png" in text
    report = json.loads((out / "report.json").read_text())
    assert report["verification"]["n_genuine"] == 20
    assert {p.name for p in out.iterdir()} == {"report.json", "roc.png", "det.png", "distances.png"}


def test_json_output_is_the_report_only(tiny_run, tmp_path) -> None:
    run_dir, data = tiny_run
    args = ["evaluate", str(data), "--model", str(run_dir), "--num-pairs", "20", "--seed", "4"]
    result = runner.invoke(app, [*args, "--json", "--out", str(tmp_path / "e")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["pairs"] == {**report["pairs"], "split": "test", "seed": 4, "num_pairs": 20}
    assert report == json.loads((tmp_path / "e" / "report.json").read_text())


def test_kfold_table(tiny_run, tmp_path) -> None:
    run_dir, data = tiny_run
    args = ["evaluate", str(data), "--model", str(run_dir), "--protocol", "kfold", "--folds", "4"]
    result = runner.invoke(app, [*args, "--split", "all", "--num-pairs", "40", "--out", str(tmp_path / "k")])
    assert result.exit_code == 0, result.output
    assert "4-fold accuracy" in result.stdout and "±" in result.stdout
    assert "4-fold TAR @ FAR=1e-3" in result.stdout


def test_oneshot_table(tiny_run, tmp_path) -> None:
    run_dir, _ = tiny_run
    write_oneshot_run(tmp_path / "runs", "run01", mapping=[1, 0, 2])
    args = ["evaluate", str(tmp_path / "runs"), "--model", str(run_dir), "--protocol", "oneshot"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "one-shot mean accuracy" in result.stdout and "100.00%" in result.stdout
    assert "1 (3-way)" in result.stdout
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["report.json"]


def test_bad_pairs_line_exits_1_with_line_number(tiny_run, tmp_path) -> None:
    run_dir, data = tiny_run
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(
        "path1,path2,is_same\nid00/img_0.png,id00/img_1.png,1\nid00/img_0.png,id01/img_0.png,maybe\n"
    )
    result = runner.invoke(app, ["evaluate", str(data), "--model", str(run_dir), "--pairs", str(pairs)])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "line 3" in lines[0]
    assert "Traceback" not in result.output


def test_flags_the_protocol_would_ignore_are_refused(tiny_run, tmp_path) -> None:
    run_dir, data = tiny_run
    base = ["evaluate", str(data), "--model", str(run_dir)]
    cases = [
        (["--pairs", str(tmp_path / "p.csv"), "--seed", "1"], "--seed cannot be used with --pairs"),
        (["--folds", "5"], "--folds is only used with --protocol kfold"),
        (["--protocol", "oneshot", "--split", "val"], "--split cannot be used with --protocol oneshot"),
    ]
    for extra, message in cases:
        result = runner.invoke(app, [*base, *extra])
        assert result.exit_code == 1, extra
        assert message in result.stderr


def test_missing_model_is_one_line_error(tiny_run, tmp_path) -> None:
    _, data = tiny_run
    result = runner.invoke(app, ["evaluate", str(data), "--model", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: model not found")


def test_default_model_is_newest_run_and_default_out(tiny_run, tmp_path, monkeypatch) -> None:
    run_dir, data = tiny_run
    older, newer = tmp_path / "runs" / "a-older", tmp_path / "runs" / "b-newer"
    shutil.copytree(run_dir, older)
    shutil.copytree(run_dir, newer)
    meta = older / "checkpoints" / "best.json"
    os.utime(meta, (meta.stat().st_atime, meta.stat().st_mtime + 100))  # "a-older" is now the newest
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["evaluate", str(data), "--num-pairs", "10"])
    assert result.exit_code == 0, result.output
    assert "using the most recent run" in result.stderr and "a-older" in result.stderr
    assert (older / "eval-test" / "report.json").is_file()
    assert not (newer / "eval-test").exists()


def test_no_runs_and_no_model(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["evaluate", str(tmp_path)])
    assert result.exit_code == 1 and result.stderr.startswith("error:") and "--model" in result.stderr


def test_cli_choices_match_library() -> None:
    assert typing.get_args(Protocol) == PROTOCOLS
    assert typing.get_args(SplitName) == SPLITS


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom siamese.cli.app import app\n"
        "for cmd in ('evaluate', 'pairs'):\n"
        "    r = CliRunner().invoke(app, [cmd, '--help'])\n    assert r.exit_code == 0, r.output\n"
        "assert 'torch' not in sys.modules, 'torch imported by --help'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


LFW_PAIRS = (  # 2 folds x (3 genuine + 3 impostor), LFW's View 2 layout
    "2\t3\n"
    "id00 1 2\nid01 1 3\nid02 2 4\nid00 1 id01 2\nid02 3 id03 1\nid04 1 id05 5\n"
    "id03 2 5\nid04 1 4\nid05 2 3\nid06 1 id07 2\nid07 3 id00 4\nid01 5 id06 1\n"
)


def test_lfw_pairs_file_is_cross_validated_over_its_folds(tiny_run, tmp_path) -> None:
    """A pairs file whose header declares folds gets the k-fold part over them, under the default
    protocol; the figures are those of the fold computation on independently embedded pairs."""
    from siamese.data import read_pairs
    from siamese.evaluation import kfold_distance_report
    from siamese.inference import EmbeddingModel

    run_dir, data = tiny_run
    pairs_file = tmp_path / "pairs.txt"
    pairs_file.write_text(LFW_PAIRS)
    args = ["evaluate", str(data), "--model", str(run_dir), "--pairs", str(pairs_file)]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "lfw")])
    assert result.exit_code == 0, result.output
    assert "2-fold accuracy" in result.stdout and "standard error" in result.stdout
    report = json.loads((tmp_path / "lfw" / "report.json").read_text())
    assert report["pairs"]["folds"] == 2 and report["kfold"]["n_folds"] == 2

    model = EmbeddingModel.from_checkpoint(run_dir)
    pairs = read_pairs(pairs_file, data)
    first = model.embed([a for a, _, _ in pairs])
    second = model.embed([b for _, b, _ in pairs])
    expected = kfold_distance_report(
        model.pair_distance(first, second), [s for _, _, s in pairs], folds=2, fars=(1e-2, 1e-3)
    )
    got = report["kfold"]
    assert got["fold_accuracies"] == expected["fold_accuracies"]
    assert got["accuracy_se"] == pytest.approx(expected["accuracy_se"])

    bad = runner.invoke(app, [*args, "--folds", "5"])
    assert bad.exit_code == 1 and "declares 2 folds" in bad.output

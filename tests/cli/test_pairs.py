"""`siamese pairs` through Typer's CliRunner: deterministic, balanced, split-aware pair lists."""

from __future__ import annotations

import csv
from pathlib import Path

from typer.testing import CliRunner

from siamese.cli.app import app
from siamese.data import Split, generate_pairs, read_pairs, scan_folder
from tests.conftest import write_identity_folder

runner = CliRunner(env={"COLUMNS": "250"})


def rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        return list(csv.reader(f))[1:]


def test_same_seed_same_file_and_balanced(image_folder, tmp_path) -> None:
    outputs = {}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        out = tmp_path / f"{name}.csv"
        result = runner.invoke(
            app, ["pairs", str(image_folder), "--out", str(out), "--num-pairs", "30", "--seed", str(seed)]
        )
        assert result.exit_code == 0, result.output
        outputs[name] = out.read_bytes()
    assert outputs["a"] == outputs["b"] and outputs["a"] != outputs["c"]
    labels = [r[2] for r in rows(tmp_path / "a.csv")]
    assert len(labels) == 30 and labels.count("1") == labels.count("0") == 15
    assert "wrote 30 pairs" in result.stdout and "15 genuine, 15 impostor" in result.stdout
    for first, second, same in rows(tmp_path / "a.csv"):
        assert not Path(first).is_absolute()  # relative to DATA, so the file can be shared
        assert (Path(first).parent == Path(second).parent) == (same == "1")


def test_file_round_trips_to_generated_pairs(image_folder, tmp_path) -> None:
    out = tmp_path / "p.csv"
    assert (
        runner.invoke(app, ["pairs", str(image_folder), "--out", str(out), "--num-pairs", "12"]).exit_code
        == 0
    )
    assert read_pairs(out, image_folder) == generate_pairs(scan_folder(image_folder), 12, seed=0)


def test_split_from_run_keeps_only_that_split(tmp_path) -> None:
    data = write_identity_folder(tmp_path / "data", n_identities=8, n_images=3)
    run = tmp_path / "run"
    Split(train=["id00", "id01", "id02", "id03"], val=["id04", "id05"], test=["id06", "id07"]).to_json(
        run / "split.json"
    )
    for part, expected in (("test", {"id06", "id07"}), ("val", {"id04", "id05"})):
        out = tmp_path / f"{part}.csv"
        args = ["pairs", str(data), "--out", str(out), "--split-from", str(run), "--num-pairs", "40"]
        result = runner.invoke(app, args if part == "test" else [*args, "--split", part])
        assert result.exit_code == 0, result.output
        used = {Path(p).parent.name for r in rows(out) for p in r[:2]}
        assert used == expected
        assert f"{part} identities of" in result.stdout


def test_forgeries_fraction_one_makes_every_impostor_a_forgery(forgery_folders, tmp_path) -> None:
    genuine, forged = forgery_folders
    out = tmp_path / "p.csv"
    args = ["pairs", str(genuine), "--out", str(out), "--forgeries", str(forged), "--forgery-fraction", "1"]
    result = runner.invoke(app, [*args, "--num-pairs", "20"])
    assert result.exit_code == 0, result.output
    impostors = [r for r in rows(out) if r[2] == "0"]
    assert len(impostors) == 10
    assert all(Path(second).is_relative_to(forged) for _, second, _ in impostors)
    assert "(10 skilled forgeries)" in result.stdout


def test_option_errors(image_folder, tmp_path) -> None:
    out = str(tmp_path / "p.csv")
    cases = [
        (["--split", "val"], "--split needs --split-from"),
        (["--forgery-fraction", "0.3"], "--forgery-fraction needs --forgeries"),
        (["--num-pairs", "0"], "num_pairs must be a positive integer"),
        (["--split-from", str(tmp_path / "norun")], "split file not found"),
    ]
    for extra, message in cases:
        result = runner.invoke(app, ["pairs", str(image_folder), "--out", out, *extra])
        assert result.exit_code == 1, extra
        assert result.stderr.startswith("error:") and message in result.stderr, result.stderr
    assert not Path(out).exists()

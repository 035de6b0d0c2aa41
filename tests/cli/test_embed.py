import csv
import importlib.util
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from siamese.cli.app import app
from siamese.inference import Verifier

runner = CliRunner(env={"COLUMNS": "250"})


@pytest.fixture(scope="module")
def verifier(tiny_run):
    return Verifier.from_checkpoint(tiny_run[0])


def _embed(tiny_run, data, out, *extra):
    return runner.invoke(app, ["embed", str(data), "--model", str(tiny_run[0]), "--out", str(out), *extra])


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_embed_npy_with_sidecar(tiny_run, verifier, tmp_path):
    out = tmp_path / "emb.npy"
    result = _embed(tiny_run, tiny_run[1], out, "--batch-size", "16", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert (
        "embedded 40 images (8 dims), skipped 0" in result.stdout
        and str(tmp_path / "emb.npy.csv") in result.stdout
    )
    rows = _read_csv(tmp_path / "emb.npy.csv")
    assert rows[0] == ["path", "identity"] and len(rows) == 41
    assert all(path.split("/")[-2] == identity for path, identity in rows[1:])
    np.testing.assert_allclose(np.load(out), verifier.embed([r[0] for r in rows[1:]]), atol=1e-5)


def test_embed_csv_skips_corrupt_files_and_lists_them(tiny_run, verifier, tmp_path):
    data = shutil.copytree(tiny_run[1], tmp_path / "data")
    (data / "id03" / "zz_broken.png").write_bytes(b"garbage")
    out = tmp_path / "emb.csv"
    result = _embed(tiny_run, data, out, "--batch-size", "7", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert "skipped 1 unreadable files:" in result.stdout and "zz_broken.png" in result.stdout
    assert "embedded 40 images (8 dims), skipped 1" in result.stdout
    rows = _read_csv(out)
    assert rows[0] == ["path", "identity", *(f"e{j}" for j in range(8))] and len(rows) == 41
    assert all("zz_broken" not in r[0] for r in rows[1:])
    values = np.array([[float(v) for v in r[2:]] for r in rows[1:]])
    np.testing.assert_allclose(values, verifier.embed([r[0] for r in rows[1:]]), atol=1e-5)


def test_embed_from_list_file(tiny_run, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"{p}\n" for p in sorted(tiny_run[1].glob("id0[12]/*.png"))))
    result = _embed(tiny_run, listing, tmp_path / "e.npy")
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "e.npy").shape == (10, 8)
    assert [r[1] for r in _read_csv(tmp_path / "e.npy.csv")[1:]] == ["id01"] * 5 + ["id02"] * 5


def test_embed_parquet_works_or_says_how_to_fix(tiny_run, tmp_path):
    result = _embed(tiny_run, tiny_run[1], tmp_path / "e.parquet")
    if importlib.util.find_spec("pyarrow") is None:
        assert result.exit_code == 1
        assert result.stderr.strip().splitlines() == [
            "error: writing .parquet needs pyarrow: `pip install pyarrow` (or write .npy or .csv)"
        ]
        assert not (tmp_path / "e.parquet").exists()
    else:
        import pyarrow.parquet as pq

        assert result.exit_code == 0, result.output
        assert pq.read_table(tmp_path / "e.parquet").num_rows == 40


@pytest.mark.parametrize(
    ("data", "out", "message"),
    [
        ("{data}", "e.txt", "must end in .npy, .csv, .parquet"),
        ("missing", "e.npy", "data not found"),
    ],
)
def test_embed_errors_are_one_line(tiny_run, tmp_path, data, out, message):
    result = _embed(tiny_run, data.format(data=tiny_run[1]), tmp_path / out)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]

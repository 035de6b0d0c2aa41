import csv
import importlib.util
import json
import re
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from siamese.cli.app import app
from siamese.inference import Verifier, read_embeddings
from tests.conftest import face_on_canvas, lfw_photo

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


RATE = re.compile(r"in \d+\.\d s \((\d+\.\d) images/s\)")


def test_embed_reports_images_per_second_and_writes_a_manifest(tiny_run, tmp_path):
    result = _embed(tiny_run, tiny_run[1], tmp_path / "e.csv", "--device", "cpu")
    assert result.exit_code == 0, result.output
    (line,) = [ln for ln in result.stdout.splitlines() if ln.startswith("embedded 40 images")]
    rate = RATE.search(line)
    assert rate and float(rate.group(1)) > 0, line
    assert line.endswith(f"-> {tmp_path / 'e.csv'}, {tmp_path / 'e.manifest.json'}")
    doc = json.loads((tmp_path / "e.manifest.json").read_text())
    assert doc["complete"] and [p["files"] for p in doc["parts"]] == [["e.csv"]]


def test_embed_shards(tiny_run, tmp_path):
    out = tmp_path / "e.npy"
    result = _embed(tiny_run, tiny_run[1], out, "--shard-size", "16", "--batch-size", "6")
    assert result.exit_code == 0, result.output
    assert "embedded 40 images (8 dims), skipped 0 in" in result.stdout
    assert f"-> 3 parts listed in {tmp_path / 'e.manifest.json'}" in result.stdout
    shapes = [np.load(tmp_path / f"e-0000{k}.npy").shape for k in range(3)]
    assert shapes == [(16, 8), (16, 8), (8, 8)] and not out.exists()
    table = read_embeddings(out)
    assert len(table) == 40 and table.model == str(tiny_run[0] / "checkpoints" / "best")

    again = _embed(tiny_run, tiny_run[1], out, "--shard-size", "16")
    assert again.exit_code == 0, again.output
    assert "embedded 40 images (8 dims), skipped 0, all by an earlier run (--overwrite" in again.stdout


def test_embed_refuses_another_input_list_unless_overwritten(tiny_run, tmp_path):
    out = tmp_path / "e.npy"
    assert _embed(tiny_run, tiny_run[1], out, "--shard-size", "16").exit_code == 0
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"{p}\n" for p in sorted(tiny_run[1].glob("id0[12]/*.png"))))
    refused = _embed(tiny_run, listing, out, "--shard-size", "16")
    assert refused.exit_code == 1
    (line,) = refused.stderr.strip().splitlines()
    assert "e.manifest.json is from another input list (40 inputs, not 10); pass --overwrite" in line
    replaced = _embed(tiny_run, listing, out, "--shard-size", "16", "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "e-00000.npy",
        "e-00000.npy.csv",
        "e.manifest.json",
        "list.txt",
    ]


KILLED_RUN = textwrap.dedent(
    """
    import os, signal, sys
    from siamese.cli.app import main
    from siamese.inference import writers

    write = writers.NpyWriter._write

    def write_then_die(self, paths, identities, embeddings):
        write(self, paths, identities, embeddings)
        if self.out.name == "e-00001.npy":  # part 0 is done; part 1 is half written
            self.array.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    writers.NpyWriter._write = write_then_die
    sys.argv = ["siamese", *sys.argv[1:]]
    main()
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_embed_resumes_after_a_kill_with_the_rows_of_a_one_shot_run(tiny_run, tmp_path):
    """The CLI in another process, SIGKILLed in the middle of part 1 (no clean-up runs), then rerun."""
    data = shutil.copytree(tiny_run[1], tmp_path / "data")
    (data / "id03" / "zz_broken.png").write_bytes(b"garbage")  # input 20, in part 2
    out = tmp_path / "killed" / "e.npy"
    args = ["embed", str(data), "--model", str(tiny_run[0]), "--out", str(out), "--device", "cpu"]
    args += ["--shard-size", "10", "--batch-size", "4"]
    killed = subprocess.run([sys.executable, "-c", KILLED_RUN, *args], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    manifest = json.loads((out.parent / "e.manifest.json").read_text())
    assert [(p["first"], p["rows"]) for p in manifest["parts"]] == [(0, 10)]
    assert (out.parent / ".e-00001.npy.tmp").stat().st_size > 0  # the partial part the kill left

    resumed = runner.invoke(app, args)
    assert resumed.exit_code == 0, resumed.output
    assert (
        "embedded 40 images (8 dims), skipped 1; resumed after 10 inputs, 31 embedded now" in resumed.stdout
    )
    assert not list(out.parent.glob(".*.tmp"))
    one_shot = tmp_path / "one-shot" / "e.npy"
    assert _embed(tiny_run, data, one_shot, "--shard-size", "10", "--device", "cpu").exit_code == 0
    got, want = read_embeddings(out), read_embeddings(one_shot)
    assert got.paths == want.paths and got.identities == want.identities and len(got) == 40
    np.testing.assert_allclose(got.embeddings, want.embeddings, atol=1e-5)
    parts = json.loads((out.parent / "e.manifest.json").read_text())["parts"]
    assert [(p["first"], p["rows"], len(p["skipped"])) for p in parts] == [
        (0, 10, 0),
        (10, 10, 0),
        (20, 9, 1),
        (30, 10, 0),
        (40, 1, 0),
    ]


def test_embed_detect_embeds_faces_and_skips_photos_without_one(tiny_run, verifier, lfw, tmp_path):
    pytest.importorskip("cv2")
    from siamese.data import FaceDetector

    data = tmp_path / "data"
    (data / "people").mkdir(parents=True)
    canvases = [
        face_on_canvas(lfw_photo(lfw, p), (40 + 60 * k, 30))
        for k, p in enumerate(["Abba_Eban", "Aaron_Sorkin"])
    ]
    for k, canvas in enumerate(canvases):
        canvas.save(data / "people" / f"photo{k}.png")
    Image.new("RGB", (320, 240), (255, 255, 255)).save(data / "people" / "zz_blank.png")
    out = tmp_path / "emb.csv"
    result = _embed(tiny_run, data, out, "--detect", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert "embedded 2 images (8 dims), skipped 1" in result.stdout
    assert f"no face found in {data / 'people' / 'zz_blank.png'}" in result.stdout
    table = read_embeddings(out)
    assert [p.rsplit("/", 1)[-1] for p in table.paths] == ["photo0.png", "photo1.png"]
    crops = [FaceDetector().crop(c)[0] for c in canvases]
    np.testing.assert_allclose(table.embeddings, verifier.embed(crops), atol=1e-5)
    again = _embed(tiny_run, data, out)  # the same output, now of whole images: not a resume
    assert again.exit_code == 1 and "embeddings of detected faces (--detect)" in again.stderr
    assert "--overwrite" in again.stderr

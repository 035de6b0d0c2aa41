import csv
import sys

import numpy as np
import pytest

from siamese.data import EmbeddingInput, list_inputs
from siamese.errors import ConfigError, SiameseError
from siamese.inference import (
    CsvWriter,
    NpyWriter,
    Verifier,
    open_writer,
    output_files,
    write_embeddings,
)


def _rows(n, d, seed=0):
    rng = np.random.default_rng(seed)
    return [f"/x/img{i}.png" for i in range(n)], [f"id{i % 3}" for i in range(n)], rng.normal(size=(n, d))


def test_npy_writer_streams_batches_and_sidecar(tmp_path):
    paths, ids, emb = _rows(7, 4)
    out = tmp_path / "e.npy"
    with NpyWriter(out, 7, 4) as w:
        for lo in range(0, 7, 3):
            w.write(paths[lo : lo + 3], ids[lo : lo + 3], emb[lo : lo + 3])
        assert w.close() == output_files(out) == [out, tmp_path / "e.npy.csv"]
    loaded = np.load(out)
    assert loaded.dtype == np.float32 and loaded.shape == (7, 4)
    np.testing.assert_array_equal(loaded, emb.astype(np.float32))
    with open(tmp_path / "e.npy.csv", newline="") as f:
        assert list(csv.reader(f)) == [["path", "identity"], *map(list, zip(paths, ids, strict=True))]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.npy", "e.npy.csv"]


@pytest.mark.parametrize("written", [0, 5, 99])
def test_npy_writer_shrinks_when_rows_were_skipped(tmp_path, written):
    paths, ids, emb = _rows(written, 3)
    out = tmp_path / "e.npy"
    with NpyWriter(out, 100, 3) as w:
        w.write(paths, ids, emb)
        w.close()
    for mode in (None, "r"):
        loaded = np.load(out, mmap_mode=mode)
        assert loaded.shape == (written, 3)
        np.testing.assert_array_equal(loaded, emb.astype(np.float32))


def test_csv_writer_round_trips_float32(tmp_path):
    paths, ids, emb = _rows(5, 6, seed=3)
    with CsvWriter(tmp_path / "e.csv", 5, 6) as w:
        w.write(paths[:2], ids[:2], emb[:2])
        w.write(paths[2:], ids[2:], emb[2:])
        w.close()
    with open(tmp_path / "e.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["path", "identity", "e0", "e1", "e2", "e3", "e4", "e5"]
    assert [r[:2] for r in rows[1:]] == [[p, i] for p, i in zip(paths, ids, strict=True)]
    values = np.array([[float(v) for v in r[2:]] for r in rows[1:]], dtype=np.float32)
    np.testing.assert_array_equal(values, emb.astype(np.float32))


def test_writer_aborts_on_error_and_rejects_bad_batches(tmp_path):
    paths, ids, emb = _rows(4, 2)
    with pytest.raises(RuntimeError, match="boom"), NpyWriter(tmp_path / "e.npy", 4, 2) as w:
        w.write(paths[:2], ids[:2], emb[:2])
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with CsvWriter(tmp_path / "e.csv", 4, 2) as w:
        with pytest.raises(ValueError, match="expected"):
            w.write(paths, ids, emb[:, :1])
        w.write(paths, ids, emb)
        with pytest.raises(ValueError, match="more than"):
            w.write(paths[:1], ids[:1], emb[:1])
        w.abort()
    assert list(tmp_path.iterdir()) == []


def test_open_writer_extensions(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"\.npy, \.csv, \.parquet"):
        open_writer(tmp_path / "e.txt", 1, 2)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if not installed
    with pytest.raises(SiameseError, match="pip install pyarrow"):
        open_writer(tmp_path / "e.parquet", 1, 2)
    assert not (tmp_path / "e.parquet").exists()


def test_parquet_round_trip_when_pyarrow_is_installed(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    paths, ids, emb = _rows(5, 3)
    with open_writer(tmp_path / "e.parquet", 5, 3) as w:
        w.write(paths[:3], ids[:3], emb[:3])
        w.write(paths[3:], ids[3:], emb[3:])
        w.close()
    table = pq.read_table(tmp_path / "e.parquet")
    assert table.column("path").to_pylist() == paths and table.column("identity").to_pylist() == ids
    np.testing.assert_array_equal(np.array(table.column("embedding").to_pylist()), emb.astype(np.float32))
    assert pq.ParquetFile(tmp_path / "e.parquet").num_row_groups == 2


def test_write_embeddings_skips_bad_files_and_streams(tiny_run, tmp_path, monkeypatch):
    verifier = Verifier.from_checkpoint(tiny_run[0])
    items = list_inputs(tiny_run[1])[:9]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"garbage")
    items.insert(4, EmbeddingInput(str(bad), "broken"))
    sizes = []
    original = NpyWriter._write
    monkeypatch.setattr(
        NpyWriter, "_write", lambda self, p, i, e: (sizes.append(len(p)), original(self, p, i, e))
    )
    progress = []
    summary = write_embeddings(verifier, items, tmp_path / "e.npy", batch_size=4, on_batch=progress.append)
    assert summary.written == 9 and summary.dim == 8 and len(summary.skipped) == 1
    assert summary.skipped[0][0] == str(bad) and "bad.png" in summary.skipped[0][1]
    assert sizes == [4, 3, 2] and progress == [4, 4, 2]
    good = [i.path for i in items if i.path != str(bad)]
    np.testing.assert_allclose(np.load(tmp_path / "e.npy"), verifier.embed(good), atol=1e-5)

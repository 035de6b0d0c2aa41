import csv
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from siamese.data import EmbeddingInput, list_inputs
from siamese.errors import ConfigError, DataError, SiameseError
from siamese.inference import (
    CsvWriter,
    EmbeddingModel,
    EmbeddingTable,
    NpyWriter,
    Verifier,
    open_writer,
    output_files,
    read_embeddings,
    write_embeddings,
)
from siamese.inference.manifest import inputs_digest, manifest_path, read_manifest
from siamese.inference.writers import EmbedSummary
from siamese.models.checkpoint import load_checkpoint, model_fingerprint, save_checkpoint


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


# -- shards, the manifest, resuming ------------------------------------------------------------------

HAS_PYARROW = importlib.util.find_spec("pyarrow") is not None
SUFFIXES = [
    ".npy",
    ".csv",
    pytest.param(".parquet", marks=pytest.mark.skipif(not HAS_PYARROW, reason="pyarrow")),
]


@pytest.fixture(scope="module")
def model(tiny_run):
    return EmbeddingModel.from_checkpoint(tiny_run[0])


def _items_with_a_bad_file(tiny_run, tmp_path, n=10, bad_at=5):
    """`n` inputs of the tiny data set with an undecodable file at position `bad_at`."""
    items = list_inputs(tiny_run[1])[: n - 1]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"garbage")
    items.insert(bad_at, EmbeddingInput(str(bad), "broken"))
    return items


def _assert_same_rows(got: EmbeddingTable, want: EmbeddingTable):
    assert got.paths == want.paths and got.identities == want.identities
    assert got.embeddings.dtype == np.float32
    np.testing.assert_allclose(got.embeddings, want.embeddings, atol=1e-5)


def test_shards_hold_shard_size_inputs_and_the_manifest_lists_them(model, tiny_run, tmp_path):
    items = _items_with_a_bad_file(tiny_run, tmp_path)
    out = tmp_path / "out" / "e.npy"
    summary = write_embeddings(model, items, out, batch_size=3, shard_size=4)
    names = ["e-00000.npy", "e-00001.npy", "e-00002.npy"]
    assert sorted(p.name for p in out.parent.iterdir()) == sorted(
        [*names, *(f"{n}.csv" for n in names), "e.manifest.json"]
    )
    assert [np.load(out.parent / n).shape for n in names] == [(4, 8), (3, 8), (2, 8)]
    assert summary.written == 9 and summary.parts == 3 and summary.files[-1] == manifest_path(out)

    doc = json.loads(manifest_path(out).read_text())
    assert doc["format"] == "siamese-embeddings" and doc["version"] == 1
    assert doc["model"] == str(Path(model.source).absolute()) and doc["distance"] == model.distance
    assert doc["fingerprint"] == model_fingerprint(model.source, model.metadata)
    assert doc["fingerprint"].startswith("sha256:") and doc["embedding_dim"] == 8
    assert (doc["inputs"], doc["inputs_digest"]) == (10, inputs_digest(items))
    assert (doc["suffix"], doc["shard_size"], doc["complete"], doc["rows"]) == (".npy", 4, True, 9)
    parts = doc["parts"]
    assert [p["files"] for p in parts] == [[n, f"{n}.csv"] for n in names]
    assert [(p["first"], p["inputs"], p["rows"]) for p in parts] == [(0, 4, 4), (4, 4, 3), (8, 2, 2)]
    assert [p["skipped"] for p in parts[::2]] == [[], []]
    (skip,) = parts[1]["skipped"]
    assert skip["position"] == 5 and skip["path"] == items[5].path and "bad.png" in skip["reason"]


def test_one_file_gets_a_manifest_of_one_part(model, tiny_run, tmp_path):
    items = _items_with_a_bad_file(tiny_run, tmp_path)
    summary = write_embeddings(model, items, tmp_path / "e.csv", batch_size=4)
    manifest = read_manifest(tmp_path / "e.manifest.json")
    assert manifest.shard_size is None and manifest.complete and len(manifest.parts) == 1
    (part,) = manifest.parts
    assert (part.files, part.first, part.inputs, part.rows) == (("e.csv",), 0, 10, 9)
    assert summary.files == [tmp_path / "e.csv", tmp_path / "e.manifest.json"] and summary.parts == 1


class Crash(Exception):
    pass


def _crash_after(batches):
    """An `on_batch` that raises once `batches` batches are done, as a kill would stop the run."""
    seen = []

    def on_batch(n):
        seen.append(n)
        if len(seen) == batches:
            raise Crash

    return on_batch


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_resume_after_a_crash_equals_a_one_shot_run(model, tiny_run, tmp_path, suffix):
    items = _items_with_a_bad_file(tiny_run, tmp_path, n=14)
    whole = write_embeddings(model, items, tmp_path / "whole" / f"e{suffix}", batch_size=3, shard_size=4)
    assert whole.parts == 4
    out = tmp_path / "resumed" / f"e{suffix}"
    with pytest.raises(Crash):  # batches of 3: the second ends inside part 1, after part 0 completed
        write_embeddings(model, items, out, batch_size=3, shard_size=4, on_batch=_crash_after(2))
    assert [p.rows for p in read_manifest(manifest_path(out)).parts] == [4]
    # What a kill leaves: part 1 renamed into place before the manifest listed it, and a partial temporary.
    (out.parent / f"e-00001{suffix}").write_bytes(b"half a part")
    (out.parent / f".e-00001{suffix}.tmp").write_bytes(b"half a part")

    calls = []
    encoder = model.model.encoder
    hook = encoder.register_forward_hook(lambda m, args, y: calls.append(args[0].shape[0]))
    progress = []
    try:
        summary = write_embeddings(model, items, out, batch_size=3, shard_size=4, on_batch=progress.append)
    finally:
        hook.remove()
    assert summary.resumed == 4 and summary.parts == 4 and summary.written == 13
    assert progress[0] == 4 and sum(progress) == 14
    assert sum(calls) == 9  # inputs 4-13 but the undecodable one: nothing embedded twice
    assert not list(out.parent.glob(".*.tmp"))
    _assert_same_rows(read_embeddings(out), read_embeddings(tmp_path / "whole" / f"e{suffix}"))
    assert (
        read_manifest(manifest_path(out)).parts == read_manifest(tmp_path / "whole" / "e.manifest.json").parts
    )


def test_a_finished_output_is_not_embedded_again_and_a_missing_part_is(model, tiny_run, tmp_path, caplog):
    items = list_inputs(tiny_run[1])[:10]
    out = tmp_path / "e.npy"
    first = write_embeddings(model, items, out, shard_size=4)
    again = write_embeddings(model, items, out, shard_size=4)
    assert (again.resumed, again.written, again.images_per_s) == (10, 10, None)
    (tmp_path / "e-00001.npy").unlink()
    third = write_embeddings(model, items, out, shard_size=4)
    assert third.resumed == 4 and "e-00001.npy is missing" in caplog.text
    assert third.files == first.files
    np.testing.assert_allclose(
        read_embeddings(out).embeddings, model.embed([i.path for i in items]), atol=1e-5
    )


@pytest.fixture(scope="module")
def other_model(tiny_run, tmp_path_factory):
    """The tiny model with one weight changed, saved as another checkpoint."""
    twin, meta = load_checkpoint(tiny_run[0])
    with torch.no_grad():
        next(twin.encoder.parameters()).add_(0.1)
    stem = save_checkpoint(tmp_path_factory.mktemp("other") / "best", twin, meta)
    return EmbeddingModel.from_checkpoint(stem)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("model", "is from another model"),
        ("inputs", "is from another input list (8 inputs, not 7)"),
        ("order", "is from another input list (the same count, 8, but other paths or order)"),
        ("shards", "is from another layout (.npy parts of 3, not .npy parts of 4)"),
        ("one file", "is from another layout (.npy parts of 3, not one .npy file)"),
    ],
)
def test_a_manifest_from_another_run_is_refused_unless_overwritten(
    model, other_model, tiny_run, tmp_path, change, message
):
    items = list_inputs(tiny_run[1])[:8]
    out = tmp_path / "e.npy"
    with pytest.raises(Crash):
        write_embeddings(model, items, out, batch_size=2, shard_size=3, on_batch=_crash_after(2))
    options = {"shard_size": {"shards": 4, "one file": None}.get(change, 3)}
    use = other_model if change == "model" else model
    use_items = {"inputs": items[:7], "order": items[::-1]}.get(change, items)
    before = manifest_path(out).read_bytes()
    with pytest.raises(ConfigError, match="--overwrite") as refused:
        write_embeddings(use, use_items, out, **options)
    assert message in str(refused.value) and len(str(refused.value).splitlines()) == 1
    assert manifest_path(out).read_bytes() == before  # left alone

    summary = write_embeddings(use, use_items, out, overwrite=True, **options)
    assert summary.resumed == 0 and summary.written == len(use_items)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(p.name for p in summary.files)  # the old parts are gone
    assert read_embeddings(out).fingerprint == model_fingerprint(use.source, use.metadata)


def test_an_unreadable_manifest_is_refused_unless_overwritten(model, tiny_run, tmp_path):
    items = list_inputs(tiny_run[1])[:3]
    manifest_path(tmp_path / "e.npy").write_text("{not json")
    with pytest.raises(DataError, match="cannot read the manifest .* pass --overwrite to start again"):
        write_embeddings(model, items, tmp_path / "e.npy")
    assert write_embeddings(model, items, tmp_path / "e.npy", overwrite=True).written == 3


def test_bad_shard_size_is_a_config_error(model, tiny_run, tmp_path):
    with pytest.raises(ConfigError, match="shard size"):
        write_embeddings(model, list_inputs(tiny_run[1])[:2], tmp_path / "e.npy", shard_size=0)
    assert list(tmp_path.iterdir()) == []


def test_images_per_second_counts_only_this_runs_inputs():
    summary = EmbedSummary(written=90, dim=8, files=[], inputs=100, resumed=40, seconds=2.0)
    assert summary.images_per_s == 30.0
    assert EmbedSummary(written=5, dim=8, files=[], inputs=5, resumed=5, seconds=0.1).images_per_s is None


# -- reading outputs back ----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_read_embeddings_of_every_format_and_layout(model, tiny_run, tmp_path, suffix):
    items = _items_with_a_bad_file(tiny_run, tmp_path)
    good = [i for i in items if i.identity != "broken"]
    want = model.embed([i.path for i in good])  # (9, D)
    fingerprint = model_fingerprint(model.source, model.metadata)
    facts = (str(model.source), fingerprint, model.distance)

    one = tmp_path / "one" / f"e{suffix}"
    write_embeddings(model, items, one, batch_size=4)
    sharded = tmp_path / "sharded" / f"e{suffix}"
    write_embeddings(model, items, sharded, batch_size=4, shard_size=3)
    for path in (one, manifest_path(one), sharded, manifest_path(sharded)):
        table = read_embeddings(path)
        assert table.paths == [i.path for i in good] and table.identities == [i.identity for i in good]
        assert (table.model, table.fingerprint, table.distance) == facts and len(table) == 9
        np.testing.assert_allclose(table.embeddings, want, atol=1e-5)

    part = read_embeddings(sharded.parent / f"e-00001{suffix}")  # inputs 3-5, the bad one at 5
    assert part.paths == [i.path for i in items[3:5]] and part.fingerprint == fingerprint
    np.testing.assert_allclose(part.embeddings, want[3:5], atol=1e-5)

    manifest_path(one).unlink()  # a file alone: its rows, no model facts
    alone = read_embeddings(one)
    assert alone.paths == table.paths and (alone.model, alone.fingerprint, alone.distance) == (None,) * 3
    np.testing.assert_allclose(alone.embeddings, want, atol=1e-5)


def test_read_embeddings_of_an_empty_output(model, tmp_path):
    write_embeddings(model, [], tmp_path / "e.npy")
    table = read_embeddings(tmp_path / "e.npy")
    assert table.paths == [] and table.embeddings.shape == (0, 8)


def _corrupt_npy(tmp_path):
    np.save(tmp_path / "e.npy", np.zeros((2, 3), np.float32))
    (tmp_path / "e.npy.csv").write_text("path,identity\na,x\n")  # one row for two
    return tmp_path / "e.npy"


def _truncated_npy(tmp_path):
    np.save(tmp_path / "e.npy", np.zeros((4, 3), np.float32))
    (tmp_path / "e.npy").write_bytes((tmp_path / "e.npy").read_bytes()[:-5])
    (tmp_path / "e.npy.csv").write_text("path,identity\n" + "a,x\n" * 4)
    return tmp_path / "e.npy"


def _no_sidecar(tmp_path):
    np.save(tmp_path / "e.npy", np.zeros((1, 3), np.float32))
    return tmp_path / "e.npy"


def _bad_csv_header(tmp_path):
    (tmp_path / "e.csv").write_text("name,label,x\na,b,1\n")
    return tmp_path / "e.csv"


def _bad_csv_value(tmp_path):
    (tmp_path / "e.csv").write_text("path,identity,e0,e1\na,b,1,oops\n")
    return tmp_path / "e.csv"


def _ragged_csv(tmp_path):
    (tmp_path / "e.csv").write_text("path,identity,e0,e1\na,b,1,2\nc,d,3\n")
    return tmp_path / "e.csv"


def _garbage_parquet(tmp_path):
    (tmp_path / "e.parquet").write_bytes(b"PAR1 not really")
    return tmp_path / "e.parquet"


def _not_a_manifest(tmp_path):
    (tmp_path / "e.manifest.json").write_text(json.dumps({"format": "something else"}))
    return tmp_path / "e.manifest.json"


def _unfinished(tmp_path, model, items):
    with pytest.raises(Crash):
        write_embeddings(
            model, items, tmp_path / "e.npy", batch_size=3, shard_size=2, on_batch=_crash_after(1)
        )
    return tmp_path / "e.npy"


def _part_of_other_length(tmp_path, model, items):
    write_embeddings(model, items, tmp_path / "e.npy", shard_size=2)
    shutil.copy(tmp_path / "e-00002.npy", tmp_path / "e-00001.npy")  # 1 row where the manifest says 2
    shutil.copy(tmp_path / "e-00002.npy.csv", tmp_path / "e-00001.npy.csv")
    return tmp_path / "e.manifest.json"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_corrupt_npy, "1 rows but an array of (2, 3)"),
        (_truncated_npy, "cannot read embeddings from"),
        (_no_sidecar, "e.npy.csv"),
        (_bad_csv_header, "does not start with the columns path,identity,e0"),
        (_bad_csv_value, "oops"),
        (_ragged_csv, "line 3 has 3 columns, not 4"),
        pytest.param(
            _garbage_parquet,
            "cannot read embeddings from",
            marks=pytest.mark.skipif(not HAS_PYARROW, reason="pyarrow"),
        ),
        (_not_a_manifest, "not a siamese-embeddings manifest"),
        (_unfinished, "is unfinished: 2 of 5 inputs embedded"),
        (_part_of_other_length, "e-00001.npy holds 1 rows of 8 dims; its manifest says 2 of 8"),
        (lambda tmp_path: tmp_path / "missing.npy", "No such file"),
        (lambda tmp_path: tmp_path / "e.txt", "not a .npy, .csv, .parquet or .manifest.json file"),
    ],
)
def test_read_embeddings_errors_are_one_line(model, tiny_run, tmp_path, make, message):
    items = list_inputs(tiny_run[1])[:5]
    args = (tmp_path, model, items) if make in (_unfinished, _part_of_other_length) else (tmp_path,)
    with pytest.raises(DataError) as raised:
        read_embeddings(make(*args))
    assert message in str(raised.value) and len(str(raised.value).splitlines()) == 1

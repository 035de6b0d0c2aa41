"""Search backends (`siamese/galleries/backends`): each one against exact search on a clustered
fixture, add/remove round trips, padding, save/open, and the registry's lazy imports.

faiss and Milvus tests skip where their extra is not installed; the Milvus ones use a milvus-lite
file under pytest's tmp_path, closed (and its in-process server stopped) after each test.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from siamese.errors import ConfigError, DataError
from siamese.galleries.backends import BACKENDS, ExactIndex, SearchIndex, backend_class, get_index, unit_rows

D = 16
N_IDS, PER_ID = 50, 4


# -- fixtures ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clustered() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`(ids (200,), vectors (200, D), queries (200, D))`: 50 unit-norm centres x 4 noisy rows, and
    4 held-out queries per centre. Ids are not row positions, so mixing the two shows."""
    rng = np.random.default_rng(0)
    centres = unit_rows(rng.normal(size=(N_IDS, D)))
    vectors = np.repeat(centres, PER_ID, 0) + 0.05 * rng.normal(size=(N_IDS * PER_ID, D))
    queries = np.repeat(centres, PER_ID, 0) + 0.05 * rng.normal(size=(N_IDS * PER_ID, D))
    ids = np.arange(N_IDS * PER_ID, dtype=np.int64) * 7 + 3
    return ids, vectors.astype(np.float32), queries.astype(np.float32)


def _needs(name: str) -> None:
    """Skip unless the backend's package is installed."""
    if name.startswith("faiss"):
        pytest.importorskip("faiss")
    elif name == "milvus":
        pytest.importorskip("pymilvus")
        pytest.importorskip("milvus_lite")


class Maker:
    """`make(name, distance, **options)`: a new index, a Milvus one in a milvus-lite file under
    `folder`; every index made (or passed to `keep`) is dropped and closed by `close_all`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.made: list[SearchIndex] = []

    def __call__(self, name: str, distance: str, **options: Any) -> SearchIndex:
        _needs(name)
        if name == "milvus":
            options = {"directory": self.folder, **options}
        return self.keep(get_index(name, distance, D, **options))

    def keep(self, index: SearchIndex) -> SearchIndex:
        self.made.append(index)
        return index

    def close_all(self) -> None:
        for index in reversed(self.made):
            if hasattr(index, "drop"):
                index.drop()  # no collection is left behind
            if hasattr(index, "close"):
                index.close()
        if (self.folder / "milvus.db").exists():
            from siamese.galleries.backends.milvus import release_lite

            release_lite(self.folder / "milvus.db")  # milvus-lite's server threads stop here, not at exit


@pytest.fixture
def make(tmp_path: Path):
    maker = Maker(tmp_path / "gallery")
    yield maker
    maker.close_all()


DISTANCES = ["cosine", "euclidean"]
MILVUS_HNSW = {
    "index_type": "HNSW",
    "index_params": {"M": 16, "efConstruction": 64},
    "search_params": {"ef": 32},
}
MILVUS_IVF = {"index_type": "IVF_FLAT", "index_params": {"nlist": 16}, "search_params": {"nprobe": 2}}
# (name, options, exact): every backend, the approximate ones also with settings that make them approximate
CONFIGS = [
    pytest.param("exact", {}, True, id="exact"),
    pytest.param("faiss-flat", {}, True, id="faiss-flat"),
    pytest.param("faiss-ivf", {}, False, id="faiss-ivf"),
    pytest.param("faiss-ivf", {"nlist": 16, "nprobe": 2}, False, id="faiss-ivf-nprobe2"),
    pytest.param("faiss-hnsw", {}, False, id="faiss-hnsw"),
    pytest.param("faiss-hnsw", {"m": 4, "ef_search": 8, "ef_construction": 16}, False, id="faiss-hnsw-small"),
    pytest.param("milvus", {}, True, id="milvus"),
    pytest.param("milvus", MILVUS_HNSW, False, id="milvus-hnsw"),
    pytest.param("milvus", MILVUS_IVF, False, id="milvus-ivf"),
]
# milvus-lite searches unsealed rows by brute force whatever the index type: one Milvus config is enough here
EDIT_CONFIGS = [config for config in CONFIGS if config.id not in ("milvus-hnsw", "milvus-ivf")]


def _exact(distance: str, ids: np.ndarray, vectors: np.ndarray) -> ExactIndex:
    index = ExactIndex(distance, D)
    index.add(ids, vectors)
    return index


def _true_distances(distance: str, queries: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """`(Q, M)` distances in float64, straight from the definitions."""
    q, v = queries.astype(np.float64), vectors.astype(np.float64)
    if distance == "cosine":
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        vn = v / np.linalg.norm(v, axis=1, keepdims=True)
        return 1.0 - qn @ vn.T
    return np.sqrt(((q[:, None, :] - v[None, :, :]) ** 2).sum(-1))


# -- ExactIndex against a naive loop ----------------------------------------------------------------
TIE_VECTORS = np.array(
    [
        [1, 0, 0, 0],
        [0, 1, 0, 0],
        [1, 0, 0, 0],
        [2, 1, 0, 0],
        [0, 1, 0, 0],
        [1, 0, 0, 0],
        [0, 0, 1, 0],
        [2, 0, 0, 0],
        [1, 1, 1, 1],
    ],
    dtype=np.float32,
)  # exact duplicates (rows 0, 2, 5 and 1, 4), and row 7 which ties row 0 under cosine only
TIE_QUERIES = np.array(
    [[1, 0, 0, 0], [0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 1], [3, 0, 1, 0]], dtype=np.float32
)


def _naive_search(
    distance: str, queries: np.ndarray, vectors: np.ndarray, ids: np.ndarray, live: list[int], k: int
):
    """One query at a time in plain Python: distances by definition, ties to the lower row, padding."""
    out_d, out_ids = [], []
    for q in queries.tolist():
        dist = {}
        for row in live:
            v = vectors[row].tolist()
            if distance == "cosine":
                dot = sum(a * b for a, b in zip(q, v, strict=True))
                dist[row] = 1.0 - dot / (math.sqrt(sum(a * a for a in q)) * math.sqrt(sum(b * b for b in v)))
            else:
                dist[row] = math.sqrt(sum((a - b) ** 2 for a, b in zip(q, v, strict=True)))
        order = sorted(live, key=lambda row: (round(dist[row], 6), row))[:k]
        pad = k - len(order)
        out_ids.append([int(ids[row]) for row in order] + [-1] * pad)
        out_d.append([dist[row] for row in order] + [math.inf] * pad)
    return np.array(out_d), np.array(out_ids)


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("k", [1, 2, 4, 9, 12])
def test_exact_matches_naive_loop_with_ties(distance: str, k: int) -> None:
    ids = np.arange(len(TIE_VECTORS), dtype=np.int64) * 10 + 5
    index = ExactIndex(distance, 4)
    index.add(ids, TIE_VECTORS)
    for removed in ([], [ids[2]]):  # and again with a duplicate masked out (rows keep their places)
        index.remove(np.array(removed, dtype=np.int64))
        live = [row for row in range(len(ids)) if ids[row] not in removed]
        want_d, want_ids = _naive_search(distance, TIE_QUERIES, TIE_VECTORS, ids, live, k)
        got_d, got_ids = index.search(TIE_QUERIES, k)
        np.testing.assert_array_equal(got_ids, want_ids)
        np.testing.assert_allclose(got_d, want_d, atol=1e-6)


def test_exact_breaks_a_tie_cut_by_k_at_the_lower_row() -> None:
    index = ExactIndex("euclidean", 4)
    index.add(np.array([40, 30, 20, 10]), np.array([[0, 0, 0, 9], [1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0]]))
    dist, ids = index.search(np.array([[1, 0, 0, 0]], np.float32), 2)
    assert ids.tolist() == [[30, 20]]  # rows 1 and 2 of the three tied at 0, not by id
    assert dist.tolist() == [[0.0, 0.0]]


# -- every backend against exact search -------------------------------------------------------------
@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize(("name", "options", "exact"), CONFIGS)
def test_backend_agrees_with_exact(
    make, clustered, name: str, options: dict, exact: bool, distance: str
) -> None:
    ids, vectors, queries = clustered
    index = make(name, distance, **options)
    index.add(ids, vectors)
    index.save(make.folder)  # Milvus builds its IVF/HNSW index when the segment is sealed
    want_d, want_ids = _exact(distance, ids, vectors).search(queries, 10)
    got_d, got_ids = index.search(queries, 10)
    assert got_d.shape == got_ids.shape == (len(queries), 10)
    assert got_d.dtype == np.float32 and got_ids.dtype == np.int64
    if exact:
        np.testing.assert_array_equal(got_ids, want_ids)
        np.testing.assert_allclose(got_d, want_d, atol=1e-4 if name == "milvus" else 1e-5)
    else:
        assert (got_ids[:, 0] == want_ids[:, 0]).mean() >= 0.95
    # whatever was found, its distance is the gallery's (1 - cos, or the L2 norm, never squared)
    found = got_ids >= 0
    assert found[:, 0].all()
    rows = (got_ids[found] - 3) // 7
    true = _true_distances(distance, queries, vectors)[np.nonzero(found)[0], rows]
    np.testing.assert_allclose(got_d[found], true, atol=1e-4)
    assert (np.diff(got_d, axis=1) >= -1e-6).all()  # nearest first


def test_milvus_options_reach_the_collection(make, clustered) -> None:
    _needs("milvus")
    ids, vectors, _ = clustered
    index = make("milvus", "euclidean", collection="probe", **MILVUS_IVF)
    index.add(ids, vectors)
    described = index.client.describe_index("probe", "vector")
    assert described["index_type"] == "IVF_FLAT" and described["metric_type"] == "L2"
    assert described["params"] == {"nlist": 16}


# -- add / remove ---------------------------------------------------------------------------------
@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize(("name", "options", "exact"), EDIT_CONFIGS)
def test_add_remove_round_trip(make, clustered, name: str, options: dict, exact: bool, distance: str) -> None:
    ids, vectors, queries = clustered
    index = make(name, distance, **options)
    index.add(ids, vectors)
    first, more = ids[:12], ids[12:130]  # after the second removal HNSW's tombstones are most: it rebuilds
    for step, removed in ((first, first), (more, ids[:130])):
        index.remove(np.append(step, 999_999))  # an unknown id is ignored
        assert len(index) == len(ids) - len(removed)
        _, got = index.search(queries[::4], len(index))  # every vector held, for 50 queries
        assert not np.isin(got, removed).any()
        if exact:  # (an IVF probing only cells whose vectors were removed finds nothing, rightly)
            assert (got >= 0).all()
    # re-adding brings them back, each (nearly always, for approximate search) its own nearest vector
    index.add(ids[:130], vectors[:130])
    assert len(index) == len(ids)
    dist, got = index.search(vectors, 1)
    assert (got[:, 0] == ids).mean() >= (1.0 if exact else 0.95)
    np.testing.assert_allclose(dist[got[:, 0] == ids, 0], 0.0, atol=1e-3)


@pytest.mark.parametrize("name", BACKENDS)
def test_padding_beyond_the_vectors_held(make, clustered, name: str) -> None:
    ids, vectors, queries = clustered
    index = make(name, "cosine")
    dist, got = index.search(queries[:2], 3)  # empty
    assert got.tolist() == [[-1] * 3] * 2 and np.isinf(dist).all()
    index.add(ids[:3], vectors[:3])
    dist, got = index.search(queries[:2], 5)
    assert dist.shape == got.shape == (2, 5)
    assert sorted(got[0, :3].tolist()) == sorted(ids[:3].tolist())
    assert (got[:, 3:] == -1).all() and np.isinf(dist[:, 3:]).all() and np.isfinite(dist[:, :3]).all()
    dist, got = index.search(queries[:2], 0)
    assert dist.shape == got.shape == (2, 0)


@pytest.mark.parametrize("name", BACKENDS)
def test_vectors_of_another_size_are_data_errors(make, clustered, name: str) -> None:
    ids, vectors, queries = clustered
    index = make(name, "euclidean")
    with pytest.raises(DataError):
        index.add(ids[:2], vectors[:2, :5])
    index.add(ids[:2], vectors[:2])
    with pytest.raises(DataError):
        index.search(queries[:2, :5], 1)


# -- save / open ----------------------------------------------------------------------------------
@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize(("name", "options", "exact"), CONFIGS)
def test_save_open_round_trip(make, clustered, name: str, options: dict, exact: bool, distance: str) -> None:
    ids, vectors, queries = clustered
    folder = make.folder
    cls = backend_class(name)
    assert cls.open(folder, distance, D, **options) is None  # nothing saved yet
    index = make(name, distance, **options)
    index.add(ids, vectors)
    index.remove(ids[::9])  # tombstones for HNSW
    index.save(folder)
    before = index.search(queries, 10)
    described = index.describe()
    assert described["backend"] == name
    if hasattr(index, "close"):
        index.close()
    # reopened the way a gallery does: from its recorded description
    reopened = cls.open(folder, distance, D, **{k: v for k, v in described.items() if k != "backend"})
    if name == "exact":
        assert reopened is None  # in memory only: the gallery rebuilds it
        return
    assert reopened is not None
    make.keep(reopened)
    assert reopened.describe() == described
    assert len(reopened) == len(ids) - len(ids[::9])
    after = reopened.search(queries, 10)
    assert not np.isin(after[1], ids[::9]).any()
    if name == "milvus" and not exact:  # milvus-lite rebuilds an IVF/HNSW index on load
        assert (after[1][:, 0] == before[1][:, 0]).mean() >= 0.95
        return
    np.testing.assert_array_equal(after[1], before[1])
    np.testing.assert_allclose(after[0], before[0], atol=1e-6)


@pytest.mark.parametrize("name", ["faiss-flat", "faiss-ivf", "faiss-hnsw"])
def test_faiss_open_refuses_another_index(make, clustered, name: str) -> None:
    ids, vectors, _ = clustered
    index = make(name, "cosine")
    index.add(ids, vectors)
    index.save(make.folder)
    assert backend_class(name).open(make.folder, "cosine", D) is not None
    assert backend_class(name).open(make.folder, "euclidean", D) is None  # another metric
    assert backend_class(name).open(make.folder, "cosine", D + 1) is None  # another size
    others = [other for other in ("faiss-flat", "faiss-ivf", "faiss-hnsw") if other != name]
    assert all(backend_class(other).open(make.folder, "cosine", D) is None for other in others)
    (make.folder / "gallery.faiss").write_bytes(b"not an index")
    with pytest.raises(DataError):
        backend_class(name).open(make.folder, "cosine", D)


def test_faiss_save_is_atomic(make, clustered, monkeypatch) -> None:
    faiss = pytest.importorskip("faiss")
    ids, vectors, _ = clustered
    index = make("faiss-flat", "cosine")
    index.add(ids[:5], vectors[:5])
    index.save(make.folder)
    saved = (make.folder / "gallery.faiss").read_bytes()
    index.add(ids[5:], vectors[5:])

    def broken(idx, path):
        Path(path).write_bytes(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(faiss, "write_index", broken)
    with pytest.raises(RuntimeError):
        index.save(make.folder)
    assert [p.name for p in make.folder.iterdir()] == ["gallery.faiss"]  # no temporary left behind
    assert (make.folder / "gallery.faiss").read_bytes() == saved


def test_milvus_refuses_a_collection_it_did_not_make_or_of_another_shape(make, clustered) -> None:
    _needs("milvus")
    ids, vectors, _ = clustered
    first = make("milvus", "cosine", collection="shared")
    first.add(ids, vectors)
    with pytest.raises(ConfigError, match="already exists"):
        make("milvus", "cosine", collection="shared").add(ids, vectors)
    with pytest.raises(ConfigError, match="dimensions"):
        backend_class("milvus").open(make.folder, "euclidean", D, collection="shared")
    with pytest.raises(ConfigError, match="dimensions"):
        backend_class("milvus").open(make.folder, "cosine", D + 1, collection="shared")


# -- options, the registry and lazy imports -------------------------------------------------------
def test_registry_names_every_backend() -> None:
    assert set(BACKENDS) == {"exact", "faiss-flat", "faiss-ivf", "faiss-hnsw", "milvus"}
    with pytest.raises(ConfigError, match="unknown search backend"):
        get_index("annoy", "cosine", D)


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("faiss-flat", {"nprobe": 3}, "no option nprobe"),
        ("faiss-ivf", {"nprobes": 3}, "no option nprobes"),
        ("faiss-ivf", {"nlist": 0}, "nlist must be a positive integer"),
        ("faiss-hnsw", {"ef_search": 2.5}, "ef_search must be a positive integer"),
        ("faiss-flat", {"threads": 0}, "threads must be a positive integer"),
        ("milvus", {}, "needs a uri"),
        ("milvus", {"directory": "x", "index_type": "DISKANN"}, "unknown milvus index type"),
        ("milvus", {"directory": "x", "metric": "L2"}, "no option metric"),
    ],
)
def test_bad_options_are_config_errors(name: str, options: dict, match: str) -> None:
    _needs(name)
    with pytest.raises(ConfigError, match=match):
        get_index(name, "cosine", D, **options)


def test_faiss_threads_are_capped_then_restored(make, clustered, monkeypatch) -> None:
    faiss = pytest.importorskip("faiss")
    ids, vectors, queries = clustered
    before = faiss.omp_get_max_threads()
    calls: list[int] = []
    real = faiss.omp_set_num_threads
    monkeypatch.setattr(faiss, "omp_set_num_threads", lambda n: (calls.append(n), real(n)))
    index = make("faiss-flat", "euclidean", threads=1)
    index.add(ids, vectors)
    want = make("faiss-flat", "euclidean")
    want.add(ids, vectors)
    calls.clear()
    np.testing.assert_array_equal(index.search(queries, 5)[1], want.search(queries, 5)[1])
    assert calls == [1, before]
    assert faiss.omp_get_max_threads() == before


@pytest.mark.parametrize(
    ("module", "name", "extra"), [("faiss", "faiss-hnsw", "index"), ("pymilvus", "milvus", "milvus")]
)
def test_missing_package_names_its_extra(monkeypatch, module: str, name: str, extra: str) -> None:
    for loaded in ("siamese.galleries.backends.faiss_index", "siamese.galleries.backends.milvus"):
        monkeypatch.delitem(sys.modules, loaded, raising=False)
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(ConfigError, match=rf"needs {module}: pip install 'siamese\[{extra}\]'"):
        backend_class(name)


def test_exact_backend_imports_no_extra() -> None:
    code = (
        "import sys, numpy as np\n"
        "from siamese.galleries.backends import get_index\n"
        "index = get_index('exact', 'cosine', 4)\n"
        "index.add(np.arange(3), np.eye(3, 4))\n"
        "index.search(np.eye(2, 4), 2)\n"
        "print(sorted(m for m in ('faiss', 'pymilvus', 'milvus_lite') if m in sys.modules))\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "[]"


def test_faiss_backends_survive_pytorch_metric_learnings_faiss_patch() -> None:
    """pytorch-metric-learning imports faiss.contrib.torch_utils, which makes some faiss calls return
    tensors; the backends must keep working in such a process (a subprocess: the patch is global)."""
    pytest.importorskip("faiss")
    script = (
        "import faiss.contrib.torch_utils, numpy as np\n"
        "from siamese.galleries.backends import get_index\n"
        "rng = np.random.default_rng(0)\n"
        "x = rng.normal(size=(60, 8)).astype(np.float32)\n"
        "for name in ('faiss-flat', 'faiss-ivf', 'faiss-hnsw'):\n"
        "    ix = get_index(name, 'cosine', 8)\n"
        "    ix.add(np.arange(60), x)\n"
        "    ix.remove(np.arange(40))  # HNSW: past half tombstones, the graph is rebuilt\n"
        "    d, i = ix.search(x[40:], 1)\n"
        "    assert (i[:, 0] >= 40).all() and len(ix) == 20, name\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr

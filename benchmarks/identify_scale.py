"""1:N identification search at scale: the gallery's search backends against exact search and the
brute-force loop users write today.

Synthetic clustered galleries, as real embeddings are: identity centres drawn uniformly on the unit
sphere, each enrolled `--refs` times (R) as centre + Gaussian noise (per-dimension sigma
`--noise`/sqrt(D), so a reference's noise vector has a norm of about `--noise`); entry id `i`
belongs to identity `i // R`. Queries are fresh noisy samples of enrolled identities (drawn with
replacement), never in the gallery. Cosine distance throughout.

Per gallery size (`--sizes`) and backend (`--backends`, `name` or `name:key=value,...`; the
`siamese.galleries.backends` registry), measured one backend at a time on one process:

- build: wall time of `get_index(...)` and its `add` calls (one for every entry, or above
  `--first-add` entries a seeded sample of that many first, which trains faiss-ivf's cells, then
  the rest), then of `save` into a temporary folder, as a gallery persists it (nothing for exact,
  a file for faiss, sealing the segments and building the index for milvus); memory: resident-set
  growth of this process (and any children) from before the build to after it;
- latency: single-query `search(q, k)` p50/p99 over `--queries` timed queries after `--warmup`
  warm-up ones, with ONE thread (`threadpoolctl.threadpool_limits(1)`, and
  `faiss.omp_set_num_threads(1)` once faiss is loaded);
- throughput: queries/s of a batch of `--batch` queries, default threads (the batch is searched in
  slices of at most `MAX_CELLS // N` queries, so exact search's (Q, N) distance matrix stays under
  ~400 MB; the same slicing for every backend);
- top-1 agreement: share of the latency and batch queries whose nearest entry's identity equals the
  identity exact search finds (and, in the JSON, top-1 accuracy against the query's true identity);
- removal: median time of `remove(ids)` of one whole identity (its R ids) over `--removals`
  identities, checked afterwards (no removed id comes back from a search), and whether the backend
  removes natively.

The baseline (`brute-loop`, deepface's `find` in spirit): a Python list of (identity, vector) and a
loop computing deepface's `find_cosine_distance` with NumPy per entry, then the minimum. It runs up
to `--baseline-max` entries (default 100k; "not run" above) and for at most `--baseline-budget`
seconds of timed queries per size; its throughput is that of the same loop (queries one by one).

    python benchmarks/identify_scale.py [--sizes 10k,100k,1M] [--backends exact,faiss-ivf,...]
    python benchmarks/identify_scale.py --smoke     # 2k entries, 50 queries, seconds
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from common import RESULTS_DIR, markdown_table, parse_value, run_main, setup_logging, write_results
from threadpoolctl import threadpool_limits

from siamese.errors import ConfigError
from siamese.galleries.backends import SearchIndex, backend_class, get_index, unit_rows

logger = logging.getLogger("benchmarks.identify_scale")

NAME = "identify_scale"
BASELINE = "brute-loop"
DEFAULT_BACKENDS = f"exact,faiss-ivf,faiss-hnsw,milvus,{BASELINE}"
DISTANCE = "cosine"
MAX_CELLS = 100_000_000  # queries x entries of one batch slice (float32 distances: ~400 MB)
SMOKE = {"sizes": "2k", "queries": 50, "warmup": 5, "batch": 100, "removals": 2, "baseline_budget": 5.0}
# faiss's own default: with the backend's 200, 100k entries took 100 s to build on the 2-core
# machine (40: 29 s), so 1M would take well over 20 minutes
HNSW_EF_CONSTRUCTION = 40
REMOVAL = {  # how each backend removes, where it does not say so itself (a `native_remove` attribute)
    "exact": "yes (rows masked, compacted lazily)",
    "faiss-flat": "yes (remove_ids)",
    "faiss-ivf": "yes (remove_ids)",
    "faiss-hnsw": "no (tombstones, graph rebuilt past 50%)",
    "milvus": "yes (delete)",
}
EXACT_P50_MS = {10_000: 0.5, 100_000: 3.0}  # targets: exact search's p50 at these sizes
APPROX_1M = (2.0, 6.0, 0.99)  # target: an approximate backend's p50 ms, p99 ms, top-1 agreement at 1M
REMOVE_1M_MS = 100.0  # target: removing one identity at 1M


# ----------------------------------------------------------------------------------------------- CLI


def parse_size(text: str) -> int:
    """`"10k"` -> 10000, `"1M"` -> 1000000, `"2500"` -> 2500."""
    text = text.strip()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:].lower(), 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def size_label(n: int) -> str:
    """1000000 -> "1M", 100000 -> "100k", 2500 -> "2500"."""
    for unit, scale in (("M", 1_000_000), ("k", 1_000)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """`"faiss-ivf:nprobe=64,nlist=1024"` -> `("faiss-ivf", {"nprobe": 64, "nlist": 1024})`."""
    name, _, rest = spec.partition(":")
    options = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, raw = item.partition("=")
        if not sep:
            sys.exit(f"backend options must look like name:key=value,..., got {spec!r}")
        options[key.strip()] = parse_value(raw.strip())
    return name.strip(), options


def split_specs(text: str) -> list[str]:
    """Backend specs of `--backends`: commas separate specs, except inside one spec's options
    (`exact,faiss-ivf:nlist=1024,nprobe=64,faiss-hnsw` -> three specs)."""
    specs: list[str] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "=" in part and ":" not in part and specs:
            specs[-1] += f",{part}"
        else:
            specs.append(part)
    return specs


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny CI run: 2k entries, 50 queries")
    p.add_argument("--sizes", default="10k,100k,1M", help="gallery sizes in entries (default 10k,100k,1M)")
    p.add_argument(
        "--backends",
        default=DEFAULT_BACKENDS,
        help=f"backends as name or name:key=value,... (default {DEFAULT_BACKENDS}; "
        f"{BASELINE} is the per-entry Python loop)",
    )
    p.add_argument("--dim", type=int, default=128, help="vector size D (default 128)")
    p.add_argument("--refs", type=int, default=5, help="references per identity R (default 5)")
    p.add_argument("--noise", type=float, default=0.8, help="norm of a reference's noise (default 0.8)")
    p.add_argument("--k", type=int, default=1, help="neighbours per search (default 1)")
    p.add_argument("--queries", type=int, default=500, help="timed single queries (default 500)")
    p.add_argument("--warmup", type=int, default=20, help="untimed single queries first (default 20)")
    p.add_argument("--batch", type=int, default=1000, help="queries of the throughput batch (default 1000)")
    p.add_argument("--removals", type=int, default=5, help="identities removed one by one (default 5)")
    p.add_argument(
        "--first-add",
        type=parse_size,
        default=100_000,
        help="larger galleries are added as a seeded sample of this many entries, then the rest (the first "
        "add trains faiss-ivf's cells); default 100k",
    )
    p.add_argument("--milvus-max", type=parse_size, default=100_000, help="largest milvus gallery (100k)")
    p.add_argument("--baseline-max", type=parse_size, default=100_000, help=f"largest {BASELINE} gallery")
    p.add_argument(
        "--baseline-budget", type=float, default=60.0, help=f"seconds of timed {BASELINE} queries per size"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the galleries and queries (default 0)")
    p.add_argument(
        "--out",
        type=Path,
        default=RESULTS_DIR,
        help="where <name>.json/.md go (default: benchmarks/results/experiments/<name>/, time-stamped)",
    )
    return p


def parse_args() -> argparse.Namespace:
    args = build_parser().parse_args()
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
    args.size_list = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    args.specs = [parse_spec(s) for s in split_specs(args.backends)]
    if any(n % args.refs or n < 2 * args.refs for n in args.size_list):
        sys.exit(f"every size must be a multiple of --refs ({args.refs}) with at least two identities")
    return args


# ------------------------------------------------------------------------------------------ the data


@dataclass(frozen=True)
class Workload:
    """A gallery of `N` entries (id `i` = row `i`, identity `i // refs`) and its queries."""

    vectors: np.ndarray  # (N, D) float32
    refs: int
    warmup: int  # the first `warmup` latency queries are not timed nor scored
    latency: np.ndarray  # (warmup + queries, D)
    latency_identity: np.ndarray  # (warmup + queries,) the identity each query was drawn from
    batch: np.ndarray  # (B, D)
    batch_identity: np.ndarray  # (B,)

    @property
    def ids(self) -> np.ndarray:
        return np.arange(len(self.vectors), dtype=np.int64)

    @property
    def scored(self) -> tuple[np.ndarray, np.ndarray]:
        """The timed latency queries then the batch `(Q, D)`, and their true identities `(Q,)`."""
        queries = np.concatenate([self.latency[self.warmup :], self.batch])
        return queries, np.concatenate([self.latency_identity[self.warmup :], self.batch_identity])

    def identity(self, ids: np.ndarray) -> np.ndarray:
        """Identities of entry ids (-1, a missing result, stays -1)."""
        ids = np.asarray(ids, np.int64)
        return np.where(ids >= 0, ids // self.refs, -1)


def noisy(centres: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """`centres` plus Gaussian noise of norm about `noise` each (float32, in place of a copy)."""
    out = rng.standard_normal(centres.shape, dtype=np.float32)
    out *= noise / np.sqrt(centres.shape[1])
    out += centres
    return out


def make_workload(n: int, args: argparse.Namespace) -> Workload:
    """The seeded gallery of `n` entries and its held-out queries."""
    rng = np.random.default_rng([args.seed, n])
    centres = unit_rows(rng.standard_normal((n // args.refs, args.dim), dtype=np.float32))  # (I, D)
    vectors = np.empty((n, args.dim), np.float32)
    for r in range(args.refs):  # identity-major rows without a repeated (N, D) temporary
        vectors[r :: args.refs] = noisy(centres, args.noise, rng)
    lat_id = rng.integers(0, len(centres), args.warmup + args.queries)
    batch_id = rng.integers(0, len(centres), args.batch)
    return Workload(
        vectors,
        args.refs,
        args.warmup,
        noisy(centres[lat_id], args.noise, rng),
        lat_id,
        noisy(centres[batch_id], args.noise, rng),
        batch_id,
    )


# ---------------------------------------------------------------------------------------- measuring


def rss_mib(pid: int | None = None) -> float:
    """Resident set of a process and all its descendants, MiB (Linux /proc; 0 elsewhere)."""
    pid = os.getpid() if pid is None else pid
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    kib = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return kib / 1024 + sum(rss_mib(child) for child in children(pid))


def children(pid: int) -> list[int]:
    """Direct children of a process (Linux /proc)."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


@contextmanager
def one_thread() -> Iterator[None]:
    """BLAS/OpenMP pools (and faiss's OpenMP, when faiss is loaded) limited to one thread."""
    faiss = sys.modules.get("faiss")
    before = faiss.omp_get_max_threads() if faiss else None
    with threadpool_limits(1):
        if faiss:
            faiss.omp_set_num_threads(1)
        try:
            yield
        finally:
            if faiss:
                faiss.omp_set_num_threads(before)


def search_all(search: Callable[[np.ndarray], np.ndarray], queries: np.ndarray, n: int) -> np.ndarray:
    """Top ids of every query, searched in slices of at most `MAX_CELLS // n` queries. (Q, k)."""
    step = max(1, MAX_CELLS // n)
    return np.concatenate([search(queries[i : i + step]) for i in range(0, len(queries), step)])


def latency(search_one: Callable[[np.ndarray], Any], queries: np.ndarray, warmup: int) -> dict[str, Any]:
    """p50/p99 ms of one query at a time (one thread), after `warmup` untimed queries; the results."""
    found, times = [], []
    with one_thread():
        for i, q in enumerate(queries):
            start = time.perf_counter()
            top = search_one(q)
            if i >= warmup:
                times.append(1e3 * (time.perf_counter() - start))
            found.append(top)
    return {**percentiles(times), "found": np.asarray(found[warmup:])}


def percentiles(times_ms: list[float]) -> dict[str, Any]:
    """p50, p99 and the number of timed queries."""
    return {
        "p50_ms": float(np.percentile(times_ms, 50)),
        "p99_ms": float(np.percentile(times_ms, 99)),
        "timed_queries": len(times_ms),
    }


def agreement(found: np.ndarray, truth: np.ndarray, w: Workload) -> float:
    """Share of queries whose top-1 identity equals exact search's."""
    return float((w.identity(found) == w.identity(truth)).mean())


# ------------------------------------------------------------------------------------- the backends


def options_for(name: str, given: dict[str, Any], n: int, tmp: Path) -> dict[str, Any]:
    """The options `name` is built with at `n` entries: what `--backends` gave, over this benchmark's
    settings (faiss-ivf: 4 sqrt(n) cells rounded to a power of two, 1/32 of them probed; faiss-hnsw:
    `HNSW_EF_CONSTRUCTION`; milvus: a milvus-lite file in a temporary folder); everything else is the
    backend's own default."""
    base: dict[str, Any] = {}
    if name == "faiss-ivf":
        nlist = 2 ** round(np.log2(4 * np.sqrt(n)))  # 10k: 512, 100k: 1024, 1M: 4096
        base = {"nlist": nlist, "nprobe": max(8, nlist // 32)}
    elif name == "faiss-hnsw":
        base = {"ef_construction": HNSW_EF_CONSTRUCTION}
    elif name == "milvus":
        base = {"directory": str(tmp)}
    return {**base, **given}


def recorded(index: SearchIndex) -> dict[str, Any]:
    """The options the index reports (`describe`), as the results record them."""
    return {k: v for k, v in index.describe().items() if k not in ("backend", "uri", "directory")}


def native_removal(index: SearchIndex) -> str:
    """How the backend removes: its own `native_remove` flag when it has one, else `REMOVAL`."""
    flag = getattr(index, "native_remove", None)
    if isinstance(flag, bool):
        return "yes" if flag else "no"
    return REMOVAL.get(index.name, "?")


def add_order(n: int, first: int, seed: int) -> list[np.ndarray]:
    """The ids of each `add` call: all at once up to `first` entries, else a seeded sample of `first`
    ids (sorted), then the others in id order."""
    if n <= first:
        return [np.arange(n, dtype=np.int64)]
    sample = np.zeros(n, bool)
    sample[np.random.default_rng([seed, n, 1]).choice(n, first, replace=False)] = True
    return [np.flatnonzero(sample), np.flatnonzero(~sample)]


def build(
    name: str, options: dict[str, Any], w: Workload, args: argparse.Namespace, folder: Path
) -> tuple[SearchIndex, dict[str, float]]:
    """A new index of backend `name` holding the gallery (`add_order`), then saved into `folder` as a
    gallery saves it (nothing for exact, a file for faiss; milvus seals its segments and builds its
    index, without which milvus-lite searches are ~100x slower). Seconds of each, and memory MiB."""
    batches = add_order(len(w.vectors), args.first_add, args.seed)
    gc.collect()
    before = rss_mib()
    start = time.perf_counter()
    index = get_index(name, DISTANCE, w.vectors.shape[1], **options)
    for ids in batches:
        index.add(ids, w.vectors[ids])
    added = time.perf_counter()
    index.save(folder)
    cost = {"add_s": added - start, "save_s": time.perf_counter() - added, "memory_mib": rss_mib() - before}
    logger.info(
        "%s %s: added in %.1f s, saved in %.1f s, +%.0f MiB", size_label(len(w.vectors)), name, *cost.values()
    )
    return index, cost


def searches(index: SearchIndex, w: Workload, truth: np.ndarray, k: int) -> dict[str, Any]:
    """Single-query latency (one thread), batch throughput, top-1 agreement and accuracy."""
    lat = latency(lambda q: index.search(q[None], k)[1][0, 0], w.latency, w.warmup)
    start = time.perf_counter()
    batch_found = search_all(lambda q: index.search(q, k)[1][:, 0], w.batch, len(w.vectors))
    qps = len(w.batch) / (time.perf_counter() - start)
    found = np.concatenate([lat.pop("found"), batch_found])
    return {
        **lat,
        "batch_qps": qps,
        "agreement": agreement(found, truth, w),
        "accuracy": float((w.identity(found) == w.scored[1]).mean()),
    }


def measure_backend(
    name: str, options: dict[str, Any], w: Workload, truth: np.ndarray, args: argparse.Namespace, folder: Path
) -> dict[str, Any]:
    """Build, time and check one backend on one workload (its files, if any, in `folder`)."""
    index, cost = build(name, options, w, args, folder)
    try:
        return {
            "options": recorded(index),
            "exact_search": index.exact,
            **cost,
            **searches(index, w, truth, args.k),
            **removal(index, w, args),
        }
    finally:
        if hasattr(index, "close"):  # milvus: the client and milvus-lite's server
            index.close()


def removal(index: Any, w: Workload, args: argparse.Namespace) -> dict[str, Any]:
    """Median ms to remove one identity (its R ids), over `--removals` identities; checked by a
    search for each removed identity afterwards."""
    identities = np.unique(w.latency_identity[: args.removals])
    times, leaked = [], 0
    for ident in identities:
        ids = np.arange(ident * w.refs, (ident + 1) * w.refs, dtype=np.int64)
        start = time.perf_counter()
        index.remove(ids)
        times.append(1e3 * (time.perf_counter() - start))
    for q in w.latency[np.isin(w.latency_identity, identities)]:
        found = index.search(q[None], 2 * w.refs)[1]
        leaked += int(np.isin(w.identity(found), identities).sum())
    return {
        "remove_ms": statistics.median(times),
        "removal_checked": leaked == 0,
        "native_remove": native_removal(index),
    }


def exact_truth(w: Workload, k: int) -> np.ndarray:
    """Exact search's top-1 ids of the scored queries (`Workload.scored`). (Q,)"""
    index = get_index("exact", DISTANCE, w.vectors.shape[1])
    index.add(w.ids, w.vectors)
    return search_all(lambda q: index.search(q, k)[1][:, 0], w.scored[0], len(w.vectors))


# ------------------------------------------------------------------------------ the brute-force loop


def find_cosine_distance(source: np.ndarray, test: np.ndarray) -> np.float64:
    """deepface's `find_cosine_distance` (deepface/modules/verification.py), as written there."""
    a = np.matmul(np.transpose(source), test)
    b = np.sum(np.multiply(source, source))
    c = np.sum(np.multiply(test, test))
    return 1 - (a / (np.sqrt(b) * np.sqrt(c)))


def loop_search(entries: list[tuple[int, np.ndarray]], query: np.ndarray) -> int:
    """The identity of the nearest entry: one distance per entry in a Python loop, then the min."""
    distances = [find_cosine_distance(query, vector) for _, vector in entries]
    return entries[int(np.argmin(distances))][0]


def measure_loop(w: Workload, truth: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
    """The brute-force loop: latency (one thread) until `--baseline-budget` seconds are spent."""
    gc.collect()
    before = rss_mib()
    start = time.perf_counter()
    entries = [(int(i), v.copy()) for i, v in zip(w.identity(w.ids), w.vectors, strict=True)]
    build_s = time.perf_counter() - start
    memory = rss_mib() - before
    found, times = [], []
    with one_thread():
        for i, q in enumerate(w.latency):
            start = time.perf_counter()
            found.append(loop_search(entries, q))
            if i >= w.warmup:
                times.append(1e3 * (time.perf_counter() - start))
            if sum(times) > 1e3 * args.baseline_budget:
                break
    found = np.asarray(found[w.warmup :])
    start = time.perf_counter()
    gone = int(w.latency_identity[0])
    entries = [e for e in entries if e[0] != gone]
    remove_ms = 1e3 * (time.perf_counter() - start)
    return {
        "exact_search": True,
        "add_s": build_s,
        "save_s": 0.0,
        "memory_mib": memory,
        **percentiles(times),
        "batch_qps": len(times) / (1e-3 * sum(times)),
        "agreement": float((found == w.identity(truth[: len(found)])).mean()),
        "accuracy": float((found == w.scored[1][: len(found)]).mean()),
        "remove_ms": remove_ms,
        "removal_checked": all(e[0] != gone for e in entries),
        "native_remove": "n/a",
    }


# ---------------------------------------------------------------------------------------- one size


def run_size(n: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every backend of `--backends` on the gallery of `n` entries, one at a time."""
    w = make_workload(n, args)
    truth = exact_truth(w, args.k)
    logger.info("%s: gallery and exact truth ready", size_label(n))
    return [run_one(n, name, given, w, truth, args) for name, given in args.specs]


def skip_reason(n: int, name: str, args: argparse.Namespace) -> str | None:
    """Why `name` is not run at `n` entries (its cap, or its package/registration missing), or None."""
    if name == BASELINE:
        return (
            f"not run (> --baseline-max {size_label(args.baseline_max)})" if n > args.baseline_max else None
        )
    if name == "milvus" and n > args.milvus_max:
        return f"not run (> --milvus-max {size_label(args.milvus_max)})"
    try:
        backend_class(name)
    except ConfigError as exc:
        return f"not available ({exc})"
    return None


def run_one(
    n: int, name: str, given: dict[str, Any], w: Workload, truth: np.ndarray, args: argparse.Namespace
) -> dict[str, Any]:
    """One row: the measurements of backend `name` at `n` entries, or why it was not run."""
    row: dict[str, Any] = {"entries": n, "backend": name, "load_avg_1min": os.getloadavg()[0]}
    reason = skip_reason(n, name, args)
    if reason:
        return {**row, "options": given, "status": reason}
    if name == BASELINE:
        return {**row, "options": {}, "status": "ok", **measure_loop(w, truth, args)}
    with tempfile.TemporaryDirectory(prefix="identify_scale_") as tmp:
        options = options_for(name, given, n, Path(tmp))
        return {**row, "status": "ok", **measure_backend(name, options, w, truth, args, Path(tmp))}


# ------------------------------------------------------------------------------------------ results


def fmt_ms(value: float) -> str:
    return f"{value:.3f}" if value < 1 else f"{value:.2f}" if value < 100 else f"{value:.0f}"


def table_row(row: dict[str, Any]) -> list[str]:
    """A result row as markdown cells."""
    opts = " ".join(f"{k}={v}" for k, v in row["options"].items()) or "—"
    head = [size_label(row["entries"]), row["backend"], opts]
    if row["status"] != "ok":
        return [*head, row["status"], *[""] * (len(HEADERS) - len(head) - 1)]
    return [
        *head,
        f"{row['add_s']:.2f}",
        f"{row['save_s']:.2f}",
        f"{row['memory_mib']:.0f}",
        fmt_ms(row["p50_ms"]),
        fmt_ms(row["p99_ms"]),
        f"{row['batch_qps']:.0f}",
        f"{row['agreement']:.4f}",
        fmt_ms(row["remove_ms"]),
        row["native_remove"] + ("" if row["removal_checked"] else " (removed ids returned!)"),
        str(row["timed_queries"]),
    ]


HEADERS = [
    "entries",
    "backend",
    "options",
    "add s",
    "save s",
    "memory MiB",
    "p50 ms (1 thread)",
    "p99 ms (1 thread)",
    "batch queries/s",
    "top-1 agreement",
    "remove identity ms",
    "native removal",
    "timed queries",
]


def pick(rows: list[dict[str, Any]], n: int, name: str | None = None) -> list[dict[str, Any]]:
    """The measured rows at `n` entries (of backend `name`, when given)."""
    return [r for r in rows if r["entries"] == n and r["status"] == "ok" and name in (None, r["backend"])]


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target, what was measured for it and whether it is met (None: not measured)."""
    at_1m = [r for r in pick(rows, 1_000_000) if r["backend"] != BASELINE]
    return [
        limit_target(
            f"exact p50 <= {EXACT_P50_MS[10_000]} ms at 10k",
            pick(rows, 10_000, "exact"),
            "p50_ms",
            EXACT_P50_MS[10_000],
        ),
        limit_target(
            f"exact p50 <= {EXACT_P50_MS[100_000]} ms at 100k",
            pick(rows, 100_000, "exact"),
            "p50_ms",
            EXACT_P50_MS[100_000],
        ),
        approx_target([r for r in at_1m if not r["exact_search"]]),
        limit_target(
            f"remove an identity <= {REMOVE_1M_MS:g} ms at 1M (every backend)",
            at_1m,
            "remove_ms",
            REMOVE_1M_MS,
        ),
    ]


def limit_target(what: str, rows: list[dict[str, Any]], key: str, limit: float) -> dict[str, Any]:
    """Met when every row's `key` is at most `limit`."""
    measured = [f"{r['backend']} {fmt_ms(r[key])} ms" for r in rows]
    return _target(what, measured, all(r[key] <= limit for r in rows))


def approx_target(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Met when one approximate backend at 1M is fast enough at both percentiles and agrees enough."""
    p50, p99, agree = APPROX_1M
    good = [
        r["backend"] for r in rows if r["p50_ms"] <= p50 and r["p99_ms"] <= p99 and r["agreement"] >= agree
    ]
    measured = [
        f"{r['backend']} {fmt_ms(r['p50_ms'])}/{fmt_ms(r['p99_ms'])} ms, {r['agreement']:.4f}" for r in rows
    ]
    what = f"an approximate backend at 1M: p50 <= {p50} ms, p99 <= {p99} ms, top-1 agreement >= {agree}"
    return _target(what, measured + ([f"met by {', '.join(good)}"] if good else []), bool(good))


def _target(what: str, measured: list[str], met: bool) -> dict[str, Any]:
    return {
        "target": what,
        "measured": "; ".join(measured) or "not measured",
        "met": met if measured else None,
    }


def render(rows: list[dict[str, Any]], goals: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The markdown: protocol line, results table, targets table."""
    met = {True: "yes", False: "**no**", None: "—"}
    accuracy = ", ".join(
        f"{size_label(r['entries'])} {r['accuracy']:.4f}"
        for r in rows
        if r["backend"] == "exact" and r["status"] == "ok"
    )
    return "\n\n".join(
        [
            f"### 1:N search at scale (D={args.dim}, R={args.refs} references per identity, "
            f"noise {args.noise}, cosine, k={args.k}, seed {args.seed})",
            f"Latency: {args.queries} single queries after {args.warmup} warm-up, one thread; throughput: "
            f"a batch of {args.batch}, default threads ({os.cpu_count()} cores); agreement: top-1 identity "
            "equal to exact search's over the timed and batch queries; memory: resident-set growth of the "
            f"process (and its children) over the build. {BASELINE}: deepface-style per-entry loop, timed "
            f"for at most {args.baseline_budget:g} s per size; its throughput is the same loop. Exact "
            f"search's top-1 identity accuracy against the query's true identity: {accuracy or 'n/a'}. "
            f"Build = add, then save (see the script). 1-minute load average before each row: up to "
            f"{max(r['load_avg_1min'] for r in rows):.1f} (measurements assume an idle machine).",
            markdown_table(HEADERS, [table_row(r) for r in rows]),
            markdown_table(
                ["target", "measured", "met"], [[g["target"], g["measured"], met[g["met"]]] for g in goals]
            ),
        ]
    )


def main() -> None:
    args = parse_args()
    setup_logging()
    rows = [row for n in args.size_list for row in run_size(n, args)]
    goals = targets(rows)
    protocol = {
        k: getattr(args, k)
        for k in (
            "dim",
            "refs",
            "noise",
            "k",
            "queries",
            "warmup",
            "batch",
            "removals",
            "first_add",
            "milvus_max",
            "baseline_max",
            "baseline_budget",
            "seed",
        )
    }
    payload = {
        "protocol": {**protocol, "distance": DISTANCE, "sizes": args.size_list},
        "rows": rows,
        "targets": goals,
    }
    write_results(args.out, NAME, payload, render(rows, goals, args), args.smoke)


if __name__ == "__main__":
    run_main(main)

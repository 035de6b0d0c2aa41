"""Load on `siamese serve`: verify and identify over HTTP on loopback, against the same work done in
process, with micro-batching on and off.

- The model: `--model RUN`, else the `face` preset trained here for one short epoch on DATA (a real
  run: its checkpoint carries the validation threshold and calibration that `/v1/verify` needs, and
  its validation identities calibrate the gallery). Speed does not depend on how well it is trained.
- The gallery (`/v1/identify`): DATA's identities that are not the run's validation identities,
  enrolled by `siamese.galleries.enroll.enroll` (at most `--refs` references each; every fusion rule
  but svm, whose per-identity classifiers do not scale to this many identities), then grown to
  `--gallery-size` references with synthetic identities built as `identify_scale.py` builds its
  galleries (centres drawn on the sphere of the real references' median norm, `--refs` noisy copies
  each) and recalibrated and saved (`add_embedded`; exact search).
- Per configuration (`--configs`: `batching` = the service's defaults, `no-batching` =
  `--max-wait-ms 0`), a fresh `siamese serve --no-auth` on a free loopback port; after `--warmup`
  untimed requests of each kind, per concurrency level C (`--concurrency`): `--requests` requests
  from C concurrent clients (asyncio, one keep-alive `httpx.AsyncClient` per client), verify then
  identify. Client-side latency p50/p99 of the 200 answers, their rate, errors by status code, 503s
  (load shedding beyond `--limit-concurrency`) apart; each run stops early after `--max-seconds`.
  The server's `/metrics` batch-size histograms (mean batch) are read after each configuration.
- Baselines in the same run, with no server running: offline `EmbeddingModel.embed` images/s on the
  same images (bytes in memory, batches of `--embed-batch`; `siamese embed`'s path without the file
  reads), and the in-process `Verifier.verify(a_bytes, b_bytes)` median on the same pairs.
- Memory creep: a fresh server (service defaults), verify requests from `--rss-concurrency` clients,
  the server's resident set (/proc VmRSS, with any child processes) read at ready and after each
  count of `--rss-requests`.

Images: every image of DATA, read into memory once; verify pairs are seeded, half genuine.
The load generator runs on the same machine as the server and takes CPU from it.

    python benchmarks/serve_load.py ../shared/data/att_faces [--model RUN] [--gallery-size 100k]
    python benchmarks/serve_load.py ../shared/data/att_faces --smoke     # seconds, tiny everything
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import logging
import mimetypes
import os
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch
from common import (
    RESULTS_DIR,
    markdown_table,
    require_dir,
    run_main,
    setup_logging,
    train_ours,
    write_results,
)
from identify_scale import noisy, parse_size, rss_mib, size_label

from siamese.data import Split, scan_folder
from siamese.galleries.backends import unit_rows
from siamese.galleries.enroll import add_embedded, enroll
from siamese.inference import EmbeddingModel
from siamese.inference.verifier import Verifier
from siamese.names import FUSIONS

logger = logging.getLogger("benchmarks.serve_load")

NAME = "serve_load"
PRESET = "face"
CONFIGS = {
    "batching": [],
    "no-batching": ["--max-wait-ms", "0"],
    "batch-32": ["--max-batch", "32", "--max-wait-ms", "5"],
    "threads-2": ["--threads", "2"],
}
"""Server options of each configuration on top of the common ones (`batching`: the defaults)."""
ENDPOINTS = ("verify", "identify")
VAL_PEOPLE, TEST_PEOPLE = 6, 4  # of the model trained here; the rest train
TRAIN_OPTIONS = {"epochs": 1, "samples_per_epoch": 256}
FUSIONS_BUILT = tuple(f for f in FUSIONS if f != "svm")
SMOKE = {
    "gallery_size": "2k",
    "requests": 16,
    "concurrency": "1,8",
    "warmup": 2,
    "rss_requests": "40,120",
    "max_seconds": 15.0,
    "embed_rounds": 1,
    "inprocess_pairs": 10,
}
SMOKE_TRAIN = {"epochs": 1, "samples_per_epoch": 64}
VERIFY_P99_MS = {8: 100.0, 32: 300.0}  # targets: verify p99 at these client counts
SERVED_SHARE = 0.8  # target: served verify images/s at least this share of offline
P50_SLACK_MS = 10.0  # target: p50 at 1 client within this of the in-process verify
IDENTIFY_ENTRIES, IDENTIFY_SLACK_MS = 100_000, 5.0  # target: identify p99 over 100k <= verify p99 + 5 ms
RSS_POINTS, RSS_GROWTH_MIB = (1_000, 10_000), 50.0  # target: RSS(10k) <= RSS(1k) + 50 MiB


# ----------------------------------------------------------------------------------------------- CLI


def ints(text: str) -> list[int]:
    """`"1,8,32"` -> `[1, 8, 32]` (sizes like `10k` allowed)."""
    return [parse_size(v) for v in text.split(",") if v.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("data_root", type=Path, help="identity folders of face images (read-only)")
    p.add_argument("--smoke", action="store_true", help="tiny CI run: 2k entries, 16 requests a level")
    p.add_argument("--model", type=Path, default=None, help="a face-preset run (default: train one here)")
    p.add_argument("--gallery-size", default="100k", help="references in the gallery (default 100k)")
    p.add_argument("--refs", type=int, default=5, help="references per identity (default 5)")
    p.add_argument("--noise", type=float, default=0.8, help="synthetic references' relative noise (0.8)")
    p.add_argument("--configs", default=",".join(CONFIGS), help=f"of {', '.join(CONFIGS)} (default all)")
    p.add_argument("--concurrency", default="1,8,32", help="concurrent clients per level (default 1,8,32)")
    p.add_argument("--requests", type=int, default=400, help="requests per level and endpoint (400)")
    p.add_argument("--warmup", type=int, default=20, help="untimed requests of each kind first (20)")
    p.add_argument("--max-seconds", type=float, default=120.0, help="cap on one level's run (120 s)")
    p.add_argument("--k", type=int, default=None, help="identify's k form field (default: not sent)")
    p.add_argument(
        "--rss-requests", default="1000,10000", help="verify counts at which the server's RSS is read"
    )
    p.add_argument("--rss-concurrency", type=int, default=8, help="clients of the memory phase (8)")
    p.add_argument("--embed-batch", type=int, default=64, help="batch of the offline baseline (64)")
    p.add_argument("--embed-rounds", type=int, default=3, help="offline rounds, median kept (3)")
    p.add_argument("--inprocess-pairs", type=int, default=200, help="pairs of the in-process verify")
    p.add_argument(
        "--baseline-threads",
        type=int,
        default=None,
        help="torch threads of the offline and in-process baselines (default: torch's own)",
    )
    p.add_argument("--timeout", type=float, default=60.0, help="client timeout per request (60 s)")
    p.add_argument("--start-timeout", type=float, default=180.0, help="wait for /readyz (180 s)")
    p.add_argument(
        "--serve-args", default="", help='extra `siamese serve` options for every server, e.g. "--threads 2"'
    )
    p.add_argument(
        "--siamese", default=None, help="the siamese executable (default: the one beside this Python)"
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda (model, baselines and server)")
    p.add_argument("--seed", type=int, default=0, help="seed of the pairs, training and synthetic gallery")
    p.add_argument(
        "--out",
        type=Path,
        default=RESULTS_DIR,
        help="where <name>.json/.md go (default: benchmarks/results/experiments/<name>/, time-stamped)",
    )
    return p


def parse_args() -> argparse.Namespace:
    args = build_parser().parse_args()
    setup_logging()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    require_dir(args.data_root, "face images folder")
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
    args.entries = parse_size(str(args.gallery_size))
    args.levels = ints(args.concurrency)
    args.rss_counts = sorted(ints(args.rss_requests))
    args.config_names = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = sorted(set(args.config_names) - set(CONFIGS))
    if unknown:
        sys.exit(f"unknown --configs {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    if not args.levels or min(args.levels) < 1 or args.requests < 1 or args.refs < 1:
        sys.exit("--concurrency, --requests and --refs must be positive")
    args.executable = siamese_executable(args.siamese)
    if args.baseline_threads is not None:
        torch.set_num_threads(args.baseline_threads)
    return args


def siamese_executable(given: str | None) -> str:
    """`--siamese`, else the `siamese` script beside this Python (the venv's), else the one on PATH."""
    if given:
        return given
    beside = Path(sys.executable).parent / "siamese"
    found = str(beside) if beside.is_file() else shutil.which("siamese")
    if found is None:
        sys.exit("no `siamese` executable beside this Python nor on PATH; pass --siamese")
    return found


# ------------------------------------------------------------------------------------------ the data


@dataclass(frozen=True)
class Images:
    """Every image of DATA, encoded, in memory."""

    names: list[str]  # file names (for the multipart parts)
    identities: list[str]
    blobs: list[bytes]

    def part(self, i: int) -> tuple[str, bytes, str]:
        """A multipart file part `(filename, bytes, content type)` for image `i`."""
        name = self.names[i]
        return name, self.blobs[i], mimetypes.guess_type(name)[0] or "application/octet-stream"


def read_images(root: Path) -> Images:
    index = scan_folder(root)
    records = [r for r in index.records if not r.forgery]
    return Images(
        [Path(r.path).name for r in records],
        [r.identity for r in records],
        [Path(r.path).read_bytes() for r in records],
    )


def verify_pairs(images: Images, n: int, seed: int) -> list[tuple[int, int]]:
    """`n` seeded pairs of image positions, alternately genuine (two images of one identity) and impostor."""
    rng = np.random.default_rng(seed)
    labels = np.array(images.identities)
    out = []
    for k in range(n):
        a = int(rng.integers(len(labels)))
        same = np.flatnonzero((labels == labels[a]) & (np.arange(len(labels)) != a))
        pool = same if k % 2 == 0 and len(same) else np.flatnonzero(labels != labels[a])
        out.append((a, int(rng.choice(pool))))
    return out


# ------------------------------------------------------------------------------ model and gallery


def face_model(args: argparse.Namespace, work: Path) -> tuple[Path, dict[str, Any]]:
    """`--model`, else the face preset trained here for one short epoch (a seeded split of DATA)."""
    if args.model is not None:
        return args.model, {"source": "given"}
    people = sorted(scan_folder(args.data_root).identities)
    order = np.random.default_rng(args.seed).permutation(len(people))
    val, test = order[:VAL_PEOPLE], order[VAL_PEOPLE : VAL_PEOPLE + TEST_PEOPLE]
    split = Split(
        train=[people[i] for i in order[VAL_PEOPLE + TEST_PEOPLE :]],
        val=[people[i] for i in val],
        test=[people[i] for i in test],
    )
    options = {"seed": args.seed, **(SMOKE_TRAIN if args.smoke else TRAIN_OPTIONS)}
    ours = train_ours(PRESET, split, work / "run", options, args.device, root=str(args.data_root))
    logger.info("trained the %s preset for %.1f s: %s", PRESET, ours.train_time_s, ours.checkpoint)
    return work / "run", {"source": "trained here", "options": options, "train_time_s": ours.train_time_s}


def enrolment_folder(data_root: Path, model: EmbeddingModel, work: Path) -> tuple[Path, list[str]]:
    """DATA without the run's validation identities (they calibrate the gallery), as a folder of links."""
    split_file = model.run.split_file
    val = set(Split.from_json(split_file).val) if split_file.is_file() else set()
    people = [p for p in scan_folder(data_root).identities if p not in val]
    folder = work / "enrol"
    for person in people:
        link = folder / person
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to((data_root / person).absolute(), target_is_directory=True)
    return folder, people


def synthetic_references(
    real: Sequence[np.ndarray], entries: int, refs: int, noise: float, seed: int
) -> list[np.ndarray]:
    """References of synthetic identities up to `entries` in all: `refs` noisy copies of a centre drawn
    on the sphere of the real references' median norm (the last identity may get fewer)."""
    missing = entries - sum(len(r) for r in real)
    if missing <= 0:
        return []
    rng = np.random.default_rng([seed, entries])
    scale = float(np.median(np.linalg.norm(np.concatenate(real), axis=1)))
    n_ids, dim = -(-missing // refs), real[0].shape[1]
    centres = scale * unit_rows(rng.standard_normal((n_ids, dim), dtype=np.float32))  # (I, D)
    copies = np.stack([noisy(centres, noise * scale, rng) for _ in range(refs)], axis=1)  # (I, R, D)
    sizes = [refs] * (n_ids - 1) + [missing - refs * (n_ids - 1)]
    return [copies[i, :s] for i, s in enumerate(sizes)]


def build_gallery(args: argparse.Namespace, model_path: Path, work: Path) -> tuple[Path, dict[str, Any]]:
    """The real identities enrolled, grown to `--gallery-size` references, recalibrated and saved."""
    start = time.perf_counter()
    model = EmbeddingModel.from_checkpoint(model_path, device=args.device)
    folder, people = enrolment_folder(args.data_root, model, work)
    out = work / "gallery"
    real = enroll(
        model_path,
        folder,
        out,
        references=args.refs,
        fusions=FUSIONS_BUILT,
        seed=args.seed,
        device=args.device,
    )
    extra = synthetic_references(real.references, args.entries, args.refs, args.noise, args.seed)
    names = [f"synthetic-{i:07d}" for i in range(len(extra))]
    files = [[f"synthetic/{n}/{j}" for j in range(len(r))] for n, r in zip(names, extra, strict=True)]
    grown = add_embedded(out, real, names, extra, files) if extra else real
    info = {
        "entries": sum(len(r) for r in grown.references),
        "identities": grown.size,
        "real_identities": len(people),
        "real_entries": sum(len(r) for r in real.references),
        "fusions": list(FUSIONS_BUILT),
        "build_s": time.perf_counter() - start,
    }
    logger.info("gallery: %(entries)d references of %(identities)d identities in %(build_s).1f s", info)
    return out, info


# -------------------------------------------------------------------------------------- baselines


def offline_rate(model_path: Path, images: Images, args: argparse.Namespace) -> dict[str, Any]:
    """`EmbeddingModel.embed` images/s on the images in memory: median of `--embed-rounds`."""
    model = EmbeddingModel.from_checkpoint(model_path, device=args.device)
    blobs = images.blobs[:64] if args.smoke else images.blobs
    model.embed(blobs[: args.embed_batch], batch_size=args.embed_batch)  # warm-up
    rates = []
    for _ in range(args.embed_rounds):
        start = time.perf_counter()
        model.embed(blobs, batch_size=args.embed_batch)
        rates.append(len(blobs) / (time.perf_counter() - start))
    logger.info("offline embed: %.0f images/s", statistics.median(rates))
    return {
        "images_per_s": statistics.median(rates),
        "images": len(blobs),
        "rounds": rates,
        "torch_threads": torch.get_num_threads(),
        "load_avg_1min": os.getloadavg()[0],
    }


def inprocess_verify(
    model_path: Path, images: Images, pairs: Sequence[tuple[int, int]], args: argparse.Namespace
) -> dict[str, Any]:
    """p50 and p99 ms of `Verifier.verify(a_bytes, b_bytes)` over the first pairs, after 3 untimed ones."""
    verifier = Verifier.from_checkpoint(model_path, device=args.device)
    chosen = pairs[: args.inprocess_pairs]
    times = []
    for k, (a, b) in enumerate([*chosen[:3], *chosen]):
        start = time.perf_counter()
        verifier.verify(images.blobs[a], images.blobs[b])
        if k >= 3:
            times.append(1e3 * (time.perf_counter() - start))
    logger.info("in-process verify: p50 %.2f ms", statistics.median(times))
    return {
        "p50_ms": statistics.median(times),
        "p99_ms": float(np.percentile(times, 99)),
        "pairs": len(times),
        "torch_threads": torch.get_num_threads(),
        "load_avg_1min": os.getloadavg()[0],
    }


# ------------------------------------------------------------------------------------------ server


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running `siamese serve` subprocess."""

    process: subprocess.Popen
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def serve(args: argparse.Namespace, options: Sequence[str], work: Path, label: str) -> Iterator[Server]:
    """`siamese serve --no-auth ...options` on a free loopback port, ready (`/readyz` 200); stopped after."""
    port = free_port()
    command = [
        args.executable,
        "serve",
        "--model",
        str(args.model_path),
        "--gallery",
        str(args.gallery_path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-auth",
        "--device",
        args.device,
        *shlex.split(args.serve_args),
        *options,
    ]
    log = work / f"serve-{label}.log"
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    server = Server(process, f"http://127.0.0.1:{port}", log)
    logger.info("%s: %s", label, shlex.join(command[1:]))
    try:
        wait_ready(server, args.start_timeout)
        yield server
    finally:
        stop(server)


def wait_ready(server: Server, timeout: float) -> None:
    """Poll `/readyz` until it answers 200; exit with the server's log when it dies or times out."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if server.process.poll() is not None:
            sys.exit(f"siamese serve exited with status {server.process.returncode}:\n{server.log_tail()}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=2.0).status_code == 200:
                logger.info("ready in %.1f s", time.perf_counter() - start)
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    sys.exit(f"siamese serve was not ready after {timeout:.0f} s:\n{server.log_tail()}")


def stop(server: Server) -> None:
    """SIGTERM, then SIGKILL after 15 s."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


# -------------------------------------------------------------------------------------------- load


VERIFY_KEYS = ("same", "distance", "threshold", "confidence", "model", "seconds", "fingerprint", "timings")
IDENTIFY_KEYS = ("identity", "candidates", "threshold", "fpir", "gallery_size")


@dataclass(frozen=True)
class Request:
    """One request of the load: path, multipart files and form fields."""

    path: str
    files: dict[str, tuple[str, bytes, str]]
    data: dict[str, str]


def requests_for(
    endpoint: str, images: Images, pairs: Sequence[tuple[int, int]], n: int, args: Any
) -> list[Request]:
    """`n` requests of one endpoint, cycling over the pairs (verify) or the images (identify)."""
    if endpoint == "verify":
        return [
            Request("/v1/verify", {"image_a": images.part(a), "image_b": images.part(b)}, {})
            for a, b in itertools.islice(itertools.cycle(pairs), n)
        ]
    data = {} if args.k is None else {"k": str(args.k)}
    order = np.random.default_rng([args.seed, 1]).permutation(len(images.blobs))
    return [Request("/v1/identify", {"image": images.part(int(i))}, data) for i in np.resize(order, n)]


@dataclass
class Tally:
    """What the clients saw."""

    latencies_ms: list[float] = field(default_factory=list)  # of the 200 answers that keep the contract
    statuses: Counter = field(default_factory=Counter)  # HTTP status codes
    transport_errors: Counter = field(default_factory=Counter)  # no answer: exception names
    bad_body: int = 0  # 200 answers without the contract's fields
    server_seconds: list[float] = field(default_factory=list)  # the answers' own "seconds"
    gallery_sizes: set[int] = field(default_factory=set)  # identify's "gallery_size" values
    first_problem: str | None = None

    def problem(self, text: str) -> None:
        """Keep the first problem seen."""
        self.first_problem = self.first_problem or text


async def fire(
    url: str, requests: Sequence[Request], concurrency: int, deadline_s: float, timeout: float
) -> tuple[Tally, float, int]:
    """Send `requests` from `concurrency` clients (one keep-alive connection each, opened by a
    `/readyz` before the clock starts), in order, until done or `deadline_s` has passed.

    Returns:
        What was seen, the wall time and the number of requests sent.
    """
    tally = Tally()
    counter = itertools.count()
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = [httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) for _ in range(concurrency)]

    async def send(http: httpx.AsyncClient) -> None:
        while (i := next(counter)) < len(requests) and time.perf_counter() - start < deadline_s:
            await one(http, requests[i], tally)

    try:
        await asyncio.gather(*(http.get("/readyz") for http in clients))
        # This process holds the model and built the gallery: a full collection of its own objects
        # takes 100-180 ms, which would be counted as the service's latency. Held off while timing.
        gc.collect()
        gc.disable()
        start = time.perf_counter()
        await asyncio.gather(*(send(http) for http in clients))
        wall = time.perf_counter() - start
    finally:
        gc.enable()
        await asyncio.gather(*(http.aclose() for http in clients))
    sent = sum(tally.statuses.values()) + sum(tally.transport_errors.values())
    return tally, wall, sent


async def one(http: httpx.AsyncClient, request: Request, tally: Tally) -> None:
    """One request, timed and checked against the contract."""
    start = time.perf_counter()
    try:
        response = await http.post(request.path, files=request.files, data=request.data)
    except httpx.HTTPError as exc:
        tally.transport_errors[type(exc).__name__] += 1
        tally.problem(f"{request.path}: {type(exc).__name__}: {exc}")
        return
    elapsed = 1e3 * (time.perf_counter() - start)
    tally.statuses[response.status_code] += 1
    if response.status_code != 200:
        if response.status_code == 503 and "retry-after" not in response.headers:
            tally.problem(f"{request.path}: 503 without a Retry-After header")
        elif response.status_code != 503:
            tally.problem(f"{request.path}: {response.status_code}: {response.text[:300]}")
        return
    problem = contract_problem(request.path, response, tally)
    if problem is not None:
        tally.bad_body += 1
        tally.problem(problem)
        return
    tally.latencies_ms.append(elapsed)


def contract_problem(path: str, response: httpx.Response, tally: Tally) -> str | None:
    """What a 200 answer lacks of the service contract, or None."""
    try:
        body = response.json()
    except ValueError:
        return f"{path}: 200 with a body that is not JSON: {response.text[:200]!r}"
    keys = VERIFY_KEYS if path.endswith("verify") else IDENTIFY_KEYS
    missing = [k for k in keys if not isinstance(body, dict) or k not in body]
    if missing:
        return f"{path}: 200 without {', '.join(missing)}: {str(body)[:200]}"
    candidates = body.get("candidates")
    if candidates is not None and not all(
        isinstance(c, dict) and {"identity", "distance"} <= set(c) for c in candidates
    ):
        return f"{path}: candidates without identity and distance: {str(candidates)[:200]}"
    if isinstance(body.get("seconds"), (int, float)):
        tally.server_seconds.append(float(body["seconds"]))
    if "gallery_size" in body:
        tally.gallery_sizes.add(body["gallery_size"])
    return None


def load_row(
    server: Server, endpoint: str, requests: Sequence[Request], concurrency: int, args: argparse.Namespace
) -> dict[str, Any]:
    """One level: the requests from `concurrency` clients, summarised."""
    tally, wall, sent = asyncio.run(fire(server.url, requests, concurrency, args.max_seconds, args.timeout))
    lat = tally.latencies_ms
    ok = len(lat)
    row = {
        "endpoint": endpoint,
        "concurrency": concurrency,
        "requests": len(requests),
        "sent": sent,
        "ok": ok,
        "wall_s": wall,
        "ok_per_s": ok / wall,
        "p50_ms": float(np.percentile(lat, 50)) if lat else None,
        "p99_ms": float(np.percentile(lat, 99)) if lat else None,
        "mean_ms": float(np.mean(lat)) if lat else None,
        "status_counts": {str(k): v for k, v in sorted(tally.statuses.items())},
        "rejected_503": tally.statuses.get(503, 0),
        "errors": sent - ok - tally.statuses.get(503, 0),
        "bad_body": tally.bad_body,
        "transport_errors": dict(tally.transport_errors),
        "server_seconds_p50": statistics.median(tally.server_seconds) if tally.server_seconds else None,
        "first_problem": tally.first_problem,
        "load_avg_1min": os.getloadavg()[0],
    }
    if tally.gallery_sizes:
        row["gallery_size_answered"] = sorted(tally.gallery_sizes)
    if tally.first_problem:
        logger.warning("%s at %d clients: %s", endpoint, concurrency, tally.first_problem)
    logger.info(
        "%s, %d clients: %d/%d ok, %.1f/s, p50 %s ms, p99 %s ms, 503s %d, errors %d",
        endpoint,
        concurrency,
        ok,
        sent,
        row["ok_per_s"],
        fmt_ms(row["p50_ms"]),
        fmt_ms(row["p99_ms"]),
        row["rejected_503"],
        row["errors"],
    )
    return row


def batch_histograms(text: str) -> dict[str, dict[str, float]]:
    """Per batch-size histogram (or summary) series of a Prometheus text page: count, sum and mean."""
    found: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        name, brace, labels = name_labels.partition("{")
        for suffix in ("_sum", "_count"):
            if name.endswith(suffix) and "batch" in name:
                series = name.removesuffix(suffix) + (brace + labels if brace else "")
                try:
                    found.setdefault(series, {})[suffix[1:]] = float(value)
                except ValueError:
                    pass
    for stats in found.values():
        if stats.get("count"):
            stats["mean"] = stats.get("sum", float("nan")) / stats["count"]
    return found


def scrape_metrics(server: Server) -> dict[str, Any]:
    """The server's batch-size histograms from `/metrics` (empty with the reason when unreadable)."""
    try:
        response = httpx.get(f"{server.url}/metrics", timeout=10.0)
    except httpx.HTTPError as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    if response.status_code != 200:
        return {"error": f"/metrics answered {response.status_code}: {response.text[:200]}"}
    return {"batch_size": batch_histograms(response.text)}


def run_config(
    name: str, images: Images, pairs: Sequence[tuple[int, int]], args: argparse.Namespace, work: Path
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every level of both endpoints against one fresh server of configuration `name`."""
    rows = []
    with serve(args, CONFIGS[name], work, name) as server:
        for endpoint in ENDPOINTS:  # warm-up: untimed
            asyncio.run(fire(server.url, requests_for(endpoint, images, pairs, args.warmup, args), 1, 60, 60))
        for level in args.levels:
            for endpoint in ENDPOINTS:
                requests = requests_for(endpoint, images, pairs, args.requests, args)
                rows.append({"config": name, **load_row(server, endpoint, requests, level, args)})
        metrics = scrape_metrics(server)
    return rows, metrics


def memory_creep(
    images: Images, pairs: Sequence[tuple[int, int]], args: argparse.Namespace, work: Path
) -> list[dict[str, Any]]:
    """The server's RSS (MiB) at ready and after each count of `--rss-requests` verify requests."""
    points = []
    with serve(args, CONFIGS["batching"], work, "memory") as server:
        points.append({"after_requests": 0, "rss_mib": rss_mib(server.pid), "ok": 0})
        done = ok = 0
        for count in args.rss_counts:
            requests = requests_for("verify", images, pairs[done % len(pairs) :] + pairs, count - done, args)
            tally, _, sent = asyncio.run(fire(server.url, requests, args.rss_concurrency, 1e9, args.timeout))
            done, ok = done + sent, ok + len(tally.latencies_ms)
            points.append({"after_requests": done, "rss_mib": rss_mib(server.pid), "ok": ok})
            logger.info("RSS after %d verify requests: %.1f MiB", done, points[-1]["rss_mib"])
    return points


# ------------------------------------------------------------------------------------------ results


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def clients(n: int) -> str:
    return f"{n} client" + ("" if n == 1 else "s")


def pick(rows: list[dict[str, Any]], config: str, endpoint: str, level: int | None = None) -> list[dict]:
    return [
        r
        for r in rows
        if r["config"] == config and r["endpoint"] == endpoint and level in (None, r["concurrency"])
    ]


def target(what: str, measured: str, met: bool | None) -> dict[str, Any]:
    return {"target": what, "measured": measured, "met": met}


def latency_targets(rows: list[dict[str, Any]], main: str, configs: list[str]) -> list[dict[str, Any]]:
    """Verify p99 at 8 and 32 clients (judged on `main`, the service defaults; the others shown)."""
    out = []
    for level, limit in VERIFY_P99_MS.items():
        got = {c: pick(rows, c, "verify", level) for c in configs}
        measured = "; ".join(f"{c} {fmt_ms(r[0]['p99_ms'])} ms" for c, r in got.items() if r)
        mine = got.get(main) or []
        met = None if not mine or mine[0]["p99_ms"] is None else mine[0]["p99_ms"] <= limit
        out.append(target(f"verify p99 <= {limit:g} ms at {level} clients", measured or "not measured", met))
    return out


def served_target(rows: list[dict[str, Any]], main: str, offline: dict[str, Any]) -> dict[str, Any]:
    """Served verify images/s (2 a request, best level) against offline embedding."""
    mine = pick(rows, main, "verify")
    what = f"served verify images/s >= {100 * SERVED_SHARE:.0f}% of offline embed"
    if not mine:
        return target(what, "not measured", None)
    best = max(mine, key=lambda r: r["ok_per_s"])
    served = 2 * best["ok_per_s"]
    share = served / offline["images_per_s"]
    measured = (
        f"{served:.0f} images/s at {clients(best['concurrency'])} vs {offline['images_per_s']:.0f} offline "
        f"({100 * share:.0f}%)"
    )
    return target(what, measured, share >= SERVED_SHARE)


def p50_target(rows: list[dict[str, Any]], main: str, inproc: dict[str, Any]) -> dict[str, Any]:
    what = f"verify p50 at 1 client <= in-process + {P50_SLACK_MS:g} ms"
    mine = pick(rows, main, "verify", 1)
    if not mine or mine[0]["p50_ms"] is None:
        return target(what, "not measured", None)
    p50 = mine[0]["p50_ms"]
    measured = f"{fmt_ms(p50)} ms vs in-process {fmt_ms(inproc['p50_ms'])} ms"
    return target(what, measured, p50 <= inproc["p50_ms"] + P50_SLACK_MS)


def identify_target(rows: list[dict[str, Any]], main: str, entries: int) -> dict[str, Any]:
    """Identify p99 against verify p99 at every level (met only when the gallery holds 100k or more)."""
    what = f"identify p99 over {size_label(IDENTIFY_ENTRIES)} <= verify p99 + {IDENTIFY_SLACK_MS:g} ms"
    parts, ok = [], True
    for v in pick(rows, main, "verify"):
        i = pick(rows, main, "identify", v["concurrency"])
        if not i or i[0]["p99_ms"] is None or v["p99_ms"] is None:
            continue
        parts.append(f"{clients(v['concurrency'])} {fmt_ms(i[0]['p99_ms'])} vs {fmt_ms(v['p99_ms'])} ms")
        ok = ok and i[0]["p99_ms"] <= v["p99_ms"] + IDENTIFY_SLACK_MS
    measured = f"at {size_label(entries)}: " + "; ".join(parts) if parts else "not measured"
    return target(what, measured, ok if parts and entries >= IDENTIFY_ENTRIES else None)


def rss_target(points: list[dict[str, Any]]) -> dict[str, Any]:
    low, high = RSS_POINTS
    what = f"RSS after {size_label(high)} verify requests <= after {size_label(low)} + {RSS_GROWTH_MIB:g} MiB"
    at = {p["after_requests"]: p["rss_mib"] for p in points}
    shown = ", ".join(f"{size_label(n)}: {v:.0f} MiB" for n, v in at.items())
    if low not in at or high not in at:
        return target(what, shown or "not measured", None)
    return target(what, f"{shown} (+{at[high] - at[low]:.0f})", at[high] <= at[low] + RSS_GROWTH_MIB)


def targets(result: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    rows, main = result["rows"], args.config_names[0]
    return [
        *latency_targets(rows, main, args.config_names),
        served_target(rows, main, result["offline"]),
        p50_target(rows, main, result["in_process"]),
        identify_target(rows, main, result["gallery"]["entries"]),
        rss_target(result["memory"]),
    ]


HEADERS = [
    "config",
    "endpoint",
    "clients",
    "ok / sent",
    "ok/s",
    "images/s",
    "p50 ms",
    "p99 ms",
    "503s",
    "other errors",
    "server p50 ms",
]


def table_row(row: dict[str, Any]) -> list[Any]:
    per_request = 2 if row["endpoint"] == "verify" else 1
    server = row["server_seconds_p50"]
    return [
        row["config"],
        row["endpoint"],
        row["concurrency"],
        f"{row['ok']} / {row['sent']}",
        f"{row['ok_per_s']:.1f}",
        f"{per_request * row['ok_per_s']:.0f}",
        fmt_ms(row["p50_ms"]),
        fmt_ms(row["p99_ms"]),
        row["rejected_503"],
        row["errors"],
        "n/a" if server is None else fmt_ms(1e3 * server),
    ]


def mean_batches(metrics: dict[str, Any]) -> str:
    """`config: series mean, ...` of the batch-size histograms, or why there are none."""
    parts = []
    for config, got in metrics.items():
        if "error" in got:
            parts.append(f"{config}: {got['error']}")
            continue
        series = [f"{s} {v['mean']:.2f}" for s, v in got["batch_size"].items() if "mean" in v]
        parts.append(f"{config}: {', '.join(series) or 'no batch-size histogram'}")
    return "; ".join(parts)


def protocol_note(result: dict[str, Any], args: argparse.Namespace) -> str:
    """The paragraph under the title: model, gallery, requests, baselines, mean batch sizes."""
    g, off, inp = result["gallery"], result["offline"], result["in_process"]
    return (
        f"Model: {result['model']['source']} ({PRESET} preset). Gallery: {g['entries']} references of "
        f"{g['identities']} identities ({g['real_identities']} real, the rest synthetic), exact search. "
        f"{args.requests} requests per level (capped at {args.max_seconds:g} s), after {args.warmup} "
        "untimed of each kind; latency is client-side, over the 200 answers; images/s counts 2 per "
        f"verify. Offline `embed`: {off['images_per_s']:.0f} images/s (batch {args.embed_batch}, "
        f"{off['images']} images in memory, {off['torch_threads']} torch threads); in-process "
        f"`verify`: p50 {fmt_ms(inp['p50_ms'])} ms, p99 {fmt_ms(inp['p99_ms'])} ms over {inp['pairs']} "
        f"pairs. Mean batch size from `/metrics`: {mean_batches(result['metrics'])}."
    )


def render(result: dict[str, Any], goals: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The markdown: title, protocol note, load table, memory table, targets, problems seen."""
    met = {True: "yes", False: "**no**", None: "—"}
    memory = [[p["after_requests"], p["ok"], f"{p['rss_mib']:.1f}"] for p in result["memory"]]
    problems = [
        f"- {r['config']} {r['endpoint']}, {clients(r['concurrency'])}: {r['first_problem']}"
        for r in result["rows"]
        if r["first_problem"]
    ]
    return "\n\n".join(
        [
            f"### `siamese serve` under load ({args.device}, loopback, {os.cpu_count()} CPUs shared with "
            "the load generator)",
            protocol_note(result, args),
            markdown_table(HEADERS, [table_row(r) for r in result["rows"]]),
            f"Server RSS, verify requests from {args.rss_concurrency} clients (service defaults):",
            markdown_table(["verify requests", "ok", "RSS MiB"], memory),
            markdown_table(
                ["target", "measured", "met"], [[t["target"], t["measured"], met[t["met"]]] for t in goals]
            ),
            *(["Problems seen:\n\n" + "\n".join(problems)] if problems else []),
        ]
    )


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    images = read_images(args.data_root)
    args.model_path, model_info = face_model(args, work)
    pairs = verify_pairs(images, max(args.requests, args.inprocess_pairs, 50), args.seed)
    offline = offline_rate(args.model_path, images, args)
    in_process = inprocess_verify(args.model_path, images, pairs, args)
    args.gallery_path, gallery = build_gallery(args, args.model_path, work)
    rows: list[dict[str, Any]] = []
    metrics = {}
    for name in args.config_names:
        got, metrics[name] = run_config(name, images, pairs, args, work)
        rows += got
    memory = memory_creep(images, pairs, args, work) if args.rss_counts else []
    return {
        "model": {**model_info, "path": str(args.model_path)},
        "images": len(images.blobs),
        "gallery": gallery,
        "offline": offline,
        "in_process": in_process,
        "rows": rows,
        "metrics": metrics,
        "memory": memory,
    }


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="serve_load_") as tmp:
        result = measure(args, Path(tmp))
    goals = targets(result, args)
    protocol = {
        "data_root": str(args.data_root),
        "configs": {c: CONFIGS[c] for c in args.config_names},
        "serve_args": args.serve_args,
        "concurrency": args.levels,
        "gallery_size": args.entries,
        **{
            k: getattr(args, k)
            for k in (
                "requests",
                "warmup",
                "max_seconds",
                "k",
                "refs",
                "noise",
                "rss_counts",
                "rss_concurrency",
                "embed_batch",
                "embed_rounds",
                "inprocess_pairs",
                "baseline_threads",
                "device",
                "seed",
            )
        },
    }
    payload = {"protocol": protocol, **result, "targets": goals}
    write_results(args.out, NAME, payload, render(result, goals, args), args.smoke)


if __name__ == "__main__":
    run_main(main)

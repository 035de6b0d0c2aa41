"""The workers: micro-batches of concurrent requests, each gets its own rows (embeddings) or its own
candidates (searches, equal to searching alone), failures reach every waiting request."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from siamese.serve.batcher import InferenceWorker, SearchWorker


class Recorder(torch.nn.Module):
    """A linear encoder that records the size of every batch it sees (optionally held on an event)."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(12, 3)
        self.sizes: list[int] = []
        self.gate = gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate is not None:
            self.gate.wait(10)
        self.sizes.append(len(x))
        return self.linear(x.flatten(1))


def _jobs(n: int, sizes: list[int]) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(n)
    return [torch.randn(s, 1, 3, 4, generator=g) for s in sizes]


@pytest.mark.parametrize("max_wait_ms", [0.0, 50.0])
def test_requests_queued_together_are_batched_only_when_waiting_is_on(max_wait_ms: float) -> None:
    gate = threading.Event()
    encoder = Recorder(gate)
    worker = InferenceWorker(encoder, torch.device("cpu"), max_batch=8, max_wait_ms=max_wait_ms)
    worker.start()
    try:
        blocker = worker.submit(torch.zeros(1, 1, 3, 4))  # holds the worker while the others queue
        jobs = _jobs(0, [2, 1, 3, 2])
        futures = [worker.submit(x) for x in jobs]
        gate.set()
        blocker.result(10)
        results = [f.result(10) for f in futures]
    finally:
        worker.stop()
    with torch.no_grad():
        for x, got in zip(jobs, results, strict=True):
            torch.testing.assert_close(
                torch.from_numpy(got), encoder.linear(x.flatten(1)), rtol=1e-5, atol=1e-6
            )
    if max_wait_ms == 0:
        assert encoder.sizes == [1, 2, 1, 3, 2]  # every request alone
    else:
        # the queued requests share forward passes of at most max_batch images (the blocker may be
        # taken before the others are queued, or with them)
        assert encoder.sizes in ([7, 2], [1, 8])


def test_a_batch_waits_for_announced_requests_only() -> None:
    encoder = Recorder()
    worker = InferenceWorker(encoder, torch.device("cpu"), max_batch=8, max_wait_ms=3000)
    worker.start()
    try:
        start = time.perf_counter()
        worker.submit(torch.zeros(1, 1, 3, 4)).result(10)
        alone = time.perf_counter() - start
        worker.announce()  # a second request is decoding while the first is queued
        first = worker.submit(torch.zeros(2, 1, 3, 4))
        time.sleep(0.3)
        second = worker.submit(torch.zeros(3, 1, 3, 4), announced=True)
        first.result(10), second.result(10)
    finally:
        worker.stop()
    assert alone < 1.0  # nobody announced: no 3 s wait
    assert encoder.sizes == [1, 5]  # the announced request joined the waiting batch


def test_a_request_larger_than_max_batch_runs_in_slices() -> None:
    encoder = Recorder()
    worker = InferenceWorker(encoder, torch.device("cpu"), max_batch=4, max_wait_ms=0)
    worker.start()
    try:
        (x,) = _jobs(1, [10])
        out = worker.submit(x).result(10)
    finally:
        worker.stop()
    assert encoder.sizes == [4, 4, 2] and out.shape == (10, 3)


def test_a_failing_forward_pass_reaches_every_waiting_request() -> None:
    class Broken(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("boom")

    worker = InferenceWorker(Broken(), torch.device("cpu"), max_batch=8, max_wait_ms=20)
    worker.start()
    try:
        futures = [worker.submit(x) for x in _jobs(2, [1, 2])]
        for f in futures:
            with pytest.raises(RuntimeError, match="boom"):
                f.result(10)
        # the worker survives a failure
        assert worker.submit(torch.zeros(1, 1, 3, 4)).exception(10) is not None
    finally:
        worker.stop()


def test_batches_are_reported() -> None:
    seen: list[tuple[int, float]] = []
    worker = InferenceWorker(
        Recorder(), torch.device("cpu"), max_wait_ms=0, on_batch=lambda n, w: seen.append((n, w))
    )
    worker.start()
    try:
        worker.submit(torch.zeros(3, 1, 3, 4)).result(10)
    finally:
        worker.stop()
    assert len(seen) == 1 and seen[0][0] == 3 and seen[0][1] >= 0


def test_searches_batched_together_equal_searching_alone(tmp_path) -> None:
    from siamese.galleries import CalibrationSet, Gallery, Identifier

    rng = np.random.default_rng(0)
    refs = [rng.normal(size=(3, 6)).astype(np.float32) for _ in range(12)]
    gallery = Gallery(
        model="m",
        fingerprint="f",
        distance="euclidean",
        identities=tuple(f"p{i:02d}" for i in range(12)),
        files=tuple(tuple(f"r{j}" for j in range(3)) for _ in range(12)),
        references=tuple(refs),
        fusions=("mean", "min"),
        thresholds={},
        info={},
        calibration=CalibrationSet(
            rng.normal(size=(4, 6)).astype(np.float32), np.array(["a", "a", "b", "b"])
        ),
    )
    mean, nearest = Identifier(gallery, "mean"), Identifier(gallery, "min")
    queries = rng.normal(size=(6, 1, 6)).astype(np.float32)
    jobs = [(mean if i % 2 else nearest, q, 1 + i % 4) for i, q in enumerate(queries)]
    sizes: list[int] = []
    worker = SearchWorker(max_batch=8, max_wait_ms=50, on_batch=lambda n, w: sizes.append(n))
    worker.start()
    try:
        for _ in jobs:
            worker.announce()
        futures = [worker.submit(job, announced=True) for job in jobs]
        got = [f.result(10) for f in futures]
    finally:
        worker.stop()
    assert sizes == [6]  # one batch, two identifiers searched once each
    for (identifier, q, k), cands in zip(jobs, got, strict=True):
        assert cands == identifier.rank(q, k)[0]


def test_the_worker_gives_torch_its_threads_back() -> None:
    before = torch.get_num_threads()
    worker = InferenceWorker(Recorder(), torch.device("cpu"), threads=1)
    worker.start()
    assert torch.get_num_threads() == 1
    worker.stop()
    assert torch.get_num_threads() == before

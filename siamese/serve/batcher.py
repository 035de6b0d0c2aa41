"""The service's workers: requests queue their work, one thread per kind of work runs it in
micro-batches, and the event loop never runs the model or a search.

On a small CPU the model is fastest with few threads on uncontended cores, so one thread owns
every forward pass (`InferenceWorker`, torch's intra-op threads set to `threads`) and another every
gallery search (`SearchWorker`: one matrix product answers a batch of queries for about the price
of one). Batching concurrent requests together (up to `max_batch` items, waiting at most
`max_wait_ms` for requests already on their way to join a batch, never for requests not yet
arrived) bounds how much work competes for the cores.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from siamese.galleries.identify import Candidate, Identifier
from siamese.models.tta import tta_embed

logger = logging.getLogger(__name__)

BatchCallback = Callable[[int, float], None]
"""Called after every batch with (items in the batch, seconds the oldest item waited)."""


@dataclass
class _Job:
    item: Any
    size: int
    future: Future = field(default_factory=Future)
    queued: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """A thread that runs queued jobs in micro-batches (`run_batch`, for subclasses to define).

    Args:
        max_batch: most items in one batch (a larger job runs alone).
        max_wait_ms: how long a batch waits for announced jobs (`announce`) to join it; jobs
            already queued join without waiting (0: each job alone).
        on_batch: called after every batch.
        name: the thread's name.
    """

    def __init__(
        self,
        max_batch: int = 8,
        max_wait_ms: float = 2.0,
        on_batch: BatchCallback | None = None,
        name: str = "batcher",
    ) -> None:
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.on_batch = on_batch
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._incoming = 0  # jobs announced (being prepared) but not yet queued
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"siamese-{name}", daemon=True)

    def run_batch(self, items: list[Any]) -> Sequence[Any]:
        """One result per item, in order."""
        raise NotImplementedError

    def size_of(self, item: Any) -> int:
        """How many units `item` counts for against `max_batch` (1; images for the inference worker)."""
        return 1

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self) -> None:
        """Finish the queued work, then end the thread (nothing to do if it never started)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def announce(self) -> None:
        """Say a job will be submitted soon (it is being prepared): a batch being filled waits for
        announced jobs only, so a lone request never waits `max_wait_ms` for nobody."""
        with self._lock:
            self._incoming += 1

    def withdraw(self) -> None:
        """An announced job will not be submitted after all."""
        with self._lock:
            self._incoming -= 1

    def submit(self, item: Any, announced: bool = False) -> Future:
        """Queue one job; the future gives its result.

        Args:
            item: what `run_batch` receives.
            announced: the job was announced (`announce`): it stops counting as incoming.
        """
        job = _Job(item, self.size_of(item))
        with self._lock:
            if announced:
                self._incoming -= 1
            self._queue.put(job)
        return job.future

    def _run(self) -> None:
        carry: _Job | None = None  # a job that did not fit the previous batch
        stopping = False
        while not stopping:
            job = carry if carry is not None else self._queue.get()
            if job is None:
                return
            jobs, carry, stopping = self._gather(job)
            self._execute(jobs)
        if carry is not None:
            self._execute([carry])

    def _gather(self, first: _Job) -> tuple[list[_Job], _Job | None, bool]:
        """The first job and those that join it within `max_wait` and fit the batch; returns them,
        the job that did not fit (if any) and whether the worker was asked to stop."""
        jobs, size = [first], first.size
        deadline = time.perf_counter() + self.max_wait
        while size < self.max_batch and self.max_wait > 0:
            remaining = deadline - time.perf_counter()
            waiting = remaining > 0 and self._incoming > 0
            try:
                job = (
                    self._queue.get(timeout=min(remaining, self.max_wait / 4))
                    if waiting
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                if waiting:
                    continue  # announced jobs are still being prepared: wait for them until the deadline
                break
            if job is None:
                return jobs, None, True
            if size + job.size > self.max_batch:
                return jobs, job, False
            jobs.append(job)
            size += job.size
        return jobs, None, False

    def _execute(self, jobs: list[_Job]) -> None:
        waited = time.perf_counter() - min(job.queued for job in jobs)
        try:
            results = self.run_batch([job.item for job in jobs])
        except Exception as exc:  # handed to every waiting request, never lost in the thread
            logger.exception("%s failed", self._thread.name)
            for job in jobs:
                job.future.set_exception(exc)
            return
        if self.on_batch is not None:
            self.on_batch(sum(job.size for job in jobs), waited)
        for job, result in zip(jobs, results, strict=True):
            job.future.set_result(result)


class InferenceWorker(MicroBatcher):
    """Embeds queued `(n, C, H, W)` preprocessed images in forward passes of at most `max_batch`
    images; each job's result is its `(n, D)` float32 embeddings.

    Args:
        encoder: maps `(B, C, H, W)` to `(B, D)`.
        device: where the encoder runs.
        tta: test-time augmentation ("none" or "flip"), as the model embeds everywhere else.
        threads: torch intra-op threads (set for the process when the worker starts).
        **options: `max_batch`, `max_wait_ms`, `on_batch` of `MicroBatcher`.
    """

    def __init__(
        self,
        encoder: torch.nn.Module,
        device: torch.device,
        tta: str = "none",
        threads: int = 1,
        **options: Any,
    ) -> None:
        super().__init__(name="inference", **options)
        self.encoder = encoder
        self.device = device
        self.tta = tta
        self.threads = threads

    def start(self) -> None:
        self._previous_threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)  # for the process: torch's intra-op pool is global
        super().start()

    def stop(self) -> None:
        super().stop()
        if hasattr(self, "_previous_threads"):
            torch.set_num_threads(self._previous_threads)
            del self._previous_threads

    def size_of(self, item: torch.Tensor) -> int:
        return len(item)

    @torch.inference_mode()
    def run_batch(self, items: list[torch.Tensor]) -> list[np.ndarray]:
        images = torch.cat(items)  # (B, C, H, W)
        out = [
            tta_embed(self.encoder, images[i : i + self.max_batch].to(self.device), self.tta).float().cpu()
            for i in range(0, len(images), self.max_batch)
        ]
        emb = torch.cat(out).numpy()  # (B, D)
        bounds = np.cumsum([0] + [len(x) for x in items])
        return [emb[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


class SearchWorker(MicroBatcher):
    """Ranks queued queries against the gallery: jobs are `(identifier, (1, D) embedding, k)`, results
    the k nearest identities (`Identifier.rank`); queries of one identifier share one search."""

    def __init__(self, **options: Any) -> None:
        super().__init__(name="search", **options)

    def run_batch(self, items: list[tuple[Identifier, np.ndarray, int]]) -> list[list[Candidate]]:
        results: list[list[Candidate]] = [[] for _ in items]
        groups: dict[int, list[int]] = {}
        for i, (identifier, _, _) in enumerate(items):
            groups.setdefault(id(identifier), []).append(i)
        for members in groups.values():
            identifier = items[members[0]][0]
            queries = np.concatenate([items[i][1] for i in members])  # (Q, D)
            ranked = identifier.rank(queries, max(items[i][2] for i in members))
            for i, cands in zip(members, ranked, strict=True):
                results[i] = cands[: items[i][2]]
        return results

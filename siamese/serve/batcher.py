"""One inference worker for the whole service: requests queue their images, the worker runs them
through the encoder in micro-batches, and the event loop never runs the model.

On a small CPU the model is fastest with few threads on uncontended cores, so one worker thread
owns every forward pass, with torch's intra-op threads set to `threads`; batching concurrent
requests together (up to `max_batch` images, waiting at most `max_wait_ms` for requests already
decoding to join a batch, never for requests not yet arrived) bounds how many forward passes
compete for the cores.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import torch

from siamese.models.tta import tta_embed

logger = logging.getLogger(__name__)

BatchCallback = Callable[[int, float], None]
"""Called after every forward pass with (images in the batch, seconds the oldest image waited)."""


@dataclass
class _Job:
    images: torch.Tensor  # (n, C, H, W)
    future: Future = field(default_factory=Future)
    queued: float = field(default_factory=time.perf_counter)


class InferenceWorker:
    """A thread that embeds queued images in micro-batches.

    Args:
        encoder: maps `(B, C, H, W)` to `(B, D)`.
        device: where the encoder runs.
        tta: test-time augmentation ("none" or "flip"), as the model embeds everywhere else.
        max_batch: most images in one forward pass (a larger request runs in slices of this size).
        max_wait_ms: how long a batch waits for announced requests (`announce`) to join it; requests
            already queued join without waiting (0: each request alone).
        threads: torch intra-op threads (set for the process when the worker starts).
        on_batch: called after every forward pass.
    """

    def __init__(
        self,
        encoder: torch.nn.Module,
        device: torch.device,
        tta: str = "none",
        max_batch: int = 8,
        max_wait_ms: float = 2.0,
        threads: int = 1,
        on_batch: BatchCallback | None = None,
    ) -> None:
        self.encoder = encoder
        self.device = device
        self.tta = tta
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.threads = threads
        self.on_batch = on_batch
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._incoming = 0  # requests announced (decoding) but not yet queued
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="siamese-inference", daemon=True)

    def start(self) -> None:
        """Start the worker thread."""
        torch.set_num_threads(self.threads)
        self._thread.start()

    def stop(self) -> None:
        """Finish the queued work, then end the thread."""
        self._queue.put(None)
        self._thread.join()

    def announce(self) -> None:
        """Say a request will `submit` soon (it is decoding): a batch being filled waits for announced
        requests only, so a lone request never waits `max_wait_ms` for nobody."""
        with self._lock:
            self._incoming += 1

    def withdraw(self) -> None:
        """An announced request will not submit after all (its images could not be read)."""
        with self._lock:
            self._incoming -= 1

    def submit(self, images: torch.Tensor, announced: bool = False) -> Future:
        """Queue `(n, C, H, W)` preprocessed images; the future gives their `(n, D)` float32 embeddings.

        Args:
            images: the preprocessed images.
            announced: the request was announced (`announce`): it stops counting as incoming.
        """
        job = _Job(images)
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
            self._forward(jobs)
        if carry is not None:
            self._forward([carry])

    def _gather(self, first: _Job) -> tuple[list[_Job], _Job | None, bool]:
        """The first job and those arriving within `max_wait` that fit the batch; returns them, the
        job that did not fit (if any) and whether the worker was asked to stop."""
        jobs, size = [first], len(first.images)
        deadline = time.perf_counter() + self.max_wait
        while size < self.max_batch and self.max_wait > 0:
            remaining = deadline - time.perf_counter()
            try:
                if remaining > 0 and self._incoming > 0:
                    job = self._queue.get(timeout=min(remaining, self.max_wait / 4))
                else:
                    job = self._queue.get_nowait()
            except queue.Empty:
                if remaining > 0 and self._incoming > 0:
                    continue  # announced requests still decoding: wait for them until the deadline
                break
            if job is None:
                return jobs, None, True
            if size + len(job.images) > self.max_batch:
                return jobs, job, False
            jobs.append(job)
            size += len(job.images)
        return jobs, None, False

    @torch.inference_mode()
    def _forward(self, jobs: list[_Job]) -> None:
        try:
            images = torch.cat([job.images for job in jobs])  # (B, C, H, W)
            waited = time.perf_counter() - min(job.queued for job in jobs)
            out = [
                tta_embed(self.encoder, images[i : i + self.max_batch].to(self.device), self.tta)
                .float()
                .cpu()
                for i in range(0, len(images), self.max_batch)
            ]
            emb = torch.cat(out).numpy()  # (B, D)
        except Exception as exc:  # handed to every waiting request, never lost in the thread
            logger.exception("inference failed")
            for job in jobs:
                job.future.set_exception(exc)
            return
        if self.on_batch is not None:
            self.on_batch(len(images), waited)
        start = 0
        for job in jobs:
            job.future.set_result(emb[start : start + len(job.images)])
            start += len(job.images)

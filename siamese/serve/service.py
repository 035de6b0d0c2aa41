"""What the service serves: the loaded model, its inference worker and the gallery, behind methods
the HTTP routes call. Knows nothing of HTTP.

The gallery is swapped whole on every enrolment or deletion (written atomically first), so a
search in flight keeps the gallery it started with and the next one sees the change.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from siamese.data.detect import Box
from siamese.data.images import decode_image
from siamese.errors import CheckpointError, DataError
from siamese.galleries import Gallery, Identification, Identifier
from siamese.galleries.backends import SearchIndex
from siamese.galleries.enroll import add_embedded, calibration_set, create_embedded, remove_identities
from siamese.galleries.gallery import CalibrationSet
from siamese.galleries.index import erase_gallery, open_index
from siamese.inference.verifier import Verifier
from siamese.models.checkpoint import model_fingerprint, resolve_checkpoint
from siamese.serve.batcher import InferenceWorker, SearchWorker
from siamese.serve.config import ServeConfig
from siamese.serve.metrics import Metrics

logger = logging.getLogger(__name__)


@dataclass
class Embedded:
    """Images embedded for one request: `(n, D)` rows, the face boxes used (with --detect), timings."""

    embeddings: np.ndarray
    boxes: list[Box | None]
    decode_seconds: float
    embed_seconds: float

    def timings(self, start: float) -> dict[str, float]:
        """Milliseconds spent decoding, embedding (queue included) and in all since `start`."""
        return {
            "decode_ms": 1000 * self.decode_seconds,
            "embed_ms": 1000 * self.embed_seconds,
            "total_ms": 1000 * (time.perf_counter() - start),
        }


@dataclass
class _GalleryState:
    gallery: Gallery | None = None
    index: SearchIndex | None = None
    identifiers: dict[str | None, Identifier] = field(default_factory=dict)


class Service:
    """The model, the inference worker and the gallery of one running service."""

    def __init__(self, config: ServeConfig, metrics: Metrics) -> None:
        self.config = config
        self.metrics = metrics
        self.model: Verifier
        self.fingerprint = ""
        self.worker: InferenceWorker
        self.searcher: SearchWorker
        self.detector: Any = None
        self._state = _GalleryState()
        self._calibration: tuple[CalibrationSet, dict[str, Any]] | None = None
        self._write = threading.Lock()
        self._blas: Any = None
        self.ready = False

    # -- life cycle --

    def load(self) -> None:
        """Load the model and the gallery (or prepare the calibration of a new one); start the worker.

        Raises:
            SiameseError: a bad model, gallery, calibration folder or option.
        """
        try:
            self._load()
        except BaseException:
            self.close()  # a half-loaded service gives back what it took (BLAS threads, workers)
            raise

    def _load(self) -> None:
        cfg = self.config
        self._blas = threadpool_limits(cfg.threads)  # searches and BLAS calls pinned, like the model
        self.model = Verifier.from_checkpoint(cfg.model, device=cfg.device)
        self.fingerprint = model_fingerprint(Path(self.model.source), self.model.metadata)
        if cfg.detect:
            from siamese.data.detect import FaceDetector

            self.detector = FaceDetector()
        if cfg.gallery is not None:
            if (cfg.gallery / "gallery.json").is_file():
                gallery = Gallery.load(cfg.gallery)
                gallery.check_model(self.model.source, self.model.metadata)
                self._swap(gallery)
            else:
                logger.info("no gallery in %s yet: the first enrolment creates it", cfg.gallery)
                self._calibration = calibration_set(self.model, cfg.calibration)
        batching = {"max_batch": cfg.max_batch, "max_wait_ms": cfg.max_wait_ms}
        self.worker = InferenceWorker(
            self._encoder(),
            self.model.device,
            self.model.tta,
            cfg.threads,
            **batching,
        )
        self.searcher = SearchWorker(**batching)
        self.worker.start()
        self.searcher.start()
        self._warm_up()
        self.worker.on_batch = self.metrics.batch_observer("inference")  # the warm-up is not counted
        self.searcher.on_batch = self.metrics.batch_observer("search")
        self.ready = True

    def _warm_up(self) -> None:
        """Run each worker once on a full batch before declaring the service ready: the first
        forward pass and the first multi-query search of a thread allocate buffers (tens to
        hundreds of milliseconds), which would otherwise land on the first requests."""
        from PIL import Image

        size = self.model.preprocessing.size  # (H, W)
        blank = Image.new("L" if self.model.channels == 1 else "RGB", (size[1], size[0]))
        images = torch.stack([self.model.transform(blank)] * self.config.max_batch)
        embeddings = self.worker.submit(images).result()
        if self._state.gallery is not None:
            identifier = self.identifier()
            rows = embeddings[: max(2, min(len(embeddings), self.config.max_batch))]
            futures = [self.searcher.submit((identifier, row[None], 1)) for row in rows]
            for future in futures:
                future.result()

    def _encoder(self) -> torch.nn.Module:
        """The model's encoder, or its ONNX export (checked to be this model's) with --onnx."""
        if self.config.onnx is None:
            return self.model.encoder
        from siamese.inference.export import OnnxEncoder

        encoder = OnnxEncoder(self.config.onnx, self.config.threads)
        if resolve_checkpoint(encoder.source).resolve() != Path(self.model.source).resolve():
            raise CheckpointError(
                f"{self.config.onnx} was exported from {encoder.source}, not from {self.model.source}"
            )
        return encoder

    def close(self) -> None:
        """Stop the worker, close the search index."""
        self.ready = False
        if hasattr(self, "worker"):
            self.worker.stop()
            self.searcher.stop()
        if self._state.index is not None:
            self._state.index.close()
        if self._blas is not None:
            self._blas.restore_original_limits()
            self._blas = None
        gc.unfreeze()

    # -- embedding --

    def prepare(self, images: Sequence[bytes], names: Sequence[str]) -> tuple[torch.Tensor, list[Box | None]]:
        """Decode, crop (with --detect) and preprocess images for the model: `(n, C, H, W)`.

        Raises:
            ImageError: an image cannot be decoded, or shows no face with --detect.
        """
        tensors, boxes = [], []
        for data, name in zip(images, names, strict=True):
            img = decode_image(data, self.model.channels, name=name)
            box = None
            if self.detector is not None:
                img, box = self.detector.crop(img, name)
            tensors.append(self.model.transform(img))
            boxes.append(box)
        return torch.stack(tensors), boxes

    async def embed(self, images: Sequence[bytes], names: Sequence[str]) -> Embedded:
        """Embed images through the worker (decoding in a thread, never on the event loop)."""
        import anyio.to_thread

        t0 = time.perf_counter()
        self.worker.announce()
        try:
            batch, boxes = await anyio.to_thread.run_sync(self.prepare, images, names)
        except BaseException:
            self.worker.withdraw()
            raise
        future = self.worker.submit(batch, announced=True)
        t1 = time.perf_counter()
        emb = await asyncio.wrap_future(future)
        return Embedded(emb, boxes, t1 - t0, time.perf_counter() - t1)

    async def identify(
        self, image: bytes, name: str, k: int, fpir: float | None, fusion: str | None
    ) -> tuple[Identification, Embedded]:
        """Who the image shows: its k nearest identities (searched by the search worker together
        with the queries of concurrent requests) and the open-set decision at `fpir`."""
        identifier = self.identifier(fusion)
        identifier.threshold(fpir)  # an uncalibrated operating point fails before embedding
        self.searcher.announce()  # a search batch being filled waits for this query
        try:
            embedded = await self.embed([image], [name])
        except BaseException:
            self.searcher.withdraw()
            raise
        start = time.perf_counter()
        future = self.searcher.submit((identifier, embedded.embeddings, k), announced=True)
        candidates = await asyncio.wrap_future(future)
        return identifier.decide(candidates, name, fpir, time.perf_counter() - start), embedded

    # -- the gallery --

    @property
    def gallery(self) -> Gallery | None:
        """The gallery as it is now (None before the first enrolment or without --gallery)."""
        return self._state.gallery

    def identifier(self, fusion: str | None = None) -> Identifier:
        """The identifier of the current gallery for `fusion` (made once per gallery version).

        Raises:
            DataError: no gallery yet. ConfigError: a rule the gallery was not built for.
        """
        state = self._state
        if state.gallery is None:
            raise DataError(self._no_gallery())
        found = state.identifiers.get(fusion)
        if found is None:
            found = Identifier(state.gallery, fusion, state.index, threads=self.config.threads)
            state.identifiers[fusion] = found
        return found

    def require_gallery(self) -> Gallery:
        """The current gallery.

        Raises:
            DataError: none yet.
        """
        if self._state.gallery is None:
            raise DataError(self._no_gallery())
        return self._state.gallery

    def _no_gallery(self) -> str:
        if self.config.gallery is None:
            return "the service runs without a gallery: start it with --gallery G"
        return "the gallery is empty: enrol an identity first (POST /v1/enroll)"

    def enroll(self, identity: str, embeddings: np.ndarray) -> Gallery:
        """Add `(R, D)` references of `identity` (new or known) and write the gallery atomically.

        Raises:
            DataError: the service has no gallery folder.
        """
        if self.config.gallery is None:
            raise DataError(self._no_gallery())
        files = [
            [f"upload-{secrets.token_hex(6)}" for _ in range(len(embeddings))]
        ]  # never the client's names
        with self._write:
            current = self._state.gallery
            if current is None:
                assert self._calibration is not None
                written = create_embedded(
                    self.model, self.config.gallery, self._calibration, [identity], [embeddings], files
                )
            else:
                written = add_embedded(self.config.gallery, current, [identity], [embeddings], files)
            self._swap(written)
        return written

    def remove(self, identity: str) -> Gallery | None:
        """Remove an enrolled identity and write the gallery atomically; removing the last one
        deletes the gallery's files (the next enrolment creates it anew). Returns the gallery left.

        Raises:
            KeyError: not enrolled. DataError: no gallery.
        """
        with self._write:
            gallery = self.require_gallery()
            if identity not in gallery.identities:
                raise KeyError(identity)
            folder = self.config.gallery
            assert folder is not None
            if gallery.size > 1:
                written = remove_identities(folder, [identity], gallery)  # the one on disk, held
                self._swap(written)
                return written
            assert gallery.calibration is not None
            self._calibration = (gallery.calibration, gallery.info.get("calibration", {}))
            erase_gallery(folder)
            self._state = _GalleryState()
            self.metrics.gallery.set(0)
            return None

    def _swap(self, gallery: Gallery) -> None:  # the caller holds the write lock (or is loading)
        old = self._state.index
        index = open_index(gallery, self.config.gallery)  # type: ignore[arg-type]
        self._state = _GalleryState(gallery, index)
        self.metrics.gallery.set(gallery.size)
        if old is not None:
            old.close()
        # A large gallery is hundreds of thousands of long-lived objects (names, files, arrays):
        # left to the cyclic collector, each full collection walks them all, a pause of a tenth of
        # a second in the middle of requests. Frozen, the collector skips them.
        gc.collect()
        gc.freeze()

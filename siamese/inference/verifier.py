"""Verifying one pair of images with a trained checkpoint: the library behind `siamese verify`.

Responsiveness matters here: this module (and everything it imports) pulls in torch, safetensors
and the lightweight siamese modules only, never torchvision, pytorch-metric-learning, scikit-learn
or matplotlib. The preprocessing is the torchvision-free evaluation transform of the checkpoint's
preset. Checkpoints of torchvision-backed encoders (`resnet*`, `mobilenet_v3_small`) necessarily
import torchvision to rebuild their architecture, which adds about two seconds; the default
`smallcnn` does not.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from siamese.errors import CheckpointError
from siamese.evaluation.calibration import confidence as calibrated_confidence
from siamese.inference.embedding import ImageSource
from siamese.inference.model import EmbeddingModel
from siamese.models.twin import pair_distance

logger = logging.getLogger(__name__)


@dataclass
class VerificationResult:
    """The decision on one pair of images.

    Attributes:
        same: True when `distance <= threshold` (the same identity).
        distance: distance between the two embeddings (the checkpoint's metric).
        threshold: the distance threshold used.
        confidence: calibrated probability that the pair is the same identity, or None when the
            checkpoint carries no calibration.
        model: the checkpoint used (its path stem).
        seconds: wall time of the verification (decoding, preprocessing, one forward pass).
    """

    same: bool
    distance: float
    threshold: float
    confidence: float | None
    model: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict with exactly the attribute names as keys."""
        return asdict(self)


class Verifier(EmbeddingModel):
    """A loaded model (`EmbeddingModel`) that decides pairs: its distance, threshold and calibration."""

    @property
    def threshold(self) -> float | None:
        """The checkpoint's distance threshold (same when `distance <= threshold`), if any."""
        return self.info.threshold

    def confidence(self, distance: float) -> float | None:
        """Calibrated probability that a pair at `distance` is the same identity (None if uncalibrated)."""
        cal = self.info.calibration
        return None if cal is None else float(calibrated_confidence(distance, cal))

    def verify(self, a: ImageSource, b: ImageSource, threshold: float | None = None) -> VerificationResult:
        """Decide whether two images show the same identity.

        Both images go through the encoder as one batch of two.

        Args:
            a: first image: a file, encoded bytes or a Pillow image.
            b: second image.
            threshold: distance threshold overriding the checkpoint's.

        Raises:
            ImageError: an image cannot be decoded (the message names the file).
            CheckpointError: no threshold given and the checkpoint has none.
        """
        start = time.perf_counter()
        thr = self.decision_threshold(threshold)
        return self.decide(self.embed([a, b], batch_size=2), thr, start)

    def decision_threshold(self, threshold: float | None = None) -> float:
        """`threshold` if given, else the checkpoint's.

        Raises:
            CheckpointError: no threshold given and the checkpoint has none.
        """
        thr = self.threshold if threshold is None else float(threshold)
        if thr is None:
            raise CheckpointError(f"{self.source}.json has no decision threshold; pass one explicitly")
        return thr

    def decide(
        self, embeddings: np.ndarray, threshold: float | None = None, start: float | None = None
    ) -> VerificationResult:
        """The decision on a pair already embedded, `(2, D)` (what `verify` does after embedding).

        Args:
            embeddings: the two images' embeddings, row 0 and row 1.
            threshold: distance threshold overriding the checkpoint's.
            start: `time.perf_counter()` when the work on this pair began (for `seconds`).
        """
        thr = self.decision_threshold(threshold)
        emb = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))  # (2, D)
        dist = float(pair_distance(emb[:1], emb[1:], self.distance)[0])
        return VerificationResult(
            same=dist <= thr,
            distance=dist,
            threshold=thr,
            confidence=self.confidence(dist),
            model=self.source,
            seconds=0.0 if start is None else time.perf_counter() - start,
        )

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
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from siamese.devices import resolve_device
from siamese.errors import CheckpointError
from siamese.evaluation.calibration import confidence as calibrated_confidence
from siamese.inference.embedding import embed_files
from siamese.models.checkpoint import CHECKPOINT_DIR, Preprocessing, load_checkpoint, resolve_checkpoint
from siamese.models.tta import check_tta
from siamese.models.twin import TwinNetwork, pair_distance

logger = logging.getLogger(__name__)

_ERRORS_SHOWN = 3


def latest_run(runs_dir: str | os.PathLike = "runs") -> Path:
    """The most recently trained run directory under `runs_dir`.

    A run directory is a direct sub-folder holding `checkpoints/best.json`; "most recent" means the
    newest `best.json` (ties broken by name).

    Raises:
        CheckpointError: `runs_dir` is missing or holds no trained run.
    """
    root = Path(runs_dir)
    candidates = []
    if root.is_dir():
        for child in root.iterdir():
            meta = child / CHECKPOINT_DIR / "best.json"
            if meta.is_file():
                candidates.append((meta.stat().st_mtime, child.name, child))
    if not candidates:
        raise CheckpointError(
            f"no trained model found under {root}/ (train one with `siamese train`, or pass --model RUN)"
        )
    return max(candidates)[2]


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


class Verifier:
    """A trained encoder plus everything needed to use it: preprocessing, distance, threshold.

    Attributes:
        model: the twin network in eval mode.
        metadata: the checkpoint metadata (see `siamese.models.checkpoint`).
        source: the checkpoint stem the model was loaded from.
        device: where the model runs.
        preprocessing: what the metadata says about feeding the model.
        transform: the deterministic PIL image -> `(C, H, W)` tensor preprocessing.
        channels: 1 or 3, what images are converted to.
        tta: the test-time augmentation every embedding uses, "none" or "flip".
    """

    def __init__(
        self,
        model: TwinNetwork,
        metadata: dict[str, Any],
        source: str | os.PathLike,
        device: torch.device,
        tta: str | None = None,
    ) -> None:
        """Wrap a loaded model; prefer `Verifier.from_checkpoint`.

        Args:
            tta: test-time augmentation; None = the model's default (`metadata["tta"]`, recorded
                by `siamese train --tta`; "none" when absent).

        Raises:
            CheckpointError: the metadata does not describe the preprocessing.
            ConfigError: "flip" for a model whose preset does not train with flips.
        """
        self.model = model.eval()
        self.metadata = metadata
        self.source = str(source)
        self.device = device
        self.preprocessing = Preprocessing.from_metadata(metadata, self.source)
        self.channels = self.preprocessing.channels
        self.transform = self.preprocessing.transform()
        self.tta = check_tta(tta or metadata.get("tta") or "none", self.preprocessing.preset)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        device: str | torch.device = "cpu",
        which: str = "best",
        tta: str | None = None,
    ) -> Verifier:
        """Load a run directory, a checkpoint stem or one of its files.

        Args:
            path: run directory (uses `checkpoints/<which>`), stem, `.json` or `.safetensors`.
            device: "cpu", "cuda", "auto" or a torch device.
            which: "best" or "last" when `path` is a run directory.
            tta: test-time augmentation ("none" or "flip"); None = the model's default.

        Raises:
            CheckpointError: missing, corrupt or incompatible checkpoint.
            ConfigError: unavailable device, or "flip" for a preset that does not train with flips.
        """
        dev = resolve_device(device)
        stem = resolve_checkpoint(path, which)
        model, meta = load_checkpoint(stem, device=dev)
        return cls(model, meta, stem, dev, tta)

    @property
    def encoder(self) -> torch.nn.Module:
        """The shared encoder, `(B, C, H, W) -> (B, D)`."""
        return self.model.encoder

    @property
    def embedding_dim(self) -> int:
        """D, the size of an embedding."""
        return int(cast(int, self.model.encoder.embedding_dim))

    @property
    def distance(self) -> str:
        """The pair distance, "euclidean" or "cosine"."""
        return self.model.distance

    @property
    def threshold(self) -> float | None:
        """The checkpoint's distance threshold (same when `distance <= threshold`), if any."""
        value = self.metadata.get("threshold")
        return None if value is None else float(value)

    def confidence(self, distance: float) -> float | None:
        """Calibrated probability that a pair at `distance` is the same identity (None if uncalibrated)."""
        cal = self.metadata.get("calibration")
        if not isinstance(cal, dict) or not {"coef", "intercept"} <= cal.keys():
            return None
        return float(calibrated_confidence(distance, cal))

    def embed_paths(self, paths: Sequence[str | os.PathLike], batch_size: int = 64) -> np.ndarray:
        """Embed image files.

        Args:
            paths: image files.
            batch_size: images per forward pass.

        Returns:
            Embeddings `(N, D)` float32, row i for `paths[i]`.

        Raises:
            ImageError: files cannot be decoded (the message counts them and names the first).
        """
        names = [os.fspath(p) for p in paths]
        emb = embed_files(
            self.encoder,
            names,
            self.transform,
            self.channels,
            batch_size=batch_size,
            device=self.device,
            tta=self.tta,
        )
        return emb.reshape(len(names), self.embedding_dim)  # (N, D)

    def verify(
        self, a: str | os.PathLike, b: str | os.PathLike, threshold: float | None = None
    ) -> VerificationResult:
        """Decide whether two images show the same identity.

        Both images go through the encoder as one batch of two.

        Args:
            a: first image file.
            b: second image file.
            threshold: distance threshold overriding the checkpoint's.

        Raises:
            ImageError: an image cannot be decoded (the message names the file).
            CheckpointError: no threshold given and the checkpoint has none.
        """
        start = time.perf_counter()
        thr = self.threshold if threshold is None else float(threshold)
        if thr is None:
            raise CheckpointError(f"{self.source}.json has no decision threshold; pass one explicitly")
        emb = torch.from_numpy(self.embed_paths([a, b], batch_size=2))  # (2, D)
        dist = float(pair_distance(emb[:1], emb[1:], self.distance)[0])
        return VerificationResult(
            same=dist <= thr,
            distance=dist,
            threshold=thr,
            confidence=self.confidence(dist),
            model=self.source,
            seconds=time.perf_counter() - start,
        )

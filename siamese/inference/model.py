"""A trained model ready to embed: the one way every command, the benchmarks and services open a
checkpoint for embedding.

`EmbeddingModel.from_checkpoint` loads the weights without unpickling, reads the preprocessing and
the test-time augmentation the checkpoint records, and embeds images (files, encoded bytes or
Pillow images) in batches, optionally cropping each to its largest face first (`detect`). Like
`siamese.inference.verifier`, this module never imports torchvision, pytorch-metric-learning,
scikit-learn, matplotlib or (without `detect`) OpenCV.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from PIL import Image

from siamese.data.detect import FaceDetector
from siamese.devices import resolve_device
from siamese.inference.embedding import (
    EmbeddingBatch,
    ImageSource,
    ProgressCallback,
    embed_all,
    embed_files,
    embed_images,
)
from siamese.models.checkpoint import CheckpointMetadata, Preprocessing, load_checkpoint, resolve_checkpoint
from siamese.models.tta import check_tta
from siamese.models.twin import TwinNetwork, pair_distance
from siamese.runs import RunDir, run_of_checkpoint

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11

Embed = Callable[[Sequence[ImageSource]], np.ndarray]
"""Embeds images into `(N, D)` rows."""


class EmbeddingModel:
    """A trained encoder plus everything needed to feed it: preprocessing, test-time augmentation.

    Attributes:
        model: the twin network in eval mode.
        metadata: the checkpoint's JSON as read (see `siamese.models.checkpoint.read_metadata`).
        info: the same, typed, with its defaults (`CheckpointMetadata`).
        source: the checkpoint stem the model was loaded from.
        device: where the model runs.
        preprocessing: what the metadata says about feeding the model.
        transform: the deterministic PIL image -> `(C, H, W)` tensor preprocessing.
        channels: 1 or 3, what images are converted to.
        tta: the test-time augmentation every embedding uses, "none" or "flip".
        detector: with `detect`, the `FaceDetector` whose crop of each decoded image (its largest
            face) is what `transform` gets; None without.
    """

    def __init__(
        self,
        model: TwinNetwork,
        metadata: dict[str, Any],
        source: str | os.PathLike,
        device: torch.device,
        tta: str | None = None,
        detect: bool = False,
    ) -> None:
        """Wrap a loaded model; prefer `from_checkpoint`.

        Args:
            tta: test-time augmentation; None = the model's default (recorded by `siamese train --tta`).
            detect: embed each image's largest face (a `FaceDetector` crop) instead of the whole
                image; an image without a face is refused like an unreadable one.

        Raises:
            CheckpointError: the metadata does not describe the preprocessing.
            ConfigError: "flip" for a model whose preset does not train with flips; `detect`
                without OpenCV (the `detect` extra).
        """
        self.model = model.eval()
        self.metadata = metadata
        self.info = CheckpointMetadata.from_dict(metadata)
        self.source = str(source)
        self.device = device
        self.preprocessing = Preprocessing.from_metadata(metadata, self.source)
        self.channels = self.preprocessing.channels
        self.transform = self.preprocessing.transform()
        self.tta = check_tta(tta or self.info.tta, self.preprocessing.preset)
        self.detector = FaceDetector() if detect else None

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        device: str | torch.device = "cpu",
        which: str = "best",
        tta: str | None = None,
        detect: bool = False,
    ) -> Self:
        """Load a run directory, a checkpoint stem or one of its files.

        Args:
            path: run directory (uses `checkpoints/<which>`), stem, `.json` or `.safetensors`.
            device: "cpu", "cuda", "auto" or a torch device.
            which: "best" or "last" when `path` is a run directory.
            tta: test-time augmentation ("none" or "flip"); None = the model's default.
            detect: embed each image's largest face instead of the whole image (needs OpenCV).

        Raises:
            CheckpointError: missing, corrupt or incompatible checkpoint.
            ConfigError: unavailable device, "flip" for a preset that does not train with flips, or
                `detect` without OpenCV.
        """
        dev = resolve_device(device)
        stem = resolve_checkpoint(path, which)
        model, meta = load_checkpoint(stem, device=dev)
        return cls(model, meta, stem, dev, tta, detect)

    @property
    def run(self) -> RunDir:
        """The run directory the checkpoint belongs to."""
        return run_of_checkpoint(self.source)

    @property
    def encoder(self) -> torch.nn.Module:
        """The shared encoder, `(B, C, H, W) -> (B, D)`."""
        return self.model.encoder

    @property
    def embedding_dim(self) -> int:
        """D, the size of an embedding."""
        return int(cast(int, self.model.encoder.embedding_dim))

    @property
    def detect(self) -> bool:
        """Whether each image's largest face is embedded instead of the whole image."""
        return self.detector is not None

    @property
    def distance(self) -> str:
        """The pair distance, "euclidean" or "cosine"."""
        return self.model.distance

    def embed(
        self,
        images: Sequence[ImageSource],
        batch_size: int = 64,
        workers: int = 0,
        on_progress: ProgressCallback | None = None,
    ) -> np.ndarray:
        """Embed images, refusing unreadable ones.

        Args:
            images: files, encoded bytes (uploads) or Pillow images.
            batch_size: images per forward pass.
            workers: image-decoding worker processes (0: one background thread).
            on_progress: called after every batch with (images done, images in total).

        Returns:
            Embeddings `(N, D)` float32, row i for `images[i]`.

        Raises:
            ImageError: images cannot be decoded, or (with `detect`) show no face (the message
                counts them and names the first).
        """
        options = self._options(batch_size, workers)
        emb = embed_files(self.encoder, images, self.transform, self.channels, on_progress, **options)
        return emb.reshape(len(images), self.embedding_dim)  # (N, D)

    def embed_all(
        self,
        images: Sequence[ImageSource],
        batch_size: int = 64,
        workers: int = 0,
        on_batch: Callable[[int], None] | None = None,
    ) -> tuple[np.ndarray, list[tuple[int, str]]]:
        """Embed images, keeping going past unreadable ones (their rows are NaN).

        Args:
            images, batch_size, workers: as for `embed`.
            on_batch: called after every batch with the number of images it handled.

        Returns:
            The `(N, D)` embeddings and the `(position, error)` list of unreadable images (with
            `detect`, images without a face too).
        """
        options = self._options(batch_size, workers)
        return embed_all(self.encoder, images, self.transform, self.channels, on_batch, **options)

    def embed_batches(
        self, images: Sequence[ImageSource], batch_size: int = 64, workers: int = 0
    ) -> Iterator[EmbeddingBatch]:
        """Stream the embeddings batch by batch (unreadable images reported, not raised)."""
        return embed_images(
            self.encoder, images, self.transform, self.channels, **self._options(batch_size, workers)
        )

    def embedder(
        self, batch_size: int = 64, workers: int = 0, on_progress: ProgressCallback | None = None
    ) -> Embed:
        """`embed` as a function of the images alone; successive calls report progress as one
        growing total (several sets embedded one after another show one progress bar)."""
        done = 0

        def embed(images: Sequence[ImageSource]) -> np.ndarray:  # (N, D)
            nonlocal done
            before = done
            done += len(images)

            def advance(n: int, total: int) -> None:
                if on_progress is not None:
                    on_progress(before + n, before + total)

            return self.embed(images, batch_size, workers, advance)

        return embed

    def pair_distance(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The model's distance between rows of `a` and `b`, `(P, D)` each -> `(P,)` float64."""
        return pair_distance(torch.from_numpy(a), torch.from_numpy(b), self.distance).double().numpy()

    def _crop_face(self, image: Image.Image, name: str) -> Image.Image:
        assert self.detector is not None
        return self.detector.crop(image, name)[0]

    def _options(self, batch_size: int, workers: int) -> dict[str, Any]:
        crop = self._crop_face if self.detector is not None else None
        return {
            "batch_size": batch_size,
            "device": self.device,
            "workers": workers,
            "tta": self.tta,
            "crop": crop,
        }

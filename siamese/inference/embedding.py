"""Batched, streaming embedding of images (files, encoded bytes or Pillow images): the one code path
under `siamese.inference.EmbeddingModel`, and so of `embed`, `verify`, `evaluate` and the benchmarks.

`embed_images` streams batches (unreadable files reported, not raised), `embed_all` collects them
into one array, and `embed_files` does the same but refuses unreadable files.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from siamese.data.images import decode_image, open_image, to_mode
from siamese.errors import ImageError
from siamese.models.tta import tta_embed
from siamese.names import TTAS, check_choice

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack from Python 3.11

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]
"""Called after every embedded batch with (images done, images in total)."""

Crop = Callable[[Image.Image, str], Image.Image]
"""A step between decoding and preprocessing: takes the decoded image and its name (for messages)
and returns the part to embed, or raises `ImageError` (e.g. the face crop of `--detect`)."""


class EmbedOptions(TypedDict, total=False):
    """How `embed_all` and `embed_files` run `embed_images`: its keyword options."""

    batch_size: int
    device: str | torch.device
    workers: int
    tta: str
    crop: Crop | None


ImageSource = str | os.PathLike | bytes | Image.Image
"""An image to embed: a file path, its encoded bytes (an upload) or a decoded Pillow image."""


def load_image(image: ImageSource, channels: int, position: int = 0) -> Image.Image:
    """Decode any `ImageSource` into an 8-bit "L"/"RGB" image.

    Args:
        image: a path, encoded bytes or a Pillow image.
        channels: 1 or 3.
        position: the image's place in its input list, naming in-memory images in messages.

    Raises:
        ImageError: an unreadable file, undecodable bytes or an unsupported image mode.
    """
    if isinstance(image, (bytes, bytearray, memoryview)):
        return decode_image(bytes(image), channels, name=f"#{position + 1} (in memory)")
    if isinstance(image, Image.Image):
        try:
            return to_mode(image, channels)
        except (OSError, ValueError) as exc:
            raise ImageError(f"cannot use image #{position + 1}: mode {image.mode!r} ({exc})") from exc
    return open_image(image, channels)


def image_name(image: ImageSource, position: int = 0) -> str:
    """What messages call an image: its path, or its place in the input list when it is in memory."""
    if isinstance(image, (str, os.PathLike)):
        return str(Path(image))
    return f"image #{position + 1} (in memory)"


class _ImageDataset(Dataset):
    """Decodes one image per item; unreadable ones become `None` so the batch can skip them."""

    def __init__(
        self, images: Sequence[ImageSource], channels: int, transform: Callable, crop: Crop | None = None
    ) -> None:
        self.images = images
        self.channels = channels
        self.transform = transform
        self.crop = crop

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str]:
        try:
            image = load_image(self.images[i], self.channels, i)
            if self.crop is not None:
                image = self.crop(image, image_name(self.images[i], i))
            return i, self.transform(image), ""
        except ImageError as exc:
            return i, None, str(exc)


def _collate(batch: list) -> tuple[list[int], torch.Tensor | None, list[tuple[int, str]]]:
    ok = [(i, x) for i, x, _ in batch if x is not None]
    bad = [(i, err) for i, x, err in batch if x is None]
    images = torch.stack([x for _, x in ok]) if ok else None
    return [i for i, _ in ok], images, bad


@dataclass
class EmbeddingBatch:
    """Embeddings of the readable images of one batch, by their position in the input list."""

    positions: list[int]
    embeddings: np.ndarray  # (b, D) float32
    failed: list[tuple[int, str]] = field(default_factory=list)


@torch.no_grad()
def embed_images(
    encoder: torch.nn.Module,
    paths: Sequence[ImageSource],
    transform: Callable,
    channels: int,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    workers: int = 0,
    tta: str = "none",
    crop: Crop | None = None,
) -> Iterator[EmbeddingBatch]:
    """Embed image files in batches without holding them all in memory.

    Args:
        encoder: maps `(B, C, H, W)` to `(B, D)` (an `Encoder`, `TwinNetwork.embed` or a scripted module).
        paths: images: files, encoded bytes or Pillow images.
        transform: the model's deterministic preprocessing (PIL -> `(C, H, W)` tensor).
        channels: 1 or 3, what `open_image` converts to.
        batch_size: images per forward pass.
        device: where the encoder runs.
        workers: DataLoader worker processes decoding images; 0 decodes in one background
            thread, one batch ahead of the encoder (Pillow and NumPy release the GIL while
            decoding, so decoding overlaps the forward pass without extra processes).
        tta: test-time augmentation, "none" or "flip" (each image's embedding averaged with its
            mirror's, `siamese.models.tta.tta_embed`); which presets allow it is the caller's
            check (`siamese.models.tta.check_tta`).
        crop: applied to every decoded image (with its name) before `transform`; an `ImageError` it
            raises reports the image as unreadable (e.g. `FaceDetector.crop`'s "no face found").

    Yields:
        One `EmbeddingBatch` per batch; unreadable files are reported in `failed`, not raised.

    Raises:
        ConfigError: unknown `tta`.
    """
    check_choice(tta, TTAS, "test-time augmentation")
    dataset = _ImageDataset(paths, channels, transform, crop)
    if workers > 0:
        batches: Iterator = iter(
            DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=_collate)
        )
    else:
        batches = _prefetched(dataset, batch_size)
    for positions, images, failed in batches:
        if images is None:
            yield EmbeddingBatch([], np.zeros((0, 0), np.float32), failed)
            continue
        emb = tta_embed(encoder, images.to(device), tta).float().cpu().numpy()  # (b, D)
        yield EmbeddingBatch(positions, emb, failed)


def _prefetched(dataset: _ImageDataset, batch_size: int) -> Iterator[tuple]:
    """Collated batches of `dataset`, each decoded in a worker thread while the previous one is used."""
    starts = range(0, len(dataset), batch_size)

    def load(start: int) -> tuple:
        return _collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])

    if not starts:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="siamese-decode") as pool:
        pending = pool.submit(load, starts[0])
        for nxt in starts[1:]:
            batch = pending.result()
            pending = pool.submit(load, nxt)
            yield batch
        yield pending.result()


def embed_all(
    encoder: torch.nn.Module,
    paths: Sequence[ImageSource],
    transform: Callable,
    channels: int,
    on_batch: Callable[[int], None] | None = None,
    **options: Unpack[EmbedOptions],
) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Embed every image into one `(N, D)` array (rows of unreadable files are NaN).

    Args:
        encoder, paths, transform, channels: as for `embed_images`.
        on_batch: called after every batch with the number of files it handled.
        **options: `batch_size`, `device`, `workers`, `tta` and `crop`, as for `embed_images`.

    Returns:
        The embeddings and the `(position, error)` list of unreadable files.
    """
    out: np.ndarray | None = None
    failed: list[tuple[int, str]] = []
    for batch in embed_images(encoder, paths, transform, channels, **options):
        failed += batch.failed
        if batch.positions:
            if out is None:
                out = np.full((len(paths), batch.embeddings.shape[1]), np.nan, np.float32)
            out[batch.positions] = batch.embeddings
        if on_batch is not None:
            on_batch(len(batch.positions) + len(batch.failed))
    if out is None:
        out = np.zeros((len(paths), 0), np.float32)
    return out, failed


def embed_files(
    encoder: torch.nn.Module,
    paths: Sequence[ImageSource],
    transform: Callable,
    channels: int,
    on_progress: ProgressCallback | None = None,
    **options: Unpack[EmbedOptions],
) -> np.ndarray:
    """Embed every image into one `(N, D)` array, refusing unreadable files.

    Args:
        encoder, paths, transform, channels: as for `embed_images`.
        on_progress: called after every batch with (files done, files in total).
        **options: `batch_size`, `device`, `workers`, `tta` and `crop`, as for `embed_images`.

    Returns:
        Embeddings `(N, D)` float32, row i for `paths[i]`.

    Raises:
        ImageError: some files cannot be decoded (the message counts them and gives the first error).
    """
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if on_progress is not None:
            on_progress(done, len(paths))

    emb, failed = embed_all(encoder, paths, transform, channels, on_batch=advance, **options)
    if failed:
        raise ImageError(f"{len(failed)} of {len(paths)} images could not be read; first: {failed[0][1]}")
    return emb  # (N, D)

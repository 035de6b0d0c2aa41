"""Test-time augmentation (TTA): embed an image together with transformed copies and combine them.

"flip" averages the embeddings of an image and its horizontal mirror. It only makes sense for a
model trained with horizontal flips (its preset's `hflip`, the `face` preset): for handwriting a
mirrored signature or character is another shape, so `check_tta` refuses it there.

When the encoder L2-normalises its output (`Encoder.normalize`, the default), the mean of the two
unit vectors is normalised again: it stays on the unit sphere that the threshold, the calibration
and the Euclidean/cosine distances were fitted on, and its direction (all that cosine compares)
is the same. An encoder with raw outputs gets the plain mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from siamese import names
from siamese.errors import ConfigError


def check_tta(tta: str, preset: str) -> str:
    """Return `tta` if the model of `preset` can use it, else raise a one-line `ConfigError`.

    >>> check_tta("flip", "face")
    'flip'

    Raises:
        ConfigError: unknown mode, or "flip" for a preset that does not train with flips.
    """
    names.check_choice(tta, names.TTAS, "test-time augmentation")
    if tta == "flip":
        from siamese.data.presets import get_preset  # siamese.data never imports siamese.models

        if not get_preset(preset).hflip:
            raise ConfigError(
                f"--tta flip needs a preset that trains with horizontal flips (face); preset "
                f"{preset!r} does not (a mirrored image is not the same identity there)"
            )
    return tta


def tta_embed(encoder: nn.Module, images: torch.Tensor, tta: str = "none") -> torch.Tensor:
    """Embeddings `(B, D)` of images `(B, C, H, W)` under test-time augmentation `tta`.

    "none" is `encoder(images)`; "flip" runs the images and their mirrors as one batch of 2B and
    averages each image's two embeddings (re-normalised when `encoder.normalize` is true).

    Raises:
        ConfigError: unknown mode.
    """
    names.check_choice(tta, names.TTAS, "test-time augmentation")
    if tta == "none":
        return encoder(images)
    b = images.shape[0]
    both = encoder(torch.cat([images, images.flip(-1)]))  # (2B, D): images, then their mirrors
    mean = (both[:b] + both[b:]) / 2  # (B, D)
    return F.normalize(mean, p=2.0, dim=1) if getattr(encoder, "normalize", False) else mean

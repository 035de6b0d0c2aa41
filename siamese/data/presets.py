"""Per-domain presets: one object per kind of data holding its image geometry, preprocessing,
augmentation and the training defaults it brings (`Preset.training`).

The transforms a preset describes are built by `siamese.data.transforms.get_transform`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import numpy as np

from siamese import names
from siamese.errors import ConfigError

_FITS = ("pad", "crop", "stretch")


@dataclass(frozen=True)
class Preset:
    """Image geometry, preprocessing and augmentation for one kind of data.

    Attributes:
        name: key in `PRESETS`.
        image_size: output (H, W).
        channels: 1 (grayscale) or 3 (RGB).
        description: what the preset is for and what it does.
        fit: how an image of another aspect ratio reaches `image_size`: "pad", "crop" or "stretch".
        remove_background: set every pixel brighter than the image's Otsu threshold to pure white
            before anything else, so paper tone and scanner differences carry no signal (SigNet).
        invert: invert intensities (255 - x) after background removal.
        hflip: random horizontal flips in training.
        degrees: random rotation range (+/- degrees) in training.
        translate: random shift range as a fraction of width/height in training.
        scale: random zoom range in training.
        shear: random shear range (+/- degrees, horizontal) in training.
        brightness: colour-jitter brightness strength in training (0 disables).
        contrast: colour-jitter contrast strength in training (0 disables).
        erase: probability of random erasing in training (Zhong et al. 2020): one rectangle of
            2-20% of the image, aspect 0.3-3.3, set to the normalised mid-grey 0 (0 disables).
        mean: normalisation mean, same for every channel.
        std: normalisation standard deviation, same for every channel.
        training: training options this preset brings, keyed by `siamese.training.build_train_config`'s
            flat option names (`epochs`, `loss`, `encoder_kwargs`, ...); an option the user passes
            always wins.
    """

    name: str
    image_size: tuple[int, int]
    channels: int
    description: str
    fit: str = "pad"
    remove_background: bool = False
    invert: bool = False
    hflip: bool = False
    degrees: float = 0.0
    translate: float = 0.0
    scale: tuple[float, float] = (1.0, 1.0)
    shear: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    erase: float = 0.0
    mean: float = 0.5
    std: float = 0.5
    training: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "training", MappingProxyType(dict(self.training)))


PRESETS: dict[str, Preset] = {
    "face": Preset(
        name="face",
        image_size=(56, 46),
        channels=1,
        description=(
            "Faces (ORL/AT&T-like, 92x112 W x H grayscale): 56x46 (H x W, half of ORL's native size, "
            "which generalised better and trains 4x faster on a CPU than 112x92), aspect-preserving "
            "resize and centre crop; training adds horizontal flips, affine (+/-10 deg, +/-5% shift, "
            "0.9-1.1 zoom), brightness/contrast jitter 0.2 and random erasing (p 0.5). 1 channel by "
            "default; use channels=3 for colour faces."
        ),
        fit="crop",
        hflip=True,
        degrees=10.0,
        translate=0.05,
        scale=(0.9, 1.1),
        brightness=0.2,
        contrast=0.2,
        erase=0.5,  # ORL 4-fold, 20 epochs: mean test EER 11.4% -> 10.1%
        training={
            "loss": "supcon",
            "select": "last",  # 6-8 validation people: their per-epoch EER is too noisy to pick an epoch
            "epochs": 30,
            "embedding_dim": 128,
            "batch_size": 32,
            "encoder_kwargs": {"grid": 3, "dropout": 0.5},
        },
    ),
    "signature": Preset(
        name="signature",
        image_size=(155, 220),
        channels=1,
        description=(
            "Offline signatures (CEDAR-like, dark ink on white): grayscale, background above the Otsu "
            "threshold set to white (scan tone carries no signal), inverted so ink is bright "
            "on black, padded with the background to H:W = 155:220 and resized to 155x220 as in "
            "SigNet; training adds a small affine (+/-5 deg, +/-3% shift, 0.95-1.05 zoom, "
            "+/-5 deg shear). No flips (handwriting is not mirror-symmetric)."
        ),
        fit="pad",
        remove_background=True,
        invert=True,
        degrees=5.0,
        translate=0.03,
        scale=(0.95, 1.05),
        shear=5.0,
        training={
            "loss": "supcon",
            "epochs": 6,  # 155x220 inputs: ~75 s per epoch of CEDAR on a 2-core CPU
            "embedding_dim": 128,
            "batch_size": 32,
            "encoder_kwargs": {"stem_stride": 2, "grid": 2, "dropout": 0.3},
        },
    ),
    "digits": Preset(
        name="digits",
        image_size=(32, 32),
        channels=1,
        description=(
            "Handwritten digits (the bundled scikit-learn 8x8 digits, upscaled): 1 channel, 32x32, "
            "padded to square; training adds a small affine (+/-10 deg, +/-8% shift, 0.9-1.1 zoom). "
            "No flips."
        ),
        fit="pad",
        degrees=10.0,
        translate=0.08,
        scale=(0.9, 1.1),
        training={
            "epochs": 8,
            "embedding_dim": 64,
            "batch_size": 64,
            "m_per_class": 16,  # only 6 training digits: 4 per batch
            "encoder_kwargs": {"grid": 2},
        },
    ),
    "omniglot": Preset(
        name="omniglot",
        image_size=(64, 64),
        channels=1,
        description=(
            "Omniglot characters (105x105 black strokes on white): 1 channel, resized to 64x64 "
            "(padded to square if needed), not inverted; training adds a small Koch-style affine "
            "(+/-10 deg, +/-5% shift, 0.9-1.1 zoom, +/-10 deg shear). No flips."
        ),
        fit="pad",
        degrees=10.0,
        translate=0.05,
        scale=(0.9, 1.1),
        shear=10.0,
        training={
            "loss": "supcon",
            "epochs": 12,  # 4 rotations: an epoch is 4x the images, ~100 s on 2 cores; 8 epochs: 90.5%
            "embedding_dim": 128,
            "batch_size": 64,
            "encoder_kwargs": {"grid": 3},  # where the strokes are; 12 epochs: grid 2 91.75%, grid 3 92.25%
            "rotations": 4,  # 8 background alphabets, 6 epochs: 85.5% -> 88.25% 20-way one-shot
        },
    ),
}


def get_preset(preset: str | Preset) -> Preset:
    """The preset called `preset` (a `Preset` instance is returned unchanged).

    Raises:
        ConfigError: unknown name (the message lists the known ones).
    """
    if isinstance(preset, Preset):
        return preset
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of: {', '.join(names.PRESETS)}")
    return PRESETS[preset]


def resolve_preset(
    preset: str | Preset, image_size: tuple[int, int] | int | None, channels: int | None
) -> Preset:
    """The preset with `image_size` and `channels` overridden (None keeps the preset's), validated."""
    p = get_preset(preset)
    if image_size is not None:
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if len(size) != 2 or not all(isinstance(s, (int, np.integer)) and s > 0 for s in size):
            raise ConfigError(f"image_size must be two positive integers (H, W), got {image_size!r}")
        p = replace(p, image_size=(int(size[0]), int(size[1])))
    if channels is not None:
        if channels not in (1, 3):
            raise ConfigError(f"channels must be 1 or 3, got {channels!r}")
        p = replace(p, channels=channels)
    if p.fit not in _FITS:
        raise ConfigError(f"preset fit must be one of {', '.join(_FITS)}, got {p.fit!r}")
    return p


def preprocessing_spec(
    preset: str | Preset, image_size: tuple[int, int] | None = None, channels: int | None = None
) -> dict:
    """JSON-able description of the deterministic (eval) preprocessing, for export metadata.

    Keys: preset, size [H, W], channels, invert, fit, pad (fit == "pad"), pad_fill, resample,
    mean and std (per channel). Rebuild the transform with
    `get_transform(spec["preset"], False, tuple(spec["size"]), spec["channels"])`.
    """
    p = resolve_preset(preset, image_size, channels)
    return {
        "preset": p.name,
        "size": list(p.image_size),
        "channels": p.channels,
        "remove_background": "otsu" if p.remove_background else None,
        "invert": p.invert,
        "fit": p.fit,
        "pad": p.fit == "pad",
        "pad_fill": "median of border pixels",
        "resample": "bilinear",
        "mean": [p.mean] * p.channels,
        "std": [p.std] * p.channels,
    }

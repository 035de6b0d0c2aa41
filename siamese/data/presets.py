"""Per-domain presets: one object per kind of data holding its image geometry, preprocessing,
augmentation, self-supervised view augmentation (`Preset.view_augment`) and the training
defaults it brings (`Preset.training`).

The transforms a preset describes are built by `siamese.data.transforms.get_transform` and, for
self-supervised views, `siamese.data.views.ssl_transform`.
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
CONVERT = "colour to grayscale by ITU-R 601-2 luma; grayscale to colour by replicating the channel"
"""How an image reaches a model's channels (`siamese.data.images.to_mode`): either kind of model
embeds either kind of image."""


@dataclass(frozen=True)
class ViewAugment:
    """The stronger augmentation that makes the views of self-supervised learning.

    Applied after the preset's preprocessing (`siamese.data.views.ssl_transform`), in this order:
    random resized crop, horizontal flip (only when the preset's `hflip` allows it), affine,
    Gaussian blur, brightness/contrast jitter, random erasing. The defaults are the face preset's
    recipe, SimCLR's without colour and scaled to small grayscale images, also fit for custom
    presets: crops of 50-100% (a face fills the frame, so half of it still shows eyes, nose and
    mouth), +/-10 deg rotation, blur p 0.5 up to 1 px at 56x46 (SimCLR's sigma <= 2 px at 224 px
    is ~1% of the side), jitter 0.4 (SimCLR's 0.8 x its CIFAR strength 0.5), erasing p 0.25
    (half the supervised face preset's, as the crops already hide parts).

    Attributes:
        crop_scale: area range of the random resized crop, as a fraction of the fitted image.
        crop_ratio: range of the crop's aspect ratio relative to the image's own (log-uniform), so
            (1, 1) crops without distorting.
        degrees: random rotation range (+/- degrees).
        translate: random shift range as a fraction of width/height.
        shear: random shear range (+/- degrees, horizontal).
        blur: probability of a Gaussian blur.
        blur_sigma: range of the blur's standard deviation, in pixels of the output image.
        brightness: jitter strength (factor uniform in [1 - b, 1 + b]; 0 disables).
        contrast: jitter strength (factor uniform in [1 - c, 1 + c]; 0 disables).
        erase: probability of random erasing (one rectangle of 2-20% of the image).
        local_scale: area range of the small crops of multi-crop (SwAV), at their smaller size.
    """

    crop_scale: tuple[float, float] = (0.5, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    degrees: float = 10.0
    translate: float = 0.0
    shear: float = 0.0
    blur: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 1.0)
    brightness: float = 0.4
    contrast: float = 0.4
    erase: float = 0.25
    local_scale: tuple[float, float] = (0.2, 0.5)

    def __post_init__(self) -> None:
        for name in ("crop_scale", "local_scale"):
            lo, hi = getattr(self, name)
            if not 0.0 < lo <= hi <= 1.0:
                raise ConfigError(f"{name} must satisfy 0 < low <= high <= 1, got {(lo, hi)}")
        if not 0.0 < self.crop_ratio[0] <= self.crop_ratio[1]:
            raise ConfigError(f"crop_ratio must satisfy 0 < low <= high, got {self.crop_ratio}")
        if not 0.0 <= self.blur_sigma[0] <= self.blur_sigma[1]:
            raise ConfigError(f"blur_sigma must satisfy 0 <= low <= high, got {self.blur_sigma}")
        for name in ("blur", "erase", "brightness", "contrast", "translate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.degrees < 0 or self.shear < 0:
            raise ConfigError(f"degrees and shear must be non-negative, got {self.degrees}, {self.shear}")

    def scaled(self, strength: float) -> ViewAugment:
        """These settings with every magnitude, and the blur and erasing probabilities, times
        `strength` (crop ranges move towards the whole image, probabilities and jitter are capped
        at 1, the smallest crop at 5% of the area); 0 leaves only the preset's flips.

        Raises:
            ConfigError: negative strength.
        """
        if strength < 0:
            raise ConfigError(f"strength must be non-negative, got {strength}")

        def towards_whole(lo: float, hi: float) -> tuple[float, float]:
            return max(0.05, 1.0 - strength * (1.0 - lo)), max(0.05, 1.0 - strength * (1.0 - hi))

        return replace(
            self,
            crop_scale=towards_whole(*self.crop_scale),
            crop_ratio=(self.crop_ratio[0] ** strength, self.crop_ratio[1] ** strength),
            degrees=self.degrees * strength,
            translate=min(1.0, self.translate * strength),
            shear=self.shear * strength,
            blur=min(1.0, self.blur * strength),
            brightness=min(1.0, self.brightness * strength),
            contrast=min(1.0, self.contrast * strength),
            erase=min(1.0, self.erase * strength),
        )


@dataclass(frozen=True)
class Preset:
    """Image geometry, preprocessing and augmentation for one kind of data.

    Attributes:
        name: key in `PRESETS`.
        image_size: output (H, W).
        channels: 1 (grayscale) or 3 (RGB).
        description: what the preset is for and what it does.
        crop: share of each side kept by a centre crop before fitting (1 keeps the whole image;
            0.5 keeps the middle quarter of the area, e.g. the face of an LFW photo).
        fit: how an image of another aspect ratio reaches `image_size`: "pad", "crop" or "stretch".
        remove_background: set every pixel brighter than the image's Otsu threshold to pure white
            before anything else, so paper tone and scanner differences carry no signal (SigNet).
        invert: invert intensities (255 - x) after background removal.
        trim: crop to the ink, the box of the pixels that background removal left (the outermost
            0.5% of them on each side ignored as specks), framed by a 2% border of background
            (at least 1 px), before fitting; needs
            `remove_background`. A signature then fills the input whatever its place and size on
            the page.
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
        view_augment: the self-supervised view augmentation (`siamese.data.views.ssl_transform`).
        training: training options this preset brings, keyed by `siamese.training.build_train_config`'s
            flat option names (`epochs`, `loss`, `encoder_kwargs`, ...; a loss's or a method's own
            options under `loss_options`/`method_options`); an option the user passes always wins.
        pretraining: options that replace `training`'s for self-supervised pretraining
            (`siamese pretrain`), e.g. a smaller input and a larger batch; the user's still win.
        method_pretraining: per self-supervised method, options over `pretraining`'s for that
            method only (e.g. a smaller batch for BYOL, which has no negatives to gain from a large one).
    """

    name: str
    image_size: tuple[int, int]
    channels: int
    description: str
    crop: float = 1.0
    fit: str = "pad"
    remove_background: bool = False
    invert: bool = False
    trim: bool = False
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
    view_augment: ViewAugment = field(default_factory=ViewAugment)
    training: Mapping[str, Any] = field(default_factory=dict)
    pretraining: Mapping[str, Any] = field(default_factory=dict)
    method_pretraining: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 < self.crop <= 1.0:
            raise ValueError(f"preset {self.name}: crop must be in (0, 1], got {self.crop}")
        if self.trim and not self.remove_background:
            raise ValueError(f"preset {self.name}: trim needs remove_background (a uniform background)")
        object.__setattr__(self, "training", MappingProxyType(dict(self.training)))
        object.__setattr__(self, "pretraining", MappingProxyType(dict(self.pretraining)))
        unknown = sorted(set(self.method_pretraining) - set(names.SSL_METHODS))
        if unknown:
            raise ValueError(f"preset {self.name}: method_pretraining for unknown methods {unknown}")
        per_method = {m: MappingProxyType(dict(o)) for m, o in self.method_pretraining.items()}
        object.__setattr__(self, "method_pretraining", MappingProxyType(per_method))

    def pretraining_for(self, method: str) -> dict[str, Any]:
        """The options this preset brings to pretraining with `method` (over `training`'s)."""
        return {**self.pretraining, **self.method_pretraining.get(method, {})}


# Signatures, digits and characters: crops milder than the faces' (a crop of 70% still holds the
# character or most of the signature; a writer's style is in the whole stroke sequence), aspect
# nearly kept, more rotation and a shear for the slant that varies in handwriting, blur under
# 1 px (1-2 px strokes at 32-64 px wash out beyond), weaker jitter; erasing as a missing stroke part.
_HANDWRITING_VIEWS = ViewAugment(
    crop_scale=(0.7, 1.0),
    crop_ratio=(0.8, 1.25),
    degrees=15.0,
    shear=10.0,
    blur_sigma=(0.1, 0.8),
    brightness=0.3,
    contrast=0.3,
    local_scale=(0.3, 0.6),
)

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
        erase=0.5,
        view_augment=ViewAugment(),  # the defaults: SimCLR's recipe without colour
        training={
            # How each preset's values were chosen, with the measurements: docs/presets.md
            "loss": "arcface",
            "select": "last",  # 6-8 validation people: their per-epoch EER is too noisy to pick an epoch
            "epochs": 30,
            "embedding_dim": 128,
            "batch_size": 32,
            "encoder_kwargs": {"grid": 3, "dropout": 0.5},
        },
    ),
    "face-wild": Preset(
        name="face-wild",
        image_size=(64, 64),
        channels=3,
        description=(
            "Face photos in the wild, aligned or funneled (LFW-like: 250x250 colour, the face in the "
            "middle): colour, a centre crop of half the side (the face, without the background), "
            "resized to 64x64; training adds horizontal flips, a small affine (+/-5 deg, +/-4% "
            "shift, 0.95-1.05 zoom), brightness/contrast jitter 0.2 and random erasing (p 0.25)."
        ),
        crop=0.5,
        fit="crop",
        hflip=True,
        degrees=5.0,
        translate=0.04,
        scale=(0.95, 1.05),
        brightness=0.2,
        contrast=0.2,
        erase=0.25,
        view_augment=ViewAugment(),
        training={
            # Chosen on LFW's View 1 (docs/presets.md): SupCon 86.9% against ArcFace 70.1% in 5 min
            "loss": "supcon",
            "epochs": 9,  # about 5 min on a 2-core CPU for the 9k LFW images of people with 2+ images
            "embedding_dim": 128,
            "batch_size": 64,
            "encoder_kwargs": {"width": 32, "stem_stride": 1, "grid": 2, "dropout": 0.2},
        },
    ),
    "signature": Preset(
        name="signature",
        image_size=(112, 304),
        channels=1,
        description=(
            "Offline signatures (dark ink on white paper): grayscale, background above the Otsu "
            "threshold set to white (scan tone carries no signal), inverted so ink is bright on "
            "black, cropped to the ink (stray specks ignored, 2% margin), padded with the background "
            "to H:W = 112:304 (signatures are wide) and resized to 112x304; training adds a small "
            "affine (+/-5 deg, +/-3% shift, 0.95-1.05 zoom, +/-5 deg shear). No flips "
            "(handwriting is not mirror-symmetric)."
        ),
        fit="pad",
        remove_background=True,
        invert=True,
        trim=True,
        degrees=5.0,
        translate=0.03,
        scale=(0.95, 1.05),
        shear=5.0,
        # Handwriting with less rotation (signatures sit on a line) and blur up to 1.5 px for the
        # 2-4 px strokes. The background is black after inversion, so brightness and contrast
        # mostly change the ink's intensity.
        view_augment=replace(_HANDWRITING_VIEWS, degrees=5.0, blur_sigma=(0.1, 1.5)),
        training={
            # Chosen on CEDAR's 5 folds and a BHSig260-Hindi 100/60 split together (docs/presets.md)
            "loss": "supcon",
            "epochs": 15,
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
        view_augment=_HANDWRITING_VIEWS,
        training={
            "epochs": 8,
            "embedding_dim": 64,
            "batch_size": 64,
            "m_per_class": 16,  # only 6 training digits: 4 per batch
            "encoder_kwargs": {"grid": 2},
        },
        # `siamese pretrain` without DATA: a quick first run
        pretraining={"epochs": 3},
    ),
    "glyphs": Preset(
        name="glyphs",
        image_size=(32, 32),
        channels=1,
        description=(
            "The embedded characters of `siamese train` without DATA (`siamese.data.glyphs`: "
            "characters rendered from bundled fonts, bright ink on black, 32x32): 1 channel, padded "
            "to square; training adds a small affine (+/-10 deg, +/-5% shift, 0.9-1.1 zoom, +/-10 deg "
            "shear). No flips."
        ),
        fit="pad",
        degrees=10.0,
        translate=0.05,
        scale=(0.9, 1.1),
        shear=10.0,
        view_augment=_HANDWRITING_VIEWS,
        training={
            "loss": "supcon",
            "epochs": 8,
            "embedding_dim": 64,
            "batch_size": 64,
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
        # Handwriting with somewhat smaller crops (the strokes span the 105x105 frame) of freer aspect.
        view_augment=replace(_HANDWRITING_VIEWS, crop_scale=(0.6, 1.0), crop_ratio=(3 / 4, 4 / 3)),
        training={
            "loss": "supcon",
            "epochs": 12,  # 4 rotations: an epoch is 4x the images
            "embedding_dim": 128,
            "batch_size": 64,
            "encoder_kwargs": {"grid": 3},  # pooling that keeps where the strokes are
            "rotations": 4,  # each quarter turn as a new character
        },
        # Pretraining sees every image in two views per step: 28x28 (as classic few-shot Omniglot)
        # is ~5x cheaper than 64x64, and large batches give NT-Xent/InfoNCE enough negatives.
        pretraining={"image_size": (28, 28), "batch_size": 256},
        # BYOL has no negatives to gain from a large batch: a smaller one gives more steps, and over
        # so few steps a target that follows faster (still rising to 1 by the cosine schedule)
        # learns more.
        method_pretraining={"byol": {"batch_size": 64, "method_options": {"momentum": 0.92}}},
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

    Keys: preset, size [H, W], channels, convert (how images of the other kind reach `channels`),
    remove_background, invert, trim (crop to the ink), crop (centre crop, share of each side), fit,
    pad (fit == "pad"), pad_fill, resample, mean and std (per channel). Rebuild the transform with
    `get_transform(spec["preset"], False, tuple(spec["size"]), spec["channels"])`.
    """
    p = resolve_preset(preset, image_size, channels)
    return {
        "preset": p.name,
        "size": list(p.image_size),
        "channels": p.channels,
        "convert": CONVERT,
        "remove_background": "otsu" if p.remove_background else None,
        "invert": p.invert,
        "trim": p.trim,
        "crop": p.crop,
        "fit": p.fit,
        "pad": p.fit == "pad",
        "pad_fill": "median of border pixels",
        "resample": "bilinear",
        "mean": [p.mean] * p.channels,
        "std": [p.std] * p.channels,
    }

"""The transforms of a preset: PIL image in, normalised float tensor (C, H, W) out.

Every transform maps a Pillow image to a float tensor (C, H, W) normalised with `(x - mean) / std`
(mean = std = 0.5 per channel, so pixel values land in [-1, 1]). Steps, in order:

1. convert to "L" or "RGB" (`channels`);
2. signatures only: background removal, inversion (ink becomes bright on black), crop to the ink (`trim`);
3. centre crop (`crop` < 1: faces in the wild keep the middle of the photo), then fit to (H, W):
   "crop" = aspect-preserving resize then centre crop, "pad" = aspect-preserving resize then pad
   with the background colour (median of the border pixels), "stretch" = resize;
4. training only: horizontal flip, random affine (its empty corners filled with the background
   colour too), brightness/contrast jitter, as enabled by the preset;
5. to float tensor in [0, 1], then normalise; training only: random erasing (value 0, mid-grey).

`siamese.data.views.ssl_transform` builds the stronger self-supervised pipeline of a preset from
the same steps plus `RandomResizedCrop` and `RandomGaussianBlur`.

The evaluation transform is steps 1-3 and 5: deterministic. Random steps are `Seedable`: called
as `step(x, generator)` they draw from that `torch.Generator`, called as `step(x)` (or with None)
from torch's global generator, as all torchvision transforms do (seed it, and DataLoader workers
get distinct seeds from it). A `Compose` passes its generator on to its `Seedable` steps, so one
generator makes a whole pipeline reproducible (`siamese.data.views` seeds one per item).

torchvision is imported only by the random affine, at its first call (it costs about two seconds).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps

from siamese.data.images import to_mode
from siamese.data.presets import Preset, resolve_preset


class Seedable:
    """A transform step that draws its randomness from the generator it is called with:
    `step(x, generator)`, torch's global generator when `generator` is None."""

    def __call__(self, x: Any, generator: torch.Generator | None = None) -> Any:
        raise NotImplementedError


def call_seeded(transform: Callable, x: Any, generator: torch.Generator | None) -> Any:
    """`transform(x, generator)` for a `Seedable` transform, else `transform(x)` (global generator)."""
    return transform(x, generator) if isinstance(transform, Seedable) else transform(x)


def background_colour(img: Image.Image) -> int | tuple[int, ...]:
    """Median of the border pixels (per channel): the colour used for padding and affine fill."""
    arr = np.asarray(img)  # (H, W) or (H, W, C)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    border = np.sort(np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]]), axis=0)  # (2W + 2H, C)
    mid = len(border) // 2  # np.median's value, without its overhead (a call per training sample)
    middle = border[mid].astype(np.float64) if len(border) % 2 else (border[mid - 1] / 2 + border[mid] / 2)
    median = [int(v) for v in middle]
    return median[0] if len(median) == 1 else tuple(median)


class Deterministic:
    """A preprocessing step that draws no randomness: it maps an image to the same output every
    time, so `Compose.prepare` (the leading run of such steps) may be computed once per image and
    kept (`siamese.data.datasets.load_transformed` with a caching loader)."""

    def __call__(self, img: Any) -> Any:
        raise NotImplementedError

    def key(self) -> tuple[str, str]:
        """What identifies the step's behaviour: its class and settings."""
        return type(self).__name__, repr(sorted(vars(self).items()))


class _ToMode(Deterministic):
    def __init__(self, channels: int) -> None:
        self.channels = channels

    def __call__(self, img: Image.Image) -> Image.Image:
        return to_mode(img, self.channels)


def otsu_threshold(gray: np.ndarray) -> int:
    """Otsu's threshold of an 8-bit image: the level maximising the between-class variance."""
    hist = np.bincount(gray.ravel(), minlength=256).astype(np.float64)
    levels = np.arange(256)
    w0 = np.cumsum(hist)  # pixels at or below each level
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * levels)
    valid = (w0 > 0) & (w1 > 0)
    if not valid.any():  # a single grey level: nothing to separate
        return 255
    with np.errstate(divide="ignore", invalid="ignore"):
        between = w0 * w1 * (m0 / w0 - (m0[-1] - m0) / w1) ** 2
    return int(np.argmax(np.where(valid, between, -1.0)))


class _RemoveBackground(Deterministic):
    """Pixels brighter than the Otsu threshold become white (grayscale images)."""

    def __call__(self, img: Image.Image) -> Image.Image:
        arr = np.asarray(img.convert("L"))
        out = arr.copy()
        out[arr > otsu_threshold(arr)] = 255
        return Image.fromarray(out, mode="L").convert(img.mode)


class _Invert(Deterministic):
    def __call__(self, img: Image.Image) -> Image.Image:
        return ImageOps.invert(img)


class _TrimToInk(Deterministic):
    """Crop to the box of the pixels that differ from the (uniform) background, ignoring the
    outermost `outlier` share of them on each side (specks), and surround it with a border of
    background of `margin` of each side (at least 1 px), so that padding and affine fills that
    take the border's colour keep taking the background's."""

    def __init__(self, outlier: float = 0.005, margin: float = 0.02) -> None:
        self.outlier = outlier
        self.margin = margin

    def __call__(self, img: Image.Image) -> Image.Image:
        grey = img.convert("L")
        background = background_colour(grey)
        rows, cols = np.nonzero(np.asarray(grey) != background)
        if len(rows) == 0:
            return img  # a blank page: nothing to crop to
        q = (self.outlier, 1.0 - self.outlier)
        top, bottom = np.quantile(rows, q).round().astype(int)
        left, right = np.quantile(cols, q).round().astype(int)
        ink = img.crop((int(left), int(top), int(right) + 1, int(bottom) + 1))
        border = (max(1, round(self.margin * ink.width)), max(1, round(self.margin * ink.height)))
        fill = background if img.mode == "L" else background_colour(img)  # colour: per channel
        return ImageOps.expand(ink, border=border, fill=fill)


class _CentreCrop(Deterministic):
    """Keep the middle `share` of each side (rounded to whole pixels, at least one)."""

    def __init__(self, share: float) -> None:
        self.share = share

    def __call__(self, img: Image.Image) -> Image.Image:
        w, h = max(1, round(img.width * self.share)), max(1, round(img.height * self.share))
        left, top = (img.width - w) // 2, (img.height - h) // 2
        return img.crop((left, top, left + w, top + h))


class _Fit(Deterministic):
    """Bring an image to (H, W) by padding with its background colour, centre-cropping or stretching."""

    def __init__(self, size: tuple[int, int], fit: str) -> None:
        self.size = size
        self.fit = fit

    def __call__(self, img: Image.Image) -> Image.Image:
        h, w = self.size
        if img.size == (w, h):
            return img
        if self.fit == "crop":
            return ImageOps.fit(img, (w, h), method=Image.Resampling.BILINEAR)
        if self.fit == "pad":
            return ImageOps.pad(img, (w, h), method=Image.Resampling.BILINEAR, color=background_colour(img))
        return img.resize((w, h), Image.Resampling.BILINEAR)


class RandomAffine(Seedable):
    """Random rotation/shift/zoom/shear whose uncovered corners take the image's background colour."""

    def __init__(self, degrees: float, translate: float, scale: tuple[float, float], shear: float) -> None:
        self.degrees = degrees
        self.translate = translate
        self.scale = scale
        self.shear = shear

    def __call__(self, img: Image.Image, generator: torch.Generator | None = None) -> Image.Image:
        from torchvision.transforms.v2 import InterpolationMode
        from torchvision.transforms.v2 import functional as F

        u = torch.rand(5, generator=generator).tolist()  # uniform [0, 1) draws
        angle = (2 * u[0] - 1) * self.degrees
        tx = round((2 * u[1] - 1) * self.translate * img.width)
        ty = round((2 * u[2] - 1) * self.translate * img.height)
        zoom = self.scale[0] + u[3] * (self.scale[1] - self.scale[0])
        shear = (2 * u[4] - 1) * self.shear
        return F.affine(
            img,
            angle=angle,
            translate=[tx, ty],
            scale=zoom,
            shear=[shear, 0.0],
            interpolation=InterpolationMode.BILINEAR,
            fill=background_colour(img),
        )


def get_transform(
    preset: str | Preset,
    train: bool,
    image_size: tuple[int, int] | None = None,
    channels: int | None = None,
) -> Callable[[Image.Image], torch.Tensor]:
    """Build the PIL image -> normalised float tensor (C, H, W) transform of a preset.

    Args:
        preset: a name in `PRESETS` or a `Preset`.
        train: add the preset's random augmentations; False gives the deterministic eval transform.
        image_size: (H, W) overriding the preset's size.
        channels: 1 or 3, overriding the preset's channels.

    Raises:
        ConfigError: unknown preset, bad size or channels.
    """
    p = resolve_preset(preset, image_size, channels)
    if not train:  # torchvision-free, so inference (`siamese verify`) never imports it
        return build_pipeline(p)
    augment: list[Callable] = [RandomHFlip()] if p.hflip else []
    if p.degrees or p.translate or p.shear or p.scale != (1.0, 1.0):
        augment.append(RandomAffine(p.degrees, p.translate, p.scale, p.shear))
    return build_pipeline(p, augment, p.brightness, p.contrast, p.erase)


def preprocess_steps(p: Preset) -> list[Callable]:
    """Steps 1-3 of a resolved preset: to mode, background removal, inversion, crop to the ink,
    centre crop, fit to (H, W)."""
    steps: list[Callable] = [_ToMode(p.channels)]
    if p.remove_background:
        steps.append(_RemoveBackground())
    if p.invert:
        steps.append(_Invert())
    if p.trim:
        steps.append(_TrimToInk())
    if p.crop < 1.0:
        steps.append(_CentreCrop(p.crop))
    steps.append(_Fit(p.image_size, p.fit))
    return steps


def build_pipeline(
    p: Preset,
    augment: Sequence[Callable] = (),
    brightness: float = 0.0,
    contrast: float = 0.0,
    erase: float = 0.0,
) -> Compose:
    """A resolved preset's preprocessing, then the Pillow steps `augment`, then the normalised
    tensor with brightness/contrast jitter (0 disables), then random erasing with probability `erase`.

    With the defaults this is the deterministic evaluation transform.
    """
    jitter = _BrightnessContrast(brightness, contrast) if brightness or contrast else None
    steps: list[Callable] = [*preprocess_steps(p), *augment, _ToNormalizedTensor(p.mean, p.std, jitter)]
    if erase:
        steps.append(_RandomErase(erase))
    return Compose(steps)


class Compose(Seedable):
    """Apply steps in order (torchvision's Compose without importing torchvision); `Seedable`
    steps draw from the generator the pipeline is called with.

    `t(img, g) == t.finish(t.prepare(img), g)`: `prepare` runs the leading `Deterministic` steps
    (the preset's preprocessing), `finish` the rest, so a caller may keep prepared images;
    `prepare_key` identifies what `prepare` does.
    """

    def __init__(self, steps: list[Callable]) -> None:
        self.steps = steps
        self.prepare_steps: list[Deterministic] = []
        for step in steps:
            if not isinstance(step, Deterministic):
                break
            self.prepare_steps.append(step)
        self.finish_steps = steps[len(self.prepare_steps) :]
        self.prepare_key = tuple(step.key() for step in self.prepare_steps)

    def prepare(self, img: Image.Image) -> Any:
        """The leading deterministic steps."""
        x: Any = img
        for step in self.prepare_steps:
            x = step(x)
        return x

    def finish(self, x: Any, generator: torch.Generator | None = None) -> Any:
        """The remaining steps, on a prepared image (left unmodified)."""
        for step in self.finish_steps:
            x = call_seeded(step, x, generator)
        return x

    def __call__(self, img: Image.Image, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.finish(self.prepare(img), generator)


class _ToNormalizedTensor(Seedable):
    """8-bit PIL image -> float array in [0, 1] (-> `jitter`) -> (x - mean) / std as a tensor (C, H, W)."""

    def __init__(
        self, mean: float, std: float, jitter: Callable[[np.ndarray], np.ndarray] | None = None
    ) -> None:
        self.mean = mean
        self.std = std
        self.jitter = jitter

    def __call__(self, img: Image.Image, generator: torch.Generator | None = None) -> torch.Tensor:
        arr = np.asarray(img, dtype=np.float32) / 255.0  # (H, W) or (H, W, C)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if self.jitter is not None:
            arr = call_seeded(self.jitter, arr, generator)
        arr = (arr - self.mean) / self.std  # in NumPy: torch would use its thread pool for big images
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))  # (C, H, W)


# The training augmentations below are NumPy/Pillow versions of torchvision's RandomHorizontalFlip,
# ColorJitter(brightness, contrast) and RandomErasing with the same formulas and draws from torch's
# global generator; on the small images of the presets torchvision's per-call dispatch cost more than
# the arithmetic (ORL faces: 120 us of 320 us of loading per image, the training loop's overhead).


class RandomHFlip(Seedable):
    """Mirror left-right with probability 1/2."""

    def __call__(self, img: Image.Image, generator: torch.Generator | None = None) -> Image.Image:
        return ImageOps.mirror(img) if torch.rand(1, generator=generator).item() < 0.5 else img


LUMA = np.array([0.2989, 0.587, 0.114], np.float32)  # ITU-R 601-2 luma, as torchvision's grayscale


def adjust_brightness_contrast(
    arr: np.ndarray, brightness: float, contrast: float, contrast_first: bool
) -> np.ndarray:
    """torchvision's `adjust_brightness` / `adjust_contrast` on a float (H, W, C) array in [0, 1].

    Brightness scales towards black: `clip(b * x)`; contrast blends with the mean grey level of the
    image: `clip(c * x + (1 - c) * mean(gray(x)))`.
    """

    def bright(a: np.ndarray) -> np.ndarray:
        return np.clip(a * brightness, 0.0, 1.0)

    def contr(a: np.ndarray) -> np.ndarray:
        mean = float(a.mean()) if a.shape[2] == 1 else float((a @ LUMA).mean())
        return np.clip(contrast * a + (1.0 - contrast) * mean, 0.0, 1.0)

    return bright(contr(arr)) if contrast_first else contr(bright(arr))


class _BrightnessContrast(Seedable):
    """ColorJitter(b, c): factors uniform in [1 - b, 1 + b] and [1 - c, 1 + c], applied in random order."""

    def __init__(self, brightness: float, contrast: float) -> None:
        self.brightness = brightness
        self.contrast = contrast

    def __call__(self, arr: np.ndarray, generator: torch.Generator | None = None) -> np.ndarray:
        u = torch.rand(3, generator=generator).tolist()
        b = 1.0 + (2 * u[0] - 1) * self.brightness
        c = 1.0 + (2 * u[1] - 1) * self.contrast
        return adjust_brightness_contrast(arr, b, c, contrast_first=u[2] < 0.5)


def sample_box(
    height: int,
    width: int,
    u: list[float],
    scale: tuple[float, float],
    ratio: tuple[float, float],
    relative: bool = False,
    whole: bool = False,
) -> tuple[int, int, int, int] | None:
    """A random rectangle (top, left, h, w) from uniform draws `u` (4 per attempt).

    Area uniform in `scale` of the image, aspect ratio h/w log-uniform in `ratio` (times the
    image's own h/w when `relative`); an attempt whose box does not fit is retried; None when no
    attempt fits. A box fits when it is strictly smaller than the image in both directions, or
    no larger when `whole`.
    """
    area = height * width
    log_lo, log_hi = np.log(ratio[0]), np.log(ratio[1])
    base = height / width if relative else 1.0
    max_h, max_w = (height, width) if whole else (height - 1, width - 1)
    for k in range(0, len(u) - 3, 4):
        target = area * (scale[0] + u[k] * (scale[1] - scale[0]))
        aspect = base * float(np.exp(log_lo + u[k + 1] * (log_hi - log_lo)))
        h, w = int(round(np.sqrt(target * aspect))), int(round(np.sqrt(target / aspect)))
        if 0 < h <= max_h and 0 < w <= max_w:
            top = int(u[k + 2] * (height - h + 1))
            left = int(u[k + 3] * (width - w + 1))
            return top, left, h, w
    return None


def erase_box(
    height: int,
    width: int,
    u: list[float],
    scale: tuple[float, float] = (0.02, 0.2),
    ratio: tuple[float, float] = (0.3, 3.3),
) -> tuple[int, int, int, int] | None:
    """RandomErasing's rectangle (top, left, h, w) from uniform draws `u` (4 per attempt): a
    `sample_box` strictly inside the image, its aspect ratio absolute."""
    return sample_box(height, width, u, scale, ratio)


class _RandomErase(Seedable):
    """With probability `p`, set one random rectangle of the normalised tensor to 0 (mid-grey)."""

    def __init__(self, p: float) -> None:
        self.p = p

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        # 1 draw for p, 4 per attempt for 10 attempts, as torchvision
        u = torch.rand(41, generator=generator).tolist()
        if u[0] >= self.p:
            return x
        box = erase_box(x.shape[-2], x.shape[-1], u[1:])
        if box is not None:
            top, left, h, w = box
            x[..., top : top + h, left : left + w] = 0.0
        return x


class RandomResizedCrop(Seedable):
    """torchvision's RandomResizedCrop with the aspect ratio relative to the image's own.

    A box of `scale` of the image's area, its h/w the image's times a factor log-uniform in
    `ratio`, is resized to `size` (H, W); after 10 attempts that do not fit, the whole image.
    scale = ratio = (1, 1) keeps the whole image (unchanged when it already has `size`).
    """

    def __init__(self, size: tuple[int, int], scale: tuple[float, float], ratio: tuple[float, float]) -> None:
        self.size = size
        self.scale = scale
        self.ratio = ratio

    def __call__(self, img: Image.Image, generator: torch.Generator | None = None) -> Image.Image:
        u = torch.rand(40, generator=generator).tolist()  # 4 per attempt, 10 attempts
        box = sample_box(img.height, img.width, u, self.scale, self.ratio, relative=True, whole=True)
        top, left, h, w = box if box is not None else (0, 0, img.height, img.width)
        out_h, out_w = self.size
        return img.resize((out_w, out_h), Image.Resampling.BILINEAR, box=(left, top, left + w, top + h))


class RandomGaussianBlur(Seedable):
    """With probability `p`, a Gaussian blur whose standard deviation (pixels) is uniform in `sigma`."""

    def __init__(self, p: float, sigma: tuple[float, float]) -> None:
        self.p = p
        self.sigma = sigma

    def __call__(self, img: Image.Image, generator: torch.Generator | None = None) -> Image.Image:
        u = torch.rand(2, generator=generator).tolist()
        if u[0] >= self.p:
            return img
        sigma = self.sigma[0] + u[1] * (self.sigma[1] - self.sigma[0])
        return img.filter(ImageFilter.GaussianBlur(sigma))  # Pillow's radius is the standard deviation

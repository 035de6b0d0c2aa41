"""A preset's view augmentation on a whole batch at once, vectorised in torch.

`ssl_transform`'s per-image Pillow pipeline costs ~0.7 ms per view on the small images of the
presets, about half of a self-supervised epoch on 2 cores. `BatchViews` draws the same random
parameters (same distributions, same uniform draws per item and view) and applies them to a
batch of prepared images in a few tensor operations, on any device:

1. random resized crop, horizontal flip and affine (rotation, shift, shear) composed into one
   affine map per view and sampled bilinearly (`torch.nn.functional.grid_sample`), the uncovered
   corners taking the image's background colour;
2. Gaussian blur with a per-view standard deviation (separable, edges replicated);
3. brightness/contrast jitter in a random order per view;
4. normalisation ((x - mean) / std), then random erasing (a rectangle set to 0).

Differences from the Pillow pipeline, none of them in the distributions drawn from: no rounding
to 8 bits between steps, Pillow's blur is an extended box filter and this one an exact Gaussian,
and the affine fill is the prepared image's background colour rather than the crop's.

Item i draws `draws_per_view` uniforms for each of its views from its own generator (as
`MultiViewDataset` seeds it), so its views depend neither on the batch it falls in nor on the
access order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from siamese.data.presets import Preset, ViewAugment, resolve_preset
from siamese.data.transforms import LUMA, Compose, background_colour, preprocess_steps
from siamese.errors import ConfigError

# Uniform draws per view, in this order (the per-image transforms draw as many for each step).
_CROP, _FLIP, _AFFINE, _BLUR, _JITTER, _ERASE = 40, 1, 5, 2, 3, 41
DRAWS_PER_VIEW = _CROP + _FLIP + _AFFINE + _BLUR + _JITTER + _ERASE


def sample_boxes(
    height: int,
    width: int,
    u: torch.Tensor,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    relative: bool = False,
    whole: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`siamese.data.transforms.sample_box` for a batch: u (N, 4A) -> boxes (N, 4) and found (N,).

    Rows of `boxes` are (top, left, h, w) as floats holding integers, the first attempt that
    fits; where no attempt fits (`found` False) the row is the whole image.
    """
    u = u.double().reshape(len(u), -1, 4)  # (N, A, 4)
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    base = height / width if relative else 1.0
    target = height * width * (scale[0] + u[..., 0] * (scale[1] - scale[0]))  # (N, A)
    aspect = base * torch.exp(lo + u[..., 1] * (hi - lo))
    h = torch.round(torch.sqrt(target * aspect))
    w = torch.round(torch.sqrt(target / aspect))
    max_h, max_w = (height, width) if whole else (height - 1, width - 1)
    fits = (h > 0) & (h <= max_h) & (w > 0) & (w <= max_w)  # (N, A)
    first = fits.double().argmax(1, keepdim=True)  # (N, 1): the first attempt that fits
    pick = lambda t: t.gather(1, first).squeeze(1)  # noqa: E731
    h, w = pick(h), pick(w)
    top = torch.floor(pick(u[..., 2]) * (height - h + 1))
    left = torch.floor(pick(u[..., 3]) * (width - w + 1))
    found = fits.any(1)
    whole_image = torch.tensor([0.0, 0.0, height, width], dtype=torch.float64)
    boxes = torch.where(found[:, None], torch.stack([top, left, h, w], 1), whole_image)
    return boxes, found


def check_crop_counts(n_global: int, n_local: int) -> None:
    """Multi-crop counts: at least one global crop, no negative number of local ones.

    Raises:
        ConfigError: n_global < 1 or n_local < 0.
    """
    if n_global < 1 or n_local < 0:
        raise ConfigError(f"need n_global >= 1 and n_local >= 0, got {n_global} and {n_local}")


def local_crop_size(p: Preset, local_size: tuple[int, int] | int | None) -> tuple[int, int]:
    """The validated (H, W) of multi-crop's small crops: `local_size` (an int for a square), by
    default half the preset's size rounded up.

    Raises:
        ConfigError: a bad size.
    """
    h, w = p.image_size
    size = local_size if local_size is not None else ((h + 1) // 2, (w + 1) // 2)
    return resolve_preset(p, size, None).image_size


class BatchViews:
    """The views of `ssl_transform` (or the crops of `multicrop_transform`) for a batch.

    `prepare(img)` is the preset's preprocessing of one image, kept per image by the dataset:
    an 8-bit tensor (C, H, W) and its background colour. `finish_batch(prepared, draws)` makes
    every view: a (B, V, C, H, W) tensor, or with local crops a list of V batches (B, C, h, w),
    global crops first.

    Args:
        preset: a name in `PRESETS` or a `Preset`.
        image_size: global (H, W), overriding the preset's (an int for a square).
        channels: 1 or 3, overriding the preset's.
        strength: as `ssl_transform`.
        n_global: full-size views per image.
        n_local: small crops per image (multi-crop); 0 stacks the views in one tensor.
        local_size: (H, W) of the small crops; default half the global size (rounded up).
    """

    def __init__(
        self,
        preset: str | Preset,
        image_size: tuple[int, int] | int | None = None,
        channels: int | None = None,
        strength: float = 1.0,
        n_global: int = 2,
        n_local: int = 0,
        local_size: tuple[int, int] | int | None = None,
    ) -> None:
        check_crop_counts(n_global, n_local)
        p = resolve_preset(preset, image_size, channels)
        self.preset, self.n_global, self.n_local = p, int(n_global), int(n_local)
        self.augment: ViewAugment = p.view_augment.scaled(strength)
        self.local_size = local_crop_size(p, local_size)
        self.preprocess = Compose(preprocess_steps(p))
        self.prepare_key: tuple[Any, ...] = (*self.preprocess.prepare_key, ("BatchViews", "uint8"))

    @property
    def views(self) -> int:
        """Views per image, global and local."""
        return self.n_global + self.n_local

    def prepare(self, img: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
        """The preprocessed image as uint8 (C, H, W) and its background colour in [0, 1] (C,)."""
        x = self.preprocess.prepare(img)
        arr = np.array(x, dtype=np.uint8)
        arr = arr[:, :, None] if arr.ndim == 2 else arr  # (H, W, C)
        fill = np.atleast_1d(np.asarray(background_colour(x), dtype=np.float32)) / 255.0
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))), torch.from_numpy(fill)

    def draws(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """One item's uniform draws: (V, `DRAWS_PER_VIEW`)."""
        return torch.rand(self.views, DRAWS_PER_VIEW, generator=generator)

    def __call__(
        self, img: Image.Image, generator: torch.Generator | None = None
    ) -> torch.Tensor | list[torch.Tensor]:
        """The views of one image: (V, C, H, W), or a list of crops with local crops."""
        views = self.finish_batch([self.prepare(img)], self.draws(generator)[None])
        return [v[0] for v in views] if isinstance(views, list) else views[0]

    def finish_batch(
        self, prepared: Sequence[tuple[torch.Tensor, torch.Tensor]], draws: torch.Tensor
    ) -> torch.Tensor | list[torch.Tensor]:
        """The views of a batch of prepared images from their draws (B, V, `DRAWS_PER_VIEW`)."""
        images = torch.stack([x for x, _ in prepared]).float().div_(255.0)  # (B, C, H, W)
        fill = torch.stack([f for _, f in prepared])  # (B, C)
        return self.apply(images, fill, draws)

    def apply(
        self, images: torch.Tensor, fill: torch.Tensor, draws: torch.Tensor
    ) -> torch.Tensor | list[torch.Tensor]:
        """Views of float images in [0, 1] (B, C, H, W) with backgrounds (B, C), on their device."""
        g, crops = self.n_global, []
        for size, first, count in ((self.preset.image_size, 0, g), (self.local_size, g, self.n_local)):
            if count:
                u = draws[:, first : first + count]  # (B, n, K), any device
                crops.append(self._views(images, fill, u, size, local=first > 0))  # (B, n, C, h, w)
        if not self.n_local:
            return crops[0]
        return [c[:, j] for c in crops for j in range(c.shape[1])]

    def _views(
        self, images: torch.Tensor, fill: torch.Tensor, u: torch.Tensor, size: tuple[int, int], local: bool
    ) -> torch.Tensor:
        b, n, k = u.shape
        c, (oh, ow) = images.shape[1], size
        u = u.reshape(b * n, k)
        src = images.repeat_interleave(n, 0)  # (BN, C, H, W)
        bg = fill.repeat_interleave(n, 0)[:, :, None, None]  # (BN, C, 1, 1)
        theta = self._geometry(u.cpu(), images.shape[-2:], size, local).to(images)  # (BN, 2, 3)
        grid = F.affine_grid(theta, [b * n, c, oh, ow], align_corners=False)
        x = F.grid_sample(src - bg, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + bg
        a, o = self.augment, _CROP + _FLIP + _AFFINE
        if a.blur:
            x = gaussian_blur(x, u[:, o], u[:, o + 1], a.blur, a.blur_sigma)
        o += _BLUR
        if a.brightness or a.contrast:
            x = jitter(x, u[:, o : o + _JITTER], a.brightness, a.contrast)
        x = (x - self.preset.mean) / self.preset.std
        if a.erase:
            x = erase(x, u[:, o + _JITTER :], a.erase)
        return x.reshape(b, n, c, oh, ow)

    def _geometry(
        self, u: torch.Tensor, in_size: Sequence[int], out_size: tuple[int, int], local: bool
    ) -> torch.Tensor:
        """Per view, the affine map from output to input coordinates (normalised, as `affine_grid`;
        float64, on the CPU: u (N, K) there)."""
        a = self.augment
        (h, w), (oh, ow) = (int(in_size[0]), int(in_size[1])), out_size
        scale = self.preset.view_augment.local_scale if local else a.crop_scale
        boxes, _ = sample_boxes(h, w, u[:, :_CROP], scale, a.crop_ratio, relative=True, whole=True)
        top, left, bh, bw = boxes.unbind(1)
        u = u.double()
        flip = torch.where(u[:, _CROP] < 0.5, -1.0, 1.0) if self.preset.hflip else torch.ones_like(top)
        v = u[:, _CROP + _FLIP : _CROP + _FLIP + _AFFINE]
        angle = torch.deg2rad((2 * v[:, 0] - 1) * a.degrees)
        tx = torch.round((2 * v[:, 1] - 1) * a.translate * ow)
        ty = torch.round((2 * v[:, 2] - 1) * a.translate * oh)
        shear = torch.tan(torch.deg2rad((2 * v[:, 4] - 1) * a.shear))
        # forward affine about the centre: rotation @ shear (x += shear * y), then the shift
        cos, sin = torch.cos(angle), torch.sin(angle)
        m = torch.stack([cos, cos * shear - sin, sin, sin * shear + cos], 1).reshape(-1, 2, 2)
        inv = torch.linalg.inv(m)  # output pixel -> crop pixel (centred coordinates)
        inv[:, 0, :] = inv[:, 0, :] * flip[:, None]  # mirror the crop's x
        to_src = torch.stack([bw / ow, bh / oh], 1)  # crop pixel -> source pixel
        lin = inv * to_src[:, :, None]  # (N, 2, 2)
        centre = torch.stack([left + bw / 2 - w / 2, top + bh / 2 - h / 2], 1)  # (N, 2) source, centred
        shift = centre - (lin @ torch.stack([tx, ty], 1)[:, :, None]).squeeze(2)
        half_in = torch.tensor([w / 2, h / 2], dtype=torch.float64)
        half_out = torch.tensor([ow / 2, oh / 2], dtype=torch.float64)
        theta_lin = lin * half_out[None, None, :] / half_in[None, :, None]
        return torch.cat([theta_lin, (shift / half_in)[:, :, None]], 2)


def gaussian_blur(
    x: torch.Tensor, u_apply: torch.Tensor, u_sigma: torch.Tensor, p: float, sigma: tuple[float, float]
) -> torch.Tensor:
    """With probability `p` per image, a Gaussian blur of standard deviation uniform in `sigma`
    pixels (separable, edges replicated): x (N, C, H, W), draws (N,) each."""
    n, c, h, w = x.shape
    s = (sigma[0] + u_sigma * (sigma[1] - sigma[0])).to(x)  # (N,)
    r = max(1, math.ceil(3 * sigma[1]))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)  # (2r + 1,)
    kernel = torch.exp(-(t[None] ** 2) / (2 * s[:, None].clamp_min(1e-3) ** 2))
    delta = (t == 0).to(x.dtype).expand_as(kernel)
    kernel = torch.where((u_apply < p).to(x.device)[:, None], kernel / kernel.sum(1, keepdim=True), delta)
    kernel = kernel.repeat_interleave(c, 0)  # (N C, 2r + 1)
    y = F.pad(x.reshape(1, n * c, h, w), (r, r, r, r), mode="replicate")
    y = F.conv2d(y, kernel[:, None, None, :], groups=n * c)
    y = F.conv2d(y, kernel[:, None, :, None], groups=n * c)
    return y.reshape(n, c, h, w)


def jitter(x: torch.Tensor, u: torch.Tensor, brightness: float, contrast: float) -> torch.Tensor:
    """ColorJitter(brightness, contrast) per image, in random order: x (N, C, H, W) in [0, 1], u (N, 3).

    As `siamese.data.transforms.adjust_brightness_contrast`: brightness `clip(b x)`, contrast
    `clip(c x + (1 - c) mean(gray(x)))`.
    """
    u = u.to(x)
    b = (1.0 + (2 * u[:, 0] - 1) * brightness)[:, None, None, None]
    c = (1.0 + (2 * u[:, 1] - 1) * contrast)[:, None, None, None]

    def contr(a: torch.Tensor) -> torch.Tensor:
        gray = a if a.shape[1] == 1 else (a * a.new_tensor(LUMA)[None, :, None, None]).sum(1, keepdim=True)
        return (c * a + (1 - c) * gray.mean((1, 2, 3), keepdim=True)).clamp(0.0, 1.0)

    def bright(a: torch.Tensor) -> torch.Tensor:
        return (b * a).clamp(0.0, 1.0)

    contrast_first = (u[:, 2] < 0.5)[:, None, None, None]
    return torch.where(contrast_first, bright(contr(x)), contr(bright(x)))


def erase(x: torch.Tensor, u: torch.Tensor, p: float) -> torch.Tensor:
    """RandomErasing per image: with probability `p`, one rectangle (`erase_box`) set to 0.

    x (N, C, H, W), u (N, 41): one draw for `p`, then 4 per attempt for 10 attempts.
    """
    h, w = x.shape[-2:]
    boxes, found = sample_boxes(h, w, u[:, 1:].cpu(), (0.02, 0.2), (0.3, 3.3))
    top, left, bh, bw = boxes.to(x.device).unbind(1)  # (N,) each
    on = (found.to(x.device) & (u[:, 0].to(x.device) < p))[:, None, None]
    rows = torch.arange(h, device=x.device)[None, :, None]
    cols = torch.arange(w, device=x.device)[None, None, :]
    inside = (rows >= top[:, None, None]) & (rows < (top + bh)[:, None, None])
    inside = inside & (cols >= left[:, None, None]) & (cols < (left + bw)[:, None, None])
    return x.masked_fill((inside & on)[:, None], 0.0)

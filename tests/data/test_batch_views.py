"""Tests for siamese/data/batch_views.py: the batched view augmentation against the per-image steps."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from siamese import names
from siamese.data import PRESETS, BatchViews, MultiViewDataset, ViewAugment, get_transform, multiview_collate
from siamese.data.batch_views import DRAWS_PER_VIEW, erase, gaussian_blur, jitter, sample_boxes
from siamese.data.transforms import adjust_brightness_contrast, erase_box, sample_box
from siamese.errors import ConfigError
from tests.conftest import write_identity_folder

# offsets of each step's draws within a view's DRAWS_PER_VIEW uniforms
CROP, FLIP, AFFINE, BLUR, JITTER, ERASE = 0, 40, 41, 46, 48, 51
NOTHING = ViewAugment(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), degrees=0.0, blur=0.0,
                      brightness=0.0, contrast=0.0, erase=0.0)  # fmt: skip


def noise(size=(20, 24), mode="L", seed=0) -> Image.Image:
    w, h = size
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3) if mode == "RGB" else (h, w), dtype=np.uint8))


def plain(image_size=(16, 16), **augment) -> object:
    """The face preset at `image_size` with no view augmentation but `augment`."""
    return replace(PRESETS["face"], image_size=image_size, view_augment=replace(NOTHING, **augment))


def as_tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img, np.float32) / 255.0)[None]  # (1, H, W)


@pytest.mark.parametrize("relative,whole", [(True, True), (False, False)])
def test_sample_boxes_equals_sample_box_row_by_row(relative, whole):
    attempts = 10 if relative else 2  # two attempts at up to 90% strictly inside: some rows fail
    u = torch.rand(300, 4 * attempts, generator=torch.Generator().manual_seed(0))
    scale, ratio = ((0.05, 1.0), (0.2, 5.0)) if relative else ((0.02, 0.9), (0.3, 3.3))
    boxes, found = sample_boxes(13, 21, u, scale, ratio, relative=relative, whole=whole)
    assert found.any() and (relative or not found.all())
    for row, box, ok in zip(u.tolist(), boxes.tolist(), found.tolist(), strict=True):
        expected = sample_box(13, 21, row, scale, ratio, relative=relative, whole=whole)
        assert ok == (expected is not None)
        assert tuple(int(v) for v in box) == (expected if ok else (0, 0, 13, 21))


def test_sample_boxes_reports_rows_where_no_attempt_fits():
    u = torch.zeros(1, 8)  # area 100% of the image with whole=False: never strictly inside
    boxes, found = sample_boxes(5, 5, u, (1.0, 1.0), (1.0, 1.0))
    assert not found.item() and boxes.tolist() == [[0.0, 0.0, 5.0, 5.0]]


def test_with_nothing_to_draw_every_view_is_the_evaluation_transform():
    p = plain((24, 20))
    img = noise((33, 41))
    views = BatchViews(p, n_global=3)(img, torch.Generator().manual_seed(1))  # (3, 1, 24, 20)
    expected = get_transform(p, train=False)(img)  # (1, 24, 20)
    assert views.shape == (3, 1, 24, 20)
    for v in views:
        torch.testing.assert_close(v, expected, atol=1e-5, rtol=0)


def test_a_local_crop_of_its_own_size_copies_the_box_pixels():
    p = replace(plain((8, 8)), view_augment=replace(NOTHING, local_scale=(0.25, 0.25)))
    img = noise((8, 8))
    bv = BatchViews(p, n_global=1, n_local=1, local_size=4)
    draws = torch.zeros(1, 2, DRAWS_PER_VIEW)
    draws[0, 1, CROP : CROP + 4] = torch.tensor([0.3, 0.6, 0.5, 0.7])  # 4x4 box at top 2, left 3
    draws[0, :, FLIP] = 0.9  # no mirror
    whole, local = bv.finish_batch([bv.prepare(img)], draws)
    pixels = as_tensor(img)
    torch.testing.assert_close(local[0], (pixels[:, 2:6, 3:7] - 0.5) / 0.5, atol=1e-6, rtol=0)
    torch.testing.assert_close(whole[0], (pixels - 0.5) / 0.5, atol=1e-6, rtol=0)


@pytest.mark.parametrize("angle_draw,shift_draw,mirror", [(1.0, 0.5, False), (0.0, 0.5, False),
                                                         (0.5, 1.0, False), (0.5, 0.5, True)])  # fmt: skip
def test_rotation_shift_and_mirror_match_pillow(angle_draw, shift_draw, mirror):
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    p = plain((16, 16), degrees=90.0, translate=0.25)
    img = noise((16, 16), seed=3)
    draws = torch.full((1, 2, DRAWS_PER_VIEW), 0.5)
    draws[..., FLIP] = 0.1 if mirror else 0.9
    draws[..., AFFINE] = angle_draw
    draws[..., AFFINE + 1] = shift_draw
    bv = BatchViews(p)
    views = bv.finish_batch([bv.prepare(img)], draws)  # (1, 2, 1, 16, 16)
    angle, shift = (2 * angle_draw - 1) * 90, round((2 * shift_draw - 1) * 0.25 * 16)
    fill = int(bv.prepare(img)[1].item() * 255 + 0.5)
    flipped = ImageOps.mirror(img) if mirror else img
    expected = TF.affine(flipped, angle=angle, translate=[shift, 0], scale=1.0, shear=[0.0, 0.0],
                         interpolation=InterpolationMode.BILINEAR, fill=fill)  # fmt: skip
    # Pillow rounds its rotated samples to 8 bits: at most one grey level (2/255 normalised) apart
    torch.testing.assert_close(views[0, 0], (as_tensor(expected) - 0.5) / 0.5, atol=2 / 255 + 1e-5, rtol=0)


def test_no_mirror_for_a_preset_without_flips():
    p = replace(plain((16, 16)), hflip=False)
    bv = BatchViews(p)
    img = noise((16, 16))
    draws = torch.zeros(1, 2, DRAWS_PER_VIEW)  # flip draw 0 < 0.5 would mirror with hflip
    torch.testing.assert_close(bv.finish_batch([bv.prepare(img)], draws)[0, 0], get_transform(p, False)(img))


def naive_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """2D Gaussian convolution of (H, W) with edges replicated, radius ceil(3 sigma_max) = 3."""
    r = 3
    t = np.arange(-r, r + 1)
    k = np.exp(-(t**2) / (2 * sigma**2))
    k2 = np.outer(k, k) / k.sum() ** 2
    pad = np.pad(img, r, mode="edge")
    h, w = img.shape
    out = np.zeros_like(img)
    for i in range(h):
        for j in range(w):
            out[i, j] = (pad[i : i + 2 * r + 1, j : j + 2 * r + 1] * k2).sum()
    return out


def test_blur_matches_a_naive_convolution_and_skips_unselected_images():
    x = torch.rand(3, 2, 7, 9, generator=torch.Generator().manual_seed(0))
    u_apply, u_sigma = torch.tensor([0.1, 0.9, 0.3]), torch.tensor([0.0, 0.5, 1.0])
    y = gaussian_blur(x, u_apply, u_sigma, p=0.5, sigma=(0.5, 1.0))
    torch.testing.assert_close(y[1], x[1])
    for n, sigma in ((0, 0.5), (2, 1.0)):
        for c in range(2):
            expected = naive_blur(x[n, c].double().numpy(), sigma)
            np.testing.assert_allclose(y[n, c].numpy(), expected, atol=1e-5)


def test_jitter_matches_the_per_image_formula_in_both_orders():
    x = torch.rand(4, 3, 5, 6, generator=torch.Generator().manual_seed(0))
    u = torch.tensor([[0.9, 0.1, 0.2], [0.9, 0.1, 0.8], [0.2, 0.95, 0.4], [0.5, 0.5, 0.6]])
    y = jitter(x, u, brightness=0.4, contrast=0.6)
    for n in range(4):
        b, c = 1 + (2 * u[n, 0].item() - 1) * 0.4, 1 + (2 * u[n, 1].item() - 1) * 0.6
        arr = x[n].permute(1, 2, 0).numpy()  # (H, W, C)
        expected = adjust_brightness_contrast(arr, b, c, contrast_first=u[n, 2].item() < 0.5)
        np.testing.assert_allclose(y[n].permute(1, 2, 0).numpy(), expected, atol=1e-6)


def test_erase_sets_the_random_erasing_box_to_zero():
    x = torch.rand(50, 1, 10, 12, generator=torch.Generator().manual_seed(0)) + 1.0  # no zeros
    u = torch.rand(50, 41, generator=torch.Generator().manual_seed(1))
    y = erase(x, u, p=0.5)
    erased = 0
    for n in range(50):
        expected = x[n].clone()
        box = erase_box(10, 12, u[n, 1:].tolist()) if u[n, 0] < 0.5 else None
        if box is not None:
            top, left, h, w = box
            expected[:, top : top + h, left : left + w] = 0.0
            erased += 1
        torch.testing.assert_close(y[n], expected)
    assert 10 < erased < 40


@pytest.mark.parametrize("name", names.PRESETS)
def test_views_of_every_preset_have_its_geometry_and_range(name):
    (h, w), ch = PRESETS[name].image_size, PRESETS[name].channels
    bv = BatchViews(name, n_global=2, n_local=2)
    for mode in ("L", "RGB"):
        crops = bv(noise((37, 23), mode), torch.Generator().manual_seed(0))
        assert [tuple(c.shape) for c in crops] == [(ch, h, w)] * 2 + [(ch, (h + 1) // 2, (w + 1) // 2)] * 2
        assert all(c.dtype == torch.float32 and c.min() >= -1 - 1e-6 and c.max() <= 1 + 1e-6 for c in crops)
    assert BatchViews(name, channels=3)(noise((30, 30))).shape == (2, 3, h, w)


def test_bad_crop_counts_are_refused():
    with pytest.raises(ConfigError):
        BatchViews("face", n_global=0)
    with pytest.raises(ConfigError):
        BatchViews("face", n_local=-1)


@pytest.fixture
def dataset(tmp_path):
    root = write_identity_folder(tmp_path / "ids", n_identities=3, n_images=3)
    paths = sorted(str(p) for p in root.rglob("*.png"))
    return MultiViewDataset(paths, BatchViews(plain((12, 12), degrees=20.0, blur=0.5, erase=0.5)), seed=5)


def test_an_items_views_do_not_depend_on_its_batch_or_access(dataset):
    batch = dataset.__getitems__([4, 0, 7])
    torch.testing.assert_close(batch[1][0], dataset[0][0])
    torch.testing.assert_close(dataset.__getitems__([7])[0][0], batch[2][0])
    assert not torch.equal(batch[1][0][0], batch[1][0][1])  # two different views of one image
    dataset.set_epoch(1)
    assert not torch.equal(dataset[0][0], batch[1][0])  # a new epoch draws new views
    images, labels = multiview_collate(dataset.__getitems__([0, 1]))
    assert images.shape == (2, 2, 1, 12, 12) and labels.tolist() == [-1, -1]


def test_the_same_seed_gives_the_same_views_and_another_seed_others(dataset):
    again = MultiViewDataset([r.path for r in dataset.records], dataset.transform, seed=5)
    other = MultiViewDataset([r.path for r in dataset.records], dataset.transform, seed=6)
    torch.testing.assert_close(again[3][0], dataset[3][0])
    assert not torch.equal(other[3][0], dataset[3][0])


def test_views_on_a_float64_batch_keep_its_dtype_and_device():
    bv = BatchViews(plain((10, 10), degrees=10.0, blur=1.0))
    x = torch.rand(2, 1, 10, 10, dtype=torch.float64)
    out = bv.apply(x, torch.ones(2, 1, dtype=torch.float64), torch.rand(2, 2, DRAWS_PER_VIEW))
    assert out.dtype == torch.float64 and out.device == x.device and math.isfinite(out.sum().item())

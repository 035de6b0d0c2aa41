"""Tests for siamese/data/transforms.py: output shapes, inversion, padding, the training augmentations."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from siamese import names
from siamese.data import PRESETS, Preset, get_transform
from siamese.errors import ConfigError
from tests.data.helpers import pil_image

ODD_SIZES = [(200, 30), (30, 200), (1, 1), (92, 112), (105, 105)]  # Pillow (W, H)


@pytest.mark.parametrize("name", names.PRESETS)
@pytest.mark.parametrize("train", [True, False])
def test_shapes_on_odd_inputs(name, train):
    (h, w), c = PRESETS[name].image_size, PRESETS[name].channels
    transform = get_transform(name, train=train)
    for size in ODD_SIZES:
        for mode in ("L", "RGB"):
            out = transform(pil_image(size, mode=mode))
            assert type(out) is torch.Tensor
            assert out.shape == (c, h, w) and out.dtype == torch.float32
            assert torch.isfinite(out).all() and out.min() >= -1.0 and out.max() <= 1.0


def test_overrides():
    out = get_transform("face", train=True, image_size=(40, 30), channels=3)(pil_image((92, 112)))
    assert out.shape == (3, 40, 30)
    assert get_transform("digits", train=False, image_size=16)(pil_image((8, 8))).shape == (1, 16, 16)
    custom = Preset(name="mine", image_size=(10, 12), channels=3, description="custom", fit="stretch")
    assert get_transform(custom, train=False)(pil_image((50, 7))).shape == (3, 10, 12)
    for bad in [{"channels": 2}, {"image_size": (0, 5)}, {"image_size": (5,)}]:
        with pytest.raises(ConfigError):
            get_transform("face", train=False, **bad)


def test_normalisation_value():
    out = get_transform("digits", train=False)(pil_image((8, 8), value=51))
    assert torch.allclose(out, torch.full_like(out, (51 / 255 - 0.5) / 0.5), atol=1e-6)


def test_eval_is_deterministic_and_face_keeps_orl_size():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (112, 92), dtype=np.uint8)  # ORL: 92 wide, 112 high
    img = Image.fromarray(arr)
    transform = get_transform("face", train=False, image_size=(112, 92))
    out = transform(img)
    assert torch.equal(out, transform(img))
    expected = (torch.from_numpy(arr).float() / 255 - 0.5) / 0.5
    assert torch.allclose(out[0], expected, atol=1e-6)  # already the target size: untouched


def test_train_transform_is_random_but_seedable():
    img = Image.fromarray(np.random.default_rng(1).integers(0, 256, (112, 92), dtype=np.uint8))
    transform = get_transform("face", train=True)
    torch.manual_seed(0)
    a = transform(img)
    torch.manual_seed(0)
    assert torch.equal(a, transform(img))
    assert not torch.equal(a, transform(img))


def test_signature_eval_inverts_and_pads_with_background():
    img = Image.new("L", (200, 30), 255)  # white paper, wide and short
    ImageDraw.Draw(img).line([(20, 15), (180, 15)], fill=0, width=3)  # black ink
    out = get_transform("signature", train=False)(img)[0]  # (112, 304)
    assert out.shape == (112, 304)
    assert out[0, 0] == pytest.approx(-1.0) and out[-1, -1] == pytest.approx(-1.0)  # padding = background
    assert out.max() > 0.8  # ink is bright
    assert (out < -0.9).float().mean() > 0.9  # mostly dark background


def test_padding_and_affine_fill_use_background_colour():
    white = Image.new("L", (105, 40), 255)  # omniglot paper is white
    for train in (False, True):
        torch.manual_seed(3)
        out = get_transform("omniglot", train=train)(white)
        assert torch.allclose(out, torch.ones_like(out)), "pad/affine corners must stay white"
    black = Image.new("L", (8, 3), 0)
    out = get_transform("digits", train=True)(black)
    assert torch.allclose(out, -torch.ones_like(out))


def test_import_does_not_load_torchvision():
    code = "import sys, siamese.data; assert 'torchvision' not in sys.modules, 'torchvision imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_otsu_threshold_splits_two_levels():
    from siamese.data.transforms import otsu_threshold

    arr = np.array([30] * 50 + [220] * 150, dtype=np.uint8)
    t = otsu_threshold(arr)
    assert 30 <= t < 220
    assert otsu_threshold(np.full(10, 128, np.uint8)) == 255  # constant image: nothing is background


def test_signature_background_tone_carries_no_signal():
    def scan(paper):
        img = Image.new("L", (220, 155), paper)
        ImageDraw.Draw(img).line([(20, 80), (200, 70)], fill=20, width=4)
        return get_transform("signature", train=False)(img)

    torch.testing.assert_close(scan(240), scan(254))  # genuine vs forged CEDAR scans differ in tone


def test_random_erasing_blanks_one_rectangle_in_training_only():
    preset = Preset(name="erase", image_size=(40, 50), channels=1, description="", erase=1.0)
    img = pil_image((50, 40), value=255)  # white: 1.0 after normalisation
    torch.manual_seed(0)
    for _ in range(20):
        x = get_transform(preset, train=True)(img)[0]  # (H, W)
        erased = (x == 0.0).numpy()
        slack = 0.5 * (40 + 50) + 0.25  # each side is rounded by at most half a pixel
        assert 0.02 * 2000 - slack <= erased.sum() <= 0.2 * 2000 + slack
        assert set(np.unique(x.numpy())) <= {0.0, 1.0}
        rows, cols = np.nonzero(erased)
        assert erased[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()  # one rectangle
    assert (get_transform(preset, train=False)(img) == 1.0).all()
    off = Preset(name="off", image_size=(40, 50), channels=1, description="")
    assert (get_transform(off, train=True)(img) == 1.0).all()


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("contrast_first", [False, True])
def test_brightness_contrast_matches_torchvision_functional(channels, contrast_first):
    from torchvision.transforms.v2 import functional as F

    from siamese.data.transforms import adjust_brightness_contrast

    rng = np.random.default_rng(channels)
    arr = rng.random((9, 7, channels), dtype=np.float32)  # (H, W, C) in [0, 1]
    t = torch.from_numpy(arr.transpose(2, 0, 1).copy())  # (C, H, W)
    if contrast_first:
        want = F.adjust_brightness(F.adjust_contrast(t, 1.6), 1.3)
    else:
        want = F.adjust_contrast(F.adjust_brightness(t, 1.3), 1.6)
    got = adjust_brightness_contrast(arr, 1.3, 1.6, contrast_first)
    torch.testing.assert_close(torch.from_numpy(got.transpose(2, 0, 1).copy()), want)


def test_jitter_factors_stay_in_range_and_vary():
    preset = Preset(name="j", image_size=(6, 6), channels=1, description="", brightness=0.2)
    img = pil_image((6, 6), value=100)
    torch.manual_seed(0)
    values = [get_transform(preset, train=True)(img)[0, 0, 0].item() for _ in range(200)]
    pixel = [(v * 0.5 + 0.5) * 255 for v in values]  # undo the normalisation
    assert 0.8 * 100 - 1e-3 <= min(pixel) < 85 and 115 < max(pixel) <= 1.2 * 100 + 1e-3


def test_random_hflip_mirrors_about_half_the_time():
    preset = Preset(name="f", image_size=(2, 2), channels=1, description="", hflip=True)
    img = Image.fromarray(np.array([[0, 255], [0, 255]], np.uint8))
    torch.manual_seed(0)
    left = [get_transform(preset, train=True)(img)[0, 0, 0].item() for _ in range(400)]
    assert set(left) == {-1.0, 1.0} and 150 < left.count(1.0) < 250


def test_erase_box_follows_area_and_ratio_draws():
    from siamese.data.transforms import erase_box

    rng = np.random.default_rng(0)
    for _ in range(200):
        u = rng.random(4).tolist()
        box = erase_box(60, 80, u)
        target = 4800 * (0.02 + u[0] * 0.18)
        aspect = float(np.exp(np.log(0.3) + u[1] * (np.log(3.3) - np.log(0.3))))
        if box is None:  # only when the drawn box does not fit the image
            assert round(np.sqrt(target * aspect)) >= 60 or round(np.sqrt(target / aspect)) >= 80
            continue
        top, left, h, w = box
        assert abs(h - np.sqrt(target * aspect)) <= 0.5 and abs(w - np.sqrt(target / aspect)) <= 0.5
        assert 0 <= top <= 60 - h and 0 <= left <= 80 - w
    assert erase_box(1, 1, [0.5] * 40) is None  # nothing smaller than the image fits


def test_train_transform_draws_from_a_passed_generator_only():
    img = Image.fromarray(np.random.default_rng(2).integers(0, 256, (112, 92), dtype=np.uint8))
    transform = get_transform("face", train=True)
    state = torch.get_rng_state()
    a = transform(img, torch.Generator().manual_seed(7))
    assert torch.equal(state, torch.get_rng_state())  # the global generator is not drawn from
    assert torch.equal(a, transform(img, torch.Generator().manual_seed(7)))
    assert not torch.equal(a, transform(img, torch.Generator().manual_seed(8)))
    torch.manual_seed(7)
    b = transform(img)
    torch.manual_seed(7)
    assert torch.equal(b, transform(img, None))  # no generator: torch's global one


def test_sample_box_relative_and_whole():
    from siamese.data.transforms import sample_box

    assert sample_box(30, 60, [0.5] * 4, (1.0, 1.0), (1.0, 1.0), relative=True, whole=True) == (0, 0, 30, 60)
    assert sample_box(30, 60, [0.5] * 40, (1.0, 1.0), (1.0, 1.0)) is None  # not strictly inside
    rng = np.random.default_rng(0)
    for _ in range(200):
        u = rng.random(4).tolist()
        box = sample_box(40, 80, u, (0.3, 0.8), (0.5, 2.0), relative=True, whole=True)
        target = 3200 * (0.3 + u[0] * 0.5)
        aspect = 0.5 * float(np.exp(np.log(0.5) + u[1] * (np.log(2.0) - np.log(0.5))))  # image h/w = 0.5
        if box is None:
            assert round(np.sqrt(target * aspect)) > 40 or round(np.sqrt(target / aspect)) > 80
            continue
        top, left, h, w = box
        assert abs(h - np.sqrt(target * aspect)) <= 0.5 and abs(w - np.sqrt(target / aspect)) <= 0.5
        assert 0 <= top <= 40 - h and 0 <= left <= 80 - w


def test_random_resized_crop_output_size_and_identity_at_full_scale():
    from siamese.data.transforms import RandomResizedCrop

    img = Image.fromarray(np.random.default_rng(3).integers(0, 256, (30, 40), dtype=np.uint8))
    whole = RandomResizedCrop((30, 40), (1.0, 1.0), (1.0, 1.0))
    assert np.array_equal(np.asarray(whole(img)), np.asarray(img))
    crop = RandomResizedCrop((12, 10), (0.2, 0.5), (3 / 4, 4 / 3))
    gen = torch.Generator().manual_seed(0)
    outs = [np.asarray(crop(img, gen)) for _ in range(5)]
    assert all(o.shape == (12, 10) for o in outs) and not np.array_equal(outs[0], outs[1])
    # A crop of a horizontal ramp (0..234): it keeps increasing (no mirroring) and, at most
    # sqrt(0.5 / (3/4)) = 82% of the width wide, spans less of the ramp than the whole image.
    ramp = Image.fromarray(np.tile(np.arange(0, 240, 6, dtype=np.uint8), (30, 1)))
    for _ in range(20):
        out = np.asarray(crop(ramp, gen)).astype(int)
        assert (np.diff(out, axis=1) >= 0).all() and out.max() - out.min() < 0.85 * 234


def test_random_gaussian_blur_probability_and_effect():
    from siamese.data.transforms import RandomGaussianBlur

    img = Image.fromarray(np.random.default_rng(4).integers(0, 256, (20, 20), dtype=np.uint8))
    gen = torch.Generator().manual_seed(0)
    assert RandomGaussianBlur(0.0, (1.0, 2.0))(img, gen) is img
    blurred = np.asarray(RandomGaussianBlur(1.0, (1.0, 2.0))(img, gen), dtype=float)
    assert blurred.std() < 0.6 * np.asarray(img, dtype=float).std()
    hits = sum(RandomGaussianBlur(0.5, (1.0, 1.0))(img, gen) is not img for _ in range(200))
    assert 70 < hits < 130


def test_trim_crops_to_the_ink_ignoring_specks():
    from siamese.data.transforms import _TrimToInk

    arr = np.full((60, 100), 255, np.uint8)
    arr[20:30, 30:70] = 0  # 10 x 40 px of ink
    arr[55, 95] = 0  # one speck, beyond the 0.5% of ink pixels each side ignores
    out = _TrimToInk()(Image.fromarray(arr))
    # rows 20-29 and columns 30-69, framed by 1 px of background (2% of 10 and 40 rounds below 1)
    assert out.size == (42, 12)
    expected = np.full((12, 42), 255, np.uint8)
    expected[1:11, 1:41] = arr[20:30, 30:70]
    assert np.array_equal(np.asarray(out), expected)
    wide = np.full((60, 300), 255, np.uint8)
    wide[10:50, 0:300] = 0  # ink to the edge, thicker than the background left around it
    framed = np.asarray(_TrimToInk()(Image.fromarray(wide)))
    assert framed.shape[0] == 40 + 2 * 1 and 300 < framed.shape[1] <= 300 + 2 * 6
    assert (framed[[0, -1]] == 255).all() and (framed[:, [0, -1]] == 255).all()
    blank = Image.fromarray(np.full((8, 8), 255, np.uint8))
    assert _TrimToInk()(blank).size == (8, 8)


def test_trim_makes_the_input_independent_of_place_and_margin():
    from dataclasses import replace

    trim = replace(PRESETS["signature"], trim=True, image_size=(24, 48))
    pages = []
    for top, left, height, width in ((5, 10, 80, 160), (40, 70, 160, 300)):
        arr = np.full((height, width), 250, np.uint8)
        arr[top : top + 20, left : left + 40] = 20  # the same "signature" on pages of other sizes
        arr[top + 5 : top + 15, left + 10 : left + 30] = 250
        pages.append(get_transform(trim, train=False)(Image.fromarray(arr)))
    assert torch.equal(pages[0], pages[1])
    with pytest.raises(ValueError, match="trim needs remove_background"):
        replace(PRESETS["face"], trim=True)

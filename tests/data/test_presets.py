"""Tests for siamese/data/presets.py: registry keys, lookup errors, preprocessing spec, view augmentation."""

from __future__ import annotations

import json

import pytest

from siamese import names
from siamese.data import PRESETS, ViewAugment, get_preset, get_transform, preprocessing_spec
from siamese.errors import ConfigError
from tests.data.helpers import pil_image


def test_registry_keys_match_names():
    assert tuple(PRESETS) == names.PRESETS
    for name, preset in PRESETS.items():
        assert preset.name == name and len(preset.description) > 40
        assert preset.channels == (3 if name == "face-wild" else 1)
        assert get_preset(name) is preset
    assert PRESETS["signature"].image_size == (112, 304) and not PRESETS["signature"].hflip
    assert PRESETS["digits"].image_size == (32, 32)
    assert PRESETS["face"].hflip and not PRESETS["omniglot"].hflip


def test_face_wild_keeps_the_middle_of_a_photo_in_colour():
    """An LFW-like 250x250 photo: the centre 125x125 (the face) reaches the 64x64 colour input,
    the border does not; a grayscale photo is replicated into three equal channels."""
    import numpy as np
    from PIL import Image

    arr = np.zeros((250, 250, 3), np.uint8)
    arr[62:187, 62:187] = (200, 40, 10)  # a red 125x125 middle on black: exactly the crop
    x = get_transform("face-wild", train=False)(Image.fromarray(arr))
    assert x.shape == (3, 64, 64)
    expected = (np.array([200, 40, 10]) / 255 - 0.5) / 0.5
    assert np.allclose(x.mean(dim=(1, 2)).numpy(), expected, atol=1e-6)  # no black border left
    gray = get_transform("face-wild", train=False)(Image.fromarray(arr[..., 0]))
    assert gray.shape == (3, 64, 64) and bool((gray[0] == gray[1]).all() and (gray[1] == gray[2]).all())
    spec = preprocessing_spec("face-wild")
    assert (spec["crop"], spec["fit"], spec["channels"]) == (0.5, "crop", 3)
    assert "luma" in spec["convert"] and "replicat" in spec["convert"]


def test_unknown_preset_lists_names():
    with pytest.raises(ConfigError, match="face, face-wild, signature, digits, glyphs, omniglot"):
        get_transform("cats", train=False)


def test_preprocessing_spec():
    spec = preprocessing_spec("signature")
    json.dumps(spec)
    assert spec["size"] == [112, 304] and spec["channels"] == 1 and spec["invert"] is True
    assert spec["trim"] is True
    assert spec["pad"] is True and spec["mean"] == [0.5] and spec["std"] == [0.5]
    face = preprocessing_spec("face", image_size=(64, 48), channels=3)
    assert face["size"] == [64, 48] and face["mean"] == [0.5] * 3 and face["invert"] is False
    rebuilt = get_transform(face["preset"], False, tuple(face["size"]), face["channels"])
    assert rebuilt(pil_image((92, 112))).shape == (3, 64, 48)
    with pytest.raises(ConfigError):
        preprocessing_spec("nope")


def test_view_augment_per_preset_scaling_and_validation():
    for preset in PRESETS.values():
        a = preset.view_augment
        assert 0 < a.crop_scale[0] < a.crop_scale[1] == 1.0 and a.blur == 0.5 and a.erase > 0
        assert a.local_scale[1] <= a.crop_scale[1] and a.scaled(1.0) == a
        zero = a.scaled(0.0)
        assert zero.crop_scale == (1.0, 1.0) and zero.crop_ratio == (1.0, 1.0)
        assert zero.degrees == zero.shear == zero.blur == zero.brightness == zero.contrast == zero.erase == 0
    face, signature = PRESETS["face"].view_augment, PRESETS["signature"].view_augment
    assert signature.crop_scale[0] > face.crop_scale[0]  # milder crops for handwriting
    half = face.scaled(0.5)
    assert half.crop_scale == (0.75, 1.0) and half.degrees == 5.0 and half.erase == face.erase / 2
    assert face.scaled(10.0).crop_scale[0] == 0.05 and face.scaled(10.0).blur == 1.0  # capped
    for bad in [
        {"crop_scale": (0.0, 1.0)},
        {"crop_scale": (0.8, 0.5)},
        {"local_scale": (0.5, 1.2)},
        {"crop_ratio": (2.0, 1.0)},
        {"blur": 1.5},
        {"erase": -0.1},
        {"degrees": -1.0},
    ]:
        with pytest.raises(ConfigError):
            ViewAugment(**bad)
    with pytest.raises(ConfigError, match="strength"):
        face.scaled(-1.0)

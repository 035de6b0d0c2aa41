"""Tests for siamese/models/tta.py: flip test-time augmentation and which presets allow it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from siamese.errors import ConfigError
from siamese.models import get_encoder
from siamese.models.tta import check_tta, tta_embed


def _encoder(normalize: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    return get_encoder("smallcnn", in_channels=1, embedding_dim=8, normalize=normalize).eval()


def _images() -> torch.Tensor:
    return torch.randn(3, 1, 16, 12, generator=torch.Generator().manual_seed(1))  # (B, C, H, W)


@pytest.mark.parametrize("normalize", [True, False])
def test_flip_is_the_mean_of_the_image_and_its_mirror(normalize: bool) -> None:
    encoder, images = _encoder(normalize), _images()
    with torch.no_grad():
        plain = encoder(images)  # (3, 8)
        mirrored = encoder(torch.stack([img.flip(-1) for img in images]))  # one image at a time, flipped
        mean = (plain + mirrored) / 2
        expected = F.normalize(mean, dim=1) if normalize else mean
        got = tta_embed(encoder, images, "flip")
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(got, plain, atol=1e-4)  # the mirror really changes the embedding
    if normalize:
        torch.testing.assert_close(got.norm(dim=1), torch.ones(3))


@pytest.mark.parametrize("normalize", [True, False])
def test_a_mirror_symmetric_image_embeds_as_without_tta(normalize: bool) -> None:
    encoder = _encoder(normalize)
    half = torch.randn(2, 1, 16, 6, generator=torch.Generator().manual_seed(2))
    symmetric = torch.cat([half, half.flip(-1)], dim=-1)  # (2, 1, 16, 12), equal to its mirror
    with torch.no_grad():
        torch.testing.assert_close(tta_embed(encoder, symmetric, "flip"), encoder(symmetric))


def test_none_is_the_encoder_itself() -> None:
    encoder, images = _encoder(True), _images()
    with torch.no_grad():
        torch.testing.assert_close(tta_embed(encoder, images, "none"), encoder(images))
    with pytest.raises(ConfigError, match="test-time augmentation"):
        tta_embed(encoder, images, "rotate")


def test_flip_only_for_presets_that_train_with_flips() -> None:
    assert check_tta("flip", "face") == "flip"
    for preset in ("signature", "digits", "omniglot"):
        assert check_tta("none", preset) == "none"
        with pytest.raises(ConfigError, match=f"preset '{preset}' does not"):
            check_tta("flip", preset)
    with pytest.raises(ConfigError, match="choose one of: none, flip"):
        check_tta("mirror", "face")

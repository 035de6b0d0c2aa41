"""Tests for siamese/data/datasets.py: single images with their labels."""

from __future__ import annotations

import pytest
import torch

from siamese.data import ImageDataset, ImageLoader, get_transform, scan_folder


def test_items_follow_positions_and_labels(forgery_folders):
    index = scan_folder(*forgery_folders)
    labels = index.labels()
    transform = get_transform("digits", train=False, image_size=(5, 7))
    full = ImageDataset(index, ImageLoader(1), transform)
    assert len(full) == len(index)
    image, label = full[len(index) - 1]
    assert image.shape == (1, 5, 7) and label == labels[-1] >= len(index.identities)

    positions = [17, 3, 3, 0]
    part = ImageDataset(index, ImageLoader(1), transform, positions=positions)
    assert len(part) == 4 and part.labels.tolist() == labels[positions].tolist()
    for i, pos in enumerate(positions):
        image, label = part[i]
        direct = transform(ImageLoader(1)(index.records[pos].path))
        assert torch.equal(image, direct) and label == labels[pos]
    assert torch.equal(part[-1][0], part[3][0])
    with pytest.raises(IndexError):
        part[4]
    with pytest.raises(IndexError):
        ImageDataset(index, ImageLoader(1), transform, positions=[len(index)])


def test_without_transform_returns_pil(image_folder):
    index = scan_folder(image_folder)
    image, label = ImageDataset(index, ImageLoader(3), None)[6]
    assert image.mode == "RGB" and image.size == (20, 24) and label == 1

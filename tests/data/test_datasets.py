"""Tests for siamese/data/datasets.py: single images with their labels."""

from __future__ import annotations

import pytest
import torch

from siamese.data import ImageDataset, ImageLoader, get_transform, rotated_classes, scan_folder


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


@pytest.mark.parametrize("preset", ["face", "signature", "omniglot"])
def test_prepare_then_finish_is_the_whole_transform(image_folder, preset):
    img = ImageLoader(1)(scan_folder(image_folder).records[0].path)
    transform = get_transform(preset, train=True, image_size=(16, 12), channels=1)
    assert transform.prepare_steps and transform.finish_steps  # the preprocessing, the augmentations
    whole = transform(img, torch.Generator().manual_seed(5))
    split = transform.finish(transform.prepare(img), torch.Generator().manual_seed(5))
    assert torch.equal(whole, split)


def test_a_caching_loader_prepares_each_image_once_and_serves_the_same_samples(image_folder, monkeypatch):
    index = rotated_classes(scan_folder(image_folder), 2)  # rotated copies are prepared separately
    transform = get_transform("omniglot", train=True, image_size=(16, 12), channels=1)
    calls = []
    prepare = transform.prepare
    monkeypatch.setattr(transform, "prepare", lambda img: calls.append(1) or prepare(img))
    cached = ImageDataset(index, ImageLoader(1, cache=True), transform)
    plain = ImageDataset(index, ImageLoader(1), transform)
    for epoch in range(2):
        torch.manual_seed(epoch)
        ours = [cached[i][0] for i in range(len(index))]
        torch.manual_seed(epoch)
        reference = [plain[i][0] for i in range(len(index))]
        assert all(torch.equal(a, b) for a, b in zip(ours, reference, strict=True))
    assert len(calls) == len(index) + 2 * len(index)  # once per image cached, every time uncached
    assert not torch.equal(ours[0], cached[0][0])  # the augmentation still draws anew


def test_forgery_classes_reach_the_dataset_labels(forgery_folders):
    index = scan_folder(*forgery_folders)
    ds = ImageDataset(index, ImageLoader(1), None, forgery_classes=True)
    assert ds.labels.tolist() == index.labels(forgery_classes=True).tolist()
    assert ds[len(index) - 1][1] == len(index.identities) + index.identities.index(index.records[-1].identity)

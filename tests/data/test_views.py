"""Tests for siamese/data/views.py: view pipelines, multi-view/multi-crop items, seeding, collate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from siamese import names
from siamese.data import (
    PRESETS,
    ImageLoader,
    MultiCrop,
    MultiView,
    MultiViewDataset,
    get_transform,
    list_inputs,
    multicrop_transform,
    multiview_collate,
    rotated_classes,
    scan_folder,
    ssl_transform,
)
from siamese.errors import ConfigError
from tests.conftest import write_identity_folder

ODD_SIZES = [(200, 30), (30, 200), (1, 1), (92, 112), (105, 105)]  # Pillow (W, H)


def noise(size=(92, 112), mode="L", seed=0) -> Image.Image:
    w, h = size
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3) if mode == "RGB" else (h, w), dtype=np.uint8)
    return Image.fromarray(arr)


def asymmetric(size=(46, 56)) -> Image.Image:
    """Dark left third, bright right two thirds: mirroring it changes the image."""
    w, h = size
    arr = np.full((h, w), 230, np.uint8)
    arr[:, : w // 3] = 20
    return Image.fromarray(arr)


@pytest.fixture
def folder(tmp_path):
    """Three identities x two 24x20 images (different content per image)."""
    return write_identity_folder(tmp_path / "ids", n_identities=3, n_images=2)


@pytest.mark.parametrize("name", names.PRESETS)
def test_view_shapes_and_range_on_odd_inputs(name):
    (h, w), c = PRESETS[name].image_size, PRESETS[name].channels
    multiview = MultiView(ssl_transform(name), views=3)
    gen = torch.Generator().manual_seed(0)
    for size in ODD_SIZES:
        for mode in ("L", "RGB"):
            out = multiview(noise(size, mode), gen)
            assert type(out) is torch.Tensor and out.dtype == torch.float32
            assert out.shape == (3, c, h, w)
            assert torch.isfinite(out).all() and out.min() >= -1.0 and out.max() <= 1.0


def test_overrides_and_errors():
    assert ssl_transform("face", image_size=(40, 30), channels=3)(noise()).shape == (3, 40, 30)
    assert ssl_transform("digits", image_size=16)(noise((8, 8))).shape == (1, 16, 16)
    with pytest.raises(ConfigError):
        ssl_transform("cats")
    with pytest.raises(ConfigError, match="strength"):
        ssl_transform("face", strength=-0.5)
    with pytest.raises(ConfigError, match="views"):
        MultiView(ssl_transform("face"), views=0)
    with pytest.raises(ConfigError, match="n_global"):
        MultiCrop(ssl_transform("face"), ssl_transform("face"), n_global=0)


@pytest.mark.parametrize("name", names.PRESETS)
def test_zero_strength_flips_only_where_the_preset_allows(name):
    img = asymmetric()
    plain = get_transform(name, train=False)(img)  # (C, H, W)
    mirrored = plain.flip(-1)
    assert not torch.equal(plain, mirrored)
    transform = ssl_transform(name, strength=0.0)
    gen = torch.Generator().manual_seed(0)
    outs = [transform(img, gen) for _ in range(40)]
    flips = sum(torch.equal(o, mirrored) for o in outs)
    assert all(torch.equal(o, plain) or torch.equal(o, mirrored) for o in outs)  # nothing else at 0
    if PRESETS[name].hflip:
        assert 5 < flips < 35
    else:
        assert flips == 0


@pytest.mark.parametrize("name", names.PRESETS)
def test_full_strength_views_differ_and_are_seedable(name):
    transform = MultiView(ssl_transform(name), views=2)
    img = noise(seed=1)
    a = transform(img, torch.Generator().manual_seed(3))
    b = transform(img, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert not torch.equal(a[0], a[1])  # the two views of one image are independent draws
    assert not torch.equal(a, transform(img, torch.Generator().manual_seed(4)))


def test_dataset_items_are_a_function_of_seed_epoch_and_index(folder):
    path = str(next(folder.rglob("*.png")))
    transform = MultiView(ssl_transform("digits"), views=2)
    ds = MultiViewDataset([path, path], transform, seed=5)  # one image twice: only the index differs
    twin = MultiViewDataset([path, path], transform, seed=5)
    views, label = ds[0]
    assert views.shape == (2, 1, 32, 32) and label == -1
    assert torch.equal(views, twin[0][0]) and torch.equal(views, ds[0][0])
    assert not torch.equal(views[0], views[1])
    assert not torch.equal(views, ds[1][0]), "another index draws other views"
    assert not torch.equal(views, MultiViewDataset([path], transform, seed=6)[0][0])
    ds.set_epoch(1)
    epoch1 = ds[0][0]
    assert not torch.equal(views, epoch1), "another epoch draws other views"
    twin.set_epoch(1)
    assert torch.equal(epoch1, twin[0][0])
    ds.set_epoch(0)
    assert torch.equal(views, ds[0][0])


def test_dataset_leaves_the_global_generator_alone(folder):
    ds = MultiViewDataset(sorted(folder.rglob("*.png")), MultiView(ssl_transform("face")))
    state = torch.get_rng_state()
    ds[0]
    assert torch.equal(state, torch.get_rng_state())


def test_non_seedable_transform_is_seeded_per_item_too(folder):
    def global_noise(img):  # draws from torch's global generator, like torchvision transforms
        return torch.rand(2, 1, 3, 3)

    ds = MultiViewDataset(sorted(folder.rglob("*.png")), global_noise, seed=1)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    first = ds[2][0]
    assert torch.equal(state, torch.get_rng_state())  # fork_rng restores it
    torch.manual_seed(123)
    assert torch.equal(first, ds[2][0])
    assert not torch.equal(first, ds[3][0])


def test_worker_count_does_not_change_the_views(folder):
    ds = MultiViewDataset(sorted(folder.rglob("*.png")), MultiView(ssl_transform("digits")), seed=2)
    ds.set_epoch(4)
    direct = multiview_collate([ds[i] for i in range(len(ds))])
    loader = torch.utils.data.DataLoader(ds, batch_size=len(ds), num_workers=2, collate_fn=multiview_collate)
    images, labels = next(iter(loader))
    assert torch.equal(images, direct[0]) and torch.equal(labels, direct[1])


def test_labels_from_index_inputs_and_none(tmp_path, folder):
    transform = MultiView(ssl_transform("digits"))
    index = rotated_classes(scan_folder(folder), 2)
    from_index = MultiViewDataset.from_index(index, transform)
    assert len(from_index) == len(index) == 12
    assert [from_index[i][1] for i in range(12)] == index.labels().tolist()
    write_identity_folder(tmp_path / "mixed" / "b", n_identities=1, n_images=1, prefix="x")
    write_identity_folder(tmp_path / "mixed" / "a", n_identities=1, n_images=2, prefix="y")
    (tmp_path / "mixed" / "loose.png").write_bytes(next(folder.rglob("*.png")).read_bytes())
    inputs = list_inputs(tmp_path / "mixed")
    from_inputs = MultiViewDataset.from_inputs(inputs, transform)
    want = {"": -1, "a/y00": 0, "b/x00": 1}
    assert [from_inputs[i][1] for i in range(len(inputs))] == [want[x.identity] for x in inputs]
    unlabelled = MultiViewDataset([x.path for x in inputs], transform)
    assert [unlabelled[i][1] for i in range(len(inputs))] == [-1] * 4
    with pytest.raises(ConfigError, match="one label per image"):
        MultiViewDataset([x.path for x in inputs], transform, labels=[0, 1])
    with pytest.raises(IndexError):
        unlabelled[4]


def test_rotated_records_are_loaded_rotated(folder):
    index = rotated_classes(scan_folder(folder), 2)
    eval_transform = get_transform("digits", train=False, image_size=(24, 20))
    ds = MultiViewDataset.from_index(index, MultiView(ssl_transform("digits", (24, 20), strength=0.0), 1))
    upright, turned = index.records[0], index.records[6]
    assert upright.path == turned.path and (upright.turns, turned.turns) == (0, 2)
    img = ImageLoader(1)(upright.path)
    assert torch.equal(ds[0][0][0], eval_transform(img))
    assert torch.equal(ds[6][0][0], eval_transform(img.transpose(Image.Transpose.ROTATE_180)))


def test_multiview_collate_stacks_views():
    items = [(torch.full((2, 1, 3, 4), float(k)), k - 1) for k in range(3)]
    images, labels = multiview_collate(items)
    assert images.shape == (3, 2, 1, 3, 4) and images[:, 0, 0, 0, 0].tolist() == [0.0, 1.0, 2.0]
    assert labels.tolist() == [-1, 0, 1] and labels.dtype == torch.long


@pytest.mark.parametrize("name", names.PRESETS)
def test_multicrop_shapes_and_collate(name, folder):
    (h, w), c = PRESETS[name].image_size, PRESETS[name].channels
    crops = multicrop_transform(name, n_local=3)
    ds = MultiViewDataset(sorted(folder.rglob("*.png")), crops, seed=1)
    views, _ = ds[0]
    assert isinstance(views, list) and len(views) == 5
    assert [tuple(v.shape) for v in views] == [(c, h, w)] * 2 + [(c, (h + 1) // 2, (w + 1) // 2)] * 3
    assert all(v.min() >= -1.0 and v.max() <= 1.0 for v in views)
    batches, labels = multiview_collate([ds[i] for i in range(4)])
    assert [tuple(b.shape) for b in batches] == [(4, *v.shape) for v in views]
    assert torch.equal(batches[3][0], views[3]) and labels.tolist() == [-1] * 4
    small = multicrop_transform(name, n_local=1, n_global=1, local_size=8)(noise())
    assert [tuple(v.shape) for v in small] == [(c, h, w), (c, 8, 8)]


@pytest.mark.parametrize("multicrop", [False, True])
def test_a_caching_loader_gives_the_same_views_and_prepares_each_image_once(folder, multicrop, monkeypatch):
    paths = sorted(folder.rglob("*.png"))
    views = MultiView(ssl_transform("omniglot"))
    transform = multicrop_transform("omniglot", n_local=2) if multicrop else views
    assert transform.prepare_key  # global and local crops share the preprocessing
    calls = []
    prepare = transform.prepare
    monkeypatch.setattr(transform, "prepare", lambda img: calls.append(1) or prepare(img))
    cached = MultiViewDataset(paths, transform, loader=ImageLoader(1, cache=True), seed=3)
    plain = MultiViewDataset(paths, transform, seed=3)
    for epoch in range(2):
        cached.set_epoch(epoch)
        plain.set_epoch(epoch)
        for i in range(len(paths)):
            ours, reference = cached[i][0], plain[i][0]
            assert all(torch.equal(a, b) for a, b in zip(ours, reference, strict=True))
    assert len(calls) == len(paths) + 2 * len(paths)  # once per image cached, every time uncached

"""Tests for siamese/data/pairs.py: balanced, index-deterministic pairs, forgeries, collate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from siamese.data import (
    ImageIndex,
    ImageLoader,
    PairDataset,
    get_transform,
    pair_collate,
    scan_folder,
)
from siamese.errors import ConfigError, DataError
from tests.data.helpers import make_index


def dataset(index, num_pairs=200, forgery_fraction=0.5, seed=0):
    return PairDataset(index, ImageLoader(1), None, num_pairs, forgery_fraction=forgery_fraction, seed=seed)


def check_pair_rules(index: ImageIndex, pairs) -> None:
    records = index.records
    for a, b, is_same in pairs:
        assert not records[a].forgery, "forgeries are never anchors"
        if is_same:
            assert a != b and not records[b].forgery and records[a].identity == records[b].identity
        elif records[b].forgery:
            assert records[b].identity == records[a].identity, "a forgery is an impostor of its own identity"
        else:
            assert records[b].identity != records[a].identity


def test_balanced_and_valid():
    index = make_index({"a": 3, "b": 4, "c": 2, "d": 5}, forged={"a": 2, "c": 3})
    for n in (200, 7):
        pairs = dataset(index, num_pairs=n).pairs()
        assert len(pairs) == n
        assert [p[2] for p in pairs] == [i % 2 == 0 for i in range(n)]
        check_pair_rules(index, pairs)


def test_deterministic_per_seed_and_epoch():
    index = make_index({"a": 5, "b": 5, "c": 5, "d": 5}, forged={"b": 4})
    ds, twin = dataset(index, seed=7), dataset(index, seed=7)
    epoch0 = ds.pairs()
    assert twin.pairs() == epoch0
    ds.set_epoch(1)
    epoch1 = ds.pairs()
    assert epoch1 != epoch0
    twin.set_epoch(1)
    assert twin.pairs() == epoch1
    ds.set_epoch(0)
    assert ds.pairs() == epoch0
    assert dataset(index, seed=8).pairs() != epoch0


def test_honours_its_index():
    index = make_index({"a": 4, "b": 4, "c": 4})
    ds = dataset(index, num_pairs=50)
    forward = [ds.pair(i) for i in range(50)]
    backward = [ds.pair(i) for i in reversed(range(50))][::-1]
    assert forward == backward
    shuffled = np.random.default_rng(0).permutation(50)
    assert [ds.pair(int(i)) for i in shuffled] == [forward[i] for i in shuffled]
    assert ds.pair(-1) == forward[-1]
    with pytest.raises(IndexError):
        ds.pair(50)


def test_forgery_fraction_respected():
    index = make_index({f"w{i}": 6 for i in range(5)}, forged={f"w{i}": 4 for i in range(5)})
    for fraction in (0.0, 0.3, 1.0):
        pairs = dataset(index, num_pairs=2000, forgery_fraction=fraction).pairs()
        check_pair_rules(index, pairs)
        impostors = [b for _, b, same in pairs if not same]
        observed = np.mean([index.records[b].forgery for b in impostors])
        assert abs(observed - fraction) < 0.05
    genuine_b = [b for _, b, same in dataset(index, 2000, 1.0).pairs() if same]
    assert not any(index.records[b].forgery for b in genuine_b)


def test_single_image_identities_only_in_impostors():
    index = make_index({"a": 3, "b": 1, "c": 1, "d": 2})
    pairs = dataset(index, num_pairs=600).pairs()
    check_pair_rules(index, pairs)
    single = {i for i, r in enumerate(index.records) if r.identity in ("b", "c")}
    assert not any(a in single or b in single for a, b, same in pairs if same)
    assert any(a in single or b in single for a, b, same in pairs if not same)


def test_no_identity_with_two_images_raises_quickly():
    with pytest.raises(DataError, match="no identity has 2 or more images"):
        dataset(make_index({"a": 1, "b": 1, "c": 1}))
    with pytest.raises(DataError, match="at least 2 identities"):
        dataset(make_index({"a": 5}))


@pytest.mark.parametrize(
    "kwargs", [{"num_pairs": 0}, {"forgery_fraction": 1.5}, {"forgery_fraction": -0.1}, {"seed": -1}]
)
def test_bad_options(kwargs):
    with pytest.raises(ConfigError):
        dataset(make_index({"a": 2, "b": 2}), **kwargs)


def test_items_and_collate(forgery_folders):
    index = scan_folder(*forgery_folders)
    transform = get_transform("digits", train=False, image_size=(12, 10))
    ds = PairDataset(index, ImageLoader(1), transform, num_pairs=6, forgery_fraction=1.0, seed=1)
    labels = index.labels()
    items = [ds[i] for i in range(6)]
    for i, (img1, _, l1, l2, is_same) in enumerate(items):
        a, b, same = ds.pair(i)
        assert img1.shape == (1, 12, 10) and (l1, l2, is_same) == (labels[a], labels[b], same)
        assert (l1 == l2) == is_same  # forgeries carry unique labels
    images, batch_labels, (a1, p, a2, n) = pair_collate(items)
    assert images.shape == (12, 1, 12, 10)
    assert torch.equal(images[3], items[3][0]) and torch.equal(images[6 + 3], items[3][1])
    assert batch_labels.tolist() == [it[2] for it in items] + [it[3] for it in items]
    assert a1.tolist() == [0, 2, 4] and p.tolist() == [6, 8, 10]
    assert a2.tolist() == [1, 3, 5] and n.tolist() == [7, 9, 11]
    assert a1.dtype == torch.long and n.dtype == torch.long
    assert (batch_labels[a1] == batch_labels[p]).all() and (batch_labels[a2] != batch_labels[n]).all()


def test_collate_hand_made_batch():
    def item(v, same):
        return (
            torch.full((1, 2, 2), float(v)),
            torch.full((1, 2, 2), float(v) + 0.5),
            v,
            v if same else 99,
            same,
        )

    images, labels, (a1, p, a2, n) = pair_collate([item(0, False), item(1, False), item(2, True)])
    assert images[:, 0, 0, 0].tolist() == [0, 1, 2, 0.5, 1.5, 2.5]
    assert labels.tolist() == [0, 1, 2, 99, 99, 2]
    assert (a1.tolist(), p.tolist(), a2.tolist(), n.tolist()) == ([2], [5], [0, 1], [3, 4])


def test_dataloader_with_workers_matches_direct_access(image_folder):
    index = scan_folder(image_folder)
    transform = get_transform("digits", train=False, image_size=(8, 8))
    ds = PairDataset(index, ImageLoader(1, cache=True), transform, num_pairs=8, seed=2)
    ds.set_epoch(3)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, collate_fn=pair_collate)
    batches = list(loader)
    direct = pair_collate([ds[i] for i in range(4, 8)])
    assert torch.equal(batches[1][0], direct[0]) and torch.equal(batches[1][1], direct[1])


def test_set_epoch_reaches_persistent_workers(image_folder):
    index = scan_folder(image_folder)
    transform = get_transform("digits", train=False, image_size=(8, 8))
    ds = PairDataset(index, ImageLoader(1), transform, num_pairs=4, seed=5)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=4, num_workers=1, persistent_workers=True, collate_fn=pair_collate
    )
    seen = []
    for epoch in range(2):
        ds.set_epoch(epoch)
        seen.append(next(iter(loader))[0])
    assert torch.equal(seen[1], pair_collate([ds[i] for i in range(4)])[0])  # epoch 1 in the worker
    ds.set_epoch(0)
    assert torch.equal(seen[0], pair_collate([ds[i] for i in range(4)])[0])
    assert not torch.equal(seen[0], seen[1])

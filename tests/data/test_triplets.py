"""Tests for siamese/data/triplets.py: index-deterministic triplets, forgeries as negatives, collate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from siamese.data import ImageLoader, TripletDataset, get_transform, scan_folder, triplet_collate
from siamese.errors import ConfigError, DataError
from tests.data.helpers import make_index


def dataset(index, num_triplets=300, forgery_fraction=0.5, seed=0):
    return TripletDataset(
        index, ImageLoader(1), None, num_triplets, forgery_fraction=forgery_fraction, seed=seed
    )


def check_triplet_rules(index, triplets):
    records = index.records
    for a, p, n in triplets:
        assert a != p and not records[a].forgery and not records[p].forgery
        assert records[a].identity == records[p].identity
        if records[n].forgery:
            assert records[n].identity == records[a].identity
        else:
            assert records[n].identity != records[a].identity


def test_valid_triplets_and_forgery_fraction():
    index = make_index({f"w{i}": 5 for i in range(4)}, forged={f"w{i}": 3 for i in range(4)})
    for fraction in (0.0, 0.5, 1.0):
        triplets = dataset(index, 2000, fraction).triplets()
        check_triplet_rules(index, triplets)
        observed = np.mean([index.records[n].forgery for _, _, n in triplets])
        assert abs(observed - fraction) < 0.05


def test_forgery_only_when_the_anchor_identity_has_some():
    index = make_index({"a": 4, "b": 4, "c": 4}, forged={"a": 2})
    triplets = dataset(index, 900, forgery_fraction=1.0).triplets()
    check_triplet_rules(index, triplets)
    for a, _, n in triplets:
        assert index.records[n].forgery == (index.records[a].identity == "a")


def test_deterministic_honours_index_and_epoch():
    index = make_index({"a": 3, "b": 3, "c": 2, "d": 1})
    ds = dataset(index, 100, seed=5)
    epoch0 = ds.triplets()
    assert [ds.triplet(i) for i in reversed(range(100))][::-1] == epoch0
    assert dataset(index, 100, seed=5).triplets() == epoch0
    ds.set_epoch(2)
    assert ds.triplets() != epoch0
    ds.set_epoch(0)
    assert ds.triplets() == epoch0
    single = {i for i, r in enumerate(index.records) if r.identity == "d"}
    assert not any(a in single or p in single for a, p, _ in epoch0)
    assert any(n in single for _, _, n in epoch0)


def test_errors():
    with pytest.raises(DataError):
        dataset(make_index({"a": 1, "b": 1}))
    with pytest.raises(ConfigError):
        dataset(make_index({"a": 2, "b": 2}), num_triplets=0)
    with pytest.raises(ConfigError):
        dataset(make_index({"a": 2, "b": 2})).set_epoch(-1)


def test_items_and_collate(forgery_folders):
    index = scan_folder(*forgery_folders)
    transform = get_transform("digits", train=False, image_size=(6, 6))
    ds = TripletDataset(index, ImageLoader(1), transform, num_triplets=4, seed=3)
    labels = index.labels()
    items = [ds[i] for i in range(4)]
    for i, item in enumerate(items):
        a, p, n = ds.triplet(i)
        assert tuple(item[3:]) == (labels[a], labels[p], labels[n])
        assert item[0].shape == (1, 6, 6)
    images, batch_labels, (a, p, n) = triplet_collate(items)
    assert images.shape == (12, 1, 6, 6)
    assert torch.equal(images[4 + 2], items[2][1]) and torch.equal(images[8 + 1], items[1][2])
    assert a.tolist() == [0, 1, 2, 3] and p.tolist() == [4, 5, 6, 7] and n.tolist() == [8, 9, 10, 11]
    assert batch_labels.tolist() == [it[j] for j in (3, 4, 5) for it in items]
    assert (batch_labels[a] == batch_labels[p]).all() and (batch_labels[a] != batch_labels[n]).all()

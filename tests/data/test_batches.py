"""Tests for siamese/data/batches.py: M-per-identity batches, per-epoch seeding, appended forgeries."""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import pytest
import torch

from siamese.data import (
    IdentityBatchSampler,
    ImageDataset,
    ImageLoader,
    batch_collate,
    get_transform,
    identity_batch_sampler,
    scan_folder,
)
from siamese.errors import ConfigError, DataError
from tests.data.helpers import make_index

INDEX = make_index({f"w{i}": 5 for i in range(6)} | {"solo": 1}, forged={f"w{i}": 3 for i in range(0, 6, 2)})


def all_positions(index):
    return list(range(len(index)))


def test_m_per_identity_in_every_batch():
    sampler = identity_batch_sampler(INDEX, all_positions(INDEX), batch_size=8, m=2, length=40, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 5
    for batch in batches:
        assert len(batch) == 8
        counts = Counter(INDEX.records[j].identity for j in batch)
        assert len(counts) == 4 and set(counts.values()) == {2}
        assert "solo" not in counts  # no positive possible for a single-image identity
        assert len(set(batch)) == 8  # identities have >= m images: drawn without replacement
        assert not any(INDEX.records[j].forgery for j in batch)


def test_deterministic_per_seed_and_epoch_without_touching_numpy_global_state():
    sampler = IdentityBatchSampler(INDEX, all_positions(INDEX), 8, 2, 40, seed=3)
    state = np.random.get_state()
    epoch0 = list(sampler)
    after = np.random.get_state()
    assert np.array_equal(state[1], after[1]) and state[2:] == after[2:]
    from pytorch_metric_learning.utils import common_functions as c_f

    assert c_f.NUMPY_RANDOM is np.random  # pml's generator restored
    assert list(sampler) == epoch0
    assert list(IdentityBatchSampler(INDEX, all_positions(INDEX), 8, 2, 40, seed=3)) == epoch0
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert epoch1 != epoch0
    sampler.set_epoch(0)
    assert list(sampler) == epoch0
    assert list(IdentityBatchSampler(INDEX, all_positions(INDEX), 8, 2, 40, seed=4)) != epoch0


def test_forgeries_appended_belong_to_identities_in_batch():
    sampler = identity_batch_sampler(INDEX, all_positions(INDEX), 8, 2, 80, seed=1, forgeries_per_batch=2)
    appended_total = 0
    for batch in sampler:
        genuine, extra = batch[:8], batch[8:]
        present = {INDEX.records[j].identity for j in genuine}
        assert all(INDEX.records[j].forgery and INDEX.records[j].identity in present for j in extra)
        assert len(set(extra)) == len(extra) <= 2
        available = sum(3 for name in present if name in ("w0", "w2", "w4"))
        assert len(extra) == min(2, available)
        appended_total += len(extra)
    assert appended_total > 0
    again = identity_batch_sampler(INDEX, all_positions(INDEX), 8, 2, 80, seed=1, forgeries_per_batch=2)
    assert list(again) == list(sampler)


def test_positions_subset_gives_dataset_indices():
    sub = [i for i, r in enumerate(INDEX.records) if r.identity in ("w0", "w1", "w2", "w3")]
    sampler = identity_batch_sampler(INDEX, sub, 4, 2, 20, seed=0, forgeries_per_batch=1)
    for batch in sampler:
        assert all(0 <= j < len(sub) for j in batch)
        records = [INDEX.records[sub[j]] for j in batch]
        assert {r.identity for r in records} <= {"w0", "w1", "w2", "w3"}
        assert [r.forgery for r in records[:4]] == [False] * 4
        assert sorted(Counter(r.identity for r in records[:4]).values()) == [2, 2]
        assert all(r.forgery for r in records[4:])


@pytest.mark.parametrize(("batch_size", "m", "length"), [(7, 2, 40), (2, 2, 40), (8, 0, 40), (8, 2, 4)])
def test_bad_options(batch_size, m, length):
    with pytest.raises(ConfigError):
        identity_batch_sampler(INDEX, all_positions(INDEX), batch_size, m, length, seed=0)


def test_too_few_identities_is_data_error():
    with pytest.raises(DataError, match="needs 8 identities with 2 or more images, but only 6"):
        identity_batch_sampler(INDEX, all_positions(INDEX), 16, 2, 64, seed=0)


def test_dataloader_and_collate(forgery_folders):
    index = scan_folder(*forgery_folders)
    ds = ImageDataset(index, ImageLoader(1), get_transform("digits", False, image_size=(8, 8)))
    sampler = identity_batch_sampler(index, range(len(index)), 4, 2, 12, seed=0, forgeries_per_batch=2)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=batch_collate)
    batches = list(loader)
    assert len(batches) == 3
    for (images, labels, indices), batch in zip(batches, sampler, strict=True):
        assert images.shape == (6, 1, 8, 8) and indices is None
        assert labels.tolist() == ds.labels[batch].tolist()
        genuine = labels[:4]
        assert sorted(Counter(genuine.tolist()).values()) == [2, 2]
        assert (labels[4:] >= len(index.identities)).all()  # forgeries carry unique labels


def test_batch_collate_shapes():
    images, labels, indices = batch_collate([(torch.zeros(1, 3, 3), 4), (torch.ones(1, 3, 3), 7)])
    assert images.shape == (2, 1, 3, 3) and labels.tolist() == [4, 7] and indices is None


def test_warns_when_positions_hold_no_forgeries(caplog):
    with caplog.at_level(logging.WARNING, logger="siamese.data.batches"):
        sampler = identity_batch_sampler(INDEX, INDEX.genuine(), 8, 2, 16, seed=0, forgeries_per_batch=2)
    assert "holds no forgeries" in caplog.text
    assert all(len(batch) == 8 for batch in sampler)


def test_shuffled_batches_depend_only_on_seed_and_epoch():
    from siamese.data import ShuffledBatchSampler

    a, b = ShuffledBatchSampler(10, 3, seed=1), ShuffledBatchSampler(10, 3, seed=1)
    b.set_epoch(1)
    b.set_epoch(0)  # going back to epoch 0 gives epoch 0's order again
    first = list(a)
    assert first == list(b) and len(a) == 3 and len(first) == 3
    assert all(len(batch) == 3 for batch in first) and len({i for batch in first for i in batch}) == 9
    a.set_epoch(1)
    assert list(a) != first
    with pytest.raises(ConfigError, match="batch size 11 exceeds the 10 images"):
        ShuffledBatchSampler(10, 11)

"""Tests for siamese/data/splits.py: identity-disjoint seeded splits and their JSON form."""

from __future__ import annotations

import json

import pytest

from siamese.data import Split, split_identities
from siamese.errors import ConfigError, DataError

NAMES = [f"s{i}" for i in range(1, 41)]


def test_disjoint_complete_and_sized():
    split = split_identities(NAMES, 0.15, 0.15, seed=0)
    parts = [set(split.train), set(split.val), set(split.test)]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert parts[0] | parts[1] | parts[2] == set(NAMES)
    assert (len(split.train), len(split.val), len(split.test)) == (28, 6, 6)
    assert list(split.train) == sorted(split.train)


def test_deterministic_and_order_independent():
    a = split_identities(NAMES, seed=3)
    assert a == split_identities(list(reversed(NAMES)), seed=3)
    assert a != split_identities(NAMES, seed=4)


def test_minimum_two_per_nonzero_part():
    split = split_identities([f"x{i}" for i in range(10)], val_fraction=0.05, test_fraction=0.0)
    assert (len(split.train), len(split.val), len(split.test)) == (8, 2, 0)
    six = split_identities([f"x{i}" for i in range(6)])
    assert (len(six.train), len(six.val), len(six.test)) == (2, 2, 2)
    big = split_identities([f"x{i}" for i in range(10)], val_fraction=0.49, test_fraction=0.49)
    assert len(big.train) == 2 and len(big.val) + len(big.test) == 8 and min(len(big.val), len(big.test)) >= 2
    assert split_identities(["a", "b"], 0.0, 0.0).train == ("a", "b")


def test_impossible_split_is_data_error():
    with pytest.raises(DataError, match="need 6"):
        split_identities([f"x{i}" for i in range(5)])
    with pytest.raises(DataError, match="need 2"):
        split_identities(["a"], 0.0, 0.0)
    with pytest.raises(DataError, match="unique"):
        split_identities(["a", "a", "b", "c"], 0.0, 0.0)


@pytest.mark.parametrize(("val", "test"), [(1.0, 0.0), (-0.1, 0.1), (0.0, 1.5), (0.5, 0.5), (0.7, 0.4)])
def test_bad_fractions_are_config_errors(val, test):
    with pytest.raises(ConfigError):
        split_identities(NAMES, val, test)


def test_json_round_trip(tmp_path):
    split = split_identities(NAMES, seed=1)
    path = tmp_path / "nested" / "split.json"
    split.to_json(path)
    assert json.loads(path.read_text()) == split.to_dict()
    assert Split.from_json(path) == split


def test_from_json_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        Split.from_json(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="cannot read"):
        Split.from_json(bad)
    bad.write_text(json.dumps({"train": ["a"], "val": []}))
    with pytest.raises(DataError, match="'test'"):
        Split.from_json(bad)
    bad.write_text(json.dumps({"train": ["a", "b"], "val": ["b"], "test": []}))
    with pytest.raises(DataError, match="overlap"):
        Split.from_json(bad)

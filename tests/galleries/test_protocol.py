"""The open-set identification protocol on clustered embeddings with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from siamese.errors import DataError
from siamese.galleries.protocol import identification_protocol, split_identities


def _clusters(n_ids: int, per: int, noise: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids, 16))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    emb = np.repeat(centres, per, axis=0) + rng.normal(size=(n_ids * per, 16)) * noise
    return emb.astype(np.float32), np.repeat([f"p{i:03d}" for i in range(n_ids)], per)


def test_split_is_seeded_and_disjoint() -> None:
    labels = [f"p{i}" for i in range(10)]
    enrolled, cal, fresh = split_identities(labels, seed=3)
    assert (len(enrolled), len(cal), len(fresh)) == (5, 2, 3)
    assert not (set(enrolled) & set(cal) | set(enrolled) & set(fresh) | set(cal) & set(fresh))
    assert split_identities(labels, seed=3) == (enrolled, cal, fresh) != split_identities(labels, seed=4)
    with pytest.raises(DataError, match="at least 8"):
        split_identities(list("abcdefg"))


def test_separated_clusters_are_found_and_strangers_rejected() -> None:
    emb, labels = _clusters(80, 6, noise=0.02)
    out = identification_protocol(
        emb, labels, "cosine", counts=(1, 5), fusions=("min", "mean"), fpirs=(0.01, 0.1)
    )
    assert out["identities"] == {"enrolled": 40, "calibration": 20, "fresh": 20}
    for count, per in out["counts"].items():
        for entry in per.values():
            assert entry["gallery_size"] == 40 and entry["cmc"]["rank-1"] == 1.0
            assert entry["mated_searches"] == 40 * (6 - int(count))
            at = entry["open_set"]["fpir=0.1"]
            assert at["fnir"] == 0.0 and at["fpir_calibration"] <= 0.1 and at["fpir_fresh"] <= 0.2


def test_overlapping_clusters_trade_fnir_for_fpir() -> None:
    emb, labels = _clusters(60, 6, noise=0.35, seed=1)
    out = identification_protocol(
        emb, labels, "euclidean", counts=(3,), fusions=("template",), fpirs=(0.01, 0.1)
    )
    entry = out["counts"]["3"]["template"]
    assert entry["cmc"]["rank-1"] <= entry["cmc"]["rank-5"] <= entry["cmc"]["rank-10"]
    strict, loose = entry["open_set"]["fpir=0.01"], entry["open_set"]["fpir=0.1"]
    assert strict["threshold"] <= loose["threshold"] and strict["fnir"] >= loose["fnir"]
    with pytest.raises(DataError, match="7 images"):
        identification_protocol(emb, labels, "euclidean", counts=(6,), fusions=("min",))

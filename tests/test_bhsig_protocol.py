"""The BHSig260 benchmark's protocol (benchmarks/bhsig.py) on a made-up signature folder: writer
splits, validation writers carved out of the training writers, SigNet's pair counts."""

from __future__ import annotations

import sys
from argparse import Namespace
from pathlib import Path
from types import ModuleType

import pytest
from PIL import Image

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
WRITERS, GENUINE, FORGED = 20, 4, 3


@pytest.fixture
def bhsig(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    for name in ("common", "peers", "cedar", "bhsig"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    import bhsig

    return bhsig


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for w in range(1, WRITERS + 1):
        for kind, count in (("genuine", GENUINE), ("forged", FORGED)):
            folder = tmp_path / kind / f"{w:03d}"
            folder.mkdir(parents=True)
            for k in range(count):
                Image.new("L", (22, 16), 200 + k).save(folder / f"{kind[0]}-{k}.png")
    return tmp_path


def test_splits_are_seeded_disjoint_and_validate_on_training_writers(bhsig, root, monkeypatch) -> None:
    monkeypatch.setattr(bhsig, "TEST_WRITERS", 8)
    monkeypatch.setattr(bhsig, "VAL_WRITERS", 3)
    index = bhsig.load_index(root)
    writers = list(index.identities)
    args = Namespace(smoke=False, seed=5, data_root=root, work_dir=root / "runs")
    folds = [bhsig.make_fold(args, index, k, writers) for k in range(2)]
    for fold in folds:
        split = fold.split
        assert (len(split.train), len(split.val), len(split.test)) == (9, 3, 8)
        assert not set(split.test) & (set(split.train) | set(split.val))
        assert not set(split.train) & set(split.val)
        assert set(fold.val.identities) == set(split.val)  # the threshold never sees a test writer
        assert set(fold.test.identities) == set(split.test)
    assert folds[0].split.test != folds[1].split.test  # another seed, another split
    again = bhsig.make_fold(args, index, 0, writers)
    assert again.split == folds[0].split


def test_test_pairs_are_every_genuine_and_every_forgery_pair(bhsig, root, monkeypatch) -> None:
    monkeypatch.setattr(bhsig, "TEST_WRITERS", 8)
    index = bhsig.load_index(root)
    args = Namespace(smoke=False, seed=0, data_root=root, work_dir=root / "runs")
    fold = bhsig.make_fold(args, index, 0, list(index.identities))
    skilled, random = fold.test.sets["skilled"], fold.test.sets["random"]
    per_writer_genuine = GENUINE * (GENUINE - 1) // 2  # SigNet: 276 for 24 genuine
    assert skilled.counts == {"genuine": 8 * per_writer_genuine, "impostor": 8 * GENUINE * FORGED}
    assert random.counts == {"genuine": 8 * per_writer_genuine, "impostor": 8 * per_writer_genuine}
    who, forged = fold.test.identities, fold.test.forged
    for i, j, same in zip(skilled.i, skilled.j, skilled.is_same, strict=True):
        assert who[i] == who[j]  # skilled impostors imitate the writer they are paired with
        assert forged[i] + forged[j] == (0 if same else 1)
    for i, j, same in zip(random.i, random.j, random.is_same, strict=True):
        assert not forged[i] and not forged[j] and (who[i] == who[j]) == same

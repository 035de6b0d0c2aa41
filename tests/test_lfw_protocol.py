"""The LFW benchmark's protocol (benchmarks/lfw.py) on a hand-made LFW-format folder: who a fold may
train on, and the fold accuracy at the threshold of the other folds' pairs, by hand."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
PEOPLE = {"Ann": 3, "Bob": 2, "Cid": 2, "Dee": 4, "Eve": 1, "Fay": 2, "Gus": 3, "Hal": 1}
PAIRS = (  # 2 folds x (2 genuine + 2 impostor); Eve, Hal and Gus appear in no pair
    "2\t2\nAnn\t1\t2\nBob\t1\t2\nAnn\t3\tCid\t1\nBob\t2\tEve\t1\n"
    "Dee\t1\t4\nFay\t1\t2\nDee\t2\tCid\t2\nFay\t2\tHal\t1\n"
)


@pytest.fixture
def lfw(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    for name in ("common", "peers", "lfw"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    import lfw

    return lfw


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for name, count in PEOPLE.items():
        folder = tmp_path / "images" / name
        folder.mkdir(parents=True)
        for k in range(1, count + 1):
            Image.new("RGB", (8, 8), (10 * k, 0, 0)).save(folder / f"{name}_{k:04d}.jpg")
    (tmp_path / "pairs.txt").write_text(PAIRS)
    return tmp_path


def test_a_fold_trains_only_on_people_outside_its_pairs(lfw, root, monkeypatch) -> None:
    from siamese.data import scan_folder

    view = lfw.read_view(root, 2, smoke=False)
    assert list(view.tasks) == ["fold1", "fold2"] and len(view.pairs) == 8
    fold1 = view.tasks["fold1"]
    assert fold1.excluded == {"Ann", "Bob", "Cid", "Eve"}
    assert fold1.test.tolist() == [True] * 4 + [False] * 4 and (fold1.threshold == ~fold1.test).all()
    index = scan_folder(root / "images")
    monkeypatch.setattr(lfw, "VAL_PEOPLE", 1)
    split = lfw.task_split(index, fold1, seed=0, smoke=False)
    assert set(split.train) | set(split.val) == {"Dee", "Fay", "Gus", "Hal"}  # Cid is in fold 2 too
    assert set(split.test) == fold1.excluded and len(split.val) == 1
    assert all(len(index.by_identity()[p]) >= 2 for p in split.val)


def test_fold_accuracy_uses_the_threshold_of_the_other_folds(lfw, root) -> None:
    """Fold 2's pairs (genuine 0.9, 0.7; impostor 0.2, 0.6) put the best threshold in (0.6, 0.7]:
    0.65, the midpoint. Fold 1 (genuine 0.8, 0.62; impostor 0.3, 0.64) then scores 3 of 4: the
    genuine 0.62 is rejected, the impostor 0.64 too; the best threshold of fold 1 itself (0.81 ->
    2/4, 0.63 -> 3/4, 0.61 -> 3/4) is never used."""
    view = lfw.read_view(root, 2, smoke=False)
    scores = np.array([0.8, 0.62, 0.3, 0.64, 0.9, 0.7, 0.2, 0.6])
    metrics = lfw.task_metrics(scores, view.pairs, view.tasks["fold1"])
    assert metrics["threshold"] == pytest.approx(0.65)
    assert metrics["accuracy"] == 0.75
    assert metrics["test_pairs"] == {"genuine": 2, "impostor": 2}
    assert metrics["auc"] == pytest.approx(0.75)  # 0.8 beats both impostors, 0.62 only 0.3


def test_standard_error_is_lfw_s(lfw) -> None:
    records = {f"fold{k}": {"accuracy": a, "auc": 0.9, "eer": 0.1, "roc_tar": [0.5] * len(lfw.ROC_FARS)}
               for k, a in enumerate([0.8, 0.9, 0.85], 1)}  # fmt: skip
    summary = lfw.summarise(records)
    assert summary["accuracy_mean"] == pytest.approx(0.85)
    assert summary["accuracy_se"] == pytest.approx(0.05 / np.sqrt(3))  # sample std 0.05

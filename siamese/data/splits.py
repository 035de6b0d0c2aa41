"""Identity-disjoint train/val/test splits (verification is evaluated on unseen identities)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from siamese.data.folder import ImageIndex, scan_folder
from siamese.errors import ConfigError, DataError
from siamese.runs import RunDir

_MIN_PER_SPLIT = 2  # a verification split needs impostors, so at least two identities


@dataclass(frozen=True)
class Split:
    """Disjoint identity names for training, validation and testing."""

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]

    def __post_init__(self) -> None:
        for name in ("train", "val", "test"):
            object.__setattr__(self, name, tuple(str(x) for x in getattr(self, name)))
        parts = self.train + self.val + self.test
        if len(set(parts)) != len(parts):
            shared = sorted({x for x in parts if parts.count(x) > 1})
            raise DataError(f"split parts overlap or repeat identities: {', '.join(shared[:5])}")

    def to_dict(self) -> dict[str, list[str]]:
        """Plain JSON-able dict with keys train, val and test."""
        return {"train": list(self.train), "val": list(self.val), "test": list(self.test)}

    def to_json(self, path: str | os.PathLike) -> None:
        """Write the split as JSON (parent folders are created)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> Split:
        """Read a split written by `to_json`.

        Raises:
            DataError: missing file, invalid JSON, or missing/overlapping parts.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise DataError(f"split file not found: {path}") from exc
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read split file {path}: {exc}") from exc
        if not isinstance(data, dict) or not all(
            isinstance(data.get(k), list) for k in ("train", "val", "test")
        ):
            raise DataError(f"split file {path} must hold lists 'train', 'val' and 'test'")
        return cls(train=data["train"], val=data["val"], test=data["test"])


def _split_sizes(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    sizes = [
        0 if f == 0 else max(_MIN_PER_SPLIT, int(np.floor(n * f + 0.5)))
        for f in (val_fraction, test_fraction)
    ]
    while n - sum(sizes) < _MIN_PER_SPLIT:
        big = int(np.argmax(sizes))
        if sizes[big] <= _MIN_PER_SPLIT:
            needed = _MIN_PER_SPLIT * (1 + sum(f > 0 for f in (val_fraction, test_fraction)))
            raise DataError(
                f"cannot split {n} identities into train/val/test with at least {_MIN_PER_SPLIT} each "
                f"(need {needed}); lower val/test fractions to 0 or add identities"
            )
        sizes[big] -= 1
    return sizes[0], sizes[1]


def split_identities(
    identities: Sequence[str], val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0
) -> Split:
    """Randomly partition identities into disjoint train/val/test parts.

    The names are sorted, then permuted with `seed`, so the result does not depend on input order.
    A non-zero fraction gets `round(n * fraction)` identities but at least 2 (a verification
    split needs impostors); train keeps at least 2. Each part is returned sorted.

    Raises:
        ConfigError: a fraction outside [0, 1) or fractions summing to 1 or more.
        DataError: too few identities for the requested parts, or duplicate names.
    """
    for name, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= f < 1.0:
            raise ConfigError(f"{name} must be in [0, 1), got {f}")
    if val_fraction + test_fraction >= 1.0:
        raise ConfigError(f"val_fraction + test_fraction must be < 1, got {val_fraction + test_fraction:g}")
    names = sorted(identities)
    if len(set(names)) != len(names):
        raise DataError("identity names must be unique")
    n_val, n_test = _split_sizes(len(names), val_fraction, test_fraction)
    order = np.random.default_rng(seed).permutation(len(names))
    shuffled = [names[i] for i in order]
    val = sorted(shuffled[:n_val])
    test = sorted(shuffled[n_val : n_val + n_test])
    train = sorted(shuffled[n_val + n_test :])
    return Split(train=tuple(train), val=tuple(val), test=tuple(test))


SPLITS = ("test", "val", "train", "all")


def load_split_index(
    data_root: str | os.PathLike,
    forgeries: str | os.PathLike | None = None,
    run_dir: str | os.PathLike | None = None,
    split: str = "all",
) -> ImageIndex:
    """Scan `data_root` (plus forgeries) and keep the identities of one part of a run's split.

    Args:
        data_root: identity-folder root.
        forgeries: optional skilled-forgery root (same identity names).
        run_dir: run directory holding `split.json`; needed unless `split` is "all".
        split: "train", "val", "test", or "all" for every identity (e.g. another dataset).

    Raises:
        ConfigError: unknown split, or a split without a run directory.
        DataError: missing or empty split, or split identities absent from `data_root`.
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    index = scan_folder(data_root, forgeries)
    if split == "all":
        return index
    if run_dir is None:
        raise ConfigError(f"split {split!r} needs the run directory whose split.json defines it")
    split_file = RunDir(run_dir).split_file
    names = getattr(Split.from_json(split_file), split)
    if not names:
        raise DataError(f"the {split!r} part of {split_file} is empty; choose another split or 'all'")
    missing = sorted(set(names) - set(index.identities))
    if missing:
        raise DataError(
            f"{len(missing)} of the {len(names)} {split!r} identities of {split_file} are not in "
            f"{data_root} (e.g. {missing[0]!r}); use split 'all' to evaluate every identity "
            "of another dataset"
        )
    return index.subset(names)

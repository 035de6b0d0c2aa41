"""Scanning an identity-per-folder image tree (plus optional skilled forgeries) into an `ImageIndex`."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from siamese.data.images import is_image_file
from siamese.errors import DataError

logger = logging.getLogger(__name__)

_SKIPPED_DIRS = frozenset({"__MACOSX"})
_LIST_LIMIT = 5


def _natural_key(name: str) -> tuple:
    """Sort key that orders "2.png" before "10.png" (ties broken by the plain name)."""
    parts = re.split(r"(\d+)", name)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts if p), name


def _hidden(name: str) -> bool:
    return name.startswith(".") or name in _SKIPPED_DIRS


def list_images(folder: str | os.PathLike) -> list[str]:
    """Image file names directly inside `folder`, hidden files skipped, in natural order.

    Natural order ("2.png" before "10.png") equals plain sorting for zero-padded names such
    as LFW's; protocol files that number images per identity (`read_pairs`) use this order.
    """
    with os.scandir(os.fspath(folder)) as entries:
        names = [e.name for e in entries if not _hidden(e.name) and is_image_file(e.name) and e.is_file()]
    return sorted(names, key=_natural_key)


def _preview(names: Iterable[str]) -> str:
    names = list(names)
    shown = ", ".join(names[:_LIST_LIMIT])
    return shown + (f", ... ({len(names)} in total)" if len(names) > _LIST_LIMIT else "")


@dataclass(frozen=True)
class ImageRecord:
    """One image file.

    Attributes:
        path: absolute path of the file.
        identity: identity name (folder path relative to the dataset root, "/"-separated).
        forgery: True for a skilled forgery imitating `identity` (a negative for it).
        turns: quarter turns (counter-clockwise, 0-3) applied to the image when it is loaded;
            non-zero only for the extra classes of `rotated_classes`.
    """

    path: str
    identity: str
    forgery: bool = False
    turns: int = 0


@dataclass(frozen=True)
class ImageIndex:
    """All images of a dataset, each tagged with its identity; forgeries come after genuine images.

    Attributes:
        records: the images, genuine and forged.
        identities: sorted names of the genuine identities; label i is `identities[i]`.
    """

    records: tuple[ImageRecord, ...]
    identities: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "records", tuple(self.records))
        object.__setattr__(self, "identities", tuple(self.identities))
        if list(self.identities) != sorted(set(self.identities)):
            raise DataError("ImageIndex identities must be sorted and unique")
        known = set(self.identities)
        unknown = sorted({r.identity for r in self.records} - known)
        if unknown:
            raise DataError(f"images refer to identities missing from the index: {_preview(unknown)}")

    def __len__(self) -> int:
        return len(self.records)

    def genuine(self) -> list[int]:
        """Positions of the genuine (non-forgery) records."""
        return [i for i, r in enumerate(self.records) if not r.forgery]

    def forgeries(self) -> list[int]:
        """Positions of the forgery records."""
        return [i for i, r in enumerate(self.records) if r.forgery]

    def by_identity(self) -> dict[str, list[int]]:
        """Genuine record positions per identity, for every identity (in `identities` order)."""
        groups: dict[str, list[int]] = {name: [] for name in self.identities}
        for i, r in enumerate(self.records):
            if not r.forgery:
                groups[r.identity].append(i)
        return groups

    def forgeries_by_identity(self) -> dict[str, list[int]]:
        """Forgery record positions per imitated identity (only identities that have forgeries)."""
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(self.records):
            if r.forgery:
                groups.setdefault(r.identity, []).append(i)
        return groups

    def labels(self, forgery_classes: bool = False) -> np.ndarray:
        """Integer class label per record, shape (N,), int64.

        Genuine images get the position of their identity in `identities`. Each forgery gets its
        own unique label `len(identities) + k` (k = its rank among the forgeries), so it is never
        a positive of anything and never forms a class of its own. With `forgery_classes`, the
        forgeries of identity i instead share the label `len(identities) + i`: one class per
        imitated identity, beside (never equal to) the identity's own class.

        >>> forged = [ImageRecord(f"fb{k}", "b", forgery=True) for k in (1, 2)]
        >>> index = ImageIndex((ImageRecord("a1", "a"), ImageRecord("b1", "b"), *forged), ("a", "b"))
        >>> index.labels().tolist(), index.labels(forgery_classes=True).tolist()
        ([0, 1, 2, 3], [0, 1, 3, 3])
        """
        position = {name: i for i, name in enumerate(self.identities)}
        out = np.empty(len(self.records), dtype=np.int64)  # (N,)
        next_forgery = len(self.identities)
        for i, r in enumerate(self.records):
            if r.forgery and forgery_classes:
                out[i] = len(self.identities) + position[r.identity]
            elif r.forgery:
                out[i] = next_forgery
                next_forgery += 1
            else:
                out[i] = position[r.identity]
        return out

    def subset(self, identities: Iterable[str]) -> ImageIndex:
        """The index restricted to `identities` (their genuine images and their forgeries).

        Raises:
            DataError: a name that is not an identity of this index.
        """
        keep = set(identities)
        unknown = sorted(keep - set(self.identities))
        if unknown:
            raise DataError(f"unknown identities: {_preview(unknown)}")
        records = tuple(r for r in self.records if r.identity in keep)
        return ImageIndex(records=records, identities=tuple(sorted(keep)))

    def summary(self) -> str:
        """One line: images, identities, images per identity and forgeries."""
        counts = [len(v) for v in self.by_identity().values()]
        forged = self.forgeries_by_identity()
        text = f"{len(counts)} identities, {sum(counts)} genuine images"
        if counts:
            text += f" ({min(counts)}-{max(counts)} per identity, median {float(np.median(counts)):g})"
        singles = sum(1 for c in counts if c == 1)
        if singles:
            text += f", {singles} with a single image"
        if forged:
            n_forged = sum(len(v) for v in forged.values())
            text += f", {n_forged} forgeries of {len(forged)} identities"
        return text


def _check_root(root: Path, what: str) -> None:
    if not root.exists():
        raise DataError(f"{what} not found: {root}")
    if not root.is_dir():
        raise DataError(f"{what} must be a folder of identity sub-folders, got a file: {root}")


def walk_image_folders(root: str | os.PathLike) -> Iterator[tuple[str, list[str]]]:
    """Yield `(relative folder, sorted image paths)` for every folder under `root` holding images.

    The relative folder is "." for `root` itself and uses "/" separators; hidden folders are skipped,
    symlinked folders are followed once (cycles are cut), and the order is deterministic.
    """
    root = Path(root)
    seen: set[str] = set()
    for dirpath, dirnames, _ in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # symlink cycle
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
        images = list_images(dirpath)
        if images:
            yield Path(dirpath).relative_to(root).as_posix(), [os.path.join(dirpath, n) for n in images]


def _walk_identities(root: Path) -> tuple[dict[str, list[str]], int]:
    """Map identity name -> sorted absolute image paths; also count images lying directly in root."""
    found: dict[str, list[str]] = {}
    loose = 0
    for rel, images in walk_image_folders(root):
        if rel == ".":
            loose = len(images)
        else:
            found[rel] = images
    return found, loose


def _scan_root(root: Path, what: str) -> dict[str, list[str]]:
    _check_root(root, what)
    found, loose = _walk_identities(root)
    if not found:
        if loose:
            raise DataError(
                f"{what} {root} holds {loose} images directly but no identity sub-folders; "
                "put each identity's images in its own folder (root/<identity>/<image>)"
            )
        raise DataError(f"{what} {root} has no sub-folders containing images")
    if loose:
        logger.warning("ignoring %d images lying directly in %s (not inside an identity folder)", loose, root)
    return found


def scan_folder(
    root: str | os.PathLike, forgeries: str | os.PathLike | None = None, min_identities: int = 2
) -> ImageIndex:
    """Index an image tree where every folder directly holding images is one identity.

    Identity names are folder paths relative to `root` with "/" separators, so nested layouts
    work unchanged (Omniglot `alphabet/character/`, CEDAR `genuine/<writer>/`). Non-image and
    hidden files/folders are ignored; images are sorted in natural order.

    Args:
        root: folder of genuine images, `root/<identity>/<image>`.
        forgeries: optional folder of skilled forgeries, `forgeries/<identity>/<image>`, using
            the same identity names; unmatched forgery folders are ignored with a warning.
        min_identities: the fewest identities accepted (pairs need two; enrolling one is fine).

    Raises:
        DataError: missing root, a file instead of a folder, no identity folders, fewer than
            `min_identities` identities, or forgery folders none of which matches an identity.
    """
    root = Path(root).absolute()
    genuine = _scan_root(root, "dataset folder")
    if len(genuine) < min_identities:
        raise DataError(f"dataset folder {root} has only 1 identity ({next(iter(genuine))}); need at least 2")
    identities = tuple(sorted(genuine))
    records = [ImageRecord(path, name) for name in identities for path in genuine[name]]
    singles = [name for name in identities if len(genuine[name]) == 1]
    if singles:
        logger.warning(
            "%d identities have a single image (used only as negatives): %s", len(singles), _preview(singles)
        )
    if forgeries is not None:
        records += _forgery_records(Path(forgeries).absolute(), set(identities))
    return ImageIndex(records=tuple(records), identities=identities)


def _forgery_records(root: Path, identities: set[str]) -> list[ImageRecord]:
    found = _scan_root(root, "forgeries folder")
    unmatched = sorted(set(found) - identities)
    if len(unmatched) == len(found):
        raise DataError(
            f"none of the {len(found)} forgery folders in {root} matches a genuine identity "
            f"(e.g. {_preview(unmatched)})"
        )
    if unmatched:
        logger.warning(
            "ignoring %d forgery folders with no matching genuine identity: %s",
            len(unmatched),
            _preview(unmatched),
        )
    return [
        ImageRecord(path, name, forgery=True)
        for name in sorted(found)
        if name in identities
        for path in found[name]
    ]


ROTATIONS = (1, 2, 4)
"""Allowed orientation counts of `rotated_classes`: none, 0/180 degrees, or all four quarter turns."""


def rotated_classes(index: ImageIndex, rotations: int) -> ImageIndex:
    """Add each identity rotated by 180 (rotations=2) or by 90, 180 and 270 degrees (rotations=4)
    as new identities, `"<name>@rot<degrees>"`: class augmentation for rotation-variant data such as
    handwritten characters (Santoro et al. 2016; Vinyals et al. 2016 on Omniglot).

    The rotated copies point to the same files; `ImageRecord.turns` tells the loaders to rotate.
    Forgeries of an identity become forgeries of each of its rotated copies too.

    Raises:
        DataError: `rotations` not in `ROTATIONS`.
    """
    if rotations not in ROTATIONS:
        raise DataError(f"rotations must be one of {ROTATIONS}, got {rotations!r}")
    if rotations == 1:
        return index
    turns = range(0, 4, 4 // rotations)  # (0, 2) or (0, 1, 2, 3)

    def name(identity: str, k: int) -> str:
        return identity if k == 0 else f"{identity}@rot{90 * k}"

    records = [
        ImageRecord(r.path, name(r.identity, k), r.forgery, (r.turns + k) % 4)
        for forged in (False, True)  # genuine images first, as `ImageIndex` expects
        for k in turns
        for r in index.records
        if r.forgery == forged
    ]
    identities = sorted(name(i, k) for i in index.identities for k in turns)
    return ImageIndex(records=tuple(records), identities=tuple(identities))

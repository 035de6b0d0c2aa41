"""Verification protocol files: reading LFW-style and CSV pair lists, writing and generating CSV ones.

LFW-style (`pairs.txt`): an optional header line of one or two integers (`10\t300` = 10 folds of 300
genuine then 300 impostor pairs, one fold after the other; `500` = 500 of each), then
whitespace-separated lines `name i j` (genuine: images i and j of `name`) or `name1 i name2 j`
(impostor). Image numbers are 1-based positions in the natural-sorted image files of `root/<name>/`
(the order `scan_folder` uses; for LFW's zero-padded names it is plain sorting). Identity names may
be nested paths such as `alphabet/character`.

CSV: rows `path1,path2,is_same`, optional header row, paths relative to `root` or absolute,
is_same one of 1/0, true/false, same/different (case-insensitive).

Blank lines and lines starting with `#` are skipped in both formats.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from siamese.data.folder import ImageIndex, list_images
from siamese.data.images import ImageLoader
from siamese.data.pairs import PairDataset
from siamese.errors import DataError

logger = logging.getLogger(__name__)

_TRUE = frozenset({"1", "true", "same"})
_FALSE = frozenset({"0", "false", "different"})

Pair = tuple[str, str, bool]


def _parse_is_same(token: str) -> bool | None:
    token = token.strip().lower()
    return True if token in _TRUE else False if token in _FALSE else None


def _content_lines(text: str) -> list[tuple[int, str]]:
    """(1-based line number, line) of the non-blank, non-comment lines."""
    return [
        (n, line)
        for n, line in enumerate(text.splitlines(), 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]


@dataclass(frozen=True)
class PairList:
    """The pairs of a protocol file and the folds its header declares.

    Attributes:
        pairs: (absolute image path, absolute image path, is_same) per line.
        folds: the number of folds of an LFW header `folds<TAB>pairs` (the pairs are that many
            equal consecutive blocks), else None.
    """

    pairs: list[Pair]
    folds: int | None = None


def read_pairs(path: str | os.PathLike, root: str | os.PathLike) -> list[Pair]:
    """Read a pair list as (absolute image path, absolute image path, is_same) tuples
    (`read_pair_list`'s pairs)."""
    return read_pair_list(path, root).pairs


def read_pair_list(path: str | os.PathLike, root: str | os.PathLike) -> PairList:
    """Read a pair list, with the folds an LFW header declares.

    The format is CSV when the file ends in `.csv` or its first content line holds a comma,
    otherwise LFW-style (see the module docstring).

    Raises:
        DataError: missing file or root; or, naming the file and line number, a malformed line,
            an unknown identity, an image number out of range or a missing image file; a fold
            header whose count the body does not match.
    """
    path, root = Path(path), Path(root).absolute()
    if not path.is_file():
        raise DataError(f"pairs file not found: {path}")
    if not root.is_dir():
        raise DataError(f"image root folder not found: {root}")
    try:
        lines = _content_lines(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read pairs file {path}: {exc}") from exc
    if not lines:
        raise DataError(f"pairs file {path} holds no pairs")
    folds = None
    if path.suffix.lower() == ".csv" or "," in lines[0][1]:
        pairs = _read_csv(path, root, lines)
    else:
        pairs, folds = _read_lfw(path, root, lines)
    if not pairs:
        raise DataError(f"pairs file {path} holds no pairs")
    return PairList(pairs, folds)


def _read_csv(path: Path, root: Path, lines: list[tuple[int, str]]) -> list[Pair]:
    pairs: list[Pair] = []
    for k, (lineno, line) in enumerate(lines):
        row = next(csv.reader([line]))
        if len(row) != 3:
            raise DataError(f"{path}, line {lineno}: expected 'path1,path2,is_same', got {len(row)} fields")
        is_same = _parse_is_same(row[2])
        if is_same is None:
            if k == 0:  # header row
                continue
            raise DataError(
                f"{path}, line {lineno}: is_same must be 1/0, true/false or same/different, got {row[2]!r}"
            )
        first, second = (_csv_image(path, root, lineno, field) for field in row[:2])
        pairs.append((first, second, is_same))
    return pairs


def _csv_image(path: Path, root: Path, lineno: int, field: str) -> str:
    image = Path(field.strip())
    image = image if image.is_absolute() else root / image
    if not image.is_file():
        raise DataError(f"{path}, line {lineno}: image file not found: {image}")
    return os.path.normpath(image)


class _Identities:
    """Lazily listed images of `root/<name>/`, for resolving LFW `name number` references."""

    def __init__(self, path: Path, root: Path) -> None:
        self.path, self.root = path, root
        self._images: dict[str, list[str]] = {}

    def image(self, lineno: int, name: str, number: str) -> str:
        if name not in self._images:
            folder = self.root / name
            if not folder.is_dir():
                raise DataError(f"{self.path}, line {lineno}: unknown identity {name!r} (no folder {folder})")
            self._images[name] = list_images(folder)
        try:
            k = int(number)
        except ValueError:
            raise DataError(
                f"{self.path}, line {lineno}: image number must be an integer, got {number!r}"
            ) from None
        images = self._images[name]
        if not 1 <= k <= len(images):
            raise DataError(
                f"{self.path}, line {lineno}: image number {k} out of range for {name!r} "
                f"({len(images)} images, numbered from 1)"
            )
        return os.path.normpath(self.root / name / images[k - 1])


def _lfw_header(lines: list[tuple[int, str]]) -> tuple[int | None, int | None]:
    """(expected number of pair lines, folds) of an integer header line; (None, None) without one."""
    tokens = lines[0][1].split()
    if len(tokens) not in (1, 2) or not all(t.isdigit() for t in tokens):
        return None, None
    numbers = [int(t) for t in tokens]
    if len(numbers) == 1:
        return 2 * numbers[0], None
    return 2 * numbers[0] * numbers[1], numbers[0]


def _read_lfw(path: Path, root: Path, lines: list[tuple[int, str]]) -> tuple[list[Pair], int | None]:
    expected, folds = _lfw_header(lines)
    body = lines if expected is None else lines[1:]
    identities = _Identities(path, root)
    pairs: list[Pair] = []
    for lineno, line in body:
        tokens = line.split()
        if len(tokens) == 3:
            name, i, j = tokens
            pairs.append((identities.image(lineno, name, i), identities.image(lineno, name, j), True))
        elif len(tokens) == 4:
            name1, i, name2, j = tokens
            pairs.append((identities.image(lineno, name1, i), identities.image(lineno, name2, j), False))
        else:
            raise DataError(
                f"{path}, line {lineno}: expected 'name i j' or 'name1 i name2 j', got {len(tokens)} fields"
            )
    if expected is not None and expected != len(pairs):
        if folds is not None:
            raise DataError(
                f"{path}: the header announces {folds} folds, {expected} pairs in all, but the file "
                f"holds {len(pairs)}: its folds cannot be told apart"
            )
        logger.warning("%s: header announces %d pairs but the file holds %d", path, expected, len(pairs))
    if folds is not None and folds < 2:
        folds = None  # one fold: nothing to cross-validate
    return pairs, folds


def write_pairs_csv(pairs: Iterable[Pair], path: str | os.PathLike, root: str | os.PathLike) -> None:
    """Write pairs as CSV `path1,path2,is_same` (header row, is_same 1/0).

    Paths under `root` are written relative to it ("/"-separated); others stay absolute.
    """
    path, root = Path(path), Path(root).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["path1", "path2", "is_same"])
        for first, second, is_same in pairs:
            writer.writerow([_relative(first, root), _relative(second, root), int(bool(is_same))])


def _relative(image: str | os.PathLike, root: Path) -> str:
    image = Path(image).absolute()
    try:
        return image.relative_to(root).as_posix()
    except ValueError:
        return str(image)


def generate_pairs(
    index: ImageIndex, num_pairs: int, seed: int = 0, forgery_fraction: float = 0.5
) -> list[Pair]:
    """A balanced, deterministic pair list (image paths and is_same) from `PairDataset` epoch 0.

    Raises:
        DataError: see `PairDataset`.
    """
    dataset = PairDataset(
        index, ImageLoader(1), None, num_pairs, forgery_fraction=forgery_fraction, seed=seed
    )
    records = index.records
    return [(records[a].path, records[b].path, is_same) for a, b, is_same in dataset.pairs()]

"""Reading Omniglot's official 20-way one-shot classification runs (Lake et al., 2015).

Layout of the `all_runs` archive, one folder per run::

    one_shot_runs/
        run01/
            class_labels.txt     lines "run01/test/item01.png run01/training/class08.png"
            training/class01.png ... class20.png   (the support set: one image per class)
            test/item01.png ... item20.png         (the queries)
        run02/ ...

Each line of `class_labels.txt` names a query image and the support image of its class. The
paths start with the run folder's name (they are relative to the folder holding the runs); a
path is also accepted relative to the run folder itself, so a renamed run folder still reads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from siamese.data.folder import _natural_key, list_images
from siamese.errors import DataError

LABELS_FILE = "class_labels.txt"
SUPPORT_DIR = "training"


@dataclass(frozen=True)
class OneShotRun:
    """One N-way one-shot episode: a support set (one image per class) and labelled queries.

    Attributes:
        name: the run folder's name, e.g. "run01".
        support_paths: absolute paths of the support images (every image in `training/`).
        support_labels: class label of each support image (its file stem, e.g. "class08").
        query_paths: absolute paths of the query images, in `class_labels.txt` order.
        query_labels: label of the support image each query matches.
    """

    name: str
    support_paths: tuple[str, ...]
    support_labels: tuple[str, ...]
    query_paths: tuple[str, ...]
    query_labels: tuple[str, ...]

    @property
    def n_way(self) -> int:
        """Number of classes in the support set."""
        return len(self.support_paths)


def _resolve(run_dir: Path, labels_file: Path, lineno: int, field: str) -> str:
    """Absolute path of a `class_labels.txt` entry, relative to the runs folder or to the run folder."""
    rel = Path(field)
    candidates = [run_dir.parent / rel, run_dir / rel]
    if len(rel.parts) > 1:
        candidates.append(run_dir.joinpath(*rel.parts[1:]))  # run folder renamed
    for candidate in candidates:
        if candidate.is_file():
            return os.path.normpath(candidate)
    raise DataError(f"{labels_file}, line {lineno}: image file not found: {field}")


def _read_labels(run_dir: Path) -> list[tuple[int, str, str]]:
    """(line number, query field, support field) of every non-blank line of `class_labels.txt`."""
    labels_file = run_dir / LABELS_FILE
    try:
        text = labels_file.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"not a one-shot run folder (no {LABELS_FILE}): {run_dir}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {labels_file}: {exc}") from None
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) != 2:
            raise DataError(
                f"{labels_file}, line {lineno}: expected 'test_image training_image', "
                f"got {len(tokens)} fields"
            )
        rows.append((lineno, tokens[0], tokens[1]))
    if not rows:
        raise DataError(f"{labels_file} lists no test images")
    return rows


def read_oneshot_run(run_dir: str | os.PathLike) -> OneShotRun:
    """Read one run folder (`class_labels.txt`, `training/`, `test/`).

    The support set is every image in `training/` (natural order), labelled by its file stem;
    each query is labelled with the stem of the support image `class_labels.txt` maps it to.

    Raises:
        DataError: missing folder or label file, a malformed line, a missing image, or a query
            mapped to an image that is not in `training/` (each error names the file and line).
    """
    run_dir = Path(run_dir).absolute()
    if not run_dir.is_dir():
        raise DataError(f"one-shot run folder not found: {run_dir}")
    rows = _read_labels(run_dir)
    support_dir = run_dir / SUPPORT_DIR
    if not support_dir.is_dir():
        raise DataError(f"one-shot run {run_dir} has no {SUPPORT_DIR}/ folder of support images")
    support_paths = tuple(os.path.normpath(support_dir / name) for name in list_images(support_dir))
    if not support_paths:
        raise DataError(f"{support_dir} holds no images")
    label_of = {path: Path(path).stem for path in support_paths}
    labels_file = run_dir / LABELS_FILE
    query_paths, query_labels = [], []
    for lineno, query, support in rows:
        query_paths.append(_resolve(run_dir, labels_file, lineno, query))
        target = _resolve(run_dir, labels_file, lineno, support)
        if target not in label_of:
            raise DataError(f"{labels_file}, line {lineno}: {support} is not an image of {support_dir}")
        query_labels.append(label_of[target])
    return OneShotRun(
        name=run_dir.name,
        support_paths=support_paths,
        support_labels=tuple(label_of[p] for p in support_paths),
        query_paths=tuple(query_paths),
        query_labels=tuple(query_labels),
    )


def list_oneshot_runs(root: str | os.PathLike) -> list[Path]:
    """Run folders under `root` (sub-folders holding `class_labels.txt`), in natural order.

    `root` may also be a single run folder, which is then returned alone.

    Raises:
        DataError: `root` is missing or holds no run folder.
    """
    root = Path(root).absolute()
    if not root.is_dir():
        raise DataError(f"one-shot runs folder not found: {root}")
    if (root / LABELS_FILE).is_file():
        return [root]
    runs = [p for p in root.iterdir() if p.is_dir() and (p / LABELS_FILE).is_file()]
    if not runs:
        raise DataError(
            f"{root} holds no one-shot runs (expected sub-folders like run01/ with a {LABELS_FILE})"
        )
    return sorted(runs, key=lambda p: _natural_key(p.name))

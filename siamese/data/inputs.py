"""The images of an unlabelled input: a folder searched recursively, or a text file listing paths.

`siamese embed` reads its inputs through `list_inputs`; so does anything that works on "any
folder of images" without identity labels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from siamese.data.folder import walk_image_folders
from siamese.data.images import IMAGE_EXTENSIONS, is_image_file
from siamese.errors import DataError


@dataclass(frozen=True)
class EmbeddingInput:
    """One image to embed.

    Attributes:
        path: the image file.
        identity: its folder relative to the data root ("/"-separated, "" for the root itself).
    """

    path: str
    identity: str


def _hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def _scan(root: Path) -> list[EmbeddingInput]:
    items: list[EmbeddingInput] = []
    for rel, paths in walk_image_folders(root):
        identity = "" if rel == "." else rel
        items += [EmbeddingInput(path, identity) for path in paths]
    return items


def _read_list(list_file: Path) -> list[EmbeddingInput]:
    """Paths listed one per line (blank lines and `#` comments skipped), relative to the list's folder."""
    base = list_file.parent.absolute()
    items = []
    for line in list_file.read_text().splitlines():
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        p = Path(entry)
        identity = p.parent.name if p.is_absolute() else p.parent.as_posix()
        items.append(
            EmbeddingInput(str(p if p.is_absolute() else base / p), "" if identity == "." else identity)
        )
    return items


def list_inputs(data: str | os.PathLike) -> list[EmbeddingInput]:
    """The images to embed from a folder or from a text file listing image paths.

    A folder is searched recursively (hidden files and folders skipped, natural order); an
    image's identity is its folder relative to `data`, as in `siamese.data.scan_folder`, so an
    identity-per-folder dataset keeps its labels and a flat folder gives identity "". A text
    file lists one image path per line, relative paths being relative to the file's folder; the
    identity is the folder part of the line as written (the parent folder's name for absolute paths).

    Raises:
        DataError: `data` is missing, or lists/holds no images.
    """
    root = Path(data)
    if not root.exists():
        raise DataError(f"data not found: {root}")
    if root.is_dir():
        items = _scan(root.absolute())
        if not items:
            raise DataError(
                f"no images found under {root} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})"
            )
        return items
    if is_image_file(root):
        raise DataError(f"{root} is a single image; pass a folder of images or a text file listing them")
    try:
        items = _read_list(root)
    except UnicodeDecodeError:
        raise DataError(f"{root} is neither a folder nor a text file listing image paths") from None
    if not items:
        raise DataError(f"the list {root} names no image paths")
    return items

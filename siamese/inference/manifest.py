"""The manifest of an embeddings output (`<stem>.manifest.json`): the model and input list it was
made from and each completed part - what lets `siamese embed` resume and `read_embeddings` read
a sharded output. Written atomically; read with validation, one-line `DataError`s."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from siamese.data.inputs import EmbeddingInput
from siamese.errors import DataError
from siamese.models.checkpoint import atomic_write

MANIFEST_FORMAT = "siamese-embeddings"
MANIFEST_VERSION = 1
MANIFEST_SUFFIX = ".manifest.json"


def manifest_path(out: str | os.PathLike) -> Path:
    """The manifest of the output `out`: `emb.npy` -> `emb.manifest.json` beside it."""
    out = Path(out)
    return out.with_name(out.stem + MANIFEST_SUFFIX)


def part_path(out: str | os.PathLike, index: int) -> Path:
    """Part `index` of a sharded output: `emb.npy` -> `emb-00000.npy`, `emb-00001.npy`, ..."""
    out = Path(out)
    return out.with_name(f"{out.stem}-{index:05d}{out.suffix}")


def inputs_digest(inputs: Sequence[EmbeddingInput]) -> str:
    """`sha256:<hex>` of an input list: every path and identity, in order."""
    digest = hashlib.sha256()
    for item in inputs:
        digest.update(json.dumps([item.path, item.identity]).encode("utf-8") + b"\n")
    return f"sha256:{digest.hexdigest()}"


@dataclass(frozen=True)
class ManifestPart:
    """One completed part of an embeddings output.

    Attributes:
        files: its files, named relative to the manifest's folder (a `.npy` and its sidecar, or one).
        first: the position of its first input in the input list.
        inputs: how many successive inputs it covers: its rows plus its skipped inputs.
        rows: rows written.
        skipped: `(position, path, reason)` of each unreadable input it covers.
    """

    files: tuple[str, ...]
    first: int
    inputs: int
    rows: int
    skipped: tuple[tuple[int, str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        skipped = [{"position": i, "path": p, "reason": r} for i, p, r in self.skipped]
        return {
            "files": list(self.files),
            "first": self.first,
            "inputs": self.inputs,
            "rows": self.rows,
            "skipped": skipped,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ManifestPart:
        """Raises KeyError, TypeError or ValueError on a malformed record."""
        files = tuple(_typed(doc, "files", list))
        if not files or any(not isinstance(f, str) or Path(f).name != f or f in (".", "..") for f in files):
            raise ValueError(f"a part lists bad file names {list(files)}")
        skipped = tuple(
            (int(s["position"]), str(s["path"]), str(s["reason"])) for s in _typed(doc, "skipped", list)
        )
        first, inputs, rows = (_typed(doc, key, int) for key in ("first", "inputs", "rows"))
        if rows + len(skipped) != inputs:
            raise ValueError(f"part {files[0]}: {rows} rows and {len(skipped)} skipped but {inputs} inputs")
        return cls(files, first, inputs, rows, skipped)


@dataclass(frozen=True)
class EmbeddingManifest:
    """`<stem>.manifest.json`: what an embeddings output holds and in which files.

    `write_embeddings` writes it beside every output, one part or many, and rewrites it (to a
    temporary file, then renamed) each time a part's files are complete; `read_manifest` reads it.

    Attributes:
        model: the checkpoint stem the embeddings come from (absolute).
        fingerprint: its `model_fingerprint` (None for a model without a weights file).
        distance: the model's pair distance.
        embedding_dim: D.
        tta: the test-time augmentation used.
        suffix: the file format, ".npy", ".csv" or ".parquet".
        shard_size: inputs per part; None for one file named as the output itself.
        inputs: the number of inputs.
        inputs_digest: `inputs_digest` of the input list.
        parts: the completed parts, in input order.
        detect: each image's largest face was embedded (`--detect`), not the whole image.
    """

    model: str | None
    fingerprint: str | None
    distance: str | None
    embedding_dim: int
    tta: str | None
    suffix: str
    shard_size: int | None
    inputs: int
    inputs_digest: str
    parts: tuple[ManifestPart, ...] = ()
    detect: bool = False

    @property
    def covered(self) -> int:
        """Inputs the completed parts cover (from the first one on)."""
        return sum(part.inputs for part in self.parts)

    @property
    def complete(self) -> bool:
        """Every input is covered."""
        return self.covered == self.inputs

    def to_json(self) -> dict[str, Any]:
        facts = {k: v for k, v in asdict(self).items() if k != "parts"}
        return {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            **facts,
            "complete": self.complete,
            "rows": sum(part.rows for part in self.parts),
            "parts": [part.to_json() for part in self.parts],
        }

    @classmethod
    def from_json(cls, doc: Any) -> EmbeddingManifest:
        """Raises KeyError, TypeError or ValueError on a malformed document."""
        if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"not a {MANIFEST_FORMAT} manifest")
        if not isinstance(doc.get("version"), int) or doc["version"] > MANIFEST_VERSION:
            raise ValueError(
                f"manifest version {doc.get('version')!r}; this siamese reads {MANIFEST_VERSION}"
            )
        optional = {k: _typed(doc, k, str, none=True) for k in ("model", "fingerprint", "distance", "tta")}
        parts = tuple(ManifestPart.from_json(p) for p in _typed(doc, "parts", list))
        manifest = cls(
            **optional,
            embedding_dim=_typed(doc, "embedding_dim", int),
            suffix=_typed(doc, "suffix", str),
            shard_size=_typed(doc, "shard_size", int, none=True),
            inputs=_typed(doc, "inputs", int),
            inputs_digest=_typed(doc, "inputs_digest", str),
            parts=parts,
            detect=_flag(doc, "detect"),
        )
        starts = [sum(p.inputs for p in parts[:k]) for k in range(len(parts))]
        if [p.first for p in parts] != starts or manifest.covered > manifest.inputs:
            raise ValueError("its parts do not cover successive inputs")
        return manifest


def _typed(doc: dict[str, Any], key: str, kind: type, none: bool = False) -> Any:
    value = doc[key]
    if (value is None and none) or (isinstance(value, kind) and not isinstance(value, bool)):
        return value
    raise TypeError(f"{key!r} is {value!r}")


def _flag(doc: dict[str, Any], key: str) -> bool:
    """An optional boolean, False when absent (manifests written before it existed)."""
    value = doc.get(key, False)
    if isinstance(value, bool):
        return value
    raise TypeError(f"{key!r} is {value!r}")


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type when empty), for one-line errors."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def read_manifest(path: str | os.PathLike) -> EmbeddingManifest:
    """Read `<stem>.manifest.json`.

    Raises:
        DataError: missing, unreadable or not a manifest this version of siamese reads.
    """
    path = Path(path)
    try:
        return EmbeddingManifest.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"cannot read the manifest {path}: {one_line(exc)}") from None


def write_manifest(path: Path, manifest: EmbeddingManifest) -> None:
    """Replace the manifest at `path` atomically (temporary file + rename)."""
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(manifest.to_json(), indent=1) + "\n"))

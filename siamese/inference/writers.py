"""Streaming embedding writers (`.npy`, `.csv`, `.parquet`) behind `siamese embed`.

Writers receive one batch at a time and never hold all embeddings in memory, so embedding a
hundred thousand images costs one batch of RAM. Every writer writes rows `path, identity,
embedding`; rows of unreadable images are simply absent.

- `.npy`: an `(N, D)` float32 array written through a memory map; the paths and identities go to
  the sidecar `<out>.csv` (columns path,identity), row i describing row i of the array.
- `.csv`: columns `path, identity, e0 ... e{D-1}`.
- `.parquet` (needs pyarrow): columns `path`, `identity` (strings) and `embedding` (fixed-size
  list of D float32), written one row group per batch.

Files are written under a temporary name and renamed into place when complete.

Beside every output, `<stem>.manifest.json` (`EmbeddingManifest`) records the model (checkpoint
stem and fingerprint), the input list (count and digest) and each completed part: with a shard
size the rows go to parts `<stem>-00000<ext>`, `<stem>-00001<ext>`, ..., otherwise to `out` as one
part. A part enters the manifest only once its files are in place, and the manifest is rewritten
atomically, so a killed run is resumed from the first input no completed part covers.
`read_embeddings` reads any of it back (a manifest, an output with or without one, one part).
"""

from __future__ import annotations

import csv
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from siamese.data.inputs import EmbeddingInput
from siamese.errors import CheckpointError, ConfigError, DataError, ImageError, SiameseError
from siamese.inference.manifest import (
    MANIFEST_SUFFIX,
    EmbeddingManifest,
    ManifestPart,
    inputs_digest,
    manifest_path,
    one_line,
    part_path,
    read_manifest,
    write_manifest,
)
from siamese.models.checkpoint import model_fingerprint

if TYPE_CHECKING:
    from siamese.inference.embedding import EmbeddingBatch
    from siamese.inference.model import EmbeddingModel

logger = logging.getLogger(__name__)

FORMATS = (".npy", ".csv", ".parquet")


class EmbeddingWriter:
    """Base class: write `(path, identity, embedding)` rows batch by batch, then `close()`.

    Use as a context manager: on an exception the partial output is removed.

    Args:
        out: output file.
        num_rows: upper bound on the rows (the number of inputs).
        dim: embedding size D.
    """

    def __init__(self, out: str | os.PathLike, num_rows: int, dim: int) -> None:
        self.out = Path(out)
        self.num_rows = num_rows
        self.dim = dim
        self.rows = 0
        self.out.parent.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _tmp(path: Path) -> Path:
        return path.with_name(f".{path.name}.tmp")

    def write(self, paths: Sequence[str], identities: Sequence[str], embeddings: np.ndarray) -> None:
        """Append rows; `embeddings` is `(b, D)`."""
        if embeddings.shape != (len(paths), self.dim) or len(identities) != len(paths):
            raise ValueError(
                f"batch of {len(paths)} paths/{len(identities)} identities with embeddings "
                f"{embeddings.shape}, expected ({len(paths)}, {self.dim})"
            )
        if self.rows + len(paths) > self.num_rows:
            raise ValueError(f"more than the announced {self.num_rows} rows")
        self._write(list(paths), list(identities), embeddings.astype(np.float32, copy=False))
        self.rows += len(paths)

    def _write(self, paths: list[str], identities: list[str], embeddings: np.ndarray) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        raise NotImplementedError

    def _temporaries(self) -> dict[Path, Path]:
        """Temporary file -> final file."""
        return {self._tmp(self.out): self.out}

    def close(self) -> list[Path]:
        """Finish the files and move them into place.

        Returns:
            The files written.
        """
        self._finish()
        for tmp, final in self._temporaries().items():
            os.replace(tmp, final)
        return list(self._temporaries().values())

    def abort(self) -> None:
        """Remove the partial output."""
        try:
            self._finish()
        except Exception:  # noqa: BLE001 - best effort while another error propagates
            logger.debug("could not finish %s while aborting", self.out, exc_info=True)
        for tmp in self._temporaries():
            tmp.unlink(missing_ok=True)

    def __enter__(self) -> EmbeddingWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.abort()


class _IndexCSV:
    """A streaming CSV of path, identity (+ any extra columns)."""

    def __init__(self, path: Path, header: list[str]) -> None:
        self.file = path.open("w", newline="", encoding="utf-8")
        self.csv = csv.writer(self.file)
        self.csv.writerow(header)

    def close(self) -> None:
        if not self.file.closed:
            self.file.close()


class NpyWriter(EmbeddingWriter):
    """`(N, D)` float32 `.npy` via `np.lib.format.open_memmap`, plus the sidecar `<out>.csv`.

    The array is created with the announced `num_rows`; if some images were skipped, the header
    is rewritten with the actual row count and the file truncated on close.
    """

    def __init__(self, out: str | os.PathLike, num_rows: int, dim: int) -> None:
        super().__init__(out, num_rows, dim)
        self.sidecar = self.out.with_name(self.out.name + ".csv")
        self.array: np.memmap | None = np.lib.format.open_memmap(
            self._tmp(self.out), mode="w+", dtype=np.float32, shape=(num_rows, dim)
        )
        self.index = _IndexCSV(self._tmp(self.sidecar), ["path", "identity"])

    def _write(self, paths: list[str], identities: list[str], embeddings: np.ndarray) -> None:
        assert self.array is not None, "written after close"
        self.array[self.rows : self.rows + len(paths)] = embeddings  # (b, D)
        self.index.csv.writerows(zip(paths, identities, strict=True))

    def _finish(self) -> None:
        self.index.close()
        if self.array is None:
            return
        self.array.flush()
        self.array = None  # drop the memory map before resizing the file
        if self.rows < self.num_rows:
            _shrink_npy(self._tmp(self.out), self.rows, self.dim)

    def _temporaries(self) -> dict[Path, Path]:
        return {self._tmp(self.out): self.out, self._tmp(self.sidecar): self.sidecar}


def _shrink_npy(path: Path, rows: int, dim: int) -> None:
    """Rewrite a C-order float32 `.npy` header to `(rows, dim)` in place and drop the rows beyond."""
    with path.open("r+b") as f:
        major, _ = np.lib.format.read_magic(f)
        len_bytes = 2 if major == 1 else 4
        header_len = int.from_bytes(f.read(len_bytes), "little")
        text = repr({"descr": "<f4", "fortran_order": False, "shape": (rows, dim)})
        # The new shape has fewer digits than the old one, so it fits in the same padded header.
        header = (text + " " * (header_len - len(text) - 1) + "\n").encode("latin1")
        f.write(header)
        f.truncate(6 + 2 + len_bytes + header_len + rows * dim * 4)


class CsvWriter(EmbeddingWriter):
    """One CSV with columns path, identity, e0 ... e{D-1} (values printed to float32 precision)."""

    def __init__(self, out: str | os.PathLike, num_rows: int, dim: int) -> None:
        super().__init__(out, num_rows, dim)
        self.table = _IndexCSV(self._tmp(self.out), ["path", "identity", *(f"e{j}" for j in range(dim))])

    def _write(self, paths: list[str], identities: list[str], embeddings: np.ndarray) -> None:
        for path, identity, row in zip(paths, identities, embeddings, strict=True):
            self.table.csv.writerow([path, identity, *(format(v, ".9g") for v in row.tolist())])

    def _finish(self) -> None:
        self.table.close()


def _require_pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise SiameseError(
            "writing .parquet needs pyarrow: `pip install pyarrow` (or write .npy or .csv)"
        ) from None
    return pa, pq


class ParquetWriter(EmbeddingWriter):
    """Parquet with path, identity and a fixed-size-list `embedding` column, one row group per batch.

    Raises:
        SiameseError: pyarrow is not installed.
    """

    def __init__(self, out: str | os.PathLike, num_rows: int, dim: int) -> None:
        pa, pq = _require_pyarrow()
        super().__init__(out, num_rows, dim)
        self.pa = pa
        self.schema = pa.schema(
            [("path", pa.string()), ("identity", pa.string()), ("embedding", pa.list_(pa.float32(), dim))]
        )
        self.writer: Any = pq.ParquetWriter(str(self._tmp(self.out)), self.schema)

    def _write(self, paths: list[str], identities: list[str], embeddings: np.ndarray) -> None:
        pa = self.pa
        flat = pa.array(np.ascontiguousarray(embeddings).reshape(-1), type=pa.float32())
        column = pa.FixedSizeListArray.from_arrays(flat, self.dim)
        table = pa.Table.from_arrays([pa.array(paths), pa.array(identities), column], schema=self.schema)
        self.writer.write_table(table)

    def _finish(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


_WRITERS: dict[str, type[EmbeddingWriter]] = {".npy": NpyWriter, ".csv": CsvWriter, ".parquet": ParquetWriter}


def output_files(out: str | os.PathLike) -> list[Path]:
    """The files a writer for `out` produces (`.npy` adds the sidecar `<out>.csv`)."""
    out = Path(out)
    return [out, out.with_name(out.name + ".csv")] if out.suffix.lower() == ".npy" else [out]


def check_output(out: str | os.PathLike) -> type[EmbeddingWriter]:
    """The writer class for `out`'s extension, checking its dependencies without writing anything.

    Raises:
        ConfigError: not `.npy`, `.csv` or `.parquet`.
        SiameseError: `.parquet` without pyarrow installed.
    """
    suffix = Path(out).suffix.lower()
    if suffix not in _WRITERS:
        raise ConfigError(f"the output must end in {', '.join(FORMATS)}; got {Path(out).name!r}")
    if suffix == ".parquet":
        _require_pyarrow()
    return _WRITERS[suffix]


def open_writer(out: str | os.PathLike, num_rows: int, dim: int) -> EmbeddingWriter:
    """The writer for `out`'s extension: `.npy`, `.csv` or `.parquet`.

    Raises:
        ConfigError: another extension.
        SiameseError: `.parquet` without pyarrow installed.
    """
    return check_output(out)(out, num_rows, dim)


def _fresh_manifest(
    model: EmbeddingModel, inputs: Sequence[EmbeddingInput], out: Path, shard_size: int | None
) -> EmbeddingManifest:
    try:
        fingerprint: str | None = model_fingerprint(model.source, model.metadata)
    except CheckpointError:  # a model built in memory: nothing to fingerprint
        fingerprint = None
    return EmbeddingManifest(
        model=str(Path(model.source).absolute()),
        fingerprint=fingerprint,
        distance=model.distance,
        embedding_dim=model.embedding_dim,
        tta=model.tta,
        detect=model.detect,
        suffix=out.suffix.lower(),
        shard_size=shard_size,
        inputs=len(inputs),
        inputs_digest=inputs_digest(inputs),
    )


def _layout(manifest: EmbeddingManifest) -> str:
    size = manifest.shard_size
    return f"one {manifest.suffix} file" if size is None else f"{manifest.suffix} parts of {size}"


def _conflict(old: EmbeddingManifest, new: EmbeddingManifest) -> str | None:
    """Why an output described by `old` cannot be continued as `new` (None when it can)."""
    if old.fingerprint is not None and new.fingerprint is not None:
        same_model = old.fingerprint == new.fingerprint
    else:
        same_model = old.model == new.model
    if not same_model:
        return f"another model ({old.model})"
    if (old.distance, old.embedding_dim, old.tta) != (new.distance, new.embedding_dim, new.tta):
        return (
            f"other embeddings ({old.distance}, {old.embedding_dim} dims, test-time augmentation {old.tta})"
        )
    if old.detect != new.detect:
        return "embeddings of whole images" if new.detect else "embeddings of detected faces (--detect)"
    if old.inputs != new.inputs:
        return f"another input list ({old.inputs} inputs, not {new.inputs})"
    if old.inputs_digest != new.inputs_digest:
        return f"another input list (the same count, {old.inputs}, but other paths or order)"
    if (old.suffix, old.shard_size) != (new.suffix, new.shard_size):
        return f"another layout ({_layout(old)}, not {_layout(new)})"
    return None


def _kept_parts(manifest: EmbeddingManifest, folder: Path) -> tuple[ManifestPart, ...]:
    """The parts up to the first one with a file gone (that one and the rest are embedded again)."""
    for k, part in enumerate(manifest.parts):
        missing = [name for name in part.files if not (folder / name).is_file()]
        if missing:
            logger.warning("%s is missing: embedding again from input %d", folder / missing[0], part.first)
            return manifest.parts[:k]
    return manifest.parts


def _remove_output(path: Path) -> None:
    """Delete the files the manifest at `path` lists (best effort: an unreadable one lists none)."""
    try:
        old = read_manifest(path)
    except DataError:
        return
    for part in old.parts:
        for name in part.files:
            (path.parent / name).unlink(missing_ok=True)


def _start(
    model: EmbeddingModel,
    inputs: Sequence[EmbeddingInput],
    out: Path,
    shard_size: int | None,
    overwrite: bool,
) -> EmbeddingManifest:
    """The manifest to continue: the existing one's completed parts when it matches, else a new one.

    Raises:
        ConfigError: an existing manifest from another model, input list or layout (and not `overwrite`).
        DataError: an unreadable existing manifest (and not `overwrite`).
    """
    fresh = _fresh_manifest(model, inputs, out, shard_size)
    path = manifest_path(out)
    if path.exists() and not overwrite:
        try:
            old = read_manifest(path)
        except DataError as exc:
            raise DataError(f"{exc}; pass --overwrite to start again") from None
        reason = _conflict(old, fresh)
        if reason is not None:
            raise ConfigError(
                f"{path} is from {reason}; pass --overwrite to replace it or choose another --out"
            )
        kept = replace(fresh, parts=_kept_parts(old, path.parent))
        if kept.parts:
            logger.info("resuming %s: %d of %d inputs already embedded", path, kept.covered, kept.inputs)
        if kept != old:
            write_manifest(path, kept)
        return kept
    if path.exists():
        _remove_output(path)
    write_manifest(path, fresh)
    return fresh


class _Parts:
    """Route the rows of successive inputs into parts of `shard_size` inputs (one part without it);
    a part goes into the manifest only once its files are complete and in place."""

    def __init__(self, out: Path, manifest: EmbeddingManifest, inputs: Sequence[EmbeddingInput]) -> None:
        self.out = out
        self.manifest = manifest
        self.inputs = inputs
        self.next = manifest.covered  # the first input not handled yet
        self.writer: EmbeddingWriter | None = None
        self.skipped: list[tuple[int, str]] = []

    @property
    def _end(self) -> int:
        """One past the last input of the current part."""
        size = self.manifest.shard_size or self.manifest.inputs
        return min(self.manifest.covered + size, self.manifest.inputs)

    def _current(self) -> EmbeddingWriter:
        if self.writer is None:
            index = len(self.manifest.parts)
            out = self.out if self.manifest.shard_size is None else part_path(self.out, index)
            self.writer = open_writer(out, self._end - self.manifest.covered, self.manifest.embedding_dim)
        return self.writer

    def add(self, batch: EmbeddingBatch, offset: int) -> None:
        """Write one batch of the successive inputs from `self.next` (its positions count from `offset`)."""
        positions = [offset + i for i in batch.positions]
        failed = [(offset + i, reason) for i, reason in batch.failed]
        stop = self.next + len(positions) + len(failed)
        while self.next < stop:
            lo, hi = self.next, min(stop, self._end)
            take = [k for k, p in enumerate(positions) if lo <= p < hi]
            rows = [self.inputs[positions[k]] for k in take]
            if rows:
                self._current().write(
                    [r.path for r in rows], [r.identity for r in rows], batch.embeddings[take]
                )
            self.skipped += [(p, reason) for p, reason in failed if lo <= p < hi]
            self.next = hi
            if hi == self._end:
                self._commit()

    def _commit(self) -> None:
        """Close the current part's files (renamed into place), then record it in the manifest."""
        writer = self._current()
        files = writer.close()
        self.writer = None
        first = self.manifest.covered
        skipped = tuple((p, self.inputs[p].path, reason) for p, reason in self.skipped)
        part = ManifestPart(tuple(f.name for f in files), first, self._end - first, writer.rows, skipped)
        self.manifest = replace(self.manifest, parts=(*self.manifest.parts, part))
        write_manifest(manifest_path(self.out), self.manifest)
        self.skipped = []

    def finish(self) -> None:
        """Check every input is covered; an output of no inputs still gets its (empty) file."""
        if self.manifest.shard_size is None and not self.manifest.parts:
            self._commit()
        if not self.manifest.complete:
            raise RuntimeError(f"embedded {self.manifest.covered} of {self.manifest.inputs} inputs")

    def abort(self) -> None:
        """Remove the current part's partial files (completed parts stay, for a resume)."""
        if self.writer is not None:
            self.writer.abort()
            self.writer = None


@dataclass
class EmbedSummary:
    """What `write_embeddings` did.

    Attributes:
        written: rows in the output (those of parts from an earlier, resumed run included).
        dim: embedding size D.
        files: every file of the output, the manifest last.
        skipped: `(path, reason)` of each unreadable image (earlier parts' included).
        inputs: the inputs.
        resumed: inputs covered by the parts of an earlier run, not embedded again.
        seconds: wall time of this run's embedding (decoding, forward passes, writing).
        parts: the parts of the output (1 without a shard size).
    """

    written: int
    dim: int
    files: list[Path]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    inputs: int = 0
    resumed: int = 0
    seconds: float = 0.0
    parts: int = 1

    @property
    def images_per_s(self) -> float | None:
        """Inputs handled by this run per second of it (None when it had nothing to do)."""
        done = self.inputs - self.resumed
        return done / self.seconds if done > 0 and self.seconds > 0 else None


def write_embeddings(
    model: EmbeddingModel,
    inputs: Sequence[EmbeddingInput],
    out: str | os.PathLike,
    batch_size: int = 64,
    workers: int = 0,
    on_batch: Callable[[int], None] | None = None,
    strict: bool = False,
    shard_size: int | None = None,
    overwrite: bool = False,
) -> EmbedSummary:
    """Embed `inputs` with a loaded model and stream the rows into `out`, resuming an interrupted run.

    The rows go to `out` itself, or with `shard_size` to parts `<stem>-00000<ext>`, `<stem>-00001<ext>`,
    ... of `shard_size` successive inputs each (at most that many rows). Beside them,
    `<stem>.manifest.json` (`EmbeddingManifest`) records the model, the input list and each completed
    part. When that manifest exists and matches the model, inputs and layout, its completed parts are
    kept and embedding continues from the first input they do not cover, so a killed run finishes
    with the same rows as an uninterrupted one.

    Args:
        model: the loaded model (`siamese.inference.EmbeddingModel`, or a `Verifier`).
        inputs: images and identities, e.g. from `list_inputs`.
        out: `.npy`, `.csv` or `.parquet` file.
        batch_size: images per forward pass.
        workers: DataLoader worker processes decoding images.
        on_batch: called with the number of inputs handled after each batch (progress); when
            resuming, first once with the number the earlier parts cover.
        strict: raise on the first unreadable image (the partial part is removed).
        shard_size: inputs per part; None writes one file.
        overwrite: start afresh, deleting the files of an existing manifest at `out`, instead of
            resuming it (or refusing it when it is from another model, input list or layout).

    Returns:
        The summary; unreadable images are skipped and listed, not raised (unless `strict`).

    Raises:
        ConfigError: unknown output extension, a bad batch size / worker count / shard size, or an
            existing manifest from another model, input list or layout (without `overwrite`).
        DataError: an existing manifest that cannot be read (without `overwrite`).
        SiameseError: `.parquet` without pyarrow.
    """
    if batch_size < 1 or workers < 0 or (shard_size is not None and shard_size < 1):
        raise ConfigError(
            f"batch size and shard size must be >= 1 and workers >= 0, "
            f"got {batch_size}, {shard_size} and {workers}"
        )
    check_output(out)
    out = Path(out)
    manifest = _start(model, inputs, out, shard_size, overwrite)
    resumed = manifest.covered
    if resumed and on_batch is not None:
        on_batch(resumed)
    parts = _Parts(out, manifest, inputs)
    started = time.perf_counter()
    try:
        todo = [item.path for item in inputs[resumed:]]
        for batch in model.embed_batches(todo, batch_size, workers):
            if strict and batch.failed:
                raise ImageError(f"{batch.failed[0][1]} (--strict)")
            parts.add(batch, resumed)
            if on_batch is not None:
                on_batch(len(batch.positions) + len(batch.failed))
        parts.finish()
    except BaseException:
        parts.abort()
        raise
    seconds = time.perf_counter() - started
    done = parts.manifest
    folder = out.parent
    return EmbedSummary(
        written=sum(part.rows for part in done.parts),
        dim=done.embedding_dim,
        files=[folder / name for part in done.parts for name in part.files] + [manifest_path(out)],
        skipped=[(path, reason) for part in done.parts for _, path, reason in part.skipped],
        inputs=len(inputs),
        resumed=resumed,
        seconds=seconds,
        parts=len(done.parts),
    )


# -- reading an output back ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EmbeddingTable:
    """The rows of an embeddings output, as `read_embeddings` returns them.

    Attributes:
        paths: the image of each row.
        identities: the identity of each row.
        embeddings: `(N, D)` float32, row i for `paths[i]`.
        model: the checkpoint stem that embedded them (None without a manifest).
        fingerprint: that checkpoint's `model_fingerprint` (None without a manifest).
        distance: the model's pair distance (None without a manifest).
    """

    paths: list[str]
    identities: list[str]
    embeddings: np.ndarray  # (N, D) float32
    model: str | None = None
    fingerprint: str | None = None
    distance: str | None = None

    def __len__(self) -> int:
        return len(self.paths)


def read_embeddings(path: str | os.PathLike) -> EmbeddingTable:
    """Read what `siamese embed` / `write_embeddings` wrote.

    Args:
        path: a manifest (`<stem>.manifest.json`: every part, in order), the `--out` the output was
            written to (read through its manifest when there is one, sharded or not), or one file
            (`.npy` with its sidecar `<file>.csv`, `.csv`, `.parquet`); a file a manifest lists
            (a part) gets the model facts from it.

    Returns:
        The rows; the model facts are None for a file no manifest lists.

    Raises:
        DataError: a missing, unreadable or corrupt file or manifest, or a manifest of an
            unfinished run (run the same `siamese embed` again to finish it).
        SiameseError: a `.parquet` file without pyarrow installed.
    """
    path = Path(path)
    if path.name.endswith(MANIFEST_SUFFIX):
        return _read_output(read_manifest(path), path)
    own = manifest_path(path)
    if own.is_file():
        manifest = read_manifest(own)
        if manifest.suffix == path.suffix.lower():
            return _read_output(manifest, own)
    table = _read_file(path)
    for candidate in _part_manifests(path):
        manifest = read_manifest(candidate)
        part = next((p for p in manifest.parts if p.files[0] == path.name), None)
        if part is not None:
            _check_part(table, part, manifest, path)
            return replace(
                table, model=manifest.model, fingerprint=manifest.fingerprint, distance=manifest.distance
            )
    return table


def _part_manifests(path: Path) -> list[Path]:
    """The manifest that may list `path` as a part (`emb-00003.npy` -> `emb.manifest.json`)."""
    stem, sep, number = path.stem.rpartition("-")
    candidate = path.with_name(stem + MANIFEST_SUFFIX)
    return [candidate] if sep and len(number) == 5 and number.isdigit() and candidate.is_file() else []


def _read_output(manifest: EmbeddingManifest, where: Path) -> EmbeddingTable:
    if not manifest.complete:
        raise DataError(
            f"{where} is unfinished: {manifest.covered} of {manifest.inputs} inputs embedded "
            "(run the same `siamese embed` again to finish it)"
        )
    paths: list[str] = []
    identities: list[str] = []
    blocks = [np.zeros((0, manifest.embedding_dim), np.float32)]
    for part in manifest.parts:
        file = where.parent / part.files[0]
        table = _read_file(file)
        _check_part(table, part, manifest, file)
        paths += table.paths
        identities += table.identities
        blocks.append(table.embeddings)
    return EmbeddingTable(
        paths,
        identities,
        np.concatenate(blocks),  # (N, D)
        model=manifest.model,
        fingerprint=manifest.fingerprint,
        distance=manifest.distance,
    )


def _check_part(table: EmbeddingTable, part: ManifestPart, manifest: EmbeddingManifest, file: Path) -> None:
    if len(table) != part.rows or table.embeddings.shape[1] != manifest.embedding_dim:
        raise DataError(
            f"{file} holds {len(table)} rows of {table.embeddings.shape[1]} dims; its manifest says "
            f"{part.rows} of {manifest.embedding_dim}"
        )


def _read_file(path: Path) -> EmbeddingTable:
    readers = {".npy": _read_npy, ".csv": _read_csv, ".parquet": _read_parquet}
    read = readers.get(path.suffix.lower())
    if read is None:
        raise DataError(
            f"cannot read embeddings from {path}: not a {', '.join(FORMATS)} or {MANIFEST_SUFFIX} file"
        )
    try:
        paths, identities, embeddings = read(path)
    except SiameseError:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy, csv and pyarrow each raise their own kinds
        raise DataError(f"cannot read embeddings from {path}: {one_line(exc)}") from None
    if embeddings.ndim != 2 or len(embeddings) != len(paths):
        raise DataError(
            f"cannot read embeddings from {path}: {len(paths)} rows but an array of {embeddings.shape}"
        )
    return EmbeddingTable(paths, identities, embeddings.astype(np.float32, copy=False))


def _read_index(path: Path, min_columns: int) -> tuple[list[str], list[list[str]]]:
    """The header and rows of a CSV whose first two columns are path, identity."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0][:2] != ["path", "identity"] or len(rows[0]) < min_columns:
        raise ValueError(
            f"{path.name} does not start with the columns path,identity{',e0...' * (min_columns > 2)}"
        )
    bad = next((k for k, row in enumerate(rows) if len(row) != len(rows[0])), None)
    if bad is not None:
        raise ValueError(f"{path.name} line {bad + 1} has {len(rows[bad])} columns, not {len(rows[0])}")
    return rows[0], rows[1:]


def _read_npy(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    embeddings = np.load(path, allow_pickle=False)  # (N, D)
    if embeddings.ndim != 2 or embeddings.dtype.kind != "f":
        raise ValueError(f"expected an (N, D) float array, got {embeddings.dtype} {embeddings.shape}")
    _, rows = _read_index(path.with_name(path.name + ".csv"), 2)
    return [r[0] for r in rows], [r[1] for r in rows], embeddings


def _read_csv(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    header, rows = _read_index(path, 3)
    if header[2:] != [f"e{j}" for j in range(len(header) - 2)]:
        raise ValueError(f"{path.name}: the columns after path,identity are not e0, e1, ...")
    embeddings = np.array([r[2:] for r in rows], dtype=np.float32).reshape(len(rows), len(header) - 2)
    return [r[0] for r in rows], [r[1] for r in rows], embeddings


def _read_parquet(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    pa, pq = _require_pyarrow()
    table = pq.read_table(str(path), columns=["path", "identity", "embedding"])
    column = table.column("embedding").combine_chunks()
    if not pa.types.is_fixed_size_list(column.type):
        raise ValueError(f"its embedding column is {column.type}, not a fixed-size list of floats")
    dim = column.type.list_size
    values = column.flatten().to_numpy(zero_copy_only=False)
    return (
        [str(p) for p in table.column("path").to_pylist()],
        [str(i) for i in table.column("identity").to_pylist()],
        np.asarray(values, dtype=np.float32).reshape(len(column), dim),  # (N, D)
    )

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
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from siamese.data.inputs import EmbeddingInput
from siamese.errors import ConfigError, ImageError, SiameseError

if TYPE_CHECKING:
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


@dataclass
class EmbedSummary:
    """What `write_embeddings` did.

    Attributes:
        written: images embedded and written.
        dim: embedding size D.
        files: output files.
        skipped: `(path, reason)` of each unreadable image.
    """

    written: int
    dim: int
    files: list[Path]
    skipped: list[tuple[str, str]] = field(default_factory=list)


def write_embeddings(
    model: EmbeddingModel,
    inputs: Sequence[EmbeddingInput],
    out: str | os.PathLike,
    batch_size: int = 64,
    workers: int = 0,
    on_batch: Callable[[int], None] | None = None,
    strict: bool = False,
) -> EmbedSummary:
    """Embed `inputs` with a loaded model and stream the rows into `out`.

    Args:
        model: the loaded model (`siamese.inference.EmbeddingModel`, or a `Verifier`).
        inputs: images and identities, e.g. from `list_inputs`.
        out: `.npy`, `.csv` or `.parquet` file.
        batch_size: images per forward pass.
        workers: DataLoader worker processes decoding images.
        on_batch: called with the number of inputs handled after each batch (progress).
        strict: raise on the first unreadable image (the partial output is removed).

    Returns:
        The summary; unreadable images are skipped and listed, not raised (unless `strict`).

    Raises:
        ConfigError: unknown output extension or a bad batch size / worker count.
        SiameseError: `.parquet` without pyarrow.
    """
    if batch_size < 1 or workers < 0:
        raise ConfigError(f"batch size must be >= 1 and workers >= 0, got {batch_size} and {workers}")
    paths = [item.path for item in inputs]
    skipped: list[tuple[str, str]] = []
    with open_writer(out, len(inputs), model.embedding_dim) as writer:
        for batch in model.embed_batches(paths, batch_size, workers):
            skipped += [(paths[i], reason) for i, reason in batch.failed]
            if strict and skipped:
                raise ImageError(f"{skipped[0][1]} (--strict)")
            if batch.positions:
                rows = [inputs[i] for i in batch.positions]
                writer.write([r.path for r in rows], [r.identity for r in rows], batch.embeddings)
            if on_batch is not None:
                on_batch(len(batch.positions) + len(batch.failed))
        files = writer.close()
    return EmbedSummary(written=writer.rows, dim=model.embedding_dim, files=files, skipped=skipped)

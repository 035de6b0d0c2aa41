"""Exporting a checkpoint's encoder to ONNX or TorchScript, with a parity check against PyTorch.

The exported model maps a normalised image batch `(B, C, H, W)` (any B) to embeddings `(B, D)`.
Everything needed to use it is written beside it as `<out>.json`: the preprocessing (every
field of `siamese.data.preprocessing_spec`: size, channels, background removal, invert, fit,
mean, std, ...), the distance, the decision threshold and the confidence calibration.

ONNX export uses PyTorch's TorchScript-based exporter (`dynamo=False`), which works offline
without onnxscript; checking it needs the optional `onnx` and `onnxruntime` packages
(`pip install 'siamese[onnx]'`).
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from siamese.errors import CheckpointError, ConfigError, SiameseError
from siamese.inference.model import EmbeddingModel
from siamese.models.checkpoint import CheckpointMetadata, Preprocessing
from siamese.names import check_choice

logger = logging.getLogger(__name__)

EXPORT_FORMATS = ("onnx", "torchscript")
PARITY_TOLERANCE = 1e-4
ONNX_OPSET = 17
INPUT_NAME = "images"
OUTPUT_NAME = "embeddings"
PREPROCESSING_ORDER = (
    "convert to L/RGB (channels; see convert), remove the background if remove_background is 'otsu' "
    "(pixels brighter than the image's Otsu threshold become white), invert if invert, keep the centre "
    "crop (share of each side, 1 = all), fit to size (pad with pad_fill, "
    "crop or stretch; resample), scale to [0, 1], (x - mean) / std"
)


def metadata_path(out: str | os.PathLike) -> Path:
    """Where the metadata of an export to `out` goes: `<out>.json`."""
    out = Path(out)
    return out.with_name(out.name + ".json")


def _require_onnx() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        raise SiameseError(
            f"ONNX export needs the onnx extra ({exc.name or 'onnx'} is missing): pip install 'siamese[onnx]'"
        ) from None
    return onnx, onnxruntime


def _export_onnx(encoder: torch.nn.Module, example: torch.Tensor, out: Path) -> Any:
    """Write the ONNX file, check it and return a function running it on a numpy batch."""
    onnx, ort = _require_onnx()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript-based exporter is "legacy"
        torch.onnx.export(
            encoder,
            (example,),
            str(out),
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=ONNX_OPSET,
        )
    onnx.checker.check_model(str(out))
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {INPUT_NAME: x})[0]


def read_export_metadata(path: str | os.PathLike, fmt: str = "onnx") -> dict[str, Any]:
    """The JSON beside an export (`<file>.json`, `export_metadata`).

    Raises:
        CheckpointError: missing or unreadable, or not an export of format `fmt`.
    """
    meta_file = metadata_path(path)
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read the export's metadata {meta_file}: {exc}") from None
    if (
        not isinstance(meta, dict)
        or meta.get("format") != "siamese-export"
        or meta.get("model_format") != fmt
    ):
        raise CheckpointError(f"{meta_file} does not describe a {fmt} export of siamese")
    return meta


class OnnxEncoder(torch.nn.Module):
    """An ONNX export (`siamese export --format onnx`) run by onnxruntime, used like the encoder it
    was exported from: `(B, C, H, W)` float32 -> `(B, D)`.

    Attributes:
        metadata: the export's JSON (`export_metadata`).
        normalize: whether the encoder L2-normalises its output (test-time flips re-normalise).
    """

    def __init__(self, path: str | os.PathLike, threads: int = 1) -> None:
        """Open an export and its `<file>.json`.

        Raises:
            SiameseError: the onnx extra is missing. CheckpointError: no or unreadable metadata.
        """
        super().__init__()
        _, ort = _require_onnx()
        self.metadata: dict[str, Any] = read_export_metadata(path, "onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.normalize = bool(self.metadata.get("encoder", {}).get("normalize", False))
        self.embedding_dim = int(self.metadata["embedding_dim"])

    @property
    def source(self) -> Path:
        """The checkpoint it was exported from (its preprocessing, threshold and calibration)."""
        return Path(self.metadata["source_checkpoint"])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """`(B, C, H, W)` -> `(B, D)`, on the CPU."""
        x = images.detach().cpu().numpy().astype(np.float32, copy=False)
        return torch.from_numpy(self.session.run(None, {INPUT_NAME: x})[0])


def _export_torchscript(encoder: torch.nn.Module, example: torch.Tensor, out: Path) -> Any:
    """Trace and save the encoder, then reload it with `torch.jit.load` for the parity check."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is "deprecated" in favour of torch.export
        traced = torch.jit.trace(encoder, example)
        traced.save(str(out))
        loaded = torch.jit.load(str(out), map_location="cpu")
    loaded.eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return loaded(torch.from_numpy(x)).numpy()

    return run


def export_metadata(meta: Mapping[str, Any], fmt: str, source: str | os.PathLike) -> dict[str, Any]:
    """The JSON written beside an export: how to feed the model and how to read its output.

    Args:
        meta: the checkpoint metadata; source: its stem.

    Raises:
        CheckpointError: the metadata does not record a usable preprocessing.
    """
    pre, info = Preprocessing.from_metadata(meta, source), CheckpointMetadata.from_dict(meta)
    return {
        "format": "siamese-export",
        "version": 1,
        "model_format": fmt,
        "source_checkpoint": str(source),
        "input": {"name": INPUT_NAME, "shape": ["batch", pre.channels, *pre.size], "dtype": "float32"},
        "output": {"name": OUTPUT_NAME, "shape": ["batch", info.embedding_dim], "dtype": "float32"},
        "encoder": dict(info.encoder),
        "embedding_dim": info.embedding_dim,
        "preprocessing": {**pre.to_dict(), "order": PREPROCESSING_ORDER},
        "distance": info.distance,
        "threshold": info.threshold,
        "decision": "same identity when distance(embedding_a, embedding_b) <= threshold",
        "calibration": info.calibration,
        # "flip": the threshold was chosen on the mean of each image's and its mirror's embeddings
        # (re-normalised when the encoder normalises); apply the same to match it.
        "tta": info.tta,
    }


def export_model(
    checkpoint_path: str | os.PathLike,
    fmt: str,
    out: str | os.PathLike,
    batch_size: int = 4,
    seed: int = 0,
) -> dict[str, Any]:
    """Export a checkpoint's encoder and check it reproduces PyTorch's embeddings.

    The model is exported from a batch of one size and checked on a random batch of another
    (`batch_size`), which proves the batch dimension is dynamic.

    Args:
        checkpoint_path: run directory, checkpoint stem or one of its files.
        fmt: "onnx" or "torchscript".
        out: model file to write; the metadata goes to `<out>.json`.
        batch_size: size of the random parity-check batch (>= 2).
        seed: seed of the random batch.

    Returns:
        `{"format", "model", "metadata", "max_abs_diff", "batch_size"}`.

    Raises:
        ConfigError: unknown format or batch size below 2.
        CheckpointError: missing or corrupt checkpoint.
        SiameseError: the onnx extra is missing, or the exported model differs from PyTorch by
            more than 1e-4 (the files are removed).
    """
    check_choice(fmt, EXPORT_FORMATS, "export format")
    if batch_size < 2:
        raise ConfigError(f"batch_size must be >= 2 to check the dynamic batch dimension, got {batch_size}")
    if fmt == "onnx":
        _require_onnx()
    model = EmbeddingModel.from_checkpoint(checkpoint_path, device="cpu")
    stem, encoder = model.source, model.encoder.eval()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta_out = metadata_path(out)
    gen = torch.Generator().manual_seed(seed)
    info = export_metadata(model.metadata, fmt, stem)
    _, _, height, width = info["input"]["shape"]  # ["batch", C, H, W]
    shape = (cast(int, encoder.in_channels), height, width)  # (C, H, W)
    example = torch.randn(batch_size - 1, *shape, generator=gen)  # (B-1, C, H, W), traced
    check = torch.randn(batch_size, *shape, generator=gen)  # (B, C, H, W), compared
    exporter = _export_onnx if fmt == "onnx" else _export_torchscript
    try:
        try:
            run = exporter(encoder, example, out)
        except (RuntimeError, ValueError, TypeError) as exc:  # the exporters' own failures
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise SiameseError(f"{fmt} export of {stem} failed: {first}") from exc
        with torch.no_grad():
            expected = encoder(check).numpy()  # (B, D)
        got = np.asarray(run(check.numpy()))  # (B, D)
        if got.shape != expected.shape:
            raise SiameseError(f"exported {fmt} model returns {got.shape}, PyTorch {expected.shape}")
        diff = float(np.abs(got - expected).max())
        if not diff <= PARITY_TOLERANCE:
            raise SiameseError(
                f"exported {fmt} model differs from PyTorch by {diff:.3g} > {PARITY_TOLERANCE:g}; "
                "nothing written"
            )
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    info["parity"] = {"max_abs_diff": diff, "batch_size": batch_size, "tolerance": PARITY_TOLERANCE}
    meta_out.write_text(json.dumps(info, indent=2) + "\n")
    logger.info("exported %s to %s (max abs diff %.3g)", fmt, out, diff)
    return {"format": fmt, "model": out, "metadata": meta_out, "max_abs_diff": diff, "batch_size": batch_size}

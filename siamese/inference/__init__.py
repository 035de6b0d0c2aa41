"""Using trained models: batched embedding, pair verification, embedding files, ONNX/TorchScript export.

Importing this package imports torch but never torchvision, pytorch-metric-learning, scikit-learn
or matplotlib (so `siamese verify` stays fast); pyarrow, onnx and onnxruntime are imported only by
the functions that need them.
"""

from siamese.devices import resolve_device
from siamese.inference.embedding import (
    EmbeddingBatch,
    EmbedOptions,
    ImageSource,
    embed_all,
    embed_files,
    embed_images,
)
from siamese.inference.export import EXPORT_FORMATS, export_metadata, export_model, metadata_path
from siamese.inference.model import EmbeddingModel
from siamese.inference.verifier import VerificationResult, Verifier
from siamese.inference.writers import (
    FORMATS,
    CsvWriter,
    EmbeddingTable,
    EmbeddingWriter,
    EmbedSummary,
    NpyWriter,
    ParquetWriter,
    check_output,
    open_writer,
    output_files,
    read_embeddings,
    write_embeddings,
)
from siamese.runs import latest_run

__all__ = [
    "EXPORT_FORMATS",
    "FORMATS",
    "CsvWriter",
    "EmbedSummary",
    "EmbedOptions",
    "EmbeddingModel",
    "ImageSource",
    "EmbeddingBatch",
    "EmbeddingTable",
    "EmbeddingWriter",
    "NpyWriter",
    "ParquetWriter",
    "VerificationResult",
    "Verifier",
    "check_output",
    "embed_all",
    "embed_files",
    "embed_images",
    "export_metadata",
    "export_model",
    "latest_run",
    "metadata_path",
    "open_writer",
    "output_files",
    "read_embeddings",
    "resolve_device",
    "write_embeddings",
]

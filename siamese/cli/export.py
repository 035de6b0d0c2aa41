"""`siamese export`: the encoder as ONNX or TorchScript, checked against PyTorch, plus its metadata."""

from __future__ import annotations

from siamese.cli.common import console, model_or_latest, user_errors
from siamese.cli.options import ExportFormatOpt, ExportOutOpt, ModelOpt, ParityBatchOpt


def export_command(
    fmt: ExportFormatOpt,
    out: ExportOutOpt,
    model: ModelOpt = None,
    parity_batch: ParityBatchOpt = 4,
) -> None:
    """Export the encoder ((B, C, H, W) normalised images -> (B, D) embeddings, any B) and verify it."""
    with user_errors():
        from siamese.inference.export import export_model

        info = export_model(model_or_latest(model), fmt, out, batch_size=parity_batch)
    n, diff = info["batch_size"], info["max_abs_diff"]
    console.print(f"parity check vs PyTorch on {n} random images: max abs diff {diff:.3g}", highlight=False)
    console.print(
        f"wrote {info['model']} and {info['metadata']}", highlight=False, soft_wrap=True, markup=False
    )

"""`siamese verify A B`: are two images the same identity? Kept fast: no torchvision, no scikit-learn."""

from __future__ import annotations

import json

import typer

from siamese.cli.common import console, err_console, user_errors
from siamese.cli.options import (
    ImageAArg,
    ImageBArg,
    ThresholdOpt,
    VerdictJsonOpt,
    VerifyDeviceOpt,
    VerifyModelOpt,
)


def verify_command(
    image_a: ImageAArg,
    image_b: ImageBArg,
    model: VerifyModelOpt = None,
    threshold: ThresholdOpt = None,
    json_output: VerdictJsonOpt = False,
    device: VerifyDeviceOpt = "cpu",
) -> None:
    """Decide whether images A and B show the same identity (distance vs. the model's threshold).

    Starts in about the time of `import torch` with smallcnn models (resnet/mobilenet: +2 s for torchvision).
    """
    with user_errors():
        from siamese.inference.verifier import Verifier, latest_run

        if model is None:
            model = latest_run("runs")
            if not json_output:
                err_console.print(f"using the most recent run: {model}", highlight=False, markup=False)
        verifier = Verifier.from_checkpoint(model, device=device)
        result = verifier.verify(image_a, image_b, threshold=threshold)
    if json_output:
        typer.echo(json.dumps(result.to_dict()))
        return
    verdict = "[bold green]same[/]" if result.same else "[bold red]different[/]"
    relation = "<=" if result.same else ">"
    line = f"{verdict}  distance {result.distance:.4f} {relation} threshold {result.threshold:.4f}"
    if result.confidence is not None:
        line += f"  confidence (same) {result.confidence:.1%}"
    console.print(line, highlight=False)

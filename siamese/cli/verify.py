"""`siamese verify A B`: are two images the same identity? `siamese verify Q --gallery G --claim ID`:
is Q the enrolled identity ID? Kept fast: no torchvision, no scikit-learn."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from siamese.cli.common import console, model_or_latest, user_errors
from siamese.cli.options import (
    ClaimOpt,
    ClaimReferencesOpt,
    DetectOpt,
    DeviceOpt,
    GalleryOpt,
    ImageAArg,
    ImageBArg,
    JsonOpt,
    ModelOpt,
    ThresholdOpt,
    TtaOpt,
    VerifyFusionOpt,
)
from siamese.errors import ConfigError, DataError

if TYPE_CHECKING:
    from siamese.galleries.claims import ClaimResult
    from siamese.inference.verifier import VerificationResult


def verify_command(
    image_a: ImageAArg,
    image_b: ImageBArg = None,
    model: ModelOpt = None,
    threshold: ThresholdOpt = None,
    json_output: JsonOpt = False,
    device: DeviceOpt = "cpu",  # not auto: starting CUDA takes longer than one pair on the CPU
    claim: ClaimOpt = None,
    gallery: GalleryOpt = None,
    claim_references: ClaimReferencesOpt = None,
    fusion: VerifyFusionOpt = None,
    tta: TtaOpt = None,
    detect: DetectOpt = False,
) -> None:
    """Decide whether images A and B show the same identity (distance vs. the model's threshold),
    or whether A is the identity --claim of --gallery (or of the images in --claim-references).

    Starts in about the time of `import torch` with smallcnn models (resnet/mobilenet: +2 s for torchvision).
    --json prints one object: same, distance, threshold, confidence, model, seconds.
    """
    if claim is not None or gallery is not None or claim_references is not None or fusion is not None:
        with user_errors():
            if tta is not None:  # a gallery's embeddings were made with the model's default
                raise ConfigError("--tta applies to verifying two images; a claim uses the model's default")
        claim_options = (claim, gallery, claim_references, fusion, detect)
        _verify_claim(image_a, image_b, model, threshold, json_output, device, *claim_options)
        return
    with user_errors():
        if image_b is None:
            raise ConfigError("give a second image, or --gallery G --claim ID, or --claim-references DIR")
        from siamese.inference.verifier import Verifier

        verifier = Verifier.from_checkpoint(
            model_or_latest(model, json_output), device=device, tta=tta, detect=detect
        )
        result = verifier.verify(image_a, image_b, threshold=threshold)
    _print_result(result, json_output)


def _print_result(result: VerificationResult | ClaimResult, json_output: bool, suffix: str = "") -> None:
    if json_output:
        typer.echo(json.dumps(result.to_dict()))
        return
    verdict = "[bold green]same[/]" if result.same else "[bold red]different[/]"
    relation = "<=" if result.same else ">"
    line = f"{verdict}  distance {result.distance:.4f} {relation} threshold {result.threshold:.4f}"
    if result.confidence is not None:
        line += f"  confidence (same) {result.confidence:.1%}"
    console.print(line + suffix, highlight=False)


def _verify_claim(
    query: Path,
    image_b: Path | None,
    model: Path | None,
    threshold: float | None,
    json_output: bool,
    device: str,
    claim: str | None,
    gallery: Path | None,
    claim_references: Path | None,
    fusion: str | None,
    detect: bool,
) -> None:
    """`verify QUERY --gallery G --claim ID` or `verify QUERY --claim-references DIR`."""
    with user_errors():
        if image_b is not None:
            raise ConfigError("--gallery, --claim-references and --fusion verify ONE image: drop the second")
        if (gallery is None) == (claim_references is None):
            raise ConfigError("verify a claim with --gallery G --claim ID, or with --claim-references DIR")
        if gallery is not None and claim is None:
            raise ConfigError("--gallery needs --claim ID, the identity the query claims to be")
        from siamese.galleries import Gallery, verify_against_references, verify_claim
        from siamese.inference.verifier import Verifier

        if gallery is not None and claim is not None:
            enrolled = Gallery.load(gallery)
            checkpoint = enrolled.model if model is None else model
            verifier = Verifier.from_checkpoint(checkpoint, device=device, detect=detect)
            result = verify_claim(verifier, enrolled, query, claim, fusion, threshold, gallery)
        else:
            assert claim_references is not None
            from siamese.data.folder import list_images

            if not claim_references.is_dir():
                raise DataError(f"--claim-references must be a folder of images, got {claim_references}")
            files = [str(claim_references / name) for name in list_images(claim_references)]
            checkpoint = model_or_latest(model, json_output)
            verifier = Verifier.from_checkpoint(checkpoint, device=device, detect=detect)
            name = claim if claim is not None else claim_references.name
            result = verify_against_references(verifier, query, files, fusion or "mean", threshold, name)
    suffix = f"  claim {result.claim}: {result.fusion} of {result.references} references"
    if result.calibrated_references != result.references:
        suffix += f" (threshold calibrated for {result.calibrated_references})"
    _print_result(result, json_output, suffix)

"""The options and arguments of `siamese evaluate`, `verify`, `embed`, `export` and `pairs`, each
declared once as an `Annotated` alias (its type, flag and help); a command's signature lists the
aliases it takes with their defaults.

An option that means the same in several commands has one alias (`ModelOpt`: the required model
of `embed` and `export`), and so do the value types (`Device`, `SplitName`) and panels. Where the
commands' help texts differ, so do the aliases (`EvalSeedOpt`, `PairsSeedOpt`). Importing this
module stays cheap (typer and `siamese.names`, never torch), so `siamese --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from siamese import names

PROTOCOL_PANEL = "Protocol"
RUN_PANEL = "Run"

Device = names.DeviceName
Protocol = Literal["pairs", "kfold", "oneshot"]
SplitName = Literal["test", "val", "train", "all"]

# -- shared ----------------------------------------------------------------------------------------

ModelOpt = Annotated[Path, typer.Option(help="Run directory or checkpoint.", show_default=False)]
"""A required `--model` (embed, export)."""
TtaOpt = Annotated[
    names.TtaName | None,
    typer.Option(
        help="Test-time augmentation: flip = average each image's embedding with its mirror's (only for "
        "presets that train with flips: face); none = off \\[default: the model's, set by `siamese train "
        "--tta`; none otherwise].",
        show_default=False,
    ),
]
"""`--tta` of embed, verify and evaluate."""

# -- evaluate --------------------------------------------------------------------------------------

EvalDataArg = Annotated[
    Path,
    typer.Argument(
        help="Identity-folder root (or, with --protocol oneshot, an Omniglot one_shot_runs folder)."
    ),
]
EvalModelOpt = Annotated[
    Path | None,
    typer.Option(
        help="Run directory or checkpoint (default: the newest run under ./runs).", rich_help_panel=RUN_PANEL
    ),
]
PairsFileOpt = Annotated[
    Path | None,
    typer.Option(
        help="Pair list (LFW pairs.txt or CSV path1,path2,is_same), paths relative to DATA.",
        rich_help_panel=PROTOCOL_PANEL,
    ),
]
EvalForgeriesOpt = Annotated[
    Path | None,
    typer.Option(
        help="Skilled forgeries FORGERIES/<identity>/ used as impostors of <identity>.",
        rich_help_panel=PROTOCOL_PANEL,
    ),
]
ProtocolOpt = Annotated[
    Protocol,
    typer.Option(
        help="pairs | kfold (LFW-style folds) | oneshot (Omniglot runs).", rich_help_panel=PROTOCOL_PANEL
    ),
]
EvalSplitOpt = Annotated[
    SplitName | None,
    typer.Option(
        help="Part of the run's split.json to pair up; all = every identity of DATA (default: test).",
        rich_help_panel=PROTOCOL_PANEL,
    ),
]
EvalNumPairsOpt = Annotated[
    int | None, typer.Option(help="Pairs to generate (default: 2000).", rich_help_panel=PROTOCOL_PANEL)
]
FoldsOpt = Annotated[
    int | None, typer.Option(help="Folds of --protocol kfold (default: 10).", rich_help_panel=PROTOCOL_PANEL)
]
EvalSeedOpt = Annotated[
    int | None, typer.Option(help="Seed of the generated pairs (default: 0).", rich_help_panel=PROTOCOL_PANEL)
]
ReportDirOpt = Annotated[
    Path | None,
    typer.Option(
        help="Folder for report.json and plots (default: RUN/eval-<split, pairs file or oneshot>[-kfold]).",
        rich_help_panel=RUN_PANEL,
    ),
]
ReportJsonOpt = Annotated[
    bool, typer.Option("--json", help="Print only the report as JSON.", rich_help_panel=RUN_PANEL)
]
RunDeviceOpt = Annotated[Device, typer.Option(help="auto = CUDA when available.", rich_help_panel=RUN_PANEL)]
"""`--device` in the "Run" panel."""
EvalBatchSizeOpt = Annotated[int, typer.Option(help="Images per forward pass.", rich_help_panel=RUN_PANEL)]
EvalWorkersOpt = Annotated[
    int, typer.Option(help="Image-decoding worker processes.", rich_help_panel=RUN_PANEL)
]

ReferenceCountsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--references",
        help="Enrol R genuine images per identity of the split instead of pairs; repeatable or a "
        "comma list, e.g. 1,3,5,10.",
        rich_help_panel=PROTOCOL_PANEL,
        show_default=False,
    ),
]
FusionsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--fusion",
        help="Fusion rule, repeatable: mean | min | template | adaptive | svm (default: all).",
        show_default=False,
    ),
]
"""`--fusion` of `enroll` and `evaluate --references`: the rules built and calibrated."""
CalibrationOpt = Annotated[
    Path | None,
    typer.Option(
        help="Labelled identity folders, none enrolled or evaluated, to calibrate thresholds on "
        "(default: the run's validation identities).",
        show_default=False,
    ),
]

# -- verify ----------------------------------------------------------------------------------------

ImageAArg = Annotated[
    Path,
    typer.Argument(help="First image (the query with --gallery or --claim-references).", show_default=False),
]
ImageBArg = Annotated[
    Path | None,
    typer.Argument(help="Second image (omit with --gallery or --claim-references).", show_default=False),
]
ClaimOpt = Annotated[
    str | None, typer.Option(help="Claimed identity, enrolled in --gallery.", show_default=False)
]
GalleryOpt = Annotated[
    Path | None, typer.Option(help="Gallery folder written by `siamese enroll`.", show_default=False)
]
ClaimReferencesOpt = Annotated[
    Path | None,
    typer.Option(
        help="Folder of the claimed identity's images (ad-hoc, no gallery: the model's threshold, "
        "calibrated for 1 reference).",
        show_default=False,
    ),
]
VerifyFusionOpt = Annotated[
    names.FusionName | None,
    typer.Option(
        help="How the references are fused: mean distance, nearest reference, mean template, "
        "mean template less half the identity's reference spread, or the gallery's SVM (default: "
        "with --gallery the rule with the lowest calibration EER at the claim's reference count; "
        "with --claim-references mean).",
        show_default=False,
    ),
]
VerifyModelOpt = Annotated[
    Path | None,
    typer.Option(
        help="Run directory or checkpoint (default: the most recent run under ./runs).", show_default=False
    ),
]
ThresholdOpt = Annotated[
    float | None,
    typer.Option(
        help="Distance threshold: same when distance <= T (default: the model's).", show_default=False
    ),
]
VerdictJsonOpt = Annotated[
    bool,
    typer.Option(
        "--json", help="Print one JSON object: same, distance, threshold, confidence, model, seconds."
    ),
]
VerifyDeviceOpt = Annotated[Device, typer.Option(help="Where the model runs.")]

# -- enroll ----------------------------------------------------------------------------------------

EnrollDataArg = Annotated[
    Path, typer.Argument(help="Identities to enrol: DATA/<identity>/<image>.", show_default=False)
]
GalleryOutOpt = Annotated[Path, typer.Option(help="Gallery folder to write.", show_default=False)]
MaxReferencesOpt = Annotated[
    int | None,
    typer.Option(
        "--references",
        min=1,
        help="At most N references per identity, a seeded choice (default: all its images).",
        show_default=False,
    ),
]
EnrollSeedOpt = Annotated[int, typer.Option(help="Seed of the reference choice.")]
EnrollJsonOpt = Annotated[bool, typer.Option("--json", help="Print only the gallery summary as JSON.")]

# -- embed -----------------------------------------------------------------------------------------

EmbedDataArg = Annotated[
    Path,
    typer.Argument(
        help="Folder of images (recursive; identity = sub-folder) or a text file of image paths.",
        show_default=False,
    ),
]
EmbeddingsOutOpt = Annotated[
    Path,
    typer.Option(
        help="Output file: .npy (+ <out>.csv listing path,identity), .csv or .parquet (needs pyarrow).",
        show_default=False,
    ),
]
DeviceOpt = Annotated[Device, typer.Option(help="auto = CUDA when available.")]
BatchSizeOpt = Annotated[int, typer.Option(min=1, help="Images per forward pass.")]
WorkersOpt = Annotated[int, typer.Option(min=0, help="DataLoader worker processes decoding images.")]
StrictOpt = Annotated[
    bool, typer.Option("--strict", help="Fail on an unreadable image instead of skipping it.")
]

# -- export ----------------------------------------------------------------------------------------

ExportFormatOpt = Annotated[
    Literal["onnx", "torchscript"],
    typer.Option(
        "--format", help="onnx (needs the onnx extra: pip install 'siamese\\[onnx]') or torchscript."
    ),
]
ExportOutOpt = Annotated[
    Path, typer.Option(help="Model file to write; its metadata goes to <out>.json.", show_default=False)
]
ParityBatchOpt = Annotated[int, typer.Option(min=2, help="Size of the random batch of the parity check.")]

# -- pairs -----------------------------------------------------------------------------------------

PairsDataArg = Annotated[Path, typer.Argument(help="Identity-folder root: DATA/<identity>/<image>.")]
PairsOutOpt = Annotated[
    Path, typer.Option(help="CSV file to write (path1,path2,is_same; paths relative to DATA).")
]
PairsNumPairsOpt = Annotated[int, typer.Option(help="Pairs to write (half genuine, half impostor).")]
PairsForgeriesOpt = Annotated[
    Path | None, typer.Option(help="Skilled forgeries FORGERIES/<identity>/ used as impostors.")
]
ForgeryFractionOpt = Annotated[
    float | None,
    typer.Option(help="Share of impostors that are forgeries of the anchor's identity (default: 0.5)."),
]
PairsSeedOpt = Annotated[int, typer.Option(help="Seed: the same seed gives the same file.")]
SplitFromOpt = Annotated[
    Path | None, typer.Option(help="Run directory whose split.json restricts the identities.")
]
PairsSplitOpt = Annotated[
    SplitName | None, typer.Option(help="Part of --split-from's split to use (default: test).")
]

"""The CLI's vocabulary: every option that several commands share, declared once as an `Annotated`
alias (its type, flag, help and panel), the panels the options are grouped under, and the flags
that were renamed (`RENAMED`; the old spelling still works, with a warning).

A command's signature lists the aliases it takes with their defaults; an option that means the
same thing in several commands is the same alias in each (`tests/cli/test_vocabulary.py` walks
every command and checks that a shared flag has one help, one type, one default and one panel).
Importing this module stays cheap (typer and `siamese.names`, never torch), so `siamese --help`
stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from siamese import names

# -- panels: every option of every command sits in one of these, in this order ----------------------

DATA_PANEL = "Data"
"""What is read: the images, forgeries, the identities used, the preset's input size."""
MODEL_PANEL = "Model"
"""The model: the run used (`--model`), the encoder trained, test-time augmentation."""
LOSS_PANEL = "Loss"
"""The supervised training objective (train)."""
METHOD_PANEL = "Method"
"""The self-supervised method (pretrain)."""
OPTIMISATION_PANEL = "Optimisation"
"""Training length, batch, learning rate."""
PROTOCOL_PANEL = "Protocol"
"""What is compared or measured: pairs, folds, references, fusion, thresholds, probes."""
SERVICE_PANEL = "Service"
"""How the service listens, authenticates, limits uploads and batches inference (serve)."""
RUN_PANEL = "Run"
"""How the command runs (device, seed, batch of a forward pass, workers, checkpoints); results do not
depend on them except through the seed."""
OUTPUT_PANEL = "Output"
"""What is written or printed: `--out`, `--json`, formats."""

PANELS = (
    DATA_PANEL,
    MODEL_PANEL,
    LOSS_PANEL,
    METHOD_PANEL,
    OPTIMISATION_PANEL,
    PROTOCOL_PANEL,
    SERVICE_PANEL,
    RUN_PANEL,
    OUTPUT_PANEL,
)

# -- renamed flags: old spelling -> new, per command; the old one works, with a warning ------------

RENAMED: dict[str, dict[str, str]] = {
    "enroll": {"--references": "--max-references"},  # evaluate's --references is a list of counts
    "export": {"--batch-size": "--parity-batch"},  # elsewhere: images per forward pass
    "probe": {
        "--k": "--neighbours",
        "--c": "--linear-c",
        "--test-fraction": "--query-fraction",  # train's --test-fraction is a share of identities
    },
}

Device = names.DeviceName
Protocol = Literal["pairs", "kfold", "oneshot", "identify"]
SplitName = Literal["test", "val", "train", "all"]


def option(help_text: str, panel: str, *flags: str, **kwargs: Any) -> Any:
    """A `typer.Option` with `help_text`, shown in `panel` (one of `PANELS`)."""
    return typer.Option(*flags, help=help_text, rich_help_panel=panel, **kwargs)


# -- shared by several commands ----------------------------------------------------------------------

ModelOpt = Annotated[
    Path | None,
    option("Run directory or checkpoint \\[default: the most recent run under ./runs].", MODEL_PANEL),
]
"""`--model`: the trained run a command uses (evaluate, verify, enroll, embed, export, probe)."""
DeviceOpt = Annotated[
    Device,
    option("Where the model runs: auto = CUDA when available, else cpu.", RUN_PANEL),
]
"""`--device`; default "auto", except verify's "cpu" (starting CUDA takes longer than verifying one
pair on the CPU)."""
SeedOpt = Annotated[
    int, option("Seed of the command's random choices: the same seed gives the same result.", RUN_PANEL)
]
"""`--seed`: weights, sampling and augmentation (train, pretrain), the pairs drawn (evaluate, pairs),
the references chosen (enroll, evaluate --references), the query split (probe)."""
BatchSizeOpt = Annotated[int, option("Images per forward pass.", RUN_PANEL, min=1)]
"""`--batch-size` of the commands that embed with a trained model (default 64; probe: 128)."""
WorkersOpt = Annotated[
    int, option("Image-decoding worker processes (0 = in the main process).", RUN_PANEL, min=0)
]
"""`--workers` (default 0 everywhere, the library's)."""
JsonOpt = Annotated[
    bool, option("Print only the result, as JSON, instead of the table.", OUTPUT_PANEL, "--json")
]
"""`--json` of evaluate, verify, enroll and probe."""
StrictOpt = Annotated[
    bool, option("Stop on an unreadable image instead of skipping it.", DATA_PANEL, "--strict")
]
"""`--strict` of train and embed."""
TtaOpt = Annotated[
    names.TtaName | None,
    option(
        "Test-time augmentation: flip = average each image's embedding with its mirror's (only for "
        "presets that train with flips: face); none = off. train stores it as the model's default "
        "\\[default: none in train; the model's in the other commands].",
        MODEL_PANEL,
        show_default=False,
    ),
]
"""`--tta` of train (stored as the model's default), embed, verify and evaluate."""
DetectOpt = Annotated[
    bool,
    option(
        "Crop each image to its largest face (found by OpenCV's Haar cascade, widened by a margin) "
        "before embedding it, for photos that are not face crops; an image without a face counts as "
        "unreadable. Needs the detect extra: pip install 'siamese\\[detect]'.",
        DATA_PANEL,
        "--detect",
    ),
]
"""`--detect` of verify, embed, enroll and identify (`siamese.data.detect.FaceDetector`)."""
ForgeriesOpt = Annotated[
    Path | None,
    option(
        "Skilled forgeries: FORGERIES/<identity>/ are impostors (in training: negatives) of <identity>.",
        DATA_PANEL,
    ),
]
"""`--forgeries` of train, evaluate and pairs."""
ForgeryFractionOpt = Annotated[
    float | None,
    option(
        "Share of impostors that are skilled forgeries of the anchor's identity (with --forgeries) "
        "\\[default: 0.5].",
        DATA_PANEL,
        show_default=False,
    ),
]
"""`--forgery-fraction` of train and pairs."""
SplitOpt = Annotated[
    SplitName | None,
    option(
        "Identities used: test, val or train of the run's split.json (pairs: of --split-from's run), "
        "or all of DATA \\[default: test].",
        DATA_PANEL,
        show_default=False,
    ),
]
"""`--split` of evaluate and pairs."""
NumPairsOpt = Annotated[int, option("Pairs to generate, half genuine, half impostor.", PROTOCOL_PANEL)]
"""`--num-pairs` of evaluate and pairs (default 2000)."""
CalibrationOpt = Annotated[
    Path | None,
    option(
        "Labelled identity folders, none enrolled or evaluated, to calibrate thresholds on "
        "\\[default: the run's validation identities].",
        PROTOCOL_PANEL,
        show_default=False,
    ),
]
"""`--calibration` of enroll and evaluate --references."""
FusionsOpt = Annotated[
    list[str] | None,
    option(
        "Fusion rule, repeatable: mean | min | template | adaptive | svm \\[default: all].",
        PROTOCOL_PANEL,
        "--fusion",
        show_default=False,
    ),
]
"""`--fusion` of `enroll` and `evaluate --references`: the rules built and calibrated (verify's
`--fusion` picks the one rule it applies: `VerifyFusionOpt`)."""

# -- shared by train and pretrain -----------------------------------------------------------------------

PresetOpt = Annotated[
    names.PresetName | None,
    option(
        "Transforms + training defaults \\[default: face with DATA; without it, the embedded data's: "
        "glyphs for train, digits for pretrain].",
        DATA_PANEL,
        show_default=False,
    ),
]
ImageSizeOpt = Annotated[str | None, option("Input size HxW, overrides the preset.", DATA_PANEL)]
ChannelsOpt = Annotated[int | None, option("1 (grayscale) or 3 (RGB), overrides the preset.", DATA_PANEL)]
EncoderOpt = Annotated[
    names.EncoderName | None,
    option("Encoder \\[default: smallcnn].", MODEL_PANEL, show_default=False),
]
EmbeddingDimOpt = Annotated[
    int | None,
    option("Embedding size (0 = no projection head: the pooled encoder features).", MODEL_PANEL),
]
EncoderArgOpt = Annotated[
    list[str] | None,
    option("Extra encoder option KEY=VALUE, repeatable (smallcnn: width=32, stem_stride=2).", MODEL_PANEL),
]
EpochsOpt = Annotated[
    int | None, option("Epochs \\[default: the preset's].", OPTIMISATION_PANEL, show_default=False)
]
TrainBatchSizeOpt = Annotated[
    int | None,
    option(
        "Samples per optimisation step: pairs, triplets or images by sampler (pretrain: images, each "
        "seen in every view) \\[default: the preset's].",
        OPTIMISATION_PANEL,
        "--batch-size",
        show_default=False,
    ),
]
"""`--batch-size` of train and pretrain: a training hyperparameter, unlike `BatchSizeOpt`."""
LrOpt = Annotated[
    float | None, option("Peak learning rate \\[default: 1e-3].", OPTIMISATION_PANEL, show_default=False)
]
WeightDecayOpt = Annotated[
    float | None,
    option("Weight decay \\[default: 1e-4].", OPTIMISATION_PANEL, show_default=False),
]
MinutesOpt = Annotated[
    float | None,
    option(
        "Train for this many minutes: the first epoch's pace fixes how many steps fit (instead of "
        "--epochs), the learning-rate (and momentum) schedules span them, the run ends on time; "
        "recorded in the run's config.json (validation included; data loading and the final test are not).",
        OPTIMISATION_PANEL,
    ),
]
"""`--minutes` of train and pretrain: a planned time budget (`siamese.training.budget`)."""
MaxMinutesOpt = Annotated[
    float | None,
    option(
        "Time cap: stop after the epoch that would overrun it (cuts the schedules; see --minutes).",
        OPTIMISATION_PANEL,
    ),
]
"""`--max-minutes` of train and pretrain: a hard cap."""
RunOutOpt = Annotated[
    Path | None,
    option(
        "Run directory to write \\[default: runs/<time>-<loss or method>].", OUTPUT_PANEL, show_default=False
    ),
]
"""`--out` of train and pretrain."""
ResumeOpt = Annotated[
    Path | None,
    option(
        "Continue an interrupted run directory exactly where it stopped (its saved config; no other "
        "options allowed).",
        RUN_PANEL,
    ),
]
SaveEveryOpt = Annotated[
    int | None,
    option("Also save a resumable state every N steps \\[default: every epoch only].", RUN_PANEL),
]
AccumulateOpt = Annotated[
    int | None,
    option(
        "Sum the gradients of K batches before each optimiser step (a K times larger batch in the same "
        "memory) \\[default: 1].",
        OPTIMISATION_PANEL,
    ),
]
SyncBnOpt = Annotated[
    bool | None,
    option(
        "BatchNorm over the global batch of a data-parallel CUDA run (torch.nn.SyncBatchNorm).",
        RUN_PANEL,
        "--sync-bn",
        show_default=False,
    ),
]
NprocOpt = Annotated[
    int | None,
    option(
        "Train in N processes on this machine (data-parallel, like `torchrun --nproc-per-node N -m siamese "
        "...`): one per GPU with --device cuda, else one per CPU core; --batch-size is the global batch.",
        RUN_PANEL,
        show_default=False,
    ),
]
PrecisionOpt = Annotated[
    names.PrecisionName | None,
    option(
        "Encoder arithmetic in training: auto (default) = bfloat16 autocast where the device computes it "
        "natively (AVX512-BF16/AMX CPUs, recent GPUs), else fp32; heads, losses and evaluation stay fp32.",
        RUN_PANEL,
    ),
]
# -- evaluate --------------------------------------------------------------------------------------

EvalDataArg = Annotated[
    Path,
    typer.Argument(
        help="Identity-folder root (or, with --protocol oneshot, an Omniglot one_shot_runs folder)."
    ),
]
PairsFileOpt = Annotated[
    Path | None,
    option("Pair list (LFW pairs.txt or CSV path1,path2,is_same), paths relative to DATA.", PROTOCOL_PANEL),
]
ProtocolOpt = Annotated[
    Protocol,
    option(
        "pairs | kfold (LFW-style folds) | oneshot (Omniglot runs) | identify (open-set 1:N: CMC, "
        "FNIR at FPIR, with --references R counts, default 1 and 5).",
        PROTOCOL_PANEL,
    ),
]
FoldsOpt = Annotated[
    int | None,
    option(
        "Folds of --protocol kfold \\[default: 10]; an LFW pairs file whose header declares folds "
        "(10<TAB>300) is always cross-validated over its own.",
        PROTOCOL_PANEL,
        show_default=False,
    ),
]
ReportDirOpt = Annotated[
    Path | None,
    option(
        "Folder for report.json and plots \\[default: RUN/eval-<split, pairs file or oneshot>[-kfold]].",
        OUTPUT_PANEL,
        show_default=False,
    ),
]
ReferenceCountsOpt = Annotated[
    list[str] | None,
    option(
        "Enrol R genuine images per identity of the split instead of pairs; repeatable or a "
        "comma list, e.g. 1,3,5,10.",
        PROTOCOL_PANEL,
        "--references",
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
    str | None, option("Claimed identity, enrolled in --gallery.", PROTOCOL_PANEL, show_default=False)
]
GalleryOpt = Annotated[
    Path | None, option("Gallery folder written by `siamese enroll`.", PROTOCOL_PANEL, show_default=False)
]
ClaimReferencesOpt = Annotated[
    Path | None,
    option(
        "Folder of the claimed identity's images (ad-hoc, no gallery: the model's threshold, "
        "calibrated for 1 reference).",
        PROTOCOL_PANEL,
        show_default=False,
    ),
]
VerifyFusionOpt = Annotated[
    names.FusionName | None,
    option(
        "How the references are fused: mean distance, nearest reference, mean template, "
        "mean template less half the identity's reference spread, or the gallery's SVM (default: "
        "with --gallery the rule with the lowest calibration EER at the claim's reference count; "
        "with --claim-references mean).",
        PROTOCOL_PANEL,
        "--fusion",
        show_default=False,
    ),
]
ThresholdOpt = Annotated[
    float | None,
    option(
        "Distance threshold: same when distance <= T \\[default: the model's].",
        PROTOCOL_PANEL,
        show_default=False,
    ),
]

# -- enroll ----------------------------------------------------------------------------------------

EnrollDataArg = Annotated[
    Path | None,
    typer.Argument(
        help="Identities to enrol: DATA/<identity>/<image> (or give --embeddings).", show_default=False
    ),
]
GalleryOutOpt = Annotated[Path, option("Gallery folder to write.", OUTPUT_PANEL, show_default=False)]
MaxReferencesOpt = Annotated[
    int | None,
    option(
        "At most N references per identity, a seeded choice \\[default: all its images].",
        PROTOCOL_PANEL,
        "--max-references",
        min=1,
        show_default=False,
    ),
]

AddOpt = Annotated[
    bool,
    option(
        "Add to the gallery in --out (new identities, or more references for enrolled ones) "
        "instead of replacing it; the model must be the gallery's.",
        OUTPUT_PANEL,
        "--add",
    ),
]
EmbeddingsInOpt = Annotated[
    Path | None,
    option(
        "Enrol from `siamese embed` output (a file or its .manifest.json) instead of DATA's images.",
        DATA_PANEL,
        "--embeddings",
        show_default=False,
    ),
]
IndexOpt = Annotated[
    str | None,
    option(
        "Search backend: exact | faiss-flat | faiss-ivf | faiss-hnsw (pip install 'siamese\\[index]') | "
        "milvus (pip install 'siamese\\[milvus]') \\[default: exact; with --add the gallery's].",
        PROTOCOL_PANEL,
        "--index",
        show_default=False,
    ),
]
IndexOptionOpt = Annotated[
    list[str] | None,
    option(
        "Backend option KEY=VALUE, repeatable (faiss-ivf: nlist, nprobe; faiss-hnsw: m, ef_search; "
        "milvus: uri, collection, index_type).",
        PROTOCOL_PANEL,
        "--index-option",
        show_default=False,
    ),
]

# -- identify --------------------------------------------------------------------------------------

QueriesArg = Annotated[
    list[Path],
    typer.Argument(help="Query images, or folders of them (searched recursively).", show_default=False),
]
TopKOpt = Annotated[int, option("Candidates listed per query.", PROTOCOL_PANEL, "--top-k", "-k", min=1)]
FpirOpt = Annotated[
    float | None,
    option(
        "Open-set operating point: the share of people who are not enrolled that may still get a "
        "candidate (FPIR) \\[default: the gallery's, 0.01 unless enrolled with --fpir].",
        PROTOCOL_PANEL,
        "--fpir",
        min=0.0,
        max=1.0,
        show_default=False,
    ),
]
IdentifyFusionOpt = Annotated[
    names.FusionName | None,
    option(
        "How each identity's references are fused into its score (a rule the gallery was built for) "
        "\\[default: the rule with the lowest calibration EER].",
        PROTOCOL_PANEL,
        "--fusion",
        show_default=False,
    ),
]

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
    option(
        "Output file: .npy (+ <out>.csv listing path,identity), .csv or .parquet (needs pyarrow).",
        OUTPUT_PANEL,
        show_default=False,
    ),
]

# -- export ----------------------------------------------------------------------------------------

ExportFormatOpt = Annotated[
    Literal["onnx", "torchscript"],
    option(
        "onnx (needs the onnx extra: pip install 'siamese\\[onnx]') or torchscript.",
        OUTPUT_PANEL,
        "--format",
    ),
]
ExportOutOpt = Annotated[
    Path,
    option("Model file to write; its metadata goes to <out>.json.", OUTPUT_PANEL, show_default=False),
]
ParityBatchOpt = Annotated[
    int, option("Images in the random batch of the parity check against PyTorch.", RUN_PANEL, min=2)
]

# -- pairs -----------------------------------------------------------------------------------------

PairsDataArg = Annotated[Path, typer.Argument(help="Identity-folder root: DATA/<identity>/<image>.")]
PairsOutOpt = Annotated[
    Path, option("CSV file to write (path1,path2,is_same; paths relative to DATA).", OUTPUT_PANEL)
]
SplitFromOpt = Annotated[
    Path | None, option("Run directory whose split.json restricts the identities.", DATA_PANEL)
]

# -- probe -----------------------------------------------------------------------------------------

ProbeDataArg = Annotated[
    Path | None,
    typer.Argument(help="Labelled folder, one sub-folder per identity (searched recursively)."),
]
OneshotRunsOpt = Annotated[
    Path | None,
    option("Folder of N-way one-shot runs (Omniglot runNN/class_labels.txt).", DATA_PANEL),
]
NeighboursOpt = Annotated[int, option("Neighbours of the k-NN vote.", PROTOCOL_PANEL, "--neighbours", min=1)]
KnnTemperatureOpt = Annotated[
    float, option("k-NN vote weight exp(cos/T).", PROTOCOL_PANEL, "--knn-temperature", min=1e-6)
]
QueryFractionOpt = Annotated[
    float,
    option(
        "Share of each identity's images held out as queries.",
        PROTOCOL_PANEL,
        "--query-fraction",
        min=0.01,
        max=0.99,
    ),
]
LinearCOpt = Annotated[
    float,
    option(
        "Inverse L2 strength C of the linear (logistic-regression) probe.",
        PROTOCOL_PANEL,
        "--linear-c",
        min=1e-8,
    ),
]
ProbeOutOpt = Annotated[Path | None, option("Also write the report to this JSON file.", OUTPUT_PANEL)]

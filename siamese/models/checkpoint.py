"""Checkpoints that never unpickle: weights as safetensors, metadata as JSON.

A checkpoint is a pair of files sharing a stem, `best.safetensors` + `best.json`. A `.pt`/`.pth`
state dict in place of the safetensors file is read with `torch.load(weights_only=True)` only. A run
directory keeps them in `checkpoints/`. Writes go to a temporary file and are renamed into
place, so a crash never leaves a half-written checkpoint behind.

`Preprocessing.from_metadata` is the one reader of the preprocessing a checkpoint records: the
verifier, the evaluation pipeline, the exporter and the benchmarks all go through it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from siamese import names
from siamese.errors import CheckpointError, ConfigError
from siamese.models.registry import get_encoder
from siamese.models.twin import TwinNetwork
from siamese.runs import CHECKPOINT_DIR, RunDir, run_of_checkpoint

logger = logging.getLogger(__name__)

FORMAT = "siamese-checkpoint"
VERSION = 1
DEFAULT_TTA = "none"  # checkpoints from before `siamese train --tta` record none
DEFAULT_THRESHOLD_RULE = "eer"
DEFAULT_TARGET_FAR = 1e-3


def atomic_write(path: Path, write: Any) -> None:
    """Call `write(tmp_path)` then rename the temporary file onto `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_checkpoint(stem: str | Path, model: TwinNetwork, metadata: dict[str, Any]) -> Path:
    """Write `<stem>.safetensors` (encoder weights) and `<stem>.json` (metadata).

    Args:
        stem: path without suffix, e.g. `runs/x/checkpoints/best`.
        model: the twin network; only its shared encoder holds weights.
        metadata: JSON-serialisable facts needed to rebuild and use the model.

    Returns:
        The stem as a Path.
    """
    stem = Path(stem)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "encoder": model.encoder.spec,
        "distance": model.distance,
        "embedding_dim": model.encoder.embedding_dim,
        **metadata,
    }
    state = {k: v.detach().cpu().contiguous() for k, v in model.encoder.state_dict().items()}
    atomic_write(stem.with_suffix(".safetensors"), lambda p: save_file(state, str(p)))
    atomic_write(stem.with_suffix(".json"), lambda p: p.write_text(json.dumps(meta, indent=2) + "\n"))
    return stem


WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth")


def weights_file(stem: Path) -> Path | None:
    """The weights file of a checkpoint stem: safetensors, else a `.pt`/`.pth` state dict."""
    return next((stem.with_suffix(s) for s in WEIGHT_SUFFIXES if stem.with_suffix(s).is_file()), None)


# the metadata that changes what an image embeds to (with the weights); "tta" if a model records one
_EMBEDDING_KEYS = (
    "encoder",
    "distance",
    "embedding_dim",
    "preprocessing",
    "preset",
    "image_size",
    "channels",
    "tta",
)


def model_fingerprint(stem: str | os.PathLike, metadata: Mapping[str, Any]) -> str:
    """`sha256:<hex>` of a checkpoint's weights file and the metadata that shapes its embeddings.

    Re-calibrating a model (its threshold, confidence) keeps the fingerprint; other weights, another
    preprocessing or another distance change it.

    Raises:
        CheckpointError: no weights beside the stem.
    """
    weights = weights_file(Path(stem))
    if weights is None:
        raise CheckpointError(f"no weights beside {stem}.json")
    digest = hashlib.sha256()
    with open(weights, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    facts = {k: metadata.get(k) for k in _EMBEDDING_KEYS}
    digest.update(json.dumps(facts, sort_keys=True, default=str).encode("utf-8"))
    return f"sha256:{digest.hexdigest()}"


def resolve_checkpoint(path: str | os.PathLike, which: str = "best") -> Path:
    """Turn a run directory, a stem or either checkpoint file into a checkpoint stem.

    Raises:
        CheckpointError: nothing loadable at `path`.
    """
    p = Path(path)
    if not p.exists() and not p.with_suffix(".json").exists():
        raise CheckpointError(f"model not found: {path} (pass a run directory or a checkpoint file)")
    if p.suffix in (*WEIGHT_SUFFIXES, ".json"):
        p = p.with_suffix("")
    elif p.is_dir():
        p = p / CHECKPOINT_DIR / which if (p / CHECKPOINT_DIR).is_dir() else p / which
    if not p.with_suffix(".json").is_file() or weights_file(p) is None:
        raise CheckpointError(f"no checkpoint at {path} (expected {p}.safetensors and {p}.json)")
    return p


def run_of(model_path: str | os.PathLike) -> RunDir:
    """The run directory of a model path: `<run>/checkpoints/best` (or the run itself) -> `<run>`.

    Raises:
        CheckpointError: nothing loadable at `model_path`.
    """
    return run_of_checkpoint(resolve_checkpoint(model_path))


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """Read a state dict without executing code: safetensors, or `torch.load(weights_only=True)`.

    Raises:
        CheckpointError: unreadable file, or a pickle that asks for anything but tensors.
    """
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (SafetensorError, OSError, RuntimeError, ValueError, EOFError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"unreadable or unsafe weights {path}: {first}") from None
    except Exception as exc:  # noqa: BLE001 - the restricted unpickler raises many types
        raise CheckpointError(f"unsafe or corrupt weights {path}: {type(exc).__name__}") from None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return state


def read_metadata(stem: Path) -> dict[str, Any]:
    """Read and validate checkpoint metadata (types and known names) before anything uses it."""
    try:
        meta = json.loads(stem.with_suffix(".json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"corrupt checkpoint metadata {stem}.json: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{stem}.json is not a siamese checkpoint")
    enc = meta.get("encoder")
    if not isinstance(enc, dict):
        raise CheckpointError(f"{stem}.json names an unknown encoder: {enc!r}")
    _known(stem, enc.get("name"), names.ENCODERS, "encoder")
    if not isinstance(enc.get("in_channels"), int) or enc["in_channels"] not in (1, 3):
        raise CheckpointError(f"{stem}.json has an invalid channel count: {enc.get('in_channels')!r}")
    _known(stem, meta.get("distance"), names.DISTANCES, "distance")
    _known(stem, meta.get("tta") or DEFAULT_TTA, names.TTAS, "test-time augmentation")
    threshold = meta.get("threshold")
    if threshold is not None and not isinstance(threshold, (int, float)):
        raise CheckpointError(f"{stem}.json has a non-numeric threshold: {threshold!r}")
    return meta


ARCHITECTURE_OPTIONS = ("encoder", "encoder_kwargs", "embedding_dim", "normalize")
"""The training options that describe an encoder's architecture (`init_architecture`)."""


def init_architecture(path: str | os.PathLike) -> dict[str, Any]:
    """The architecture of a checkpoint's encoder as flat training options (`ARCHITECTURE_OPTIONS`),
    so a run started from it (`--init`) builds an encoder its weights fit. The input channels are
    left out: `adapt_input_channels` fits them.

    Raises:
        CheckpointError: not a checkpoint.
    """
    spec = dict(read_metadata(resolve_checkpoint(path))["encoder"])
    name = spec.pop("name")
    options: dict[str, Any] = {"encoder": name}
    if "embedding_dim" in spec:
        options["embedding_dim"] = spec.pop("embedding_dim")
    if "normalize" in spec:
        options["normalize"] = spec.pop("normalize")
    for key in ("in_channels", "pretrained"):
        spec.pop(key, None)
    return {**options, "encoder_kwargs": spec}


def adapt_input_channels(state: dict[str, torch.Tensor], target: Mapping[str, torch.Tensor]) -> list[str]:
    """Fit the input-channel dimension of `state`'s weights to `target`'s, in place, so a grayscale
    encoder starts a colour one and the other way round; returns the adapted keys.

    Colour to grayscale sums the kernel over the three channels; grayscale to colour repeats it
    divided by three. Either way a grayscale image (or its three-equal-channel copy) gets exactly
    the responses it had, as the image conversion of `siamese.data.presets.CONVERT` is the same rule.
    """
    adapted = []
    for key, weight in state.items():
        want = target.get(key)
        if want is None or want.dim() < 2 or weight.dim() != want.dim() or weight.shape == want.shape:
            continue
        if weight.shape[0] != want.shape[0] or weight.shape[2:] != want.shape[2:]:
            continue
        if (weight.shape[1], want.shape[1]) == (3, 1):
            state[key] = weight.sum(dim=1, keepdim=True)
        elif (weight.shape[1], want.shape[1]) == (1, 3):
            state[key] = weight.expand(-1, 3, *weight.shape[2:]) / 3
        else:
            continue
        adapted.append(key)
    return adapted


def _known(stem: Path, value: Any, allowed: tuple[str, ...], what: str) -> None:
    """`names.check_choice` for a metadata field, as a `CheckpointError` naming the file."""
    try:
        names.check_choice(value, allowed, what)
    except ConfigError as exc:
        raise CheckpointError(f"{stem}.json: {exc}") from None


def load_checkpoint(
    path: str | os.PathLike, device: str | torch.device = "cpu", which: str = "best"
) -> tuple[TwinNetwork, dict[str, Any]]:
    """Rebuild the twin network from a checkpoint without unpickling anything.

    Args:
        path: run directory, checkpoint stem, or one of its two files.
        device: where to put the model.
        which: "best" or "last" when `path` is a run directory.

    Returns:
        The model in eval mode and its metadata.

    Raises:
        CheckpointError: missing, corrupt or incompatible checkpoint.
    """
    stem = resolve_checkpoint(path, which)
    meta = read_metadata(stem)
    spec = {k: v for k, v in meta["encoder"].items() if k != "pretrained"}
    try:
        encoder = get_encoder(**spec)
    except Exception as exc:  # noqa: BLE001 - any failure means the spec is unusable
        raise CheckpointError(f"cannot rebuild encoder from {stem}.json: {exc}") from None
    weights = weights_file(stem)
    if weights is None:  # removed since `resolve_checkpoint` saw it
        raise CheckpointError(f"no weights beside {stem}.json")
    state = load_weights(weights)
    try:
        encoder.load_state_dict(state, strict=True)
    except (RuntimeError, ValueError) as exc:
        lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0]  # line 0 is only "Error(s) in loading ..."
        raise CheckpointError(
            f"corrupt or incompatible weights {weights} for the architecture in {stem}.json "
            f"({spec['name']}, {spec['in_channels']} input channels): {detail}"
        ) from None
    model = TwinNetwork(encoder, distance=meta["distance"]).to(device)
    model.eval()
    return model, meta


@dataclass(frozen=True)
class CheckpointMetadata:
    """What a checkpoint's JSON says about its model, typed, with every default in one place.

    Attributes:
        encoder: the encoder spec (`Encoder.spec`: name, channels, options).
        distance: the pair distance, "euclidean" or "cosine".
        embedding_dim: D.
        threshold: the decision threshold on distances (same when `distance <= threshold`), or None
            for a model without one (self-supervised pretraining).
        val_eer: the validation EER of the kept epoch, if any.
        epoch: the kept epoch (1-based), if recorded.
        tta: the model's default test-time augmentation.
        threshold_rule: how the threshold was chosen ("eer", "accuracy", "far").
        target_far: the "far" rule's FAR target.
        calibration: the distance -> confidence calibration (`fit_confidence`), or None.
        preset: the data preset the model was trained with, if recorded.
        loss: the supervised loss, or None.
        method: the training method ("supervised" or a self-supervised one).
        raw: the JSON object itself, for the fields no reader needs typed.
    """

    encoder: Mapping[str, Any]
    distance: str
    embedding_dim: int | None
    threshold: float | None = None
    val_eer: float | None = None
    epoch: int | None = None
    tta: str = DEFAULT_TTA
    threshold_rule: str = DEFAULT_THRESHOLD_RULE
    target_far: float = DEFAULT_TARGET_FAR
    calibration: dict[str, float] | None = None
    preset: str | None = None
    loss: str | None = None
    method: str = "supervised"
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, meta: Mapping[str, Any]) -> CheckpointMetadata:
        """Read metadata as `read_metadata` returns it; absent or null fields take the defaults."""

        def given(key: str, default: Any = None) -> Any:
            value = meta.get(key)
            return default if value is None else value

        calibration = meta.get("calibration")
        usable = isinstance(calibration, Mapping) and {"coef", "intercept"} <= calibration.keys()
        return cls(
            encoder=dict(given("encoder", {})),
            distance=str(meta["distance"]),
            embedding_dim=given("embedding_dim"),
            threshold=None if meta.get("threshold") is None else float(meta["threshold"]),
            val_eer=given("val_eer"),
            epoch=given("epoch"),
            tta=str(given("tta", DEFAULT_TTA)),
            threshold_rule=str(given("threshold_rule", DEFAULT_THRESHOLD_RULE)),
            target_far=float(given("target_far", DEFAULT_TARGET_FAR)),
            calibration=dict(calibration) if usable and calibration is not None else None,
            preset=given("preset", (given("preprocessing", {}) or {}).get("preset")),
            loss=given("loss"),
            method=str(given("method", "supervised")),
            raw=dict(meta),
        )


@dataclass(frozen=True)
class Preprocessing:
    """The deterministic (evaluation) preprocessing a checkpoint's encoder expects.

    The fields are those of `siamese.data.preprocessing_spec`, which training records in the
    checkpoint metadata under "preprocessing"; `to_dict` gives them back in that form.

    Attributes:
        preset: the preset whose evaluation transform is applied.
        size: input (H, W).
        channels: 1 (grayscale) or 3 (RGB), what images are converted to first.
        convert: how an image of the other kind is converted (luma / replicated channel).
        remove_background: "otsu" (pixels brighter than the image's Otsu threshold become white,
            before anything else) or None.
        invert: intensities inverted (255 - x) after background removal.
        trim: cropped to the ink before fitting (`siamese.data.Preset.trim`); what the checkpoint
            records, False when it records nothing (checkpoints from before the option).
        crop: share of each side kept by a centre crop before fitting (1 = whole image).
        fit: how an image reaches `size`: "pad", "crop" or "stretch".
        pad: `fit == "pad"`.
        pad_fill: the colour padding uses.
        resample: the resampling filter.
        mean: per-channel normalisation mean (after scaling to [0, 1]).
        std: per-channel normalisation standard deviation.
    """

    preset: str
    size: tuple[int, int]
    channels: int
    convert: str
    remove_background: str | None
    invert: bool
    trim: bool
    crop: float
    fit: str
    pad: bool
    pad_fill: str
    resample: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any], source: str | os.PathLike) -> Preprocessing:
        """Read the preprocessing recorded in checkpoint metadata.

        The preset, size and channels come from `meta["preprocessing"]`, else from the top-level
        `preset`, `image_size` and `channels` of older checkpoints (channels: else the encoder's
        input channels), `trim` from the record (False when absent). Every other field is the
        preset's, which is what `transform` applies; a recorded value that differs from it is
        logged as a warning.

        Args:
            meta: checkpoint metadata (see `read_metadata`).
            source: the checkpoint stem, for messages.

        Raises:
            CheckpointError: no preset or size recorded, or values no preset can apply.
        """
        pre = meta.get("preprocessing") or {}
        if not isinstance(pre, Mapping):
            raise CheckpointError(f"{source}.json has unusable preprocessing: {pre!r}")
        encoder = meta.get("encoder")
        encoder = encoder if isinstance(encoder, Mapping) else {}
        preset = pre.get("preset", meta.get("preset"))
        size = pre.get("size", meta.get("image_size"))
        channels = pre.get("channels", meta.get("channels", encoder.get("in_channels")))
        if preset is None or size is None:
            raise CheckpointError(f"{source}.json does not record its preprocessing (preset and image size)")
        from siamese.data.presets import preprocessing_spec  # siamese.data never imports siamese.models

        try:
            spec = preprocessing_spec(preset, size, channels)
        except (ConfigError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{source}.json has unusable preprocessing: {exc}") from None
        spec["trim"] = bool(pre.get("trim", False))
        for key, value in pre.items():
            if key in spec and _jsonable(value) != spec[key]:
                message = "%s.json records preprocessing %s=%r but preset %r applies %r"
                logger.warning(message, source, key, value, spec["preset"], spec[key])
        tuples = {k: tuple(spec[k]) for k in ("size", "mean", "std")}
        return cls(**{**spec, **tuples})

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict, as `siamese.data.preprocessing_spec` writes it (lists for sequences)."""
        return _jsonable(asdict(self))

    def transform(self) -> Callable:
        """The PIL image -> normalised `(C, H, W)` float tensor transform (torchvision-free)."""
        from siamese.data.presets import get_preset  # siamese.data never imports siamese.models
        from siamese.data.transforms import get_transform

        preset = replace(get_preset(self.preset), trim=self.trim)
        return get_transform(preset, train=False, image_size=self.size, channels=self.channels)


def _jsonable(value: Any) -> Any:
    """Tuples as lists, recursively, as they read back from JSON."""
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value

"""Full training state for exact resumption, saved without pickle.

Tensors (model weights, optimiser moments, the torch and NumPy RNG states) go to
`state.safetensors`; everything else (epoch, step, optimiser hyper-parameters, scheduler
counters, Python's RNG state, callback bookkeeping) to `state.json`. Both are written
atomically, so a run killed at any moment keeps its previous state.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from siamese.errors import CheckpointError
from siamese.models.checkpoint import atomic_write
from siamese.training.trainer import Trainer

STATE_FORMAT = "siamese-training-state"


def _split_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, plain = {}, {"param_groups": state["param_groups"], "state": {}}
    for pid, slots in state["state"].items():
        plain["state"][str(pid)] = {}
        for key, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                plain["state"][str(pid)][key] = value
    return tensors, plain


def _join_optimizer(tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {int(pid): dict(slots) for pid, slots in plain["state"].items()}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    return {"state": state, "param_groups": plain["param_groups"]}


def save_training_state(
    stem: str | Path, trainer: Trainer, epoch: int, step_in_epoch: int, extra: dict[str, Any] | None = None
) -> None:
    """Write everything needed to continue training exactly where it stopped.

    Args:
        stem: path without suffix, e.g. `runs/x/checkpoints/state`.
        trainer: the trainer (method with all its modules and buffers, optimiser, scheduler, counters).
        epoch: the epoch to continue in (0-based).
        step_in_epoch: batches of that epoch already done.
        extra: JSON-serialisable bookkeeping of callbacks (e.g. best EER so far).
    """
    stem = Path(stem)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in trainer.method.state_dict().items()}
    optim_tensors, optim_plain = _split_optimizer(trainer.optimizer.state_dict())
    tensors.update(optim_tensors)
    rng_tensors, rng_meta = _rng_state()
    tensors.update(rng_tensors)
    meta = {
        "format": STATE_FORMAT,
        "epoch": epoch,
        "step_in_epoch": step_in_epoch,
        "global_step": trainer.global_step,
        "epoch_loss": list(trainer.epoch_loss),
        "optimizer": optim_plain,
        "scheduler": trainer.scheduler.state_dict() if trainer.scheduler is not None else None,
        **rng_meta,
        "extra": extra or {},
    }
    atomic_write(stem.with_suffix(".safetensors"), lambda p: save_file(tensors, str(p)))
    atomic_write(stem.with_suffix(".json"), lambda p: p.write_text(json.dumps(meta) + "\n"))


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The global random generators' states (torch, NumPy, Python): tensors and JSON."""
    np_state = np.random.get_state(legacy=True)  # ("MT19937", key, pos, has_gauss, gauss)
    if not isinstance(np_state, tuple):  # only if the global generator was swapped for a non-MT19937 one
        raise TypeError("NumPy's global generator is not MT19937; its state has no legacy tuple form")
    py_state = random.getstate()
    tensors = {
        "rng.torch": torch.get_rng_state(),
        "rng.numpy": torch.from_numpy(np_state[1].astype(np.int64)),
    }
    return tensors, {
        "rng_numpy": [np_state[0], *[float(x) if isinstance(x, float) else int(x) for x in np_state[2:]]],
        "rng_python": [py_state[0], list(py_state[1]), py_state[2]],
    }


def _restore_rng(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    kind, *rest = meta["rng_numpy"]
    np.random.set_state((kind, tensors["rng.numpy"].numpy().astype(np.uint32), *rest))
    version, internal, gauss = meta["rng_python"]
    random.setstate((version, tuple(internal), gauss))


def save_rng_state(stem: str | Path, global_step: int) -> None:
    """Write this process's random generators' states at `global_step` (a data-parallel rank's own
    augmentation randomness, beside rank 0's training state)."""
    stem = Path(stem)
    tensors, meta = _rng_state()
    meta["global_step"] = int(global_step)
    atomic_write(stem.with_suffix(".safetensors"), lambda p: save_file(tensors, str(p)))
    atomic_write(stem.with_suffix(".json"), lambda p: p.write_text(json.dumps(meta) + "\n"))


def load_rng_state(stems: list[str | Path], global_step: int) -> None:
    """Restore what `save_rng_state` wrote at `global_step`, from whichever of `stems` holds it.

    Raises:
        CheckpointError: none holds that step, or a corrupt file.
    """
    for stem in map(Path, stems):
        try:
            meta = json.loads(stem.with_suffix(".json").read_text())
            if meta.get("global_step") != global_step:
                continue
            _restore_rng(load_file(str(stem.with_suffix(".safetensors"))), meta)
            return
        except FileNotFoundError:
            continue
        except (OSError, ValueError, KeyError, SafetensorError) as exc:
            raise CheckpointError(f"corrupt random-generator state {stem}: {exc}") from None
    raise CheckpointError(
        f"no random-generator state of step {global_step} at {Path(stems[0]).parent}: this rank was "
        "stopped before saving it; resume from an earlier state, or accept other augmentations"
    )


def load_training_state(stem: str | Path, trainer: Trainer) -> dict[str, Any]:
    """Restore what `save_training_state` saved: the method (weights and buffers: queues, EMA
    copies, prototypes), optimiser, scheduler, RNG states and counters.

    Returns:
        `{"epoch", "step_in_epoch", "extra"}` to continue from.

    Raises:
        CheckpointError: missing, corrupt or mismatched state.
    """
    stem = Path(stem)
    try:
        meta = json.loads(stem.with_suffix(".json").read_text())
        tensors = load_file(str(stem.with_suffix(".safetensors")))
    except FileNotFoundError:
        raise CheckpointError(f"no training state to resume at {stem}.json / .safetensors") from None
    except (OSError, ValueError, SafetensorError) as exc:
        raise CheckpointError(f"corrupt training state {stem}: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{stem}.json is not a siamese training state")
    model_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        trainer.method.load_state_dict(model_state, strict=True)
        trainer.optimizer.load_state_dict(_join_optimizer(tensors, meta["optimizer"]))
    except (RuntimeError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"training state {stem} does not match this model: {first}") from None
    if trainer.scheduler is not None and meta["scheduler"] is not None:
        trainer.scheduler.load_state_dict(meta["scheduler"])
    _restore_rng(tensors, meta)
    trainer.global_step = int(meta["global_step"])
    total, count = meta["epoch_loss"]
    trainer.epoch_loss = (float(total), int(count))
    return {
        "epoch": int(meta["epoch"]),
        "step_in_epoch": int(meta["step_in_epoch"]),
        "global_step": trainer.global_step,
        "extra": meta["extra"],
    }

"""The training half of a checkpoint: what ``--resume`` needs beyond the model.

Two files beside ``config.json`` and ``model.safetensors`` (``checkpoint.py``):

    training_state.safetensors   tensors: the optimizer's moments and step counts
                                 (``optimizer/<param>/<key>``), the stream state carried into
                                 the next window (``carried/<field>``, all ranks' rows), and the
                                 random generators of every rank (``rng/<rank>/cpu``, ``.../cuda``)
    trainer_state.json           the step, the run's ``TrainConfig``, the data stream's position
                                 (``TrainStream.state_dict``), the optimizer's param groups, the
                                 GradScaler's state, progress counters

No pickle anywhere: tensors go to safetensors, everything else to JSON. Both are written into the
temporary directory of ``checkpoint.atomic_directory`` before it is renamed into place, so they
appear together with the weights or not at all.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..checkpoint import CheckpointError
from .config import TrainConfig

TRAINING_STATE_FILE = "training_state.safetensors"
TRAINER_STATE_FILE = "trainer_state.json"
FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class TrainingState:
    """Everything but the weights that a resumed run continues from.

    step: optimizer steps taken. optimizer: ``optimizer.state_dict()``. stream: the data stream's
    ``state_dict()``. carried: the stream state's tensors for all ``world_size * batch_size`` rows
    (rank r's rows are r*B .. (r+1)*B - 1). rng: per rank, ``{"cpu": ..., "cuda": ...}`` generator
    states. grad_scaler: ``GradScaler.state_dict()`` or None. progress: JSON-able counters
    (tokens seen, seconds trained, last losses).
    """

    step: int
    config: TrainConfig
    optimizer: dict[str, Any]
    stream: dict[str, Any]
    carried: dict[str, torch.Tensor]
    rng: list[dict[str, torch.Tensor]]
    grad_scaler: dict[str, Any] | None
    progress: dict[str, Any]
    world_size: int


def write_training_state(directory: Path, state: TrainingState) -> None:
    """Write ``training_state.safetensors`` and ``trainer_state.json`` into ``directory``."""
    tensors: dict[str, torch.Tensor] = {}
    optimizer_state: dict[str, dict[str, Any]] = {}
    for param_id, values in state.optimizer["state"].items():
        scalars = {}
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer/{param_id}/{key}"] = value
            else:
                scalars[key] = value
        optimizer_state[str(param_id)] = scalars
    for name, value in state.carried.items():
        tensors[f"carried/{name}"] = value
    for rank, generators in enumerate(state.rng):
        for kind, value in generators.items():
            tensors[f"rng/{rank}/{kind}"] = value
    tensors = {key: value.detach().to("cpu").contiguous() for key, value in tensors.items()}
    save_file(tensors, str(directory / TRAINING_STATE_FILE), metadata={"format_version": str(FORMAT_VERSION)})
    meta = {
        "format_version": FORMAT_VERSION,
        "step": state.step,
        "world_size": state.world_size,
        "config": state.config.to_dict(),
        "optimizer": {"param_groups": state.optimizer["param_groups"], "state": optimizer_state},
        "stream": state.stream,
        "grad_scaler": state.grad_scaler,
        "progress": state.progress,
        "torch_version": torch.__version__,
    }
    (directory / TRAINER_STATE_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def read_training_state(directory: Path) -> TrainingState:
    """Read what ``write_training_state`` wrote; ``CheckpointError`` for anything missing or damaged."""
    directory = Path(directory)
    meta_path, tensor_path = directory / TRAINER_STATE_FILE, directory / TRAINING_STATE_FILE
    for path in (meta_path, tensor_path):
        if not path.is_file():
            raise CheckpointError(
                f"checkpoint {directory} has no {path.name}: it holds a model but no training state, so it can be "
                "evaluated or sampled but not resumed"
            )
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{meta_path} is not readable JSON ({error}); the checkpoint is corrupted") from None
    try:
        tensors = load_file(str(tensor_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"{tensor_path} is corrupted or truncated ({error}); resume from an earlier checkpoint"
        ) from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        version = meta.get("format_version") if isinstance(meta, dict) else None
        raise CheckpointError(
            f"{meta_path} has training-state format {version!r}, this version reads {FORMAT_VERSION}; "
            "resume it with the torch-memformer version that wrote it"
        )
    try:
        config = TrainConfig.from_dict(meta["config"])
        world_size = int(meta["world_size"])
        optimizer_state: dict[int, dict[str, Any]] = {}
        for param_id, scalars in meta["optimizer"]["state"].items():
            optimizer_state[int(param_id)] = dict(scalars)
        carried: dict[str, torch.Tensor] = {}
        rng: list[dict[str, torch.Tensor]] = [{} for _ in range(world_size)]
        for key, value in tensors.items():
            kind, _, rest = key.partition("/")
            if kind == "optimizer":
                param_id, _, name = rest.partition("/")
                optimizer_state.setdefault(int(param_id), {})[name] = value
            elif kind == "carried":
                carried[rest] = value
            elif kind == "rng":
                rank, _, name = rest.partition("/")
                rng[int(rank)][name] = value
            else:
                raise ValueError(f"unexpected tensor {key!r}")
        return TrainingState(
            step=int(meta["step"]),
            config=config,
            optimizer={"state": optimizer_state, "param_groups": meta["optimizer"]["param_groups"]},
            stream=meta["stream"],
            carried=carried,
            rng=rng,
            grad_scaler=meta.get("grad_scaler"),
            progress=dict(meta.get("progress") or {}),
            world_size=world_size,
        )
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise CheckpointError(f"the training state in {directory} is damaged or incompatible ({error}); "
                              "resume from an earlier checkpoint") from None

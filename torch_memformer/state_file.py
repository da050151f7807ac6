"""A stream's state as a file: a document read today, or a conversation's memory, continues tomorrow.

    save_state("notes.state", state, model=model, tokenizer=tokenizer)
    state = load_state("notes.state", model=model, tokenizer=tokenizer)   # then model(ids, state=state)

One safetensors file: the state's tensors by field name (``state.tensors()``), and in the file's
metadata, as JSON, what the state belongs to:

    format      "torch-memformer-state/1"
    state       the state class ("MemformerState", or a baseline's)
    config      the model's config as a checkpoint's config.json holds it (model_type + fields)
    tokenizer   the tokenizer's identity, when one was given (ids mean nothing under another)

``load_state`` refuses, with a ``CheckpointError`` (a ``ValueError``) that names the difference, a
file for another config, another state class or another tokenizer, or tensors whose names or
shapes are not the model's. It cannot tell two trained models with the same config apart: the
weights are not fingerprinted. Works for every model of the registry (one stream contract), and
for the Hugging Face adapter's ``memformer_state`` with ``model=hf_model.memformer``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from . import registry
from .checkpoint import CheckpointError

STATE_FORMAT = "torch-memformer-state/1"
METADATA_KEY = "torch_memformer"


def save_state(path: str | Path, state: Any, *, model: nn.Module, tokenizer: Any | None = None) -> Path:
    """Write ``state`` (any batch size) of ``model``'s streams to ``path`` atomically; returns ``path``."""
    template = model.init_state(1)
    if type(state) is not type(template):
        raise TypeError(f"save_state needs a {type(template).__name__} of this model, got {type(state).__name__}")
    info = {"format": STATE_FORMAT, "state": type(state).__name__, "config": registry.config_to_dict(model.config)}
    if tokenizer is not None:
        info["tokenizer"] = tokenizer.identity()
    tensors = {name: value.detach().to("cpu").contiguous() for name, value in state.tensors().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.close(handle)
    try:
        save_file(tensors, tmp, metadata={METADATA_KEY: json.dumps(info, sort_keys=True)})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_state_info(path: str | Path) -> dict[str, Any]:
    """The JSON a state file carries (format, state class, config, tokenizer)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"state file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path} is not a readable safetensors file ({error})") from None
    try:
        info = json.loads(metadata[METADATA_KEY])
    except (KeyError, json.JSONDecodeError):
        info = None
    if not isinstance(info, dict) or info.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path} is not a torch-memformer state file (written by save_state / --state-out)")
    return info


def load_state(path: str | Path, *, model: nn.Module, tokenizer: Any | None = None,
               device: str | torch.device | None = None) -> Any:
    """The state saved in ``path``, checked against ``model`` (and ``tokenizer``), on ``device``
    (default: the model's)."""
    path = Path(path)
    info = read_state_info(path)
    _check_config(path, info.get("config"), model.config)
    template = model.init_state(1)
    if info.get("state") != type(template).__name__:
        raise CheckpointError(f"{path} holds a {info.get('state')!r} state; this model's is {type(template).__name__}")
    saved_tokenizer, current = info.get("tokenizer"), None if tokenizer is None else tokenizer.identity()
    if saved_tokenizer is not None and current is not None and saved_tokenizer != current:
        raise CheckpointError(f"{path} was written with the tokenizer {saved_tokenizer}, not {current}; "
                              "its tokens mean other text here")
    try:
        with safe_open(str(path), framework="pt") as handle:
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path} is corrupted or truncated ({error})") from None
    expected = template.tensors()
    if set(tensors) != set(expected):
        raise CheckpointError(f"{path} holds the tensors {sorted(tensors)}; a {type(template).__name__} has "
                              f"{sorted(expected)}")
    batch = {value.size(0) if value.dim() else -1 for value in tensors.values()}
    if len(batch) != 1 or min(batch) < 1:
        raise CheckpointError(f"{path}: the state's tensors disagree on the batch size")
    for name, value in tensors.items():
        want = expected[name]
        # A size 0 in a fresh state is an axis that grows along the stream (a KV cache).
        if value.dim() != want.dim() or any(w and v != w for v, w in zip(value.shape[1:], want.shape[1:])):
            raise CheckpointError(f"{path}: {name} has shape {tuple(value.shape)}, but this model's is "
                                  f"(batch, {', '.join(str(s) for s in want.shape[1:])})")
    target = torch.device(device) if device is not None else want.device
    return type(template).from_tensors(
        {name: value.to(device=target, dtype=expected[name].dtype) for name, value in tensors.items()}
    )


def _check_config(path: Path, saved: Any, config: Any) -> None:
    try:
        saved_dict = registry.config_to_dict(registry.config_from_saved(saved))
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path} names no valid model config ({error})") from None
    current = registry.config_to_dict(config)
    if saved_dict["model_type"] != current["model_type"]:
        raise CheckpointError(f"{path} is the state of a {saved_dict['model_type']!r} model, not of this "
                              f"{current['model_type']!r} model")
    if saved_dict != current:
        differences = [f"{key} {saved_dict.get(key)!r} (file) vs {current.get(key)!r} (model)"
                       for key in sorted(set(saved_dict) | set(current)) if saved_dict.get(key) != current.get(key)]
        raise CheckpointError(f"{path} is the state of another model: {'; '.join(differences[:4])}")

"""Conversion between a native checkpoint (``checkpoint.py``) and a Hugging Face model directory.

    native: config.json (MemformerConfig + model_type)   model.safetensors (names as in Memformer)
            tokenizer_meta.json (+ tokenizer.json for BPE)
    hf:     config.json (MemformerHFConfig)  generation_config.json (pad / bos / eos ids)
            model.safetensors (the same tensors, names prefixed "memformer.")
            tokenizer.json + tokenizer_config.json (PreTrainedTokenizerFast)

Both directions read JSON and safetensors only; a directory whose weights are a pickle
(``pytorch_model.bin``) is refused, not read. Both write atomically (``checkpoint.atomic_directory``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ...checkpoint import CheckpointError, atomic_directory, load_model, save_model
from ...model import Memformer
from .config import MODEL_TYPE, MemformerHFConfig
from .model import MemformerForCausalLM
from .tokenizer import HF_TOKENIZER_FILE, from_hf_tokenizer_file, special_token_ids, to_hf_tokenizer

PREFIX = MemformerForCausalLM.base_model_prefix + "."
SAFE_WEIGHTS = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"
PICKLED_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")


def from_native(model: Memformer) -> MemformerForCausalLM:
    """A ``MemformerForCausalLM`` holding a copy of ``model``'s weights."""
    if not isinstance(model, Memformer):
        raise CheckpointError(
            f"only Memformer models have a Hugging Face adapter, got {type(model).__name__}"
        )
    hf_model = MemformerForCausalLM(MemformerHFConfig.from_memformer_config(model.config))
    hf_model.memformer.load_state_dict(model.state_dict())
    return hf_model.to(next(model.parameters()).device).eval()


def native_to_hf(native_dir: str | Path, hf_dir: str | Path) -> Path:
    """Write the native checkpoint ``native_dir`` as a Hugging Face directory ``hf_dir``."""
    loaded = load_model(native_dir)
    if loaded.model_type != MODEL_TYPE:
        raise CheckpointError(
            f"{native_dir} holds a {loaded.model_type!r} model; only Memformer checkpoints convert to Hugging Face"
        )
    hf_model = from_native(loaded.model)
    if loaded.tokenizer is not None:
        # generation_config.json names the tokenizer's pad / bos / eos ids (NUL / STX / ETX), so
        # generate stops at eos and pads finished rows as transformers tools expect.
        for name, value in special_token_ids(loaded.tokenizer).items():
            setattr(hf_model.generation_config, name, value)
    hf_dir = Path(hf_dir)
    with atomic_directory(hf_dir) as tmp:
        hf_model.save_pretrained(tmp, safe_serialization=True)
        if loaded.tokenizer is not None:
            to_hf_tokenizer(loaded.tokenizer).save_pretrained(tmp)
    return hf_dir


def hf_to_native(hf_dir: str | Path, native_dir: str | Path) -> Path:
    """Write the Hugging Face directory ``hf_dir`` (from ``native_to_hf`` or ``save_pretrained``)
    as a native checkpoint ``native_dir``."""
    hf_dir = Path(hf_dir)
    if not hf_dir.is_dir():
        raise CheckpointError(f"Hugging Face directory {hf_dir} does not exist")
    config = _read_hf_config(hf_dir / "config.json")
    model = Memformer(config)
    tensors = _read_prefixed_weights(hf_dir)
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"the weights in {hf_dir} do not match its config.json (missing: {', '.join(missing[:3]) or 'none'}; "
            f"unexpected: {', '.join(unexpected[:3]) or 'none'})"
        )
    for key, value in tensors.items():
        if value.shape != expected[key].shape:
            raise CheckpointError(
                f"{hf_dir}: {key} has shape {tuple(value.shape)} but config.json implies {tuple(expected[key].shape)}"
            )
    model.load_state_dict(tensors)
    tokenizer = None
    if (hf_dir / HF_TOKENIZER_FILE).is_file():
        try:
            tokenizer = from_hf_tokenizer_file(hf_dir / HF_TOKENIZER_FILE)
        except ValueError as error:
            raise CheckpointError(str(error)) from None
    return save_model(native_dir, model.eval(), tokenizer=tokenizer)


def _read_hf_config(path: Path):
    if not path.is_file():
        raise CheckpointError(f"{path.parent} is not a Hugging Face model directory: config.json is missing")
    try:
        values = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path} is not readable JSON ({error})") from None
    if not isinstance(values, dict) or values.get("model_type") != MODEL_TYPE:
        found = values.get("model_type") if isinstance(values, dict) else None
        raise CheckpointError(f"{path} is for model_type {found!r}, not {MODEL_TYPE!r}")
    try:
        return MemformerHFConfig.from_dict(values).to_memformer_config()
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path} is not a valid Memformer config: {error}") from None


def _read_prefixed_weights(hf_dir: Path) -> dict[str, torch.Tensor]:
    """The tensors of model.safetensors (or of the shards its index names), prefix removed."""
    if (hf_dir / SAFE_WEIGHTS).is_file():
        files = [hf_dir / SAFE_WEIGHTS]
    elif (hf_dir / SAFE_INDEX).is_file():
        try:
            weight_map = json.loads((hf_dir / SAFE_INDEX).read_text())["weight_map"]
            files = [hf_dir / name for name in sorted(set(weight_map.values()))]
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
            raise CheckpointError(f"{hf_dir / SAFE_INDEX} is not a valid safetensors index ({error})") from None
        if any(Path(name).name != name for name in weight_map.values()):
            raise CheckpointError(f"{hf_dir / SAFE_INDEX} names shard files outside {hf_dir}")
    else:
        pickled = [name for name in PICKLED_WEIGHTS if (hf_dir / name).exists()]
        hint = (f"; it holds {pickled[0]}, a pickle, which is never read (it could run code): save the model with "
                "save_pretrained(..., safe_serialization=True)") if pickled else ""
        raise CheckpointError(f"{hf_dir} has no {SAFE_WEIGHTS}{hint}")
    tensors: dict[str, torch.Tensor] = {}
    for file in files:
        try:
            part = load_file(str(file))
        except (SafetensorError, OSError, ValueError) as error:
            raise CheckpointError(f"{file} is not a readable safetensors file ({error})") from None
        tensors.update(part)
    stray = [name for name in tensors if not name.startswith(PREFIX)]
    if stray:
        raise CheckpointError(
            f"{hf_dir}: weight {stray[0]!r} does not start with {PREFIX!r}; this is not a MemformerForCausalLM directory"
        )
    return {name[len(PREFIX):]: value for name, value in tensors.items()}

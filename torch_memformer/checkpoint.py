"""Model checkpoints: ``config.json`` + ``model.safetensors`` (+ the tokenizer), written atomically.

A checkpoint directory holds:

    config.json            the model's config fields plus its ``model_type`` (registry name)
    model.safetensors      the parameters (never a pickle)
    tokenizer_meta.json    which tokenizer (and tokenizer.json for BPE), when one was saved

Nothing here unpickles anything, so loading a file from someone else is safe. A directory is
written under a temporary name in the same parent and renamed into place when complete, so a
crash leaves either the old directory or the new one, never half of one. The training state
(optimizer, RNG, stream positions) is added beside these files by ``torch_memformer.training``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from . import json_input, registry

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class CheckpointError(ValueError):
    """A checkpoint that is missing, incomplete, corrupted or incompatible (a user-facing error)."""


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    model: nn.Module
    config: Any
    model_type: str
    tokenizer: Any | None
    directory: Path


def save_model(directory: str | Path, model: nn.Module, *, tokenizer: Any | None = None,
               extra: Callable[[Path], None] | None = None) -> Path:
    """Write ``model`` (and ``tokenizer``) to ``directory`` atomically; returns the directory.

    ``extra(tmp_dir)`` may add more files (the trainer's state) before the directory is published.
    An existing ``directory`` is replaced only once the new one is complete. A write that fails
    (``OSError``: no space left, ...) raises ``CheckpointError`` and leaves no trace.
    """
    directory = Path(directory)
    try:
        with atomic_directory(directory) as tmp:
            write_model_files(tmp, model, tokenizer=tokenizer)
            if extra is not None:
                extra(tmp)
    except (OSError, SafetensorError) as error:
        # A full disk or a lost mount: atomic_directory removed the half-written files, so say so.
        reason = getattr(error, "strerror", None) or str(error)
        raise CheckpointError(f"cannot write the checkpoint {directory} ({reason}); nothing was published and the "
                              "earlier checkpoints are intact") from None
    return directory


def write_model_files(directory: Path, model: nn.Module, *, tokenizer: Any | None = None) -> None:
    """config.json, model.safetensors and the tokenizer into an existing directory."""
    config_dict = registry.config_to_dict(model.config)
    (directory / CONFIG_FILE).write_text(json.dumps(config_dict, indent=2, sort_keys=True) + "\n")
    tensors = {name: value.detach().to("cpu").contiguous() for name, value in model.state_dict().items()}
    save_file(tensors, str(directory / WEIGHTS_FILE), metadata={"format": "pt", "model_type": config_dict["model_type"]})
    if tokenizer is not None:
        tokenizer.save(directory)


def load_model(directory: str | Path, *, device: str | torch.device = "cpu") -> LoadedModel:
    """Read a checkpoint written by ``save_model``; ``CheckpointError`` says what is wrong and what to do."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint directory {directory} does not exist; pass a directory written by 'memformer train'")
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise CheckpointError(f"checkpoint {directory} is incomplete: {path.name} is missing")
    config = read_config(config_path)
    name = registry.model_type(config)
    tensors = read_weights(weights_path)
    # The shapes the config implies, from a model on the meta device (no memory): a damaged or
    # hand-edited config.json that describes a huge model is a mismatch here, not a failed
    # allocation (found by fuzzing config.json, tests/fuzz/test_fuzz_regressions.py).
    with torch.device("meta"):
        expected = registry.build_model(name, config).state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{weights_path} does not match its config.json (missing: {', '.join(missing[:3]) or 'none'}; "
            f"unexpected: {', '.join(unexpected[:3]) or 'none'}); the files come from different models"
        )
    for key, value in tensors.items():
        if value.shape != expected[key].shape:
            raise CheckpointError(
                f"{weights_path}: {key} has shape {tuple(value.shape)} but config.json implies "
                f"{tuple(expected[key].shape)}; the files come from different models"
            )
    model = registry.build_model(name, config)
    model.load_state_dict(tensors)
    model.to(device).eval()
    return LoadedModel(model=model, config=config, model_type=name, tokenizer=read_tokenizer(directory), directory=directory)


def read_config(path: Path) -> Any:
    try:
        values = json_input.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path} is not readable JSON ({error}); the checkpoint is corrupted") from None
    try:
        return registry.config_from_saved(values)
    except ValueError as error:
        raise CheckpointError(f"{path} is not a valid model config: {error}") from None


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"{path} is corrupted or truncated ({error}); restore it or use an earlier checkpoint"
        ) from None


def read_tokenizer(directory: Path) -> Any | None:
    from .data.tokenizers import META_FILE, load_tokenizer

    if not (directory / META_FILE).is_file():
        return None
    try:
        return load_tokenizer(directory)
    except ValueError as error:
        raise CheckpointError(f"checkpoint {directory} has a broken tokenizer: {error}") from None


class atomic_directory:
    """``with atomic_directory(final) as tmp:`` fill ``tmp``; on success it becomes ``final``.

    The temporary directory sits next to ``final`` (same filesystem, so the rename is atomic) and
    starts with a dot so listings of checkpoints skip it. On an exception it is removed and
    ``final`` is untouched. If ``final`` exists it is moved aside first and deleted afterwards.
    """

    def __init__(self, final: Path) -> None:
        self.final = Path(final)

    def __enter__(self) -> Path:
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.final.name}.tmp-", dir=self.final.parent))
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        _fsync_tree(self.tmp)
        old = None
        if self.final.exists():
            old = self.final.parent / f".{self.final.name}.old-{os.getpid()}"
            os.replace(self.final, old)
        os.replace(self.tmp, self.final)
        _fsync_dir(self.final.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _fsync_tree(directory: Path) -> None:
    for path in directory.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

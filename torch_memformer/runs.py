"""The layout of a training run directory, and finding a checkpoint in it.

    <run>/
      latest                     one line: the newest complete checkpoint, relative to <run>
      checkpoints/step-000200/   config.json, model.safetensors, tokenizer files,
                                 training_state.safetensors, trainer_state.json
      checkpoints/step-000400/
      metrics.jsonl              one JSON object per line (``training/metrics.py``)
      tensorboard/               TensorBoard event files

A checkpoint directory is published by renaming a complete temporary directory
(``checkpoint.atomic_directory``), and ``latest`` is replaced atomically after that, so a crash
at any moment leaves ``latest`` naming a complete checkpoint. ``--checkpoint`` everywhere
accepts a checkpoint directory or a run directory (then its latest checkpoint).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from .checkpoint import CONFIG_FILE, WEIGHTS_FILE, CheckpointError

LATEST_FILE = "latest"
CHECKPOINTS_DIR = "checkpoints"
METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
_STEP_DIR = re.compile(r"^step-(\d+)$")


def checkpoint_name(step: int) -> str:
    return f"step-{step:06d}"


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS_DIR / checkpoint_name(step)


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """The published checkpoints of a run, oldest first (temporary directories are skipped)."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _STEP_DIR.match(path.name)
        if match and path.is_dir():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint ``latest`` names, or (no pointer) the newest published one, or None."""
    run_dir = Path(run_dir)
    pointer = run_dir / LATEST_FILE
    if pointer.is_file():
        target = pointer.read_text().strip()
        path = run_dir / target
        if not target or not path.is_dir():
            raise CheckpointError(
                f"{pointer} names {target!r}, which is not a checkpoint directory; the run directory is damaged: "
                f"pass one of its checkpoints/step-* directories explicitly"
            )
        return path
    complete = [path for _, path in list_checkpoints(run_dir)
                if (path / CONFIG_FILE).is_file() and (path / WEIGHTS_FILE).is_file()]
    return complete[-1] if complete else None


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory itself, or a run directory's latest checkpoint."""
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist; pass a run directory or a checkpoint written by "
                              "'memformer train'")
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a file; pass a run directory or a checkpoint directory")
    if (path / CONFIG_FILE).exists() or (path / WEIGHTS_FILE).exists():
        return path
    found = latest_checkpoint(path)
    if found is None:
        raise CheckpointError(
            f"{path} holds no checkpoint (no {CONFIG_FILE}, no {LATEST_FILE}, no {CHECKPOINTS_DIR}/step-*); "
            "train first or pass the directory a checkpoint was written to"
        )
    return found


def write_latest(run_dir: Path, checkpoint: Path) -> None:
    """Point ``latest`` at ``checkpoint`` atomically (a temporary file renamed over it)."""
    run_dir = Path(run_dir)
    target = os.path.relpath(checkpoint, run_dir)
    fd, tmp = tempfile.mkstemp(prefix=".latest.tmp-", dir=run_dir)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(target + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, run_dir / LATEST_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def prune_checkpoints(run_dir: Path, *, keep: int, protect: Path) -> list[Path]:
    """Delete all but the newest ``keep`` checkpoints, never ``protect``; returns the deleted ones."""
    checkpoints = [path for _, path in list_checkpoints(run_dir)]
    doomed = [path for path in checkpoints[: max(0, len(checkpoints) - keep)] if path.resolve() != protect.resolve()]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Delete half-written checkpoint directories a crash left behind (``.step-*.tmp-*``)."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    stale = [path for path in root.iterdir() if path.name.startswith(".step-")]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale

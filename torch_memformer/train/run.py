"""Deciding what a ``memformer train`` invocation does: a new run, or the continuation of one.

A new run needs an output directory that holds no run yet (so nothing is overwritten by
accident); its config is defaults < preset < ``--config`` file < flags. ``--resume`` needs a run
with a checkpoint; its config is the saved one, and the flags may only change the runtime fields
(``config.RUNTIME_FIELDS``): anything else contradicts the saved run and is refused.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from .. import runs
from ..checkpoint import CheckpointError
from .checkpointing import TrainingState, read_training_state
from .config import TrainConfig, resolve_config, resume_config


@dataclasses.dataclass(frozen=True)
class ResumePoint:
    """The checkpoint a resumed run starts from, and its training state."""

    checkpoint: Path
    state: TrainingState


def plan_run(
    *, out_dir: Path, file_values: dict[str, Any], flag_values: dict[str, Any], resume: bool
) -> tuple[TrainConfig, ResumePoint | None]:
    """The run's config and, with ``resume``, where it continues from (ValueError for a
    contradiction: resuming nothing, or starting over a run that exists)."""
    out_dir = Path(out_dir)
    if resume:
        if not out_dir.is_dir():
            raise ValueError(f"--resume: {out_dir} does not exist; pass the --out directory of the run to continue")
        checkpoint = runs.latest_checkpoint(out_dir)
        if checkpoint is None:
            raise ValueError(f"--resume: {out_dir} holds no checkpoint yet; start the run without --resume")
        state = read_training_state(checkpoint)
        # Settings from a --config file must agree with the saved run just as flags must.
        config = resume_config(state.config, {**file_values, **flag_values})
        if config.steps <= state.step:
            raise ValueError(
                f"--resume: the run already reached step {state.step} of {config.steps}; pass a larger --steps "
                "to train further"
            )
        return config, ResumePoint(checkpoint, state)
    if _holds_a_run(out_dir):
        raise ValueError(
            f"{out_dir} already holds a training run; continue it with --resume, or choose another --out"
        )
    return resolve_config(file_values=file_values, flag_values=flag_values), None


def _holds_a_run(out_dir: Path) -> bool:
    if not out_dir.is_dir():
        return False
    try:
        has_checkpoint = runs.latest_checkpoint(out_dir) is not None
    except CheckpointError:
        has_checkpoint = True
    return has_checkpoint or (out_dir / runs.METRICS_FILE).exists()

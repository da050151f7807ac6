"""Deciding what a ``memformer train`` invocation does: a new run, or the continuation of one.

A new run needs an output directory that holds no checkpoint yet (so no training is overwritten
by accident); its config is defaults < preset < ``--config`` file < flags. ``--resume`` continues
from the latest checkpoint; its config is the saved one, and the flags may only change the
resumable fields (``config.RESUMABLE_FIELDS``): anything else contradicts the saved run and is
refused.

A run killed before its first checkpoint (a second Ctrl-C, SIGKILL, a power cut) leaves only
``metrics.jsonl``, ``tensorboard/`` and ``train_config.json``: nothing to continue, and nothing
worth protecting. Both commands accept such a folder and start it again from step 0, with one
warning: the same command without ``--resume``, and ``--resume`` (which then takes the settings
from ``train_config.json``, so it restarts the run that was killed).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from .. import runs
from ..checkpoint import CheckpointError
from .config import TrainConfig, resolve_config, resume_config
from .schedule import learning_rate
from .training_state import TrainingState, read_training_state

logger = logging.getLogger(__name__)

# The settings of the run in a run directory, written when training starts (``save_run_config``):
# what ``--resume`` restarts from when the run was killed before its first checkpoint.
RUN_CONFIG_FILE = "train_config.json"


@dataclasses.dataclass(frozen=True)
class ResumePoint:
    """The checkpoint a resumed run starts from, and its training state."""

    checkpoint: Path
    state: TrainingState


def plan_run(
    *, out_dir: Path, file_values: dict[str, Any], flag_values: dict[str, Any], resume: bool
) -> tuple[TrainConfig, ResumePoint | None]:
    """The run's config and, with ``resume``, where it continues from.

    A folder without a checkpoint gives ``None`` (start from step 0) with or without ``resume``;
    a finished run (``config.steps`` equal to its checkpoint's step) gives a ``ResumePoint`` with
    nothing left to train. ValueError for a contradiction: resuming a directory that does not
    exist, ``--steps`` below the saved step, changed settings, or starting over a checkpoint.
    """
    out_dir = Path(out_dir)
    if resume:
        if not out_dir.is_dir():
            raise ValueError(
                f"--resume: {out_dir} does not exist; pass the --out directory of the run to continue (a run "
                "killed before it created that directory wrote nothing: start it again without --resume)"
            )
        checkpoint = runs.latest_checkpoint(out_dir)
        if checkpoint is None:
            saved = load_run_config(out_dir)
            values = {**file_values, **flag_values}
            config = resolve_config(file_values=file_values, flag_values=flag_values) if saved is None else (
                resume_config(saved, values))
            logger.warning("%s holds no checkpoint yet (the run stopped before its first one): starting it again "
                           "from step 0", out_dir)
            _warn_short_warmup(config)
            return config, None
        state = read_training_state(checkpoint)
        # Settings from a --config file must agree with the saved run just as flags must.
        config = resume_config(state.config, {**file_values, **flag_values})
        # steps == state.step is a finished run (perhaps killed between its last checkpoint and its
        # exit): a ResumePoint with nothing left to do, which the command reports as done.
        if config.steps < state.step:
            raise ValueError(
                f"--resume: the run already reached step {state.step}, past --steps {config.steps}; pass a larger "
                "--steps to train further"
            )
        _warn_short_warmup(config)
        return config, ResumePoint(checkpoint, state)
    if _holds_a_checkpoint(out_dir):
        raise ValueError(
            f"{out_dir} already holds a training run; continue it with --resume, or choose another --out"
        )
    if (out_dir / runs.METRICS_FILE).exists():
        logger.warning("%s holds a run that stopped before its first checkpoint: starting it again from step 0 "
                       "(its metrics are replaced)", out_dir)
    config = resolve_config(file_values=file_values, flag_values=flag_values)
    _warn_short_warmup(config)
    return config, None


def _warn_short_warmup(config: TrainConfig) -> None:
    """A run shorter than its warm-up never reaches its peak learning rate: say so, once."""
    if config.warmup_steps <= config.steps:
        return
    reached = learning_rate(config.steps, lr=config.lr, warmup_steps=config.warmup_steps, total_steps=config.steps,
                            min_lr_ratio=config.min_lr_ratio)
    logger.warning("--steps %d is below --warmup-steps %d: the learning rate rises to %.3g at the last step and never "
                   "reaches its peak --lr %.3g; lower --warmup-steps to reach it", config.steps, config.warmup_steps,
                   reached, config.lr)


def save_run_config(out_dir: Path, config: TrainConfig) -> None:
    """Write ``config`` to ``<out_dir>/train_config.json`` atomically (a temporary file renamed
    over it), so a crash leaves the old file or the new one, never half of one."""
    out_dir = Path(out_dir)
    fd, tmp = tempfile.mkstemp(prefix=f".{RUN_CONFIG_FILE}.tmp-", dir=out_dir)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(config.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, out_dir / RUN_CONFIG_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_run_config(out_dir: Path) -> TrainConfig | None:
    """The config ``save_run_config`` wrote, or None when there is none (a run from before the
    file existed, or one killed before it was written); ValueError when it is damaged."""
    path = Path(out_dir) / RUN_CONFIG_FILE
    if not path.is_file():
        return None
    try:
        return TrainConfig.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError, ValueError) as error:
        raise ValueError(f"{path} is damaged ({error}); delete it and pass the run's settings as flags") from None


def _holds_a_checkpoint(out_dir: Path) -> bool:
    if not out_dir.is_dir():
        return False
    try:
        return runs.latest_checkpoint(out_dir) is not None
    except CheckpointError:  # a damaged pointer still marks a run worth protecting
        return True

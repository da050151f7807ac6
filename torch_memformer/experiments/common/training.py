"""Training a model for an experiment with the project's trainer, on corpora held in memory.

Every experiment that trains (digits, recall) goes through ``training.train`` (the loop of
``memformer train``: MRBP for Memformer, truncated BPTT for the baselines, AdamW, warmup + cosine,
gradient clipping) with ``InMemoryData``, then reloads the final checkpoint (the same file
contract as any run), so all models get the same trainer, the same budget accounting and the
same state contract. The run directory is temporary; what an experiment keeps is returned.

    run = train_in_memory(config, InMemoryData(train=corpus))
    run.model          # the trained model, in eval mode, loaded from the final checkpoint
    run.curve          # [(step, loss), ...] every ``curve_every`` steps (the training loss)

``experiment_train_config`` holds what every experiment's run shares; ``run_each`` runs several
such jobs, each in its own fresh process when ``jobs > 1``.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from torch import nn

from ...checkpoint import load_model
from ...training import InMemoryData, TrainConfig, train
from ...training.metrics import read_metrics
from ... import runs
from .processes import call_each_in_fresh_process

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class TrainedRun:
    """What ``train_in_memory`` returns.

    model: the trained model (eval mode), read back from the final checkpoint.
    final_loss: the last step's training loss (nats per token).
    curve: (step, training loss) pairs, one every ``curve_every`` steps and the last.
    seconds: training time (validation and saving excluded). tokens_per_second: positions trained per second.
    """

    model: nn.Module
    final_loss: float
    curve: list[tuple[int, float]]
    seconds: float
    tokens_per_second: float


def experiment_train_config(**fields: Any) -> TrainConfig:
    """``TrainConfig(**fields)`` with what every experiment's training run shares: float32 on the
    CPU (the numbers compare models, not precisions or devices), no validation during training
    (each experiment scores its own test set afterwards) and only the final checkpoint, which
    ``train_in_memory`` reads back."""
    return TrainConfig(precision="fp32", device="cpu", eval_every=0, checkpoint_every=0, keep_checkpoints=1,
                       **fields)


def train_in_memory(config: TrainConfig, data: InMemoryData, *, curve_every: int = 10) -> TrainedRun:
    """Train ``config`` on ``data`` in a temporary run directory; return the model and its curve."""
    with tempfile.TemporaryDirectory(prefix="memformer-experiment-") as scratch:
        out_dir = Path(scratch) / "run"
        result = train(config, out_dir=out_dir, data=data)
        if result.checkpoint is None or result.interrupted:
            raise RuntimeError(f"training stopped at step {result.step} of {config.steps} without a final checkpoint")
        model = load_model(result.checkpoint).model.eval()
        records = [r for r in read_metrics(out_dir / runs.METRICS_FILE) if r.get("kind") == "train"]
    curve = [(r["step"], r["loss"]) for r in records if r["step"] % curve_every == 0 or r["step"] == result.step]
    return TrainedRun(model=model, final_loss=result.loss, curve=curve, seconds=result.seconds,
                      tokens_per_second=result.tokens_per_second)


def run_each(fn: Callable[..., T], calls: Sequence[dict[str, Any]], *, jobs: int) -> list[T]:
    """``[fn(**kwargs) for kwargs in calls]``: in this process when ``jobs == 1``, else each call in
    its own fresh process, ``jobs`` at a time (``fn`` must then be a module-level function)."""
    if jobs == 1:
        return [fn(**kwargs) for kwargs in calls]
    return call_each_in_fresh_process(fn, calls, parallel=jobs)

"""``memformer train`` as a library: the run config, the loop, checkpoints of the training state.

    from torch_memformer.train import plan_run, train
    config, resume = plan_run(out_dir=Path("runs/x"), file_values={}, flag_values={"steps": 100}, resume=False)
    result = train(config, out_dir=Path("runs/x"), resume=resume)

Modules, one concept each: ``config`` (TrainConfig, merging defaults < preset < file < flags),
``presets``, ``run`` (new run or resume), ``loop`` (the training loop), ``window_step`` (one
window's gradients for any model), ``schedule`` (warmup + cosine), ``precision`` (device and
autocast), ``checkpointing`` (optimizer, RNG, stream and carried state files), ``distributed``
(torchrun/DDP), ``metrics`` (metrics.jsonl + TensorBoard), ``interrupt`` (Ctrl-C). The training
engines themselves (MRBP, BPTT) are ``torch_memformer.training``.
"""

from .config import (
    METHODS,
    OPTIMISER_FIELDS,
    PRECISIONS,
    RESUMABLE_FIELDS,
    RUNTIME_FIELDS,
    TrainConfig,
    parse_model_config,
    read_config_file,
    resolve_config,
)
from .loop import DebugOptions, InMemoryData, NonFiniteLoss, TrainResult, train
from .presets import DEFAULT_PRESET, PRESETS
from .run import ResumePoint, plan_run

__all__ = [
    "DEFAULT_PRESET",
    "METHODS",
    "OPTIMISER_FIELDS",
    "PRECISIONS",
    "PRESETS",
    "RESUMABLE_FIELDS",
    "RUNTIME_FIELDS",
    "DebugOptions",
    "InMemoryData",
    "NonFiniteLoss",
    "ResumePoint",
    "TrainConfig",
    "TrainResult",
    "parse_model_config",
    "plan_run",
    "read_config_file",
    "resolve_config",
    "train",
]

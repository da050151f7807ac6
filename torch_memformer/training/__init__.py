"""Training: ``memformer train`` as a library, and the engines that compute a window's gradients.

    from torch_memformer.training import plan_run, train
    config, resume = plan_run(out_dir=Path("runs/x"), file_values={}, flag_values={"steps": 100}, resume=False)
    result = train(config, out_dir=Path("runs/x"), resume=resume)

    from torch_memformer.training import backward_window     # one window's gradients, no loop
    result = backward_window(model, input_ids, state=state, method="mrbp")

Modules, one concept each: ``config`` (TrainConfig, merging defaults < preset < file < flags),
``presets``, ``resume`` (a new run or the continuation of one), ``loop`` (the training loop),
``schedule`` (warmup + cosine), ``precision`` (device and autocast), ``training_state`` (the
optimizer, RNG, stream and carried-state files a checkpoint holds beside the model's, which are
``torch_memformer.checkpoint``'s), ``distributed`` (torchrun: process group, DDP wrapping,
collectives), ``metrics`` (metrics.jsonl + TensorBoard), ``interrupt`` (Ctrl-C). The gradient
engines (MRBP, gradient checkpointing, BPTT, the baselines' truncated BPTT) are ``engines/``,
which imports only ``model/``.
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
from .engines import StepModule, WindowResult, backward_window
from .loop import DebugOptions, InMemoryData, NonFiniteLoss, TrainResult, train
from .presets import DEFAULT_PRESET, PRESETS
from .resume import ResumePoint, plan_run

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
    "StepModule",
    "TrainConfig",
    "TrainResult",
    "WindowResult",
    "backward_window",
    "parse_model_config",
    "plan_run",
    "read_config_file",
    "resolve_config",
    "train",
]

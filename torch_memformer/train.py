"""The training API's import path before issue 12 merged ``train/`` into ``training/``.

Kept so that code written against ``from torch_memformer.train import train, plan_run,
TrainConfig`` (as README and docs/cli.md showed) still runs. It only re-exports
``torch_memformer.training``'s public names; nothing in the package imports it, and new code
should import ``torch_memformer.training``. The old submodules (``train.config``,
``train.presets``, ...) are ``training.config``, ``training.presets``, ... now.
"""

from .training import (  # noqa: F401
    DEFAULT_PRESET,
    METHODS,
    OPTIMISER_FIELDS,
    PRECISIONS,
    PRESETS,
    RESUMABLE_FIELDS,
    RUNTIME_FIELDS,
    DebugOptions,
    InMemoryData,
    NonFiniteLoss,
    ResumePoint,
    TrainConfig,
    TrainResult,
    parse_model_config,
    plan_run,
    read_config_file,
    resolve_config,
    train,
)

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

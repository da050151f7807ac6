"""Model names -> (config class, model class), so the trainer and checkpoints handle any model.

    >>> from torch_memformer import registry
    >>> config = registry.config_from_dict("transformer-xl", {"d_model": 64, "num_heads": 4})
    >>> saved = registry.config_to_dict(config)            # {"model_type": "transformer-xl", ...}
    >>> model = registry.build_model(saved["model_type"], saved)

A saved config carries its ``model_type`` next to the fields; ``config_from_saved`` reads it back
(a config without one is a Memformer config, as saved before the baselines existed).

Memformer's ablations are configs, not classes: ``ABLATIONS`` names the paper's (spec section 3)
as field overrides and ``apply_ablation`` applies one to a base config.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeAlias

from torch import nn

from .baselines import TransformerConfig, TransformerLM, TransformerXL, TransformerXLConfig
from .baselines.presets import TRANSFORMER_PRESETS, TRANSFORMER_XL_PRESETS
from .config import LEGACY_VALUES, MemformerConfig
from .model import Memformer
from .model.presets import MEMFORMER_PRESETS

# The config of any registered model: what ``config_from_dict`` returns and ``build_model`` takes.
ModelConfig: TypeAlias = MemformerConfig | TransformerXLConfig | TransformerConfig

MODEL_TYPE_KEY = "model_type"
DEFAULT_MODEL_TYPE = "memformer"


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    config_class: type
    # A stream LM (``model/stream_lm.py``): its ``state_class`` is part of the contract.
    model_class: type[nn.Module]
    # The model's config fields under each training preset (``training/presets.py`` names them).
    presets: dict[str, dict[str, Any]]

    @property
    def state_class(self) -> type:
        """What a checkpoint rebuilds a saved stream state with (``state_class.from_tensors``)."""
        return self.model_class.state_class


# One line per model: a new model (its config, class and preset sizes in its own folder) is
# registered here and nowhere else.
MODELS: dict[str, ModelSpec] = {
    "memformer": ModelSpec(MemformerConfig, Memformer, MEMFORMER_PRESETS),
    "transformer-xl": ModelSpec(TransformerXLConfig, TransformerXL, TRANSFORMER_XL_PRESETS),
    "transformer": ModelSpec(TransformerConfig, TransformerLM, TRANSFORMER_PRESETS),
}

# The paper's Memformer ablations (spec section 3, MNIST table), as overrides of a base config.
ABLATIONS: dict[str, dict[str, Any]] = {
    "no-memory": {"use_memory": False},
    "slots-1": {"num_slots": 1},
    "slots-16": {"num_slots": 16},
    "slots-32": {"num_slots": 32},
    "slots-64": {"num_slots": 64},
    "temperature-1": {"write_temperature": 1.0},
    "no-forgetting": {"forgetting": False},
    "single-head-write": {"write_heads": "single"},
}


def model_names() -> list[str]:
    return list(MODELS)


def spec(name: str) -> ModelSpec:
    """The classes of a model name; ValueError naming the known ones otherwise."""
    if not isinstance(name, str) or name not in MODELS:  # a list from JSON is unhashable
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name]


def model_type(config_or_model: Any) -> str:
    """The registry name of a config or a model instance."""
    config = getattr(config_or_model, "config", config_or_model)
    for name, entry in MODELS.items():
        if type(config) is entry.config_class:
            return name
    raise ValueError(f"{type(config_or_model).__name__} is not a registered model or config")


def config_from_dict(name: str, values: dict[str, Any]) -> ModelConfig:
    """The validated config of model ``name`` from a dict of its fields.

    A ``model_type`` key is allowed (a saved config) but must name the same model.
    """
    config_class = spec(name).config_class
    if not isinstance(values, dict):
        raise ValueError(f"a {name} config must be a JSON object, got {type(values).__name__}")
    values = dict(values)
    saved_type = values.pop(MODEL_TYPE_KEY, name)
    if saved_type != name:
        raise ValueError(f"the config is for model {saved_type!r}, not {name!r}; pass --model {saved_type}")
    return config_class.from_dict(values)


def config_to_dict(config: ModelConfig) -> dict[str, Any]:
    """The config's fields plus its ``model_type``: what a checkpoint saves."""
    return {MODEL_TYPE_KEY: model_type(config), **config.to_dict()}


def config_from_saved(values: dict[str, Any]) -> ModelConfig:
    """The config a checkpoint saved with ``config_to_dict`` (no ``model_type`` = Memformer)."""
    if not isinstance(values, dict):
        raise ValueError(f"a saved config must be a JSON object, got {type(values).__name__}")
    name = values.get(MODEL_TYPE_KEY, DEFAULT_MODEL_TYPE)
    if name == "memformer":
        # Fields added after a checkpoint was written keep the meaning it was trained with.
        values = {**LEGACY_VALUES, **values}
    return config_from_dict(name, values)


def build_model(name: str, config: ModelConfig | dict[str, Any]) -> nn.Module:
    """A fresh model ``name`` from its config (an instance of its config class, or a dict)."""
    entry = spec(name)
    if isinstance(config, dict):
        config = config_from_dict(name, config)
    elif not isinstance(config, entry.config_class):
        raise ValueError(
            f"model {name!r} needs a {entry.config_class.__name__} or a dict, got {type(config).__name__}"
        )
    return entry.model_class(config)


def apply_ablation(config: MemformerConfig, name: str) -> MemformerConfig:
    """``config`` with the named ablation's overrides (validated again)."""
    if not isinstance(config, MemformerConfig):
        raise ValueError(f"ablations apply to a MemformerConfig, got {type(config).__name__}")
    if not isinstance(name, str) or name not in ABLATIONS:
        raise ValueError(f"unknown ablation {name!r}; choose one of {', '.join(ABLATIONS)}")
    return config.replace(**ABLATIONS[name])

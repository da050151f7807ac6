"""``MemformerHFConfig``: ``MemformerConfig``'s fields as a ``transformers`` config (model_type "memformer").

The fields, their defaults and their validation are ``MemformerConfig``'s: ``__post_init__`` builds
one (so a bad value fails here with the same message) and ``to_memformer_config`` hands it to the
native model. ``tests/integrations/test_integration_hf.py`` checks the two field lists cannot drift apart.

Written in the transformers 5 style (annotated class attributes; the base class turns the class
into a keyword-only dataclass).

``save_pretrained`` also writes the ``trust_remote_code`` modules and ``auto_map``
(``remote_code.py``), so a saved directory loads without importing this package first.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from transformers import PretrainedConfig

from ...config import MemformerConfig
from .remote_code import AUTO_MAP, write_remote_code

MODEL_TYPE = "memformer"


class MemformerHFConfig(PretrainedConfig):
    """A Memformer config for ``transformers``; fields as ``MemformerConfig`` (``torch_memformer/config.py``).

    >>> config = MemformerHFConfig(d_model=64, num_heads=4)
    >>> config.to_memformer_config().d_model
    64
    """

    model_type = MODEL_TYPE
    # Generic names that transformers utilities (device maps, logging) look up.
    attribute_map = {"hidden_size": "d_model", "num_attention_heads": "num_heads", "intermediate_size": "d_ff"}
    # Model outputs that Trainer's evaluate/predict must not gather: the stream state is an object
    # of several tensors with different shapes, not a per-example prediction.
    keys_to_ignore_at_inference = ["memformer_state"]

    vocab_size: int = 256
    d_model: int = 256
    num_heads: int = 8
    d_ff: int = 1024
    num_encoder_layers: int = 4
    num_decoder_layers: int = 4
    num_slots: int = 32
    segment_len: int = 64
    dropout: float = 0.0
    write_temperature: float = 0.5
    forgetting: bool = True
    use_memory: bool = True
    write_heads: str = "multi"
    write_keep_init: float | str | None = None
    forgetting_init_norm: float = 0.02
    forgetting_form: str = "polar"
    read_null_slot: bool = False
    read_null_logit_init: float | None = None
    context_positions: str = "rotary"
    tie_embeddings: bool = True
    rope_base: float = 10000.0
    attention_impl: str = "sdpa"
    layer_norm_eps: float = 1e-5
    init_std: float | None = None
    writer_init_std: float | None = 0.02
    writer_init_scope: str = "value"

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        self.to_memformer_config()  # validates every field; ValueError names the field and the fix

    def save_pretrained(self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs: Any) -> None:
        """As ``PretrainedConfig.save_pretrained``, plus the ``trust_remote_code`` modules beside
        ``config.json`` and the ``auto_map`` naming them (``remote_code.py``)."""
        write_remote_code(save_directory)
        self.auto_map = dict(AUTO_MAP)
        super().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)

    @classmethod
    def register_for_auto_class(cls, auto_class: Any = "AutoConfig") -> None:
        """A no-op. transformers calls it after loading through ``trust_remote_code`` and then, on
        save, copies the file defining the class (``config.py``, whose package-relative imports
        cannot work on their own); ``save_pretrained`` writes the re-exporting modules instead."""
        del auto_class

    def to_memformer_config(self) -> MemformerConfig:
        """The native config (validated)."""
        return MemformerConfig(**{name: getattr(self, name) for name in memformer_field_names()})

    @classmethod
    def from_memformer_config(cls, config: MemformerConfig, **kwargs: Any) -> "MemformerHFConfig":
        """The transformers config of a native one; ``kwargs`` set transformers-only fields."""
        if not isinstance(config, MemformerConfig):
            raise TypeError(f"from_memformer_config needs a MemformerConfig, got {type(config).__name__}")
        return cls(**config.to_dict(), **kwargs)


def memformer_field_names() -> list[str]:
    return [field.name for field in dataclasses.fields(MemformerConfig)]

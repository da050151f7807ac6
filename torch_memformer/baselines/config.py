"""Configs of the baselines: validated frozen dataclasses with the JSON round trip of every config
(``config_base.JsonConfig``: ``to_dict`` / ``from_dict`` / ``to_json`` / ``from_json`` / ``replace``).

Every field is checked in ``__post_init__`` so a bad value fails where it is written, with a
message that names the field and the fix. ``docs/baselines.md`` explains each model.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..config import AttentionImpl
from ..config_base import JsonConfig, check_bool, check_choice, check_float, check_init_std, check_int


@dataclasses.dataclass(frozen=True)
class TransformerXLConfig(JsonConfig):
    """Hyper-parameters of a Transformer-XL language model (Dai et al. 2019).

    Span (``docs/baselines.md``): every query attends to itself and the ``mem_len`` positions
    before it, whether they sit in the cache or earlier in the same call. ``segment_len`` is how
    many tokens one forward chunk holds: it never changes a value, only where the stop-gradient
    of the cache cuts the graph during training (and the cost of a chunk).
    """

    vocab_size: int = 256
    d_model: int = 256
    num_heads: int = 8
    d_ff: int = 1024
    num_layers: int = 4
    # Positions of each layer's input kept in the cache (the paper's memory length M).
    mem_len: int = 64
    # Tokens per forward chunk (the paper's segment length L during training).
    segment_len: int = 64
    dropout: float = 0.0
    # The paper's SG(): keys and values read from the cache carry no gradient. False lets the
    # gradient flow through the cache within a call (and across calls unless the engine detaches).
    detach_memory: bool = True
    tie_embeddings: bool = True
    # "reference" computes the relative scores by gathering R per (query, key) pair and runs the
    # written-out attention; "sdpa" uses the relative shift and scaled_dot_product_attention.
    attention_impl: AttentionImpl = "sdpa"
    layer_norm_eps: float = 1e-5
    # None: d_model ** -0.5, as Memformer (decision 20).
    init_std: float | None = None

    def __post_init__(self) -> None:
        _check_common(self)
        check_int(self, "num_layers", minimum=1)
        check_int(self, "mem_len", minimum=1)
        check_int(self, "segment_len", minimum=1)
        if self.d_model % 2:
            raise ValueError(
                f"d_model ({self.d_model}) must be even for the sinusoidal relative position table; "
                "pick an even d_model"
            )
        for name in ("detach_memory", "tie_embeddings"):
            check_bool(self, name)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.num_heads


@dataclasses.dataclass(frozen=True)
class TransformerConfig(JsonConfig):
    """Hyper-parameters of a plain decoder-only Transformer LM with rotary positions.

    Every query attends to itself and the ``context_len - 1`` tokens before it (a sliding
    window); ``context_len=None`` is an unbounded window whose KV cache grows with the stream.
    ``segment_len`` is how many tokens one forward chunk holds; values never depend on it.
    """

    vocab_size: int = 256
    d_model: int = 256
    num_heads: int = 8
    d_ff: int = 1024
    num_layers: int = 4
    # Tokens each query may see, itself included; None = the whole stream (a growing cache).
    context_len: int | None = 256
    segment_len: int = 64
    dropout: float = 0.0
    tie_embeddings: bool = True
    rope_base: float = 10000.0
    attention_impl: AttentionImpl = "sdpa"
    layer_norm_eps: float = 1e-5
    # None: d_model ** -0.5, as Memformer (decision 20).
    init_std: float | None = None

    def __post_init__(self) -> None:
        _check_common(self)
        check_int(self, "num_layers", minimum=1)
        if self.context_len is not None:
            check_int(self, "context_len", minimum=1)
        check_int(self, "segment_len", minimum=1)
        if self.head_dim % 2:
            raise ValueError(
                f"the head size d_model / num_heads ({self.head_dim}) must be even for rotary position "
                "embeddings; change d_model or num_heads"
            )
        check_float(self, "rope_base", low=1.0, low_open=True)
        check_bool(self, "tie_embeddings")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.num_heads


def _check_common(config: Any) -> None:
    """The fields every baseline shares, checked the way MemformerConfig checks them."""
    check_int(config, "vocab_size", minimum=2)
    check_int(config, "d_model", minimum=2)
    check_int(config, "num_heads", minimum=1)
    check_int(config, "d_ff", minimum=1)
    if config.d_model % config.num_heads:
        raise ValueError(
            f"d_model ({config.d_model}) must be divisible by num_heads ({config.num_heads}); "
            "pick num_heads among the divisors of d_model"
        )
    check_float(config, "dropout", low=0.0, high=1.0, high_open=True)
    check_float(config, "layer_norm_eps", low=0.0, low_open=True)
    check_init_std(config)
    check_choice(config, "attention_impl", ("sdpa", "reference"))


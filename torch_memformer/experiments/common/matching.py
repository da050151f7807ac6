"""Baselines sized against a Memformer: a Transformer-XL cache holding as many bytes as Memformer's state.

Memformer's stream state is its memory (S slots x D) plus one segment of context (L x D, the
encoding the next segment's decoder reads) and a few bookkeeping tensors; Transformer-XL's is
its cache, mem_len positions x D in **each** of its N layers (spec 1.4), plus the last hidden
state. ``matched_mem_len`` picks the largest mem_len whose state is no larger than Memformer's,
measured with ``state.num_bytes()`` on real states (batch 1, float32), not from a formula;
``matched_transformer_xl`` applies it to the model_config fields an experiment trains with.
"""

from __future__ import annotations

from typing import Any

from ... import registry
from ...baselines import TransformerXLConfig
from ...config import MemformerConfig
from ...training import TrainConfig


def state_bytes_per_row(name: str, config: Any) -> int:
    """``model.init_state(1).num_bytes()`` of model ``name`` built from ``config``."""
    return registry.build_model(name, config).init_state(1).num_bytes()


def matched_mem_len(memformer: MemformerConfig, txl: TransformerXLConfig) -> int:
    """The largest mem_len (>= 1) for which ``txl``'s state is at most ``memformer``'s, in bytes."""
    target = state_bytes_per_row("memformer", memformer)
    one = state_bytes_per_row("transformer-xl", txl.replace(mem_len=1))
    per_position = state_bytes_per_row("transformer-xl", txl.replace(mem_len=2)) - one
    return max(1, 1 + (target - one) // per_position)


def matched_transformer_xl(memformer_fields: dict[str, Any], txl_fields: dict[str, Any], *,
                           vocab_size: int) -> dict[str, Any]:
    """``txl_fields`` (a Transformer-XL model_config, as ``TrainConfig`` takes it) with the
    ``matched_mem_len`` of the Memformer that ``memformer_fields`` describe."""
    memformer = TrainConfig(model="memformer", model_config=memformer_fields).build_model_config(vocab_size=vocab_size)
    txl = TrainConfig(model="transformer-xl", model_config=txl_fields).build_model_config(vocab_size=vocab_size)
    return dict(txl_fields, mem_len=matched_mem_len(memformer, txl))

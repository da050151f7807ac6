"""The three models of the paper's comparisons at comparable sizes, built from one description.

The issue's default (``ModelSizes()``): d_model 256, 8 heads, FFN 1024, a byte vocabulary;
Memformer 4 encoder + 4 decoder layers, 32 slots, segments of 64; Transformer-XL 8 layers with
mem_len 64 and segments of 64; the plain Transformer 8 layers with a full context
(``context_len=None``: every query sees the whole stream). Untrained weights are fine for cost
measurements: no cost here depends on the values of the weights.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from ... import registry

MODEL_NAMES = ("transformer", "transformer-xl", "memformer")
LABELS = {"transformer": "Transformer", "transformer-xl": "Transformer-XL", "memformer": "Memformer"}


@dataclasses.dataclass(frozen=True)
class ModelSizes:
    """Sizes shared by the three models, and the ones only some of them have."""

    vocab_size: int = 256
    d_model: int = 256
    num_heads: int = 8
    d_ff: int = 1024
    # Memformer
    num_encoder_layers: int = 4
    num_decoder_layers: int = 4
    num_slots: int = 32
    # Memformer's segment and the baselines' chunk (the unit of one forward step).
    segment_len: int = 64
    # Transformer-XL and the plain Transformer
    baseline_layers: int = 8
    mem_len: int = 64

    def config(self, name: str, **overrides: Any) -> Any:
        """The validated config of model ``name`` (a registry name) at these sizes, with overrides."""
        shared = dict(vocab_size=self.vocab_size, d_model=self.d_model, num_heads=self.num_heads, d_ff=self.d_ff,
                      segment_len=self.segment_len)
        if name == "memformer":
            values = dict(shared, num_encoder_layers=self.num_encoder_layers,
                          num_decoder_layers=self.num_decoder_layers, num_slots=self.num_slots)
        elif name == "transformer-xl":
            values = dict(shared, num_layers=self.baseline_layers, mem_len=self.mem_len)
        elif name == "transformer":
            values = dict(shared, num_layers=self.baseline_layers, context_len=None)
        else:
            raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
        values.update(overrides)
        return registry.config_from_dict(name, values)


def build_model(name: str, sizes: ModelSizes, *, seed: int, **overrides: Any) -> nn.Module:
    """A seeded, untrained model ``name`` in eval mode (no dropout)."""
    torch.manual_seed(seed)
    return registry.build_model(name, sizes.config(name, **overrides)).eval()


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

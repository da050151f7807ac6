"""The tiny Memformer the gradient-engine tests share (tests/training/engines/test_engines_*.py).

One place for its sizes, so the engine tests differ only in what they change: small enough
for float64 comparisons of every gradient in milliseconds, with every part of the segment step
present (encoder, writer, forgetting, decoder)."""

from __future__ import annotations

import torch

from torch_memformer import Memformer, MemformerConfig


def tiny_memformer(*, seed: int = 0, vocab_size: int = 13, segment_len: int = 4, **changes) -> Memformer:
    """A freshly initialised tiny Memformer (weights from ``seed``); ``changes`` are
    MemformerConfig fields that differ from the shared sizes."""
    torch.manual_seed(seed)
    sizes = dict(vocab_size=vocab_size, d_model=16, num_heads=2, d_ff=32, num_encoder_layers=1,
                 num_decoder_layers=1, num_slots=3, segment_len=segment_len)
    return Memformer(MemformerConfig(**{**sizes, **changes}))

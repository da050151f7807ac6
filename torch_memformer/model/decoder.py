"""The decoder (spec 1): causal self-attention inside the segment, cross-attention to the previous
segment's encoder states H_t, FFN. It never sees the memory directly.

Shape legend: B batch, H heads, T tokens, U context positions, D d_model, K head dim.

``forward`` runs a whole (prefix of a) segment. The KV-cached path that generation uses
(``new_cache``, ``forward_cached``) is inherited from ``decoder_cache.py`` and tested against it.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import MemformerConfig
from .attention import CrossAttention, Rotary, SelfAttention
from .blocks import FeedForward
from .decoder_cache import CachedDecoder, CachedDecoderLayer


class DecoderLayer(CachedDecoderLayer):
    def __init__(self, config: MemformerConfig) -> None:
        super().__init__()
        d, eps = config.d_model, config.layer_norm_eps
        self.self_norm = nn.LayerNorm(d, eps=eps)
        self.self_attention = SelfAttention(d, config.num_heads, config.dropout, config.attention_impl)
        self.cross_norm = nn.LayerNorm(d, eps=eps)
        self.cross_attention = CrossAttention(d, config.num_heads, config.dropout, config.attention_impl)
        self.ffn_norm = nn.LayerNorm(d, eps=eps)
        self.ffn = FeedForward(d, config.d_ff, config.dropout)
        self.dropout = nn.Dropout(config.dropout)
        # Decision 1: the previous segment's states sit at positions 0..L-1, this segment's
        # decoder inputs at L..2L-1 (input 0, the BOS, stands for the boundary).
        self.positioned_context = config.context_positions == "rotary"
        self.context_offset = config.segment_len

    def context_rotary(self, rotary: Rotary) -> Rotary | None:
        return rotary if self.positioned_context else None

    def forward(self, h_BTD: torch.Tensor, context_BUD: torch.Tensor, rotary: Rotary) -> torch.Tensor:
        # h = h + CausalSelfAttn(LN(h)); h = h + CrossAttn(LN(h), H_t); h = h + FFN(LN(h))  (spec 1)
        h_BTD = h_BTD + self.dropout(self.self_attention(self.self_norm(h_BTD), rotary, causal=True))
        crossed_BTD = self.cross_attention(self.cross_norm(h_BTD), context_BUD, self.context_rotary(rotary),
                                           query_start=self.context_offset)
        h_BTD = h_BTD + self.dropout(crossed_BTD)
        return h_BTD + self.ffn(self.ffn_norm(h_BTD))


class Decoder(CachedDecoder):
    """N_d decoder layers and a final LayerNorm (the head's LN, spec 1); the Linear to the
    vocabulary is ``Memformer.logits_from_hidden``."""

    def __init__(self, config: MemformerConfig) -> None:
        super().__init__()
        self.config = config
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.num_decoder_layers))
        self.final_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)

    def forward(self, x_BTD: torch.Tensor, context_BUD: torch.Tensor, rotary: Rotary) -> torch.Tensor:
        """Hidden states (after the final LayerNorm) for decoder inputs at positions 0 .. T - 1."""
        for layer in self.layers:
            x_BTD = layer(x_BTD, context_BUD, rotary)
        return self.final_norm(x_BTD)

"""The decoder (spec 1): causal self-attention inside the segment, cross-attention to the previous
segment's encoder states H_t, FFN. It never sees the memory directly.

Shape legend: B batch, H heads, T tokens, U context positions, D d_model, K head dim.

``forward`` runs a whole (prefix of a) segment; ``DecoderCache`` with ``prefill`` / ``step`` is
the KV-cached path used by generation, tested against ``forward``.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..config import MemformerConfig
from .attention import CrossAttention, Rotary, SelfAttention
from .blocks import FeedForward


@dataclasses.dataclass
class LayerCache:
    """One layer's cached keys and values: self-attention (filled position by position, at most
    one segment long) and cross-attention (the context's, computed once per segment)."""

    self_k_BHUK: torch.Tensor
    self_v_BHUK: torch.Tensor
    cross_k_BHUK: torch.Tensor
    cross_v_BHUK: torch.Tensor


class DecoderLayer(nn.Module):
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
        h_BTD = h_BTD + self.dropout(self.self_attention(self.self_norm(h_BTD), rotary, causal=True))
        crossed_BTD = self.cross_attention(self.cross_norm(h_BTD), context_BUD, self.context_rotary(rotary),
                                           query_start=self.context_offset)
        h_BTD = h_BTD + self.dropout(crossed_BTD)
        return h_BTD + self.ffn(self.ffn_norm(h_BTD))

    def forward_cached(self, h_BTD: torch.Tensor, start: int, cache: LayerCache, rotary: Rotary) -> torch.Tensor:
        """Tokens at positions start .. start + T - 1 with the earlier positions taken from the
        cache, which this call extends in place. Either a prefill (start == 0) or one step (T == 1)."""
        t = h_BTD.size(1)
        assert start == 0 or t == 1, "cached decoding is a prefill from 0 or one token at a time"
        q_BHTK, k_BHTK, v_BHTK = self.self_attention.project(self.self_norm(h_BTD), rotary, start)
        cache.self_k_BHUK[:, :, start : start + t] = k_BHTK
        cache.self_v_BHUK[:, :, start : start + t] = v_BHTK
        keys_BHUK = cache.self_k_BHUK[:, :, : start + t]
        values_BHUK = cache.self_v_BHUK[:, :, : start + t]
        # A single new query may see every cached key, so only a prefill needs the causal mask.
        attended_BTD = self.self_attention.finish(q_BHTK, keys_BHUK, values_BHUK, causal=t > 1)
        h_BTD = h_BTD + self.dropout(attended_BTD)
        crossed_BTD = self.cross_attention.attend(self.cross_norm(h_BTD), cache.cross_k_BHUK, cache.cross_v_BHUK,
                                                  rotary=self.context_rotary(rotary),
                                                  query_start=self.context_offset + start)
        h_BTD = h_BTD + self.dropout(crossed_BTD)
        return h_BTD + self.ffn(self.ffn_norm(h_BTD))


class Decoder(nn.Module):
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

    def new_cache(self, context_BUD: torch.Tensor, rotary: Rotary) -> list[LayerCache]:
        """An empty self-attention cache of one segment and the context's projected keys/values."""
        b = context_BUD.size(0)
        h, k, length = self.config.num_heads, self.config.head_dim, self.config.segment_len
        caches = []
        for layer in self.layers:
            cross_k_BHUK, cross_v_BHUK = layer.cross_attention.project_source(context_BUD, layer.context_rotary(rotary))
            empty_BHUK = cross_k_BHUK.new_zeros(b, h, length, k)
            caches.append(LayerCache(empty_BHUK, empty_BHUK.clone(), cross_k_BHUK, cross_v_BHUK))
        return caches

    def forward_cached(self, x_BTD: torch.Tensor, start: int, cache: list[LayerCache], rotary: Rotary) -> torch.Tensor:
        for layer, layer_cache in zip(self.layers, cache):
            x_BTD = layer.forward_cached(x_BTD, start, layer_cache, rotary)
        return self.final_norm(x_BTD)

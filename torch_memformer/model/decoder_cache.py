"""The decoder's KV-cached path for generation: the same layers, one new position at a time.

Shape legend: B batch, H heads, T tokens, U key positions, D d_model, K head dim.

``decoder.py`` holds the decoder as the spec writes it (a whole prefix of a segment at once);
``Decoder`` and ``DecoderLayer`` inherit this cached path, which reuses their submodules and so
their parameters: the state dict is the decoder's alone. A prefill runs [BOS, tokens 0 .. p - 1]
from an empty cache; each later step reads one token, with the earlier positions' keys and values
taken from the cache. The plain ``forward`` is the reference it is tested against
(``tests/model/test_generation.py``); ``cursor.py`` drives it.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..config import MemformerConfig
from .attention import CrossAttention, Rotary, SelfAttention


@dataclasses.dataclass
class LayerCache:
    """One layer's cached keys and values: self-attention (filled position by position, at most
    one segment long) and cross-attention (the context's, computed once per segment)."""

    self_k_BHUK: torch.Tensor
    self_v_BHUK: torch.Tensor
    cross_k_BHUK: torch.Tensor
    cross_v_BHUK: torch.Tensor


class CachedDecoderLayer(nn.Module):
    """The cached form of ``decoder.DecoderLayer.forward``, which defines the submodules below."""

    self_norm: nn.LayerNorm
    self_attention: SelfAttention
    cross_norm: nn.LayerNorm
    cross_attention: CrossAttention
    ffn_norm: nn.LayerNorm
    ffn: nn.Module
    dropout: nn.Dropout
    context_offset: int

    def context_rotary(self, rotary: Rotary) -> Rotary | None:
        raise NotImplementedError

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


class CachedDecoder(nn.Module):
    """The cached form of ``decoder.Decoder.forward``, which defines the layers and final norm."""

    config: MemformerConfig
    layers: nn.ModuleList
    final_norm: nn.LayerNorm

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

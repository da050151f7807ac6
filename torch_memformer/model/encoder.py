"""The encoder (spec 1): bidirectional self-attention over the segment, then a read of the memory
in every layer, then the FFN, as pre-LayerNorm residual blocks.

Shape legend: B batch, T tokens, S slots, D d_model.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import MemformerConfig
from .attention import CrossAttention, Rotary, SelfAttention
from .blocks import FeedForward


class EncoderLayer(nn.Module):
    def __init__(self, config: MemformerConfig) -> None:
        super().__init__()
        d, eps = config.d_model, config.layer_norm_eps
        self.self_norm = nn.LayerNorm(d, eps=eps)
        self.self_attention = SelfAttention(d, config.num_heads, config.dropout, config.attention_impl)
        self.reads_memory = config.use_memory
        if self.reads_memory:
            self.read_norm = nn.LayerNorm(d, eps=eps)
            # Decision 3: the unit-norm slots are LayerNormed before their key/value projections,
            # or they would be tiny next to the token states.
            self.slot_norm = nn.LayerNorm(d, eps=eps)
            self.memory_read = CrossAttention(d, config.num_heads, config.dropout, config.attention_impl)
            # Decision 17: a learned key/value source after the slots, never written, so a read
            # that wants nothing from memory has somewhere to go. Not LayerNormed: its scale is
            # learned directly (small at the start, so its key and value begin near the
            # projections' biases, zero at initialisation).
            self.null_slot = nn.Parameter(torch.randn(d) * config.initial_std) if config.read_null_slot else None
            # Decision 18: a learned offset on the null slot's logit, one per head, started at
            # read_null_logit_init (-4: e^-4 of one slot's weight), so that the read begins close
            # to the paper's and the null slot draws attention only where training finds a use.
            use_offset = config.read_null_slot and config.read_null_logit_init is not None
            self.null_logit_H = (nn.Parameter(torch.full((config.num_heads,), float(config.read_null_logit_init)))
                                 if use_offset else None)
        self.ffn_norm = nn.LayerNorm(d, eps=eps)
        self.ffn = FeedForward(d, config.d_ff, config.dropout)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, h_BTD: torch.Tensor, memory_BSD: torch.Tensor | None, rotary: Rotary) -> torch.Tensor:
        # h = h + SelfAttn(LN(h)), bidirectional over the segment (spec 1).
        h_BTD = h_BTD + self.dropout(self.self_attention(self.self_norm(h_BTD), rotary, causal=False))
        if self.reads_memory:
            # Memory read (spec 1.1): tokens are the queries, slots the keys and values.
            read_BTD = self.memory_read(self.read_norm(h_BTD), self.read_source(memory_BSD),
                                        logit_bias=self.read_logit_bias(memory_BSD.size(1)))
            h_BTD = h_BTD + self.dropout(read_BTD)
        return h_BTD + self.ffn(self.ffn_norm(h_BTD))  # h = h + FFN(LN(h))

    def read_source(self, memory_BSD: torch.Tensor) -> torch.Tensor:
        """What the memory read attends to: the LayerNormed slots, then the null slot if any."""
        source_BSD = self.slot_norm(memory_BSD)
        if self.null_slot is None:
            return source_BSD
        null_B1D = self.null_slot.to(source_BSD.dtype).expand(source_BSD.size(0), 1, -1)
        return torch.cat([source_BSD, null_B1D], dim=1)

    def read_logit_bias(self, num_slots: int) -> torch.Tensor | None:
        """What the memory read adds to its logits, shaped (1, H, 1, S + 1): zero for the slots,
        the learned offset for the null slot; None without an offset."""
        if self.null_logit_H is None:
            return None
        zeros_HS = self.null_logit_H.new_zeros(self.null_logit_H.size(0), num_slots)
        return torch.cat([zeros_HS, self.null_logit_H[:, None]], dim=1)[None, :, None, :]


class Encoder(nn.Module):
    """N_e encoder layers and a final LayerNorm; returns H_t, the states the decoder of the next
    segment attends to and the writer reads (decision 4: after the final LayerNorm)."""

    def __init__(self, config: MemformerConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.num_encoder_layers))
        self.final_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)

    def forward(self, x_BTD: torch.Tensor, memory_BSD: torch.Tensor | None, rotary: Rotary) -> torch.Tensor:
        for layer in self.layers:
            x_BTD = layer(x_BTD, memory_BSD, rotary)
        return self.final_norm(x_BTD)

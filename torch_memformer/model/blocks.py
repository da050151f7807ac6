"""Pieces shared by the encoder and the decoder layers."""

from __future__ import annotations

from torch import nn


class FeedForward(nn.Module):
    """Position-wise FFN: Linear, GELU, Linear (the block's third sub-layer)."""

    def __init__(self, d_model: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.up = nn.Linear(d_model, d_ff)
        self.activation = nn.GELU()
        self.down = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.down(self.activation(self.up(x))))

"""A plain decoder-only Transformer LM with rotary positions and a sliding context window.

Shape legend: B batch, N layers, H heads, T tokens in a chunk, C cached positions, U = C + T
keys, K head dim, D d_model.

The span: the query at stream position t attends to positions max(0, t - W + 1) .. t, itself
and the W - 1 tokens before it (W = ``context_len``). The state is a KV cache of the last W - 1
positions of every layer, so its size is fixed. With ``context_len=None`` the window is the
whole stream since its start (or the row's last reset) and the cache grows by one position per
token: a full KV cache, the quadratic baseline of the paper's efficiency plots.

Positions are rotary (RoPE) at the token's stream position, with the angles computed in float64
from the state's ``position`` counter: a score depends only on the distance between query and
key, so the window may slide forever, and the keys are rotated once when cached. Blocks are
pre-LayerNorm with a GELU FFN, the same as our Memformer's decoder minus cross-attention.
"""

from __future__ import annotations

import torch
from torch import nn

from ..model.attention import merge_heads, split_heads
from ..model.blocks import FeedForward
from ..model.checks import check_batch_size
from .config import TransformerConfig
from .state import TransformerState
from .streaming import StreamingLM
from .windowed_attention import window_mask, windowed_attention


def rotary_tables(
    position_BT: torch.Tensor, head_dim: int, base: float, *, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin (B, 1, T, K) of the rotary angles at the given stream positions.

    The same convention as ``model.attention.Rotary`` (halves rotated together), but per-row
    positions without a fixed table, since a stream has no end; float64 keeps large positions exact.
    """
    inv_freq_K2 = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float64, device=position_BT.device) / head_dim))
    angles_BTK2 = position_BT.to(torch.float64).unsqueeze(-1) * inv_freq_K2
    angles_B1TK = torch.cat([angles_BTK2, angles_BTK2], dim=-1).unsqueeze(1)
    return angles_B1TK.cos().to(dtype), angles_B1TK.sin().to(dtype)


def rotate(x_BHTK: torch.Tensor, cos_B1TK: torch.Tensor, sin_B1TK: torch.Tensor) -> torch.Tensor:
    first, second = x_BHTK.chunk(2, dim=-1)
    return x_BHTK * cos_B1TK + torch.cat([-second, first], dim=-1) * sin_B1TK


class TransformerLayer(nn.Module):
    """One pre-LN block: windowed causal self-attention over [KV cache, chunk], then the FFN."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        d, eps = config.d_model, config.layer_norm_eps
        self.num_heads = config.num_heads
        self.impl = config.attention_impl
        self.attention_dropout = config.dropout
        self.attention_norm = nn.LayerNorm(d, eps=eps)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.ffn_norm = nn.LayerNorm(d, eps=eps)
        self.ffn = FeedForward(d, config.d_ff, config.dropout)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        h_BTD: torch.Tensor,
        keys_BHCK: torch.Tensor,
        values_BHCK: torch.Tensor,
        *,
        cos_B1TK: torch.Tensor,
        sin_B1TK: torch.Tensor,
        allowed_B1TU: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The chunk's outputs (B, T, D) and its rotated keys and values (B, H, T, K) to cache."""
        q_BTD, k_BTD, v_BTD = self.qkv(self.attention_norm(h_BTD)).chunk(3, dim=-1)
        q_BHTK = rotate(split_heads(q_BTD, self.num_heads), cos_B1TK, sin_B1TK)
        k_BHTK = rotate(split_heads(k_BTD, self.num_heads), cos_B1TK, sin_B1TK)
        v_BHTK = split_heads(v_BTD, self.num_heads)
        dropout_p = self.attention_dropout if self.training else 0.0
        out_BHTK = windowed_attention(
            q_BHTK,
            torch.cat([keys_BHCK, k_BHTK], dim=2),
            torch.cat([values_BHCK, v_BHTK], dim=2),
            allowed_B1TU=allowed_B1TU,
            dropout_p=dropout_p,
            impl=self.impl,
        )
        h_BTD = h_BTD + self.dropout(self.out(merge_heads(out_BHTK)))
        return h_BTD + self.ffn(self.ffn_norm(h_BTD)), k_BHTK, v_BHTK


class TransformerLM(StreamingLM):
    """A plain decoder-only Transformer LM with the stream contract of Memformer.

    ``forward(input_ids, state=None, labels=None, reset=None)``, ``predict``, ``advance``,
    ``generate`` and ``init_state`` behave as in ``streaming.StreamingLM``; the state is a
    ``TransformerState`` (a KV cache of context_len - 1 positions, or growing if None).
    """

    state_class = TransformerState

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        if not isinstance(config, TransformerConfig):
            raise TypeError(f"TransformerLM needs a TransformerConfig, got {type(config).__name__}")
        self.config = config
        self._build_io()
        self.layers = nn.ModuleList(TransformerLayer(config) for _ in range(config.num_layers))
        self.final_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self._init_weights()

    @property
    def cache_len(self) -> int | None:
        """Positions per layer in the KV cache: context_len - 1, or None when it grows."""
        return None if self.config.context_len is None else self.config.context_len - 1

    def init_state(self, batch_size: int, *, device: torch.device | str | None = None) -> TransformerState:
        """The state of ``batch_size`` fresh streams (an empty cache; zero-length if it grows)."""
        check_batch_size(batch_size)
        param = self.embedding.weight
        device = param.device if device is None else torch.device(device)
        c = self.config
        cache_shape = (batch_size, c.num_layers, c.num_heads, self.cache_len or 0, c.head_dim)
        return TransformerState(
            keys=torch.zeros(cache_shape, dtype=param.dtype, device=device),
            values=torch.zeros(cache_shape, dtype=param.dtype, device=device),
            position=torch.zeros(batch_size, dtype=torch.long, device=device),
            last_hidden=torch.zeros(batch_size, c.d_model, dtype=param.dtype, device=device),
        )

    def _restart_rows(self, state: TransformerState, fresh_B: torch.Tensor) -> TransformerState:
        fresh_B1111 = fresh_B.view(-1, 1, 1, 1, 1)
        keys, values = state.keys.masked_fill(fresh_B1111, 0.0), state.values.masked_fill(fresh_B1111, 0.0)
        position = state.position.masked_fill(fresh_B, 0)
        if self.cache_len is None:
            # A growing cache keeps only what its longest row still needs, so a batch whose rows
            # were all reset shrinks back. Trimming here (a reset already costs a host sync) keeps
            # the per-token step free of one.
            keep = int(position.clamp(max=keys.size(3)).max())
            keys, values = keys.narrow(3, keys.size(3) - keep, keep), values.narrow(3, values.size(3) - keep, keep)
        return TransformerState(
            keys=keys,
            values=values,
            position=position,
            last_hidden=state.last_hidden.masked_fill(fresh_B.view(-1, 1), 0.0),
        )

    def _state_shapes(self, state: TransformerState, batch: int) -> dict[str, tuple[int, ...]]:
        c = self.config
        # A growing cache may hold any number of positions.
        cache_len = state.keys.size(3) if self.cache_len is None and state.keys.dim() == 5 else self.cache_len
        cache_shape = (batch, c.num_layers, c.num_heads, cache_len, c.head_dim)
        return {"keys": cache_shape, "values": cache_shape, "position": (batch,), "last_hidden": (batch, c.d_model)}

    def _read_chunk(self, x_BTD: torch.Tensor, state: TransformerState) -> tuple[torch.Tensor, TransformerState]:
        c, t = state.keys.size(3), x_BTD.size(1)
        # A row's real cache entries are its last min(position, C) (all of them once the window is full).
        valid_B = state.position.clamp(max=c)
        allowed_B1TU = window_mask(valid_B=valid_B, num_cached=c, num_new=t, max_distance=self.cache_len)
        position_BT = state.position.unsqueeze(1) + torch.arange(t, device=x_BTD.device)
        cos_B1TK, sin_B1TK = rotary_tables(position_BT, self.config.head_dim, self.config.rope_base, dtype=x_BTD.dtype)
        h_BTD = x_BTD
        new_keys, new_values = [], []
        for n, layer in enumerate(self.layers):
            h_BTD, k_BHTK, v_BHTK = layer(
                h_BTD,
                state.keys[:, n],
                state.values[:, n],
                cos_B1TK=cos_B1TK,
                sin_B1TK=sin_B1TK,
                allowed_B1TU=allowed_B1TU,
            )
            new_keys.append(k_BHTK)
            new_values.append(v_BHTK)
        keys_BNHUK = torch.cat([state.keys, torch.stack(new_keys, dim=1)], dim=3)
        values_BNHUK = torch.cat([state.values, torch.stack(new_values, dim=1)], dim=3)
        # A bounded cache keeps its fixed size; a growing one keeps every position (it is
        # trimmed when rows reset, see _restart_rows).
        keep = self.cache_len if self.cache_len is not None else c + t
        new_state = TransformerState(
            keys=keys_BNHUK.narrow(3, c + t - keep, keep),
            values=values_BNHUK.narrow(3, c + t - keep, keep),
            position=state.position + t,
            last_hidden=state.last_hidden,
        )
        return self.final_norm(h_BTD), new_state

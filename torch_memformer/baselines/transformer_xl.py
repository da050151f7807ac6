"""Transformer-XL (Dai et al. 2019): a decoder-only LM whose layers read a cache of earlier states.

Shape legend: B batch, N layers, T tokens in a chunk, M mem_len, U = M + T keys, D d_model.

Mapping to the paper (``docs/baselines.md`` has the full table):
    - segment-level recurrence (section 3.2): layer n of a chunk reads [SG(m^{n-1}), h^{n-1}],
      its own input at the M cached positions followed by the chunk; m^{n-1} is the state's
      ``memory[:, n]``; SG is ``detach`` (``config.detach_memory``).
    - relative positional encoding (section 3.3): ``relative_attention.py`` (sinusoidal R, W_kR,
      the u and v biases, the relative shift of appendix B beside a written-out reference).
    - blocks are pre-LayerNorm with a GELU FFN (the paper's code defaults to post-LN with ReLU):
      the same blocks as our Memformer, so a comparison isolates the memory.

The span (the one definition that makes streaming in any pieces equal one call): the query at
stream position t attends to positions t - M .. t, itself and the M positions before it, whether
they are cached or earlier in the same chunk. In the paper the i-th query of a segment of L
tokens sees M + i + 1 positions (the M-long memory plus the segment up to itself), which depends
on where segments start; here every query sees M + 1 (fewer than the paper's i > 0 queries), and
the cache always holds exactly the last M positions of every layer's input, so its size never
grows. As in the paper the receptive field still spans N x M positions through the layers.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..model.blocks import FeedForward
from ..model.checks import check_batch_size
from .config import TransformerXLConfig
from .relative_attention import RelativeSelfAttention, sinusoid_table
from .state import TransformerXLState
from .streaming import StreamingLM
from .windowed_attention import window_mask


class TransformerXLLayer(nn.Module):
    """One pre-LN block: relative self-attention over [cache, chunk], then the FFN."""

    def __init__(self, config: TransformerXLConfig) -> None:
        super().__init__()
        d, eps = config.d_model, config.layer_norm_eps
        self.attention_norm = nn.LayerNorm(d, eps=eps)
        self.attention = RelativeSelfAttention(d, config.num_heads, config.dropout, config.attention_impl)
        self.ffn_norm = nn.LayerNorm(d, eps=eps)
        self.ffn = FeedForward(d, config.d_ff, config.dropout)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self, h_BTD: torch.Tensor, memory_BMD: torch.Tensor, *, r_UD: torch.Tensor, allowed_B1TU: torch.Tensor
    ) -> torch.Tensor:
        # The cached states go through the same LayerNorm as the chunk: they are this layer's
        # inputs at earlier positions (the paper's h~ = [SG(m), h]).
        x_BUD = self.attention_norm(torch.cat([memory_BMD, h_BTD], dim=1))
        attended_BTD = self.attention(x_BUD, num_new=h_BTD.size(1), r_UD=r_UD, allowed_B1TU=allowed_B1TU)
        return self._finish(h_BTD, attended_BTD)

    def step(
        self,
        h_BTD: torch.Tensor,
        cached_k_BHMK: torch.Tensor,
        cached_v_BHMK: torch.Tensor,
        *,
        r_by_distance_HUK: torch.Tensor,
        allowed_B1TU: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``forward`` with the cached positions' keys and values already projected (decoding).

        Returns the outputs and the keys and values of [cache, new positions] (B, H, M + T, K).
        """
        x_BTD = self.attention_norm(h_BTD)
        new_k_BHTK, new_v_BHTK = self.attention.project_keys(x_BTD)
        k_BHUK = torch.cat([cached_k_BHMK, new_k_BHTK], dim=2)
        v_BHUK = torch.cat([cached_v_BHMK, new_v_BHTK], dim=2)
        attended_BTD = self.attention.attend(x_BTD, k_BHUK, v_BHUK, r_by_distance_HUK, allowed_B1TU)
        return self._finish(h_BTD, attended_BTD), k_BHUK, v_BHUK

    def _finish(self, h_BTD: torch.Tensor, attended_BTD: torch.Tensor) -> torch.Tensor:
        h_BTD = h_BTD + self.dropout(attended_BTD)
        return h_BTD + self.ffn(self.ffn_norm(h_BTD))


class TransformerXL(StreamingLM):
    """A Transformer-XL language model with the stream contract of Memformer.

    ``forward(input_ids, state=None, labels=None, reset=None)``, ``predict``, ``advance``,
    ``generate`` and ``init_state`` behave as in ``streaming.StreamingLM``; the state is a
    ``TransformerXLState`` of fixed size (num_layers x mem_len x d_model per row).
    """

    state_class = TransformerXLState

    def __init__(self, config: TransformerXLConfig) -> None:
        super().__init__()
        if not isinstance(config, TransformerXLConfig):
            raise TypeError(f"TransformerXL needs a TransformerXLConfig, got {type(config).__name__}")
        self.config = config
        self._build_io()
        self.layers = nn.ModuleList(TransformerXLLayer(config) for _ in range(config.num_layers))
        self.final_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self._init_weights()

    def init_state(self, batch_size: int, *, device: torch.device | str | None = None) -> TransformerXLState:
        """The state of ``batch_size`` fresh streams: an empty cache (length 0) of fixed size."""
        check_batch_size(batch_size)
        param = self.embedding.weight
        device = param.device if device is None else torch.device(device)
        c = self.config
        return TransformerXLState(
            memory=torch.zeros(batch_size, c.num_layers, c.mem_len, c.d_model, dtype=param.dtype, device=device),
            length=torch.zeros(batch_size, dtype=torch.long, device=device),
            last_hidden=torch.zeros(batch_size, c.d_model, dtype=param.dtype, device=device),
        )

    def _restart_rows(self, state: TransformerXLState, fresh_B: torch.Tensor) -> TransformerXLState:
        return TransformerXLState(
            memory=state.memory.masked_fill(fresh_B.view(-1, 1, 1, 1), 0.0),
            length=state.length.masked_fill(fresh_B, 0),
            last_hidden=state.last_hidden.masked_fill(fresh_B.view(-1, 1), 0.0),
        )

    def _state_shapes(self, state: TransformerXLState, batch: int) -> dict[str, tuple[int, ...]]:
        c = self.config
        return {
            "memory": (batch, c.num_layers, c.mem_len, c.d_model),
            "length": (batch,),
            "last_hidden": (batch, c.d_model),
        }

    def _read_chunk(self, x_BTD: torch.Tensor, state: TransformerXLState) -> tuple[torch.Tensor, TransformerXLState]:
        m, t = self.config.mem_len, x_BTD.size(1)
        allowed_B1TU = window_mask(valid_B=state.length, num_cached=m, num_new=t, max_distance=m)
        r_UD = sinusoid_table(m + t, self.config.d_model, dtype=x_BTD.dtype, device=x_BTD.device)
        detach = self.config.detach_memory
        memory_BNMD = state.memory.detach() if detach else state.memory
        h_BTD = x_BTD
        new_memory = []
        for n, layer in enumerate(self.layers):
            memory_BMD = memory_BNMD[:, n]
            # The cache after this chunk: the last M positions of this layer's input; SG() as in
            # the paper, so no gradient ever flows into an earlier chunk through it.
            extended_BUD = torch.cat([memory_BMD, h_BTD.detach() if detach else h_BTD], dim=1)
            new_memory.append(extended_BUD[:, t:])
            h_BTD = layer(h_BTD, memory_BMD, r_UD=r_UD, allowed_B1TU=allowed_B1TU)
        new_state = TransformerXLState(
            memory=torch.stack(new_memory, dim=1),
            length=(state.length + t).clamp(max=m),
            last_hidden=state.last_hidden,
        )
        return self.final_norm(h_BTD), new_state

    # ------------------------------------------------------------------ cached decoding

    def _start_decoding(self, state: TransformerXLState) -> "DecodingCursor":
        return DecodingCursor.start(self, state)


@dataclasses.dataclass
class DecodingCursor:
    """What Transformer-XL's generation carries from token to token: the state, plus each
    layer's projected keys and values of its cached positions and W_kR R for distances 0 .. M
    (a step then projects one position instead of M + 1). A mutable working object of one
    ``generate`` call (the ``Cursor`` of ``model/stream_lm.py``); its tensors are never written
    in place, each step replaces them.

    memory: (B, N, M, D), length: (B,), last_hidden: (B, D) as in ``TransformerXLState``;
    keys, values: one (B, H, M, K) per layer; r_by_distance: one (H, M + 1, K) per layer.
    """

    memory: torch.Tensor
    length: torch.Tensor
    last_hidden: torch.Tensor
    keys: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]
    r_by_distance: tuple[torch.Tensor, ...]

    @classmethod
    def start(cls, model: TransformerXL, state: TransformerXLState) -> "DecodingCursor":
        """A cursor at the end of ``state``: every layer's cached positions projected once."""
        m = model.config.mem_len
        r_UD = sinusoid_table(m + 1, model.config.d_model, dtype=state.memory.dtype, device=state.memory.device)
        keys, values, r_by_distance = [], [], []
        for n, layer in enumerate(model.layers):
            k_BHMK, v_BHMK = layer.attention.project_keys(layer.attention_norm(state.memory[:, n]))
            keys.append(k_BHMK)
            values.append(v_BHMK)
            r_by_distance.append(layer.attention.project_positions(r_UD))
        return cls(
            memory=state.memory,
            length=state.length,
            last_hidden=state.last_hidden,
            keys=tuple(keys),
            values=tuple(values),
            r_by_distance=tuple(r_by_distance),
        )

    def logits(self, model: TransformerXL) -> torch.Tensor:
        """(B, V) the distribution of the next token."""
        return model.logits_from_hidden(self.last_hidden)

    def push(self, model: TransformerXL, token_B: torch.Tensor) -> None:
        """One token per row: the computation of ``_read_chunk`` for T = 1, from the cached keys."""
        m = model.config.mem_len
        allowed_B11U = window_mask(valid_B=self.length, num_cached=m, num_new=1, max_distance=m)
        h_B1D = model.embedding_dropout(model.embedding(token_B.unsqueeze(1)))
        memory, keys, values = [], [], []
        for n, layer in enumerate(model.layers):
            # The cache slides by one: drop the oldest position, keep the newest M.
            memory.append(torch.cat([self.memory[:, n], h_B1D], dim=1)[:, 1:])
            h_B1D, k_BHUK, v_BHUK = layer.step(
                h_B1D,
                self.keys[n],
                self.values[n],
                r_by_distance_HUK=self.r_by_distance[n],
                allowed_B1TU=allowed_B11U,
            )
            keys.append(k_BHUK[:, :, 1:])
            values.append(v_BHUK[:, :, 1:])
        self.memory = torch.stack(memory, dim=1)
        self.length = (self.length + 1).clamp(max=m)
        self.last_hidden = model.final_norm(h_B1D)[:, -1]
        self.keys, self.values = tuple(keys), tuple(values)

    def state(self) -> TransformerXLState:
        """The immutable state after every token pushed."""
        return TransformerXLState(memory=self.memory, length=self.length, last_hidden=self.last_hidden)

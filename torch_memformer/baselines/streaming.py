"""What the decoder-only baselines share: reading a call chunk by chunk, and ``predict``'s first column.

Shape legend: B batch, N tokens in a call, T tokens in a chunk, D d_model, V vocabulary.

The public views (``forward``, ``predict``, ``advance``, ``generate``) and their input checks are
the stream contract's (``model/stream_lm.py``), the same as Memformer's. A subclass provides the
state (``init_state``, ``_restart_rows``, ``_state_shapes``, ``state_class``) and one chunk of
computation (``_read_chunk``: embedded tokens and a state in, final hidden states and the next
state out); this class turns that into the contract's ``_read``:

    predict's column 0 comes from ``state.last_hidden``, the final hidden state of the stream's
    previous token, so predict(x)[:, 1:] equals forward(x).logits[:, :-1] and predict(x)[:, 0]
    equals the previous call's forward logits[:, -1]. For a fresh (or reset) row ``last_hidden``
    is zero and column 0 is all-zero logits (uniform): the first token of a stream is never
    predicted, as in Memformer (spec decision 6), and must not be scored.

A call is read in chunks of ``config.segment_len`` tokens. For a decoder-only model a chunk only
bounds the cost of one attention (and, in Transformer-XL, where the cache's stop-gradient cuts
the graph); it never changes a value.

Generation steps one token at a time through a cursor: by default ``StateCursor``, which steps
the state itself with ``read_hidden``; a model whose state is not the cheapest thing to step from
(Transformer-XL keeps hidden states, a step wants their projected keys) returns its own.
``tests/baselines/test_baselines_stream.py`` checks greedy decoding against argmax of the full forward over
the generated text, and the final states against each other.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config_base import initial_std
from ..model.stream_lm import StreamLM, View
from .state import StreamState


@dataclasses.dataclass
class StateCursor:
    """Generation's cursor for a model whose state is all a step needs (the plain Transformer)."""

    current: StreamState

    def logits(self, model: "StreamingLM") -> torch.Tensor:
        return model.logits_from_hidden(self.current.last_hidden)

    def push(self, model: "StreamingLM", token_B: torch.Tensor) -> None:
        _, self.current = model.read_hidden(token_B.unsqueeze(1), self.current)

    def state(self) -> StreamState:
        return self.current


class StreamingLM(StreamLM):
    """Base of the decoder-only baselines: the stream contract around ``_read_chunk``.

    Subclasses set ``self.config`` (with vocab_size, d_model, segment_len, dropout,
    tie_embeddings, init_std, num_layers), call ``_build_io()`` and finally ``_init_weights()``.
    """

    # ------------------------------------------------------------------ for subclasses

    def _read_chunk(self, x_BTD: torch.Tensor, state: StreamState) -> tuple[torch.Tensor, StreamState]:
        """Final hidden states (B, T, D) of embedded tokens x and the state after them
        (``last_hidden`` is set by the caller)."""
        raise NotImplementedError

    def _start_decoding(self, state: StreamState) -> Any:
        return StateCursor(state)

    def _build_io(self) -> None:
        config = self.config
        self.embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.embedding_dropout = nn.Dropout(config.dropout)
        if not config.tie_embeddings:
            self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)

    # ------------------------------------------------------------------ the step

    def logits_from_hidden(self, hidden_BTD: torch.Tensor) -> torch.Tensor:
        """The output head (no bias, so a zero hidden state gives all-zero logits)."""
        if self.config.tie_embeddings:
            return F.linear(hidden_BTD, self.embedding.weight)
        return self.lm_head(hidden_BTD)

    def read_hidden(self, input_ids_BN: torch.Tensor, state: StreamState) -> tuple[torch.Tensor, StreamState]:
        """Final hidden states (B, N, D) of checked token ids and the state after them, read chunk
        by chunk; the state's ``last_hidden`` becomes the last token's. No checks, no restarts:
        the stream step behind every view (the public views check their inputs first)."""
        hidden_parts = []
        for ids_BT in input_ids_BN.split(self.config.segment_len, dim=1):
            x_BTD = self.embedding_dropout(self.embedding(ids_BT))
            hidden_BTD, state = self._read_chunk(x_BTD, state)
            hidden_parts.append(hidden_BTD)
        hidden_BND = torch.cat(hidden_parts, dim=1)
        return hidden_BND, state.replace(last_hidden=hidden_BND[:, -1])

    # ------------------------------------------------------------------ internals

    def _read(self, input_ids_BN: torch.Tensor, state: StreamState, view: View) -> tuple[torch.Tensor | None, Any]:
        if view == "predict":
            # Column 0 is the previous token's prediction; the last token is not read.
            hidden_BND = state.last_hidden.unsqueeze(1)
            if input_ids_BN.size(1) > 1:
                hidden_BTD, _ = self.read_hidden(input_ids_BN[:, :-1], state)
                hidden_BND = torch.cat([hidden_BND, hidden_BTD], dim=1)
            return self.logits_from_hidden(hidden_BND), None
        hidden_BND, state = self.read_hidden(input_ids_BN, state)
        return (None if view == "advance" else self.logits_from_hidden(hidden_BND)), state

    def _init_weights(self) -> None:
        """As Memformer (decision 20): N(0, std) weights and embeddings with std = ``init_std`` or
        d_model ** -0.5, zero biases, residual outputs scaled by depth; every other parameter
        (Transformer-XL's u and v) N(0, std)."""
        std = initial_std(self.config)
        residual_std = std / (2 * self.config.num_layers) ** 0.5
        initialised = set()
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                is_residual_out = name.endswith((".out", ".down"))
                nn.init.normal_(module.weight, std=residual_std if is_residual_out else std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=std)
            elif isinstance(module, nn.LayerNorm):
                # LayerNorm keeps its own init (weight 1, bias 0).
                pass
            else:
                continue
            initialised.update(id(p) for p in module.parameters(recurse=False))
        for parameter in self.parameters():
            if id(parameter) not in initialised:
                nn.init.normal_(parameter, std=std)

"""Memformer: encoder + memory writer + forgetting + decoder, and the stream over segments.

Shape legend: B batch, N tokens in a call, T tokens in a segment (<= L), L segment length,
S slots, D d_model, V vocabulary.

How a stream maps onto the spec's segments (spec 1, decisions 6 and 7). The stream is cut into
segments of L tokens, s_0, s_1, ... For segment s_t:
    H_t, M_{t+1} = Encode(s_t, M_t), Write(M_t, H_t)           (the "critical path")
    the distribution of each token of s_{t+1} = Decoder([BOS, s_{t+1}[:-1]], context=H_t)
Before s_0 the context is the encoding of a lone BOS token with the initial memory M_0.

The public views (``forward``, ``predict``, ``advance``, ``generate``) and their input checks are
the stream contract's (``stream_lm.py``); this file holds what is Memformer's own: the state, the
walk over segments (``_walk``), and the step pieces the engines and the cursor call. For
``advance`` the walk computes only the critical path (encoder and writer, no decoder): what MRBP's
no-grad replay pass and generation's prompt use.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import MemformerConfig
from .attention import Rotary
from .checks import check_batch_size, check_embeds
from .cursor import DecodingCursor
from .decoder import Decoder
from .encoder import Encoder
from .loss import shifted_cross_entropy
from .memory import BiasedMemoryNormalization, MemoryWriter
from .state import MemformerState
from .stream_lm import StreamLM, StreamOutput, View

# The public name of ``forward``'s result; the class is the stream contract's, shared with the baselines.
MemformerOutput = StreamOutput

# How far ahead of each token a view predicts (see ``_walk``): None = no prediction.
_OFFSETS: dict[str, int | None] = {"forward": 1, "predict": 0, "advance": None}


class Memformer(StreamLM):
    """A Memformer language model. See the module docstring for the stream layout.

    One model serves any number of streams: nothing of a stream is stored on the module, the
    caller passes the state in and gets the next one back. ``reset`` (B,) in a call starts those
    rows as fresh streams: their memory returns to M_0, their decoder context to the BOS
    encoding, and the tokens of a segment they were in the middle of are dropped, so
    input_ids[row, 0] is position 0 of a new segment (decision 7).
    """

    state_class = MemformerState

    def __init__(self, config: MemformerConfig) -> None:
        super().__init__()
        if not isinstance(config, MemformerConfig):
            raise TypeError(f"Memformer needs a MemformerConfig, got {type(config).__name__}")
        self.config = config
        d = config.d_model
        # One table for encoder and decoder inputs; the extra last row is the decoder's BOS.
        self.embedding = nn.Embedding(config.vocab_size + 1, d)
        # Two segments of positions when the decoder's cross-attention is rotated (decision 1).
        positions = config.segment_len * (2 if config.context_positions == "rotary" else 1)
        self.rotary = Rotary(config.head_dim, positions, config.rope_base)
        self.encoder = Encoder(config)
        if config.use_memory:
            write_heads = config.num_heads if config.write_heads == "multi" else 1
            self.writer = MemoryWriter(
                d, write_heads, config.write_temperature, config.attention_impl, config.layer_norm_eps,
                keep_init=config.write_keep_init, segment_len=config.segment_len,
            )
            self.memory_norm = BiasedMemoryNormalization(
                config.num_slots, d, forgetting=config.forgetting, init_norm=config.forgetting_init_norm,
                form=config.forgetting_form,
            )
        self.decoder = Decoder(config)
        if not config.tie_embeddings:
            self.lm_head = nn.Linear(d, config.vocab_size, bias=False)
        self._init_weights()

    # ------------------------------------------------------------------ public API

    @property
    def num_slots(self) -> int:
        """Memory slots in the state (0 for the no-memory ablation)."""
        return self.config.num_slots if self.config.use_memory else 0

    def init_state(self, batch_size: int, *, device: torch.device | str | None = None) -> MemformerState:
        """The state of ``batch_size`` fresh streams. Its size is fixed by the config."""
        check_batch_size(batch_size)
        param = self.embedding.weight
        device = param.device if device is None else torch.device(device)
        length, d = self.config.segment_len, self.config.d_model
        with torch.no_grad():
            memory_SD = self.initial_memory().to(device)
        return MemformerState(
            memory=memory_SD.expand(batch_size, -1, -1).clone(),
            context=torch.zeros(batch_size, length, d, dtype=param.dtype, device=device),
            tokens=torch.zeros(batch_size, length, dtype=torch.long, device=device),
            position=torch.zeros(batch_size, dtype=torch.long, device=device),
            started=torch.zeros(batch_size, dtype=torch.bool, device=device),
        )

    def forward_embeds(
        self,
        inputs_embeds: torch.Tensor,
        *,
        state: MemformerState | None = None,
        labels: torch.Tensor | None = None,
        reset: torch.Tensor | None = None,
    ) -> StreamOutput:
        """``forward`` over already-embedded inputs (B, N, D) instead of token ids.

        The vectors replace ``embedding(input_ids)`` wherever the tokens enter: the encoder of each
        segment and the decoder's inputs [BOS, s_{t+1}[:-1]] (the BOS vector stays the model's), so
        ``forward_embeds(embedding(ids))`` equals ``forward(ids)``. ``labels`` and ``reset`` are
        ``forward``'s. The state keeps the current segment's token *ids* (to encode the segment
        when it ends), which vectors do not give: the returned state is None unless the call ends
        at a segment boundary. All rows must sit at one position inside their segment.
        """
        embeds_BND = check_embeds(inputs_embeds, self.config.d_model)
        state = self._begin(embeds_BND, state, reset)
        if bool((state.position != state.position[0]).any()):
            raise ValueError("forward_embeds needs every row at the same position inside its segment; "
                             "read rows that were reset mid-segment separately")
        logits_BNV, state = self._walk(embeds_BND, state, offset=1, want_state=True)
        loss = None
        if labels is not None:
            if not isinstance(labels, torch.Tensor) or labels.shape != embeds_BND.shape[:2]:
                got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
                raise ValueError(f"labels must have shape {tuple(embeds_BND.shape[:2])} (batch, tokens), got {got}")
            loss = shifted_cross_entropy(logits_BNV, labels.long())
        return StreamOutput(logits=logits_BNV, state=state, loss=loss)

    def initial_memory(self) -> torch.Tensor:
        """M_0 = v / ||v|| (decision 5 / spec 1.3): (S, D), a function of the parameters."""
        if not self.config.use_memory:
            return self.embedding.weight.new_zeros(0, self.config.d_model)
        return self.memory_norm.initial_memory()

    # ------------------------------------------------------------------ the step, for engines

    def encode_and_write(
        self, tokens_BT: torch.Tensor, memory_BSD: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The critical path for one segment: H_t (B, T, D) and M_{t+1} (B, S, D)."""
        h_BTD = self.encode(tokens_BT, memory_BSD)
        if self.config.use_memory:
            memory_BSD = self.memory_norm(self.writer(memory_BSD, h_BTD))
        return h_BTD, memory_BSD

    def encode(self, tokens_BT: torch.Tensor, memory_BSD: torch.Tensor) -> torch.Tensor:
        """Encoder states H (B, T, D) of a segment read with memory M (no write). ``tokens_BT``
        is token ids (B, T) or their embeddings (B, T, D) (``forward_embeds``)."""
        memory_BSD = memory_BSD if self.config.use_memory else None
        return self.encoder(self._embed(tokens_BT), memory_BSD, self.rotary)

    def decode(self, prefix_BT: torch.Tensor, context_BUD: torch.Tensor) -> torch.Tensor:
        """Decoder hidden states (B, T + 1, D) for inputs [BOS, prefix]: output i predicts
        prefix[:, i] (and output T the token after the prefix). ``prefix_BT`` is token ids
        (B, T) or their embeddings (B, T, D)."""
        bos_B1 = torch.full((prefix_BT.size(0), 1), self.config.bos_token_id, device=prefix_BT.device)
        if prefix_BT.dim() == 3:
            inputs_BTD = torch.cat([self.embedding(bos_B1).to(prefix_BT.dtype), prefix_BT], dim=1)
        else:
            inputs_BTD = self.embedding(torch.cat([bos_B1, prefix_BT], dim=1))
        return self.decoder(inputs_BTD, context_BUD, self.rotary)

    def logits_from_hidden(self, hidden_BTD: torch.Tensor) -> torch.Tensor:
        if self.config.tie_embeddings:
            return F.linear(hidden_BTD, self.embedding.weight[: self.config.vocab_size])
        return self.lm_head(hidden_BTD)

    # ------------------------------------------------------------------ internals

    def _embed(self, tokens_BT: torch.Tensor) -> torch.Tensor:
        """(B, T, D) vectors of ids (B, T); embeddings (B, T, D) pass through (``forward_embeds``)."""
        return tokens_BT if tokens_BT.dim() == 3 else self.embedding(tokens_BT)

    def _state_shapes(self, state: MemformerState, batch: int) -> dict[str, tuple[int, ...]]:
        length, d = self.config.segment_len, self.config.d_model
        return {
            "memory": (batch, self.num_slots, d),
            "context": (batch, length, d),
            "tokens": (batch, length),
            "position": (batch,),
            "started": (batch,),
        }

    def _unstarted_rows(self, state: MemformerState) -> torch.Tensor:
        # A fresh row's memory and context are computed from the parameters at its first call.
        return ~state.started

    def _row_group_key(self, state: MemformerState) -> torch.Tensor:
        # One walk serves rows at one in-segment position; rows differ only after a reset in the
        # middle of a segment (decision 7).
        return state.position

    def _start_decoding(self, state: MemformerState) -> DecodingCursor:
        return DecodingCursor.start(state)

    def _restart_rows(self, state: MemformerState, fresh_B: torch.Tensor) -> MemformerState:
        """Rows in ``fresh_B`` become fresh streams: memory M_0, context the BOS encoding (decision 6).

        Both are computed here from the parameters, so they receive gradients and never go stale.
        """
        memory_SD = self.initial_memory()
        bos_11 = torch.full((1, 1), self.config.bos_token_id, dtype=torch.long, device=memory_SD.device)
        bos_context_11D = self.encode(bos_11, memory_SD.unsqueeze(0))
        context_LD = bos_context_11D[0].expand(self.config.segment_len, -1)
        fresh_B11 = fresh_B.view(-1, 1, 1)
        return MemformerState(
            memory=torch.where(fresh_B11, memory_SD.to(state.memory.dtype), state.memory),
            context=torch.where(fresh_B11, context_LD.to(state.context.dtype), state.context),
            tokens=state.tokens.masked_fill(fresh_B.view(-1, 1), 0),
            position=state.position.masked_fill(fresh_B, 0),
            started=torch.ones_like(state.started),
        )

    def _read(
        self, input_ids_BN: torch.Tensor, state: MemformerState, view: View
    ) -> tuple[torch.Tensor | None, MemformerState | None]:
        return self._walk(input_ids_BN, state, offset=_OFFSETS[view], want_state=view != "predict")

    def _walk(
        self, input_ids_BN: torch.Tensor, state: MemformerState, *, offset: int | None, want_state: bool
    ) -> tuple[torch.Tensor | None, MemformerState | None]:
        """Walk the segments that the call touches, for rows that share one in-segment position p.

        Positions below are relative to the start of the current segment: tokens 0 .. p - 1 are
        in the state, the call brings p .. p + N - 1. ``offset`` 1 predicts positions
        p + 1 .. p + N (forward), 0 predicts p .. p + N - 1 (predict), None predicts nothing
        (advance). A segment is encoded when it completes and its result is needed (by a later
        prediction in the call, or for the returned state). ``input_ids_BN`` may also be
        embeddings (B, N, D) (``forward_embeds``): the segment's earlier tokens, kept as ids in the
        state, are embedded to join them, and the returned state is None when the call ends inside
        a segment (the state cannot keep vectors).
        """
        length = self.config.segment_len
        p, n = int(state.position[0]), input_ids_BN.size(1)
        memory_BSD, context_BLD = state.memory, state.context
        known_end = p + n
        last_segment = (known_end - 1) // length
        if offset is not None:
            first_pred, last_pred = p + offset, p + n - 1 + offset
            last_segment = max(last_segment, last_pred // length)
        hidden_parts = []
        embedded = input_ids_BN.dim() == 3
        segment_BT = self.embedding(state.tokens[:, :p]).to(input_ids_BN.dtype) if embedded else state.tokens[:, :p]
        consumed = 0
        for s in range(last_segment + 1):
            start = s * length
            take = max(0, min(start + length, known_end) - max(start, p))
            new_BT = input_ids_BN[:, consumed : consumed + take]
            consumed += take
            segment_BT = torch.cat([segment_BT, new_BT], dim=1) if s == 0 else new_BT
            if offset is not None:
                lo, hi = max(first_pred - start, 0), min(last_pred - start, length - 1)
                if lo <= hi:
                    # Decoder inputs [BOS, tokens 0 .. hi - 1]; outputs lo .. hi are the ones asked for.
                    hidden_parts.append(self.decode(segment_BT[:, :hi], context_BLD)[:, lo : hi + 1])
            if segment_BT.size(1) == length and (want_state or s < last_segment):
                context_BLD, memory_BSD = self.encode_and_write(segment_BT, memory_BSD)
                segment_BT = input_ids_BN[:, :0]
        logits = None if offset is None else self.logits_from_hidden(torch.cat(hidden_parts, dim=1))
        position = segment_BT.size(1)
        if not want_state or (embedded and position > 0):
            return logits, None
        if embedded:
            segment_BT = state.tokens[:, :0]
        new_state = MemformerState(
            memory=memory_BSD,
            context=context_BLD,
            tokens=F.pad(segment_BT, (0, length - position)),
            position=torch.full_like(state.position, position),
            started=state.started,
        )
        return logits, new_state

    def _init_weights(self) -> None:
        """GPT-2 style: N(0, init_std) weights, zero biases, residual outputs scaled by depth."""
        std = self.config.init_std
        residual_std = std / (2 * (self.config.num_encoder_layers + self.config.num_decoder_layers)) ** 0.5
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                is_residual_out = name.endswith((".out", ".down"))
                nn.init.normal_(module.weight, std=residual_std if is_residual_out else std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=std)


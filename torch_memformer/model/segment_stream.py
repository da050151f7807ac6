"""Memformer's side of the stream contract: its state, the walk over segments, embedded inputs.

Shape legend: B batch, N tokens in a call, T tokens in a segment (<= L), L segment length,
S slots, D d_model.

``StreamLM`` (``stream_lm.py``) writes the public views and their checks once for every model;
``Memformer`` (``memformer.py``) holds the architecture and its segment step. This class is what
lies between them for a model that reads its stream in segments of L tokens: the hooks the
contract calls (``init_state``, ``_restart_rows``, ``_read``, ...), written with nothing but the
step's public pieces:

    encode(tokens_BT, memory_BSD)             -> H (B, T, D)                  (no write)
    encode_and_write(tokens_BL, memory_BSD)   -> H_t (B, L, D), M_{t+1} (B, S, D)
    decode(prefix_BT, context_BLD)            -> decoder states (B, T + 1, D)
    logits_from_hidden(hidden_BTD)            -> logits (B, T, V)
    initial_memory()                          -> M_0 (S, D)

so a compiled step (``compile_step.py``, which replaces ``encode_and_write`` and ``decode`` on the
instance) is what the walk calls. Nothing here holds a parameter: the state dict is the
architecture's alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .checks import check_batch_size, check_embeds
from .cursor import DecodingCursor
from .loss import shifted_cross_entropy
from .state import MemformerState
from .stream_lm import StreamLM, StreamOutput, View

# How far ahead of each token a view predicts (see ``_walk``): None = no prediction.
_OFFSETS: dict[str, int | None] = {"forward": 1, "predict": 0, "advance": None}


class SegmentStream(StreamLM):
    """The stream hooks of a Memformer (its subclass): see the module docstring.

    ``reset`` (B,) in a call starts those rows as fresh streams: their memory returns to M_0, their
    decoder context to the BOS encoding, and the tokens of a segment they were in the middle of are
    dropped, so input_ids[row, 0] is position 0 of a new segment (decision 7).
    """

    state_class = MemformerState
    # The architecture's, given by the subclass (``memformer.py``).
    embedding: torch.nn.Embedding
    num_slots: int

    def encode(self, tokens_BT: torch.Tensor, memory_BSD: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode_and_write(self, tokens_BT: torch.Tensor, memory_BSD: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def decode(self, prefix_BT: torch.Tensor, context_BUD: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def logits_from_hidden(self, hidden_BTD: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def initial_memory(self) -> torch.Tensor:
        raise NotImplementedError

    # ------------------------------------------------------------------ public API

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

    # ------------------------------------------------------------------ the contract's hooks

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
        (advance: only the critical path, encoder and writer, what MRBP's replay pass and
        generation's prompt use). A segment is encoded when it completes and its result is needed
        (by a later prediction in the call, or for the returned state). ``input_ids_BN`` may also
        be embeddings (B, N, D) (``forward_embeds``): the segment's earlier tokens, kept as ids in
        the state, are embedded to join them, and the returned state is None when the call ends
        inside a segment (the state cannot keep vectors).
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

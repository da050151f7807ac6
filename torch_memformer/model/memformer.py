"""Memformer: encoder + memory writer + forgetting + decoder, and the stream over segments.

Shape legend: B batch, N tokens in a call, T tokens in a segment (<= L), L segment length,
S slots, D d_model, V vocabulary.

How a stream maps onto the spec's segments (spec 1, decisions 6 and 7). The stream is cut into
segments of L tokens, s_0, s_1, ... For segment s_t:
    H_t, M_{t+1} = Encode(s_t, M_t), Write(M_t, H_t)           (the "critical path")
    the distribution of each token of s_{t+1} = Decoder([BOS, s_{t+1}[:-1]], context=H_t)
Before s_0 the context is the encoding of a lone BOS token with the initial memory M_0.

Three views of one computation, all pure functions of (parameters, tokens, state):
    forward  - Hugging Face convention: logits[:, i] is the distribution of the token *after*
               input_ids[:, i]; returns the state after the last token.
    predict  - "decoder-centric": logits[:, i] is the distribution of input_ids[:, i] itself
               given the state and input_ids[:, :i]; returns no state (what MRBP recomputes).
    advance  - the critical path only (encoder and writer, no decoder): the state after the
               tokens (what MRBP's no-grad replay pass and generation's prompt use).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from ..config import MemformerConfig
from .attention import Rotary
from .decoder import Decoder
from .encoder import Encoder
from .memory import BiasedMemoryNormalization, MemoryWriter
from .state import MemformerState


@dataclasses.dataclass(frozen=True)
class MemformerOutput:
    """What ``Memformer.forward`` returns.

    logits: (B, N, V); logits[:, i] is the distribution of the token after input_ids[:, i].
    state: the stream state after the last token.
    loss: mean cross-entropy of logits[:, :-1] against labels[:, 1:] (ignoring -100), or None.
    """

    logits: torch.Tensor
    state: MemformerState
    loss: torch.Tensor | None = None


class Memformer(nn.Module):
    """A Memformer language model. See the module docstring for the stream layout.

    One model serves any number of streams: nothing of a stream is stored on the module, the
    caller passes the state in and gets the next one back.
    """

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
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
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

    def forward(
        self,
        input_ids: torch.Tensor,
        state: MemformerState | None = None,
        labels: torch.Tensor | None = None,
        reset: torch.Tensor | None = None,
    ) -> MemformerOutput:
        """Read ``input_ids`` (B, N), N >= 1, continuing ``state`` (fresh streams if None).

        ``reset`` (B,) bool starts those rows as fresh streams before this call: their memory
        returns to M_0, their decoder context to the BOS encoding, and any tokens of a segment
        they were in the middle of are dropped, so input_ids[row, 0] is the first token of a new
        stream (position 0 of a new segment). ``labels`` (B, N) gives the loss, shifted as in
        Hugging Face: logits[:, i] is scored against labels[:, i + 1]; -100 is ignored.
        """
        input_ids = self._check_ids(input_ids)
        state = self._begin(input_ids, state, reset)
        logits, state = self._by_row_phase(input_ids, state, offset=1, want_state=True)
        loss = None if labels is None else shifted_cross_entropy(logits, self._check_labels(labels, input_ids))
        return MemformerOutput(logits=logits, state=state, loss=loss)

    def predict(
        self, input_ids: torch.Tensor, *, state: MemformerState | None = None, reset: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Decoder-centric logits (B, N, V): logits[:, i] is the distribution of input_ids[:, i]
        given the state and input_ids[:, :i]. Returns no state and runs no encoder for the last
        segment. The training engines (``torch_memformer.training``) build on this."""
        input_ids = self._check_ids(input_ids)
        state = self._begin(input_ids, state, reset)
        logits, _ = self._by_row_phase(input_ids, state, offset=0, want_state=False)
        return logits

    def advance(
        self, input_ids: torch.Tensor, *, state: MemformerState | None = None, reset: torch.Tensor | None = None
    ) -> MemformerState:
        """The state after ``input_ids``, computing only the critical path (encoder + writer for
        each segment that completes); no decoder, no logits."""
        input_ids = self._check_ids(input_ids)
        state = self._begin(input_ids, state, reset)
        _, state = self._by_row_phase(input_ids, state, offset=None, want_state=True)
        return state

    def generate(
        self,
        input_ids: torch.Tensor,
        max_new_tokens: int,
        *,
        state: MemformerState | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
    ):
        """Sample ``max_new_tokens`` tokens after ``input_ids``; see ``model/generation.py``."""
        from .generation import generate

        return generate(
            self,
            input_ids,
            max_new_tokens,
            state=state,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            generator=generator,
        )

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
        """Encoder states H (B, T, D) of a segment read with memory M (no write)."""
        memory_BSD = memory_BSD if self.config.use_memory else None
        return self.encoder(self.embedding(tokens_BT), memory_BSD, self.rotary)

    def decode(self, prefix_BT: torch.Tensor, context_BUD: torch.Tensor) -> torch.Tensor:
        """Decoder hidden states (B, T + 1, D) for inputs [BOS, prefix]: output i predicts
        prefix[:, i] (and output T the token after the prefix)."""
        bos_B1 = prefix_BT.new_full((prefix_BT.size(0), 1), self.config.bos_token_id)
        inputs_BT = torch.cat([bos_B1, prefix_BT], dim=1)
        return self.decoder(self.embedding(inputs_BT), context_BUD, self.rotary)

    def logits_from_hidden(self, hidden_BTD: torch.Tensor) -> torch.Tensor:
        if self.config.tie_embeddings:
            return F.linear(hidden_BTD, self.embedding.weight[: self.config.vocab_size])
        return self.lm_head(hidden_BTD)

    # ------------------------------------------------------------------ internals

    def _begin(
        self, input_ids: torch.Tensor, state: MemformerState | None, reset: torch.Tensor | None
    ) -> MemformerState:
        """Check the state, then restart the rows that are fresh or reset."""
        batch = input_ids.size(0)
        if state is None:
            state = self.init_state(batch, device=input_ids.device)
        else:
            self._check_state(state, batch)
        fresh_B = ~state.started
        if reset is not None:
            fresh_B = fresh_B | self._check_reset(reset, batch)
        if bool(fresh_B.any()):
            state = self._restart_rows(state, fresh_B)
        return state

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

    def _by_row_phase(
        self, input_ids: torch.Tensor, state: MemformerState, *, offset: int | None, want_state: bool
    ) -> tuple[torch.Tensor | None, MemformerState | None]:
        """Run ``_walk`` on groups of rows that are at the same position inside their segment.

        Usually all rows are (one group). They differ only after a reset in the middle of a
        segment; rows are independent, so each group is walked on its own and put back in order.
        """
        positions_B = state.position
        if bool((positions_B == positions_B[0]).all()):
            return self._walk(input_ids, state, offset=offset, want_state=want_state)
        groups = [torch.nonzero(positions_B == p).flatten() for p in torch.unique(positions_B)]
        results = [self._walk(input_ids[rows], state.select(rows), offset=offset, want_state=want_state) for rows in groups]
        inverse_B = torch.argsort(torch.cat(groups))
        logits = None if offset is None else torch.cat([r[0] for r in results])[inverse_B]
        new_state = MemformerState.cat([r[1] for r in results]).select(inverse_B) if want_state else None
        return logits, new_state

    def _walk(
        self, input_ids_BN: torch.Tensor, state: MemformerState, *, offset: int | None, want_state: bool
    ) -> tuple[torch.Tensor | None, MemformerState | None]:
        """Walk the segments that the call touches, for rows that share one in-segment position p.

        Positions below are relative to the start of the current segment: tokens 0 .. p - 1 are
        in the state, the call brings p .. p + N - 1. ``offset`` 1 predicts positions
        p + 1 .. p + N (forward), 0 predicts p .. p + N - 1 (predict), None predicts nothing
        (advance). A segment is encoded when it completes and its result is needed (by a later
        prediction in the call, or for the returned state).
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
        segment_BT = state.tokens[:, :p]
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
        if not want_state:
            return logits, None
        position = segment_BT.size(1)
        new_state = MemformerState(
            memory=memory_BSD,
            context=context_BLD,
            tokens=F.pad(segment_BT, (0, length - position)),
            position=torch.full_like(state.position, position),
            started=state.started,
        )
        return logits, new_state

    def _check_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        if not isinstance(input_ids, torch.Tensor):
            raise TypeError(f"input_ids must be a torch.Tensor of token ids, got {type(input_ids).__name__}")
        if input_ids.dim() != 2 or input_ids.size(1) < 1 or input_ids.size(0) < 1:
            raise ValueError(f"input_ids must have shape (batch, n) with n >= 1, got {tuple(input_ids.shape)}")
        if input_ids.dtype.is_floating_point or input_ids.dtype == torch.bool:
            raise ValueError(f"input_ids must hold integer token ids, got dtype {input_ids.dtype}")
        low, high = int(input_ids.min()), int(input_ids.max())
        if low < 0 or high >= self.config.vocab_size:
            bad = low if low < 0 else high
            raise ValueError(
                f"token id {bad} is outside the vocabulary 0..{self.config.vocab_size - 1}; "
                "check the tokenizer matches the model's vocab_size"
            )
        return input_ids.long()

    def _check_labels(self, labels: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        if not isinstance(labels, torch.Tensor) or labels.shape != input_ids.shape:
            shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
            raise ValueError(f"labels must have the shape of input_ids {tuple(input_ids.shape)}, got {shape}")
        return labels.long()

    def _check_reset(self, reset: torch.Tensor, batch: int) -> torch.Tensor:
        if not isinstance(reset, torch.Tensor) or reset.shape != (batch,):
            shape = tuple(reset.shape) if isinstance(reset, torch.Tensor) else type(reset).__name__
            raise ValueError(f"reset must be a bool tensor of shape ({batch},), got {shape}")
        return reset.to(torch.bool)

    def _check_state(self, state: MemformerState, batch: int) -> None:
        if not isinstance(state, MemformerState):
            raise TypeError(f"state must be a MemformerState (from init_state or an output), got {type(state).__name__}")
        expected = {
            "memory": (batch, self.num_slots, self.config.d_model),
            "context": (batch, self.config.segment_len, self.config.d_model),
            "tokens": (batch, self.config.segment_len),
            "position": (batch,),
            "started": (batch,),
        }
        for name, shape in expected.items():
            actual = tuple(getattr(state, name).shape)
            if actual != shape:
                raise ValueError(
                    f"state.{name} has shape {actual} but this model and batch expect {shape}; "
                    "pass a state made by this model for the same batch size"
                )

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


def shifted_cross_entropy(logits_BNV: torch.Tensor, labels_BN: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of logits[:, i] against labels[:, i + 1], ignoring -100.

    Returns 0 (not NaN) when nothing is labelled, so a one-token call adds nothing to a sum.
    """
    logits_BNV = logits_BNV[:, :-1]
    targets_BN = labels_BN[:, 1:]
    total = F.cross_entropy(
        logits_BNV.reshape(-1, logits_BNV.size(-1)), targets_BN.reshape(-1), ignore_index=-100, reduction="sum"
    )
    return total / (targets_BN != -100).sum().clamp(min=1)

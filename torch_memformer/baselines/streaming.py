"""The stream contract of a decoder-only baseline, shared by Transformer-XL and the plain Transformer.

Shape legend: B batch, N tokens in a call, T tokens in a chunk, D d_model, V vocabulary.

A subclass provides the state (``init_state``, ``_restart_rows``, ``_check_state``) and one
chunk of computation (``_read_chunk``: embedded tokens and a state in, final hidden states and
the next state out). This class turns that into the same four views Memformer offers, all pure
functions of (parameters, tokens, state):

    forward  - Hugging Face convention: logits[:, i] is the distribution of the token after
               input_ids[:, i]; returns the state after the last token, and the shifted loss.
    predict  - decoder-centric: logits[:, i] is the distribution of input_ids[:, i] given the
               state and input_ids[:, :i]. Column 0 comes from ``state.last_hidden``, the final
               hidden state of the stream's previous token, so predict(x)[:, 1:] equals
               forward(x).logits[:, :-1] and predict(x)[:, 0] equals the previous call's
               forward logits[:, -1]. For a fresh (or reset) row ``last_hidden`` is zero and
               column 0 is all-zero logits (uniform): the first token of a stream is never
               predicted, as in Memformer (spec decision 6), and must not be scored.
    advance  - the state after the tokens, without the output head.
    generate - sampling, one cached step per token (``baselines/generation.py``).

A call is read in chunks of ``config.segment_len`` tokens. For a decoder-only model a chunk only
bounds the cost of one attention (and, in Transformer-XL, where the cache's stop-gradient cuts
the graph); it never changes a value.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..model.generation import GenerationOutput
from ..model.memformer import shifted_cross_entropy
from .state import StreamState


@dataclasses.dataclass(frozen=True)
class StreamOutput:
    """What a baseline's ``forward`` returns.

    logits: (B, N, V); logits[:, i] is the distribution of the token after input_ids[:, i].
    state: the stream state after the last token.
    loss: mean cross-entropy of logits[:, :-1] against labels[:, 1:] (ignoring -100), or None.
    """

    logits: torch.Tensor
    state: Any
    loss: torch.Tensor | None = None


class StreamingLM(nn.Module):
    """Base of the decoder-only baselines: the stream contract around ``_read_chunk``.

    Subclasses set ``self.config`` (with vocab_size, d_model, segment_len, dropout,
    tie_embeddings, init_std, num_layers), call ``_build_io()`` and finally ``_init_weights()``.
    """

    config: Any

    # ------------------------------------------------------------------ for subclasses

    def init_state(self, batch_size: int, *, device: torch.device | str | None = None) -> StreamState:
        raise NotImplementedError

    def _restart_rows(self, state: StreamState, fresh_B: torch.Tensor) -> StreamState:
        raise NotImplementedError

    def _check_state(self, state: StreamState, batch: int) -> None:
        raise NotImplementedError

    def _read_chunk(self, x_BTD: torch.Tensor, state: StreamState) -> tuple[torch.Tensor, StreamState]:
        """Final hidden states (B, T, D) of embedded tokens x and the state after them
        (``last_hidden`` is set by the caller)."""
        raise NotImplementedError

    # Generation carries an object from step to step: by default the state itself, stepped by
    # ``_read``. A model whose state is not the cheapest thing to step from (Transformer-XL keeps
    # hidden states, a step wants their projected keys) overrides the three hooks.

    def _start_steps(self, state: StreamState) -> Any:
        """What a generation step carries (it must have ``last_hidden``)."""
        return state

    def _step(self, token_B1: torch.Tensor, carried: Any) -> Any:
        """Read one token per row."""
        _, state = self._read(token_B1, carried)
        return state

    def _finish_steps(self, carried: Any) -> StreamState:
        """The stream state after the last step."""
        return carried

    def _build_io(self) -> None:
        config = self.config
        self.embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.embedding_dropout = nn.Dropout(config.dropout)
        if not config.tie_embeddings:
            self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)

    # ------------------------------------------------------------------ public API

    def forward(
        self,
        input_ids: torch.Tensor,
        state: StreamState | None = None,
        labels: torch.Tensor | None = None,
        reset: torch.Tensor | None = None,
    ) -> StreamOutput:
        """Read ``input_ids`` (B, N), N >= 1, continuing ``state`` (fresh streams if None).

        ``reset`` (B,) bool starts those rows as fresh streams before this call, so
        input_ids[row, 0] is the first token of a new stream. ``labels`` (B, N) gives the loss,
        shifted as in Hugging Face: logits[:, i] is scored against labels[:, i + 1]; -100 is ignored.
        """
        input_ids = self._check_ids(input_ids)
        state = self._begin(input_ids, state, reset)
        hidden_BND, state = self._read(input_ids, state)
        logits = self.logits_from_hidden(hidden_BND)
        loss = None if labels is None else shifted_cross_entropy(logits, self._check_labels(labels, input_ids))
        return StreamOutput(logits=logits, state=state, loss=loss)

    def predict(
        self, input_ids: torch.Tensor, *, state: StreamState | None = None, reset: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Decoder-centric logits (B, N, V): logits[:, i] is the distribution of input_ids[:, i]
        given the state and input_ids[:, :i]. Column 0 is the state's last token's prediction
        (all zeros for a fresh or reset row). Returns no state; the last token is not read."""
        input_ids = self._check_ids(input_ids)
        state = self._begin(input_ids, state, reset)
        hidden_BND = state.last_hidden.unsqueeze(1)
        if input_ids.size(1) > 1:
            hidden_BTD, _ = self._read(input_ids[:, :-1], state)
            hidden_BND = torch.cat([hidden_BND, hidden_BTD], dim=1)
        return self.logits_from_hidden(hidden_BND)

    def advance(
        self, input_ids: torch.Tensor, *, state: StreamState | None = None, reset: torch.Tensor | None = None
    ) -> StreamState:
        """The state after ``input_ids`` (no output head, no logits)."""
        input_ids = self._check_ids(input_ids)
        state = self._begin(input_ids, state, reset)
        _, state = self._read(input_ids, state)
        return state

    def generate(
        self,
        input_ids: torch.Tensor,
        max_new_tokens: int,
        *,
        state: StreamState | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
    ) -> GenerationOutput:
        """Sample ``max_new_tokens`` tokens after ``input_ids``; see ``baselines/generation.py``."""
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

    def logits_from_hidden(self, hidden_BTD: torch.Tensor) -> torch.Tensor:
        """The output head (no bias, so a zero hidden state gives all-zero logits)."""
        if self.config.tie_embeddings:
            return F.linear(hidden_BTD, self.embedding.weight)
        return self.lm_head(hidden_BTD)

    # ------------------------------------------------------------------ internals

    def _read(self, input_ids_BN: torch.Tensor, state: StreamState) -> tuple[torch.Tensor, StreamState]:
        """Read a call chunk by chunk; the state's ``last_hidden`` becomes the last token's."""
        hidden_parts = []
        for ids_BT in input_ids_BN.split(self.config.segment_len, dim=1):
            x_BTD = self.embedding_dropout(self.embedding(ids_BT))
            hidden_BTD, state = self._read_chunk(x_BTD, state)
            hidden_parts.append(hidden_BTD)
        hidden_BND = torch.cat(hidden_parts, dim=1)
        return hidden_BND, state.replace(last_hidden=hidden_BND[:, -1])

    def _begin(self, input_ids: torch.Tensor, state: StreamState | None, reset: torch.Tensor | None) -> StreamState:
        """Check the state (a fresh one if None), then restart the rows asked to reset."""
        batch = input_ids.size(0)
        if state is None:
            state = self.init_state(batch, device=input_ids.device)
        else:
            self._check_state(state, batch)
        if reset is not None:
            reset_B = self._check_reset(reset, batch)
            if bool(reset_B.any()):
                state = self._restart_rows(state, reset_B)
        return state

    def _check_batch_size(self, batch_size: int) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")

    def _check_state_shapes(self, state: StreamState, expected: dict[str, tuple[int, ...]]) -> None:
        for name, shape in expected.items():
            actual = tuple(getattr(state, name).shape)
            if actual != shape:
                raise ValueError(
                    f"state.{name} has shape {actual} but this model and batch expect {shape}; "
                    "pass a state made by this model for the same batch size"
                )

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
        return reset.to(device=self.embedding.weight.device, dtype=torch.bool)

    def _init_weights(self) -> None:
        """GPT-2 style, as Memformer: N(0, init_std) weights and embeddings, zero biases,
        residual outputs scaled by depth; every other parameter (Transformer-XL's u and v)
        N(0, init_std)."""
        std = self.config.init_std
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

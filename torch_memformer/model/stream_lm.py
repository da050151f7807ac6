"""The stream contract, written once: what every stream LM (Memformer and the baselines) offers.

Shape legend: B batch, N tokens in a call, V vocabulary.

A stream LM reads a stream of tokens in calls of any length and carries everything the stream
needs between calls in a state: an immutable value passed in and handed back, never an attribute
of the module (style principle 1). ``StreamLM`` turns a model's own computation into the same
public views, all pure functions of (parameters, tokens, state):

    forward  - Hugging Face convention: logits[:, i] is the distribution of the token *after*
               input_ids[:, i]; returns the state after the last token, and the shifted loss.
    predict  - decoder-centric: logits[:, i] is the distribution of input_ids[:, i] itself, given
               the state and input_ids[:, :i]; returns no state (what the training engines recompute).
    advance  - the state after the tokens, computing only what the state needs (no logits).
    generate - sampling, one cheap step per token through the model's decoding cursor.

Every view checks its inputs the same way (``checks.py``), starts the rows that are fresh or asked
to ``reset``, and reads groups of rows apart when the model says they cannot share one walk.

What a model implements (the ``_`` hooks are called by this class only, never from outside):

    config.vocab_size                      what ``input_ids`` are checked against
    state_class                            the class of its state (checked; the registry reads it)
    init_state(batch_size, *, device)      the state of fresh streams
    _state_shapes(state, batch)            {field: expected shape} for a state given by the caller
    _restart_rows(state, fresh_B)          the state with rows ``fresh_B`` made fresh streams
    _read(input_ids, state, view)          (logits or None, state or None) for one view (``View``)
    _start_decoding(state)                 a ``Cursor`` at the end of ``state``
and, only when the default does not fit:
    _unstarted_rows(state)                 rows that must restart before any reading (default: none)
    _row_group_key(state)                  rows with different keys are read apart (default: one walk)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Literal, Protocol

import torch
from torch import nn

from .checks import check_ids, check_labels, check_reset, check_state_class, check_state_shapes
from .generation import GenerationOutput, check_sampling, sample_next
from .loss import shifted_cross_entropy

# forward: logits of the next tokens and the state; predict: logits of the tokens themselves, no
# state; advance: the state, no logits.
View = Literal["forward", "predict", "advance"]


@dataclasses.dataclass(frozen=True)
class StreamOutput:
    """What ``forward`` returns.

    logits: (B, N, V); logits[:, i] is the distribution of the token after input_ids[:, i].
    state: the stream state after the last token.
    loss: mean cross-entropy of logits[:, :-1] against labels[:, 1:] (ignoring -100), or None.
    """

    logits: torch.Tensor
    state: Any
    loss: torch.Tensor | None = None


class Cursor(Protocol):
    """Where generation stands in a stream: a mutable working object of one ``generate`` call.

    The model is passed to each call rather than kept, so a cursor is plain data.
    """

    def logits(self, model: Any) -> torch.Tensor:
        """(B, V) the distribution of the next token."""

    def push(self, model: Any, token_B: torch.Tensor) -> None:
        """Read one (already valid) token per row."""

    def state(self) -> Any:
        """The immutable state after every token pushed (what ``advance`` over them returns)."""


class StreamLM(nn.Module):
    """Base of every stream LM: the public views around the hooks a model implements.

    See the module docstring for the hooks.
    """

    config: Any
    state_class: type

    # ------------------------------------------------------------------ what a model implements

    def init_state(self, batch_size: int, *, device: torch.device | str | None = None) -> Any:
        raise NotImplementedError

    def _state_shapes(self, state: Any, batch: int) -> dict[str, tuple[int, ...]]:
        raise NotImplementedError

    def _restart_rows(self, state: Any, fresh_B: torch.Tensor) -> Any:
        raise NotImplementedError

    def _read(self, input_ids_BN: torch.Tensor, state: Any, view: View) -> tuple[torch.Tensor | None, Any]:
        raise NotImplementedError

    def _start_decoding(self, state: Any) -> Cursor:
        raise NotImplementedError

    def _unstarted_rows(self, state: Any) -> torch.Tensor | None:
        return None

    def _row_group_key(self, state: Any) -> torch.Tensor | None:
        return None

    # ------------------------------------------------------------------ public API

    def forward(
        self,
        input_ids: torch.Tensor,
        state: Any = None,
        labels: torch.Tensor | None = None,
        reset: torch.Tensor | None = None,
    ) -> StreamOutput:
        """Read ``input_ids`` (B, N), N >= 1, continuing ``state`` (fresh streams if None).

        ``reset`` (B,) bool starts those rows as fresh streams before this call, so
        input_ids[row, 0] is the first token of a new stream. ``labels`` (B, N) gives the loss,
        shifted as in Hugging Face: logits[:, i] is scored against labels[:, i + 1]; -100 is ignored.
        """
        input_ids = check_ids(input_ids, self.config.vocab_size)
        state = self._begin(input_ids, state, reset)
        logits, state = self._read_rows(input_ids, state, "forward")
        loss = None if labels is None else shifted_cross_entropy(logits, check_labels(labels, input_ids))
        return StreamOutput(logits=logits, state=state, loss=loss)

    def predict(self, input_ids: torch.Tensor, *, state: Any = None, reset: torch.Tensor | None = None) -> torch.Tensor:
        """Decoder-centric logits (B, N, V): logits[:, i] is the distribution of input_ids[:, i]
        given the state and input_ids[:, :i]. Returns no state. The training engines build on this."""
        input_ids = check_ids(input_ids, self.config.vocab_size)
        state = self._begin(input_ids, state, reset)
        logits, _ = self._read_rows(input_ids, state, "predict")
        return logits

    def advance(self, input_ids: torch.Tensor, *, state: Any = None, reset: torch.Tensor | None = None) -> Any:
        """The state after ``input_ids``, computing only what the state needs; no logits."""
        input_ids = check_ids(input_ids, self.config.vocab_size)
        state = self._begin(input_ids, state, reset)
        _, state = self._read_rows(input_ids, state, "advance")
        return state

    # no_grad rather than inference_mode: the returned state may be fed to a later forward with
    # autograd on, which inference tensors refuse.
    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        max_new_tokens: int,
        *,
        state: Any = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
    ) -> GenerationOutput:
        """Continue each row of ``input_ids`` (B, N) (after ``state``) by ``max_new_tokens`` tokens.

        Temperature 0 is greedy; ``top_k`` / ``top_p`` filter the distribution first. Returns the
        new tokens (B, max_new_tokens) and the state after the last of them.
        """
        check_sampling(max_new_tokens, temperature, top_k, top_p)
        state = self.advance(input_ids, state=state)

        def sample_rows(rows_state: Any) -> tuple[torch.Tensor, Any]:
            tokens_BN = torch.empty(
                (rows_state.batch_size, max_new_tokens), dtype=torch.long, device=input_ids.device
            )
            if max_new_tokens == 0:
                return tokens_BN, rows_state
            cursor = self._start_decoding(rows_state)
            for step in range(max_new_tokens):
                token_B = sample_next(
                    cursor.logits(self), temperature=temperature, top_k=top_k, top_p=top_p, generator=generator
                )
                tokens_BN[:, step] = token_B
                # Also after the last token, so the returned state continues the stream exactly.
                # Sampled ids need no checking (a check would cost a host sync per token).
                cursor.push(self, token_B)
            return tokens_BN, cursor.state()

        tokens, state = by_row_group(self._row_group_key(state), state, lambda rows, s: sample_rows(s))
        return GenerationOutput(tokens=tokens, state=state)

    # ------------------------------------------------------------------ internals

    def _begin(self, input_ids: torch.Tensor, state: Any, reset: torch.Tensor | None) -> Any:
        """Check the state (fresh streams if None), then restart the rows that are unstarted or reset."""
        batch = input_ids.size(0)
        if state is None:
            state = self.init_state(batch, device=input_ids.device)
        else:
            check_state_class(state, self.state_class)
            check_state_shapes(state, self._state_shapes(state, batch))
        fresh_B = self._unstarted_rows(state)
        if reset is not None:
            reset_B = check_reset(reset, batch, input_ids.device)
            fresh_B = reset_B if fresh_B is None else fresh_B | reset_B
        if fresh_B is not None and bool(fresh_B.any()):
            state = self._restart_rows(state, fresh_B)
        return state

    def _read_rows(self, input_ids_BN: torch.Tensor, state: Any, view: View) -> tuple[torch.Tensor | None, Any]:
        def read(rows: torch.Tensor | None, rows_state: Any) -> tuple[torch.Tensor | None, Any]:
            return self._read(input_ids_BN if rows is None else input_ids_BN[rows], rows_state, view)

        return by_row_group(self._row_group_key(state), state, read)


def by_row_group(
    key_B: torch.Tensor | None, state: Any, run: Callable[[torch.Tensor | None, Any], tuple[Any, ...]]
) -> tuple[Any, ...]:
    """``run(rows, state of those rows)`` on each group of rows with one ``key``, put back in order.

    Rows are independent, so reading them in groups never changes a value; a model asks for it
    when one walk cannot serve rows in different places (Memformer: rows at different positions
    inside their segments, which happens only after a reset in the middle of a segment). Usually
    every row has the same key and ``run(None, state)`` reads them all at once. Each item of the
    result is None, a tensor or a state with rows on axis 0.
    """
    if key_B is None or bool((key_B == key_B[0]).all()):
        return run(None, state)
    groups = [torch.nonzero(key_B == k).flatten() for k in torch.unique(key_B)]
    results = [run(rows, state.select(rows)) for rows in groups]
    inverse_B = torch.argsort(torch.cat(groups))
    return tuple(_join([result[i] for result in results], inverse_B) for i in range(len(results[0])))


def _join(parts: list[Any], inverse_B: torch.Tensor) -> Any:
    if parts[0] is None:
        return None
    if isinstance(parts[0], torch.Tensor):
        return torch.cat(parts)[inverse_B]
    return type(parts[0]).cat(parts).select(inverse_B)

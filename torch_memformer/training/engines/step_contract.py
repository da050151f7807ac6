"""The step contract: what a model must offer to be trained by ``backward_window`` (MRBP included).

Shape legend: B batch, N tokens in a call, V vocabulary.

The engines never look inside the model. They call exactly the methods below and read exactly the
state fields below, so any recurrent-memory model that implements them trains with MRBP,
gradient checkpointing or BPTT and gets the same gradients from all three (``Memformer`` is one;
``tests/training/engines/test_engines_step_contract.py`` trains a memory-token model written in the test).

What MRBP needs beyond the method signatures (spec 2; ``mrbp.py``) is stated on each method:
the stream is cut into segments of ``config.segment_len`` tokens, and everything a segment
hands to the next that gradients must flow through is ``state.memory``. The engine keeps only
the memories at segment starts, rebuilds a segment's incoming state from its memory
(``segment_start.py``), and recomputes the segment with gradients.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

import torch
from torch import nn

State = TypeVar("State", bound="StepState")


class StepState(Protocol):
    """The state of B streams, an immutable value (style principle 2).

    Attributes:
        memory: (B, ...) float, the recurrent memory. Between segments it is the only field a
            gradient flows through; its trailing shape is the model's own (Memformer: (B, S, D)).
        position: (B,) int64, tokens of the current segment each row has seen (0 .. L - 1).
        started: (B,) bool; False for a fresh row, which the model starts (memory M_0) at its
            next call, so it counts as position 0.
    Any other field (Memformer's decoder context, its buffer of the segment's tokens) is the
    model's business; the engine only carries it along with ``replace``.
    """

    memory: torch.Tensor
    position: torch.Tensor
    started: torch.Tensor

    def replace(self: State, **changes: torch.Tensor) -> State:
        """A copy with the named fields replaced (never a write into ``self``)."""

    def detach(self: State) -> State:
        """The same values cut from the autograd graph."""


class SegmentConfig(Protocol):
    segment_len: int


class StepModel(Protocol):
    """A stream language model the engines can train (an ``nn.Module``).

    All three reading methods are pure functions of (parameters, tokens, state) (style principle
    2): no writes into the state, no ``.detach()`` and no RNG policy of their own; dropout draws
    from the global generators, which MRBP replays (``rng.py``). ``reset`` (B,) bool, or None,
    starts those rows as fresh streams before the call's first token.

    Requirements MRBP's exactness rests on (``tests/training/engines/test_engines_step_contract.py`` checks them
    against BPTT for a non-Memformer model):

    1. ``advance`` from a state at position 0 reads only its ``memory`` (and ``started``):
       anything else the state holds is a placeholder there.
    2. ``predict`` over a chunk depends on the state only through what ``advance`` put in it, and
       a token's logits only on the tokens before it (causality).
    3. ``forward(x).logits[:, i]`` equals ``predict(x).logits[:, i + 1]`` for the same state, and
       ``forward(x).state`` equals ``advance(x)``: the three are views of one computation.
    """

    config: SegmentConfig
    state_class: type

    def init_state(self, batch_size: int, *, device: torch.device | str | None = None) -> Any:
        """The state of ``batch_size`` fresh streams (``started`` all False)."""

    def advance(self, input_ids: torch.Tensor, *, state: Any = None, reset: torch.Tensor | None = None) -> Any:
        """The state after ``input_ids`` (B, N), N >= 1; the model may skip any work only logits need."""

    def predict(
        self, input_ids: torch.Tensor, *, state: Any = None, reset: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Decoder-centric logits (B, N, V): logits[:, i] is the distribution of input_ids[:, i]
        given the state and input_ids[:, :i]."""

    def __call__(
        self,
        input_ids: torch.Tensor,
        state: Any = None,
        labels: torch.Tensor | None = None,
        reset: torch.Tensor | None = None,
    ) -> Any:
        """``forward``: an output with ``logits`` (B, N, V), logits[:, i] the distribution of the
        token after input_ids[:, i]; ``state``, the state after the last token; and ``loss``, the
        mean cross-entropy of logits[:, :-1] against labels[:, 1:] ignoring -100 (None without
        labels). The reference engine (``bptt.py``) uses it."""


def check_step_model(model: object) -> None:
    """Raise a ``TypeError`` that names what ``model`` lacks of the step contract."""
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"model must be a Memformer, a torch.nn.Module implementing the step contract "
            f"(torch_memformer.training.engines.StepModel), or a DistributedDataParallel(StepModule(model)), "
            f"got {type(model).__name__}"
        )
    missing = [name for name in ("init_state", "advance", "predict") if not callable(getattr(model, name, None))]
    if not isinstance(getattr(model, "state_class", None), type):
        missing.append("state_class")
    segment_len = getattr(getattr(model, "config", None), "segment_len", None)
    if isinstance(segment_len, bool) or not isinstance(segment_len, int) or segment_len < 1:
        missing.append("config.segment_len (a positive int)")
    if missing:
        raise TypeError(
            f"model must be a Memformer or implement the step contract "
            f"(torch_memformer.training.engines.StepModel); {type(model).__name__} lacks {', '.join(missing)}"
        )

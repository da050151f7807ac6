"""Stream states of the baselines: immutable values passed in and handed back, like MemformerState.

Shape legend: B batch, N layers, M cached positions (mem_len), U cached positions of a KV cache,
H heads, K head dim, D d_model.

Every tensor of a state has the batch on axis 0, so ``select`` and ``cat`` work field by field;
the model never writes into a state it was given (style principle 2).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, TypeVar

import torch
import torch.nn.functional as F

StateT = TypeVar("StateT", bound="StreamState")


@dataclasses.dataclass(frozen=True)
class StreamState:
    """Field-generic methods of a state whose tensors all have the batch on axis 0."""

    @property
    def batch_size(self) -> int:
        return next(iter(self.tensors().values())).size(0)

    def tensors(self) -> dict[str, torch.Tensor]:
        """The fields by name (for safetensors checkpoints and generic state handling)."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    @classmethod
    def from_tensors(cls: type[StateT], tensors: dict[str, torch.Tensor]) -> StateT:
        names = [field.name for field in dataclasses.fields(cls)]
        missing = [name for name in names if name not in tensors]
        if missing:
            raise ValueError(f"a {cls.__name__} needs the tensors {', '.join(missing)}")
        return cls(**{name: tensors[name] for name in names})

    def replace(self: StateT, **changes: torch.Tensor) -> StateT:
        return dataclasses.replace(self, **changes)

    def detach(self: StateT) -> StateT:
        """The same values, cut from the autograd graph (what a truncated-BPTT engine carries)."""
        return self._map(lambda t: t.detach())

    def to(self: StateT, device: torch.device | str) -> StateT:
        return self._map(lambda t: t.to(device))

    def select(self: StateT, rows: torch.Tensor | list[int]) -> StateT:
        """The state of some rows (a 1-D index tensor or list)."""
        device = next(iter(self.tensors().values())).device
        rows = torch.as_tensor(rows, dtype=torch.long, device=device)
        return self._map(lambda t: t.index_select(0, rows))

    @classmethod
    def cat(cls: type[StateT], states: list[StateT]) -> StateT:
        """Stack the rows of several states into one batch."""
        if not states:
            raise ValueError("cat needs at least one state")
        names = states[0].tensors()
        return cls(**{name: torch.cat([s.tensors()[name] for s in states]) for name in names})

    def num_bytes(self) -> int:
        """Bytes held by the state."""
        return sum(t.numel() * t.element_size() for t in self.tensors().values())

    def _map(self: StateT, fn: Callable[[torch.Tensor], torch.Tensor]) -> StateT:
        return type(self)(**{name: fn(t) for name, t in self.tensors().items()})


@dataclasses.dataclass(frozen=True)
class TransformerXLState(StreamState):
    """The state of B Transformer-XL streams: each layer's input at the last mem_len positions.

    Attributes:
        memory: (B, N, M, D) memory[:, n] holds the input of layer n (the output of layer n - 1,
            the embeddings for n = 0) at the last M positions of the stream, oldest first and the
            newest at index M - 1. Its size is fixed by the config: it never grows.
        length: (B,) int64, how many of the M positions are real (min(tokens seen, M)); the first
            M - length entries of a row are padding that no query attends to. 0 = a fresh stream.
        last_hidden: (B, D) the final hidden state (after the last LayerNorm) of the stream's last
            token, whose logits are the distribution of the next token (``predict``'s first
            column). Zeros for a fresh stream, whose first token is never predicted.
    """

    memory: torch.Tensor
    length: torch.Tensor
    last_hidden: torch.Tensor


@dataclasses.dataclass(frozen=True)
class TransformerState(StreamState):
    """The state of B plain-Transformer streams: a per-layer KV cache and stream positions.

    Attributes:
        keys: (B, N, H, U, K) rotary-rotated keys of the last U positions per layer, newest at
            index U - 1. U = context_len - 1 with a bounded window (fixed size); with
            ``context_len=None`` U grows by one position per token (trimmed, when rows reset, to
            the longest row since its last reset).
        values: (B, N, H, U, K) the matching values.
        position: (B,) int64, tokens seen since the stream (or the row's last reset) began: the
            position of the next token. A row's real cache entries are its last min(position, U).
        last_hidden: (B, D) the final hidden state of the last token (zeros for a fresh stream).
    """

    keys: torch.Tensor
    values: torch.Tensor
    position: torch.Tensor
    last_hidden: torch.Tensor

    @classmethod
    def cat(cls, states: list["TransformerState"]) -> "TransformerState":
        """Stack rows; growing caches of different lengths are left-padded to the longest (the
        padding lies before every row's real entries, so no query sees it)."""
        if not states:
            raise ValueError("cat needs at least one state")
        longest = max(s.keys.size(3) for s in states)

        def pad(t: torch.Tensor) -> torch.Tensor:
            return F.pad(t, (0, 0, longest - t.size(3), 0))

        return cls(
            keys=torch.cat([pad(s.keys) for s in states]),
            values=torch.cat([pad(s.values) for s in states]),
            position=torch.cat([s.position for s in states]),
            last_hidden=torch.cat([s.last_hidden for s in states]),
        )

"""The streaming state: everything a stream needs to continue, and nothing that grows with it.

Shape legend: B batch, S slots, L segment length, D d_model.

A state is an immutable value: the model returns a new one and never writes into the one it was
given (style principle 2), so a training engine can keep, detach or replay states freely.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import torch


@dataclasses.dataclass(frozen=True)
class MemformerState:
    """The state of B streams after some number of tokens.

    Attributes:
        memory: (B, S, D) the memory M_t that will encode the current segment; unit-norm rows.
        context: (B, L, D) the encoder states H_{t-1} of the previous segment, which the decoder of
            the current segment attends to. At the start of a stream it is the encoding of a
            single BOS token (decision 6), repeated L times (attending to L equal keys is
            attending to one).
        tokens: (B, L) int64, the current segment's tokens seen so far (the first ``position``
            entries of each row are meaningful): the encoder needs the whole segment once it ends.
        position: (B,) int64, how many tokens of the current segment each row has seen (0 .. L-1).
        started: (B,) bool. False for a fresh row: its memory and context are then computed from
            the parameters at the next call (so the initial memory is trained, and never stale).
    """

    memory: torch.Tensor
    context: torch.Tensor
    tokens: torch.Tensor
    position: torch.Tensor
    started: torch.Tensor

    @property
    def batch_size(self) -> int:
        return self.memory.size(0)

    def tensors(self) -> dict[str, torch.Tensor]:
        """The fields by name (for safetensors checkpoints and generic state handling)."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> "MemformerState":
        names = [field.name for field in dataclasses.fields(cls)]
        missing = [name for name in names if name not in tensors]
        if missing:
            raise ValueError(f"a Memformer state needs the tensors {', '.join(missing)}")
        return cls(**{name: tensors[name] for name in names})

    def replace(self, **changes: torch.Tensor) -> "MemformerState":
        return dataclasses.replace(self, **changes)

    def detach(self) -> "MemformerState":
        """The same values, cut from the autograd graph (what a truncated-BPTT engine carries)."""
        return self._map(lambda t: t.detach())

    def to(self, device: torch.device | str) -> "MemformerState":
        return self._map(lambda t: t.to(device))

    def select(self, rows: torch.Tensor | list[int]) -> "MemformerState":
        """The state of some rows (a 1-D index tensor or list)."""
        rows = torch.as_tensor(rows, dtype=torch.long, device=self.memory.device)
        return self._map(lambda t: t.index_select(0, rows))

    @staticmethod
    def cat(states: list["MemformerState"]) -> "MemformerState":
        """Stack the rows of several states into one batch."""
        return MemformerState(
            **{name: torch.cat([s.tensors()[name] for s in states]) for name in states[0].tensors()}
        )

    def num_bytes(self) -> int:
        """Bytes held by the state: fixed by the config and batch size, never by the stream's length."""
        return sum(t.numel() * t.element_size() for t in self._tensors())

    def _tensors(self) -> Iterator[torch.Tensor]:
        return iter(self.tensors().values())

    def _map(self, fn) -> "MemformerState":
        return MemformerState(**{name: fn(t) for name, t in self.tensors().items()})

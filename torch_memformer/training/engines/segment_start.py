"""The state at the start of a segment inside a window: only its memory needs remembering.

A segment that starts inside the window starts at in-segment position 0 with no tokens, and
``Memformer.advance`` from position 0 never reads ``state.context`` (the context only feeds the
decoder), so an engine can rebuild the whole state from the memory M_j alone. That is why MRBP
checkpoints memories and nothing else (spec 2).
"""

from __future__ import annotations

import torch

from ...model import MemformerState


def segment_start_state(window_state: MemformerState, memory_BSD: torch.Tensor) -> MemformerState:
    """The state entering a segment that starts inside the window, with memory ``memory_BSD``.

    ``window_state`` is the window's incoming state, used only for tensors of the right shape:
    its context is a placeholder that ``advance`` from position 0 never reads.
    """
    return MemformerState(
        memory=memory_BSD,
        context=window_state.context,
        tokens=torch.zeros_like(window_state.tokens),
        position=torch.zeros_like(window_state.position),
        started=torch.ones_like(window_state.started),
    )

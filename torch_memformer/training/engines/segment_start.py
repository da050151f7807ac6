"""The state at the start of a segment inside a window: only its memory needs remembering.

A segment that starts inside the window starts at in-segment position 0 with no tokens, and
``advance`` from position 0 reads only the state's memory (requirement 1 of the step contract,
``step_contract.py``; Memformer's decoder context and token buffer only feed the decoder), so an
engine can rebuild the whole state from the memory M_j alone. That is why MRBP checkpoints
memories and nothing else (spec 2).
"""

from __future__ import annotations

import torch

from .step_contract import State


def segment_start_state(window_state: State, memory: torch.Tensor) -> State:
    """The state entering a segment that starts inside the window, with memory ``memory``.

    ``window_state`` is the window's incoming state, used only for tensors of the right shape:
    its other fields are placeholders that ``advance`` from position 0 never reads. The rows
    count as started, so the model does not replace the memory with M_0.
    """
    return window_state.replace(
        memory=memory,
        position=torch.zeros_like(window_state.position),
        started=torch.ones_like(window_state.started),
    )

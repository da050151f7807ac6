"""Gradient checkpointing per segment (``torch.utils.checkpoint``): the textbook way to trade
compute for memory, kept as a comparison point for MRBP.

The window is split into the same units MRBP uses (``mrbp.py``): unit j encodes segment j from
memory M_j and decodes chunk j + 1 against H_j; a first unit decodes chunk 0 against the
incoming context. Each unit is one checkpoint, so only the memories between units and the
local losses are kept; during the single backward every unit is run forward a second time,
decoder included (MRBP reruns only the encoder and writer).
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from .step_contract import StepModel, StepState
from .runner import Runner
from .segment_start import segment_start_state
from .window_plan import WindowPlan


def checkpointed_window(
    runner: Runner, plan: WindowPlan, state: StepState
) -> tuple[torch.Tensor, StepState]:
    """Back-propagate the window loss with per-unit checkpoints; return (loss, next state)."""
    last = plan.num_chunks - 1

    def whole_window(model: StepModel) -> tuple[torch.Tensor, StepState]:
        def first_chunk() -> torch.Tensor:
            return plan.local_loss(model.predict(plan.chunks[0], state=state, reset=plan.resets[0]), 0)

        def unit(j: int, memory_BSD: torch.Tensor) -> tuple[torch.Tensor, StepState]:
            unit_state = state.replace(memory=memory_BSD) if j == 0 else segment_start_state(state, memory_BSD)
            after = model.advance(plan.chunks[j], state=unit_state, reset=plan.resets[j])
            logits = model.predict(plan.chunks[j + 1], state=after, reset=plan.resets[j + 1])
            return plan.local_loss(logits, j + 1), after

        loss = checkpoint(first_chunk, use_reentrant=False)
        last_state = state
        for j in range(last):
            unit_loss, last_state = checkpoint(unit, j, last_state.memory, use_reentrant=False)
            loss = loss + unit_loss
            # last_state enters segment j + 1: its memory feeds the next unit, and the rest (for
            # Memformer, the context H_j) matters only if the window ends inside that segment
            # (the outgoing state keeps it for the decoder).
        # Detached: only the no-grad advance below reads it (and DDP must find only the loss).
        return loss, last_state.detach()

    loss, last_state = runner.step(whole_window)
    with runner.sync(last=True):
        runner.backward(loss)
    with torch.no_grad():
        # The last segment's encoding only feeds the next window: no gradient needed.
        new_state = runner.model.advance(plan.chunks[last], state=last_state, reset=plan.resets[last])
    return loss.detach(), new_state.detach()

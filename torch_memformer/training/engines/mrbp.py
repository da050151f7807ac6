"""Memory Replay Back-Propagation (spec 2): BPTT's gradients at about one segment's memory.

Shape legend: B batch, S slots, D d_model (Memformer's memory is (B, S, D); another model's
``state.memory`` may have any trailing shape: the engine only stores it and hands gradients back).

The engine calls only the step contract (``step_contract.py``): ``advance``, ``predict`` and the
state's ``memory`` / ``replace``; written below for Memformer, it holds for any model that
implements the contract.

A window of chunks 0 .. J-1 (``window_plan.py``) is trained in units. Unit j (0 <= j <= J-2)
starts from the memory M_j, encodes segment j (H_j, M_{j+1} = advance) and decodes chunk j + 1
against H_j (predict); it straddles two chunks because H_j is what conditions the next chunk's
tokens. A unit "-1" decodes chunk 0 against the incoming state's context and has no encoder.

1. Replay pass, no gradients: advance through segments 0 .. J-2 (encoder + writer only, no
   decoder), keeping M_0 .. M_{J-1} and a snapshot of the random generators before each
   segment. Then advance through the last chunk for the outgoing state; nothing in the window's
   loss depends on that encoding, so it is never run again.
2. Unit -1: decode chunk 0, back-propagate its local loss.
3. For j = J-2 down to 0: m = M_j as a leaf that requires grad; restore segment j's snapshot
   and recompute the unit with grad (the encoder replays the masks of step 1); back-propagate
   local_loss_{j+1} + <M_{j+1}', g> in one backward; g = m.grad goes one segment back.

The parameters' gradients are the sum of all the backwards: exactly BPTT's (``bptt.py``), which
``tests/training/engines/test_engines_equivalence.py`` checks in float64. Live memory is the J memories plus one
unit's activations; the extra compute is one encoder + writer forward for J - 1 segments.

Randomness: encoders draw from the generator stream of step 1 (replayed per segment), decoders
from the stream that continues after it, so decoder and encoder masks never share draws and each
decoder runs only once.
"""

from __future__ import annotations

import functools

import torch

from .step_contract import StepModel, StepState
from . import rng
from .runner import Runner
from .segment_start import segment_start_state
from .window_plan import WindowPlan


def mrbp_window(runner: Runner, plan: WindowPlan, state: StepState) -> tuple[torch.Tensor, StepState]:
    """Back-propagate the window loss with MRBP; return (loss, state after the window)."""
    model = runner.model
    last = plan.num_chunks - 1

    # 1. The replay pass: the critical path only, no decoder, no grad.
    memories, snapshots = [state.memory], []
    with torch.no_grad():
        walking = state
        for j in range(last):
            snapshots.append(rng.capture(runner.device))
            walking = model.advance(plan.chunks[j], state=walking, reset=plan.resets[j])
            memories.append(walking.memory)
        new_state = model.advance(plan.chunks[last], state=walking, reset=plan.resets[last])
        del walking

    # 2. Unit -1: chunk 0 from the incoming context. Its own backward, so the peak holds one
    # decoder's activations here, not two.
    def first_chunk(m: StepModel) -> tuple[torch.Tensor, None]:
        return plan.local_loss(m.predict(plan.chunks[0], state=state, reset=plan.resets[0]), 0), None

    total = _run_unit(runner, first_chunk, last=last == 0, grad_BSD=None)

    # 3. Units J-2 .. 0, newest first, each handing its memory gradient one segment back. The
    # newest receives none: M_{J-1} feeds only the last segment's encoding, which leaves the
    # window detached.
    grad_BSD = None
    for j in range(last - 1, -1, -1):
        # M_0 needs no gradient: nothing before the window is trained through it.
        memory_BSD = memories[j].detach().requires_grad_(j > 0)
        unit_state = state.replace(memory=memory_BSD) if j == 0 else segment_start_state(state, memory_BSD)
        unit = functools.partial(
            _unit, plan=plan, j=j, unit_state=unit_state, encoder_rng=snapshots[j],
            decoder_rng=rng.capture(runner.device), wants_memory=grad_BSD is not None,
        )
        total = total + _run_unit(runner, unit, last=j == 0, grad_BSD=grad_BSD)
        grad_BSD = memory_BSD.grad
        memories[j + 1] = None  # no longer needed: the replay buffer shrinks as the sweep goes
    return total, new_state.detach()


def _unit(
    m: StepModel,
    *,
    plan: WindowPlan,
    j: int,
    unit_state: StepState,
    encoder_rng: rng.RngSnapshot,
    decoder_rng: rng.RngSnapshot,
    wants_memory: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Unit j with grad: recompute segment j from its memory (replaying the replay pass's
    dropout), decode chunk j + 1 against H_j; return the local loss and M_{j+1} when a gradient
    from the future will be back-propagated into it."""
    rng.restore(encoder_rng)
    after = m.advance(plan.chunks[j], state=unit_state, reset=plan.resets[j])
    rng.restore(decoder_rng)
    logits = m.predict(plan.chunks[j + 1], state=after, reset=plan.resets[j + 1])
    return plan.local_loss(logits, j + 1), after.memory if wants_memory else None


def _run_unit(runner: Runner, fn, *, last: bool, grad_BSD: torch.Tensor | None) -> torch.Tensor:
    """One forward with grad and its backward (the window's last one syncs DDP); the loss, detached."""
    with runner.sync(last=last):
        loss, memory_BSD = runner.step(fn)
        if grad_BSD is None:
            runner.backward(loss)
        else:
            runner.backward(loss, [memory_BSD], [grad_BSD])
    return loss.detach()

"""The reference engine: back-propagation through time, one autograd graph over the window.

It is the plainest thing that computes the window loss's gradients, and the one the other
engines are tested against. Its memory grows with the window: every activation of every
segment is kept until the backward.
"""

from __future__ import annotations

import torch

from ...model.loss import shifted_cross_entropy
from .runner import Runner
from .step_contract import StepModel, StepState
from .window_plan import WindowPlan


def bptt_window(runner: Runner, plan: WindowPlan, state: StepState) -> tuple[torch.Tensor, StepState]:
    """Back-propagate the window loss through one graph; return (loss, state after the window)."""

    def whole_window(model: StepModel) -> tuple[torch.Tensor, StepState]:
        if not plan.has_inner_resets:
            out = model(plan.input_ids, state=state, labels=plan.labels, reset=plan.resets[0])
            return out.loss, out.state.detach()
        # A row restarts inside the window: call the model once per stretch between restarts,
        # all in one graph, and score the concatenated logits. Across a cut, the last logit of a
        # stretch scores the first label of the next (the shift), which for a restarted row is
        # masked (decision 6).
        logits, stretch_state, start = [], state, 0
        cuts = [j for j, reset in enumerate(plan.resets) if reset is not None and j > 0] + [plan.num_chunks]
        for stop in cuts:
            stretch = torch.cat(plan.chunks[start:stop], dim=1)
            out = model(stretch, state=stretch_state, reset=plan.resets[start])
            logits.append(out.logits)
            stretch_state, start = out.state, stop
        return shifted_cross_entropy(torch.cat(logits, dim=1), plan.labels), stretch_state.detach()

    # The step returns the state detached: the last segment's encoding feeds only the next
    # window, and DDP (find_unused_parameters) must not wait for gradients through it.
    loss, new_state = runner.step(whole_window)
    with runner.sync(last=True):
        runner.backward(loss)
    return loss.detach(), new_state

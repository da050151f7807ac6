"""Training engines: the gradients of a window of segments by BPTT, checkpointing or MRBP.

    result = backward_window(model, input_ids, state=state, method="mrbp")
    optimizer.step(); optimizer.zero_grad()
    state = result.state

See ``docs/training.md`` for the methods, resets and padding, autocast, accumulation and DDP.
"""

from .ddp import StepModule
from .window import WindowResult, backward_window

__all__ = ["StepModule", "WindowResult", "backward_window"]

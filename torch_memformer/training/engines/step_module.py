"""DistributedDataParallel support: the module to wrap, so DDP sees each engine step.

DDP prepares its gradient all-reduce inside its own ``forward``, but an engine step is not
``Memformer.forward``: MRBP calls ``advance`` and ``predict`` several times per window. So the
caller wraps a ``StepModule`` instead of the model::

    ddp = DistributedDataParallel(StepModule(model))
    result = backward_window(ddp, input_ids, state=state)

and the engine runs each of its steps as ``ddp(step)``. Every backward of a window but the last
runs under ``ddp.no_sync()``, so the gradients are all-reduced once per window, overlapped with
the window's last backward. To accumulate over several windows, keep the earlier windows inside
``with ddp.no_sync():`` yourself; the engine leaves an enclosing ``no_sync`` in force.
"""

from __future__ import annotations

from typing import Any, Callable

from torch import nn


class StepModule(nn.Module):
    """A model whose ``forward`` runs one training step: ``StepModule(model)(fn) == fn(model)``.

    Holds the model as ``.model`` (so its parameters are this module's parameters) and nothing else.
    Any model works (the trainer wraps the baselines the same way); ``backward_window`` accepts it
    around a Memformer.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"StepModule wraps a torch.nn.Module, got {type(model).__name__}")
        self.model = model

    def forward(self, step: Callable[[nn.Module], Any]) -> Any:
        return step(self.model)

"""Training engines: the gradients of one window of segments, and nothing else of a training run.

    result = backward_window(model, input_ids, state=state, method="mrbp")
    optimizer.step(); optimizer.zero_grad()
    state = result.state

Memformer's engines compute the same gradients three ways (``docs/training.md``): ``bptt.py``
(the reference, one graph over the window), ``gradient_checkpointing.py``
(``torch.utils.checkpoint`` per segment) and ``mrbp.py`` (Memory Replay Back-Propagation).
``memformer_window.py`` checks the input and dispatches to them (``backward_window``), for a
Memformer or any model implementing the step contract (``step_contract.py``: ``StepModel``,
``StepState``);
``any_model_window.py`` is what the training loop calls for any registered model
(``train_window``: Memformer through ``backward_window``, the baselines by truncated BPTT).
What the engines share: ``window_plan.py`` (the window cut at segment boundaries, and its
labels), ``runner.py`` (calling the model and back-propagating, directly or through DDP),
``step_module.py`` (the module DDP wraps), ``rng.py`` (replaying dropout) and
``segment_start.py`` (the state entering a segment inside the window).

The engines import only ``model/``; the loop, configs, checkpoints and ``torchrun`` are the
training package's (``torch_memformer.training``).
"""

from .any_model_window import train_window, window_targets
from .memformer_window import WindowResult, backward_window
from .step_contract import StepModel, StepState
from .step_module import StepModule

__all__ = ["StepModel", "StepModule", "StepState", "WindowResult", "backward_window", "train_window", "window_targets"]

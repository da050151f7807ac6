"""One training window for any registered model: the gradients of the window's loss.

Shape legend: B batch, N tokens in the window.

- Memformer: ``backward_window`` (``memformer_window.py``) with MRBP (default), gradient
  checkpointing or BPTT.
- The baselines (Transformer-XL, Transformer): truncated BPTT over the window, written here:
  one graph over the window, the stream state carried detached between windows, exactly as
  Transformer-XL was trained (Dai et al. 2019). ``backward_window`` takes Memformer or another
  model implementing the step contract (``step_contract.py``), which the baselines' states do
  not (no ``position`` / ``started``; Transformer-XL also carries ``last_hidden``).

Both compute the same loss: the token mean of the cross-entropy of every token of the window but
its first (Hugging Face shift), ignoring labels of -100 (padding, and a stream's first token).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ...model import Memformer
from ...model.loss import shifted_cross_entropy
from .memformer_window import WindowResult, backward_window
from .step_module import StepModule


def window_targets(labels_BN: torch.Tensor) -> torch.Tensor:
    """The number of tokens the window loss averages over (labels[:, 1:] that are not -100)."""
    return (labels_BN[:, 1:] != -100).sum()


def train_window(
    module: nn.Module,
    input_ids: torch.Tensor,
    *,
    labels: torch.Tensor,
    reset: torch.Tensor,
    state,
    method: str,
    loss_weight: float = 1.0,
    grad_scaler: torch.amp.GradScaler | None = None,
) -> WindowResult:
    """Accumulate the gradients of ``loss_weight * window loss`` into ``.grad``.

    ``module`` is the model, or its DDP wrapper (``distributed.wrap``). ``reset`` (B, N) marks
    fresh streams; resets fall at segment boundaries (the data layer guarantees it).
    Returns the detached loss, the detached state after the window and the target count.
    """
    model = _inner(module)
    if isinstance(model, Memformer):
        return backward_window(module, input_ids, state=state, labels=labels, reset=reset, method=method,
                               loss_weight=loss_weight, grad_scaler=grad_scaler)
    if method != "bptt":
        raise ValueError(f"the {type(model).__name__} baseline trains with method 'bptt', not {method!r}")
    return _truncated_bptt(module, input_ids, labels=labels, reset=reset, state=state, loss_weight=loss_weight,
                           grad_scaler=grad_scaler)


def _truncated_bptt(module, input_ids_BN, *, labels, reset, state, loss_weight, grad_scaler) -> WindowResult:
    """One graph over the window, cut into stretches where some row restarts; the last logit of
    a stretch scores the first label of the next (masked for rows that restart there)."""

    def whole_window(model: nn.Module):
        cuts = torch.nonzero(reset[:, 1:].any(dim=0)).flatten().add(1).tolist() + [input_ids_BN.size(1)]
        logits, stretch_state, start = [], state, 0
        for stop in cuts:
            out = model(input_ids_BN[:, start:stop], state=stretch_state, reset=reset[:, start])
            logits.append(out.logits)
            stretch_state, start = out.state, stop
        return shifted_cross_entropy(torch.cat(logits, dim=1), labels), stretch_state

    state = None if state is None else state.detach()
    with torch.enable_grad():
        loss, new_state = module(whole_window) if isinstance(module, DistributedDataParallel) else whole_window(module)
        scaled = loss * loss_weight if loss_weight != 1.0 else loss
        if grad_scaler is not None:
            scaled = grad_scaler.scale(scaled)
        device_type = input_ids_BN.device.type
        with torch.autocast(device_type=device_type, enabled=False):
            scaled.backward()
    return WindowResult(loss=loss.detach(), state=new_state.detach(), num_targets=window_targets(labels))


def _inner(module: nn.Module) -> nn.Module:
    if isinstance(module, DistributedDataParallel):
        module = module.module
    return module.model if isinstance(module, StepModule) else module

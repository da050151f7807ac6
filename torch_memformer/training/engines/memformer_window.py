"""``backward_window``: the gradients of one window's loss, by BPTT, checkpointing or MRBP.

Shape legend: B batch, N tokens in the window.

It trains a Memformer, or any model that implements the step contract (``step_contract.py``).

This file checks the user's input, builds the window plan (``window_plan.py``) and dispatches to
an engine. The three engines compute the same gradients (``tests/training/engines/test_engines_equivalence.py``);
they differ in memory and speed (``benchmarks/mrbp_memory.py``, ``docs/results.md``).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from torch.nn.parallel import DistributedDataParallel

from ...model.checks import check_id_tensor
from .bptt import bptt_window
from .gradient_checkpointing import checkpointed_window
from .mrbp import mrbp_window
from .runner import Runner
from .step_contract import StepModel, StepState, check_step_model
from .step_module import StepModule
from .window_plan import cut_window

Method = Literal["bptt", "checkpoint", "mrbp"]
_ENGINES = {"bptt": bptt_window, "checkpoint": checkpointed_window, "mrbp": mrbp_window}


@dataclasses.dataclass(frozen=True)
class WindowResult:
    """What ``backward_window`` returns.

    loss: 0-dim tensor, detached: the window's token-mean loss (what ``model(...).loss`` gives).
    state: the stream state after the window, detached: pass it to the next window.
    num_targets: 0-dim int64 tensor, the number of tokens the loss averaged over (weights for
        a token-weighted mean across windows).
    """

    loss: torch.Tensor
    state: StepState
    num_targets: torch.Tensor


def backward_window(
    model: StepModel | DistributedDataParallel,
    input_ids: torch.Tensor,
    *,
    state: StepState | None = None,
    labels: torch.Tensor | None = None,
    reset: torch.Tensor | None = None,
    method: Method = "mrbp",
    loss_weight: float = 1.0,
    grad_scaler: torch.amp.GradScaler | None = None,
) -> WindowResult:
    """Accumulate into ``.grad`` the gradients of the window loss over ``input_ids``.

    The loss is the one ``model(input_ids, state=state, labels=labels).loss`` defines: the mean
    cross-entropy of every token but the window's first, ignoring labels of -100 (padding) and
    the first token after a reset (decision 6). The incoming state is a constant: no gradient
    flows into it (the engine detaches it), as in truncated BPTT across windows.

    Args:
        model: a Memformer or another model implementing the step contract
            (``step_contract.StepModel``), or ``DistributedDataParallel(StepModule(model))``
            (see ``step_module.py``).
        input_ids: (B, N) token ids, N >= 1; the window may start and end mid-segment.
        state: the state before the window (fresh streams if None). All rows must be at the
            same position inside their segment.
        labels: (B, N) labels, -100 ignored; defaults to ``input_ids``.
        reset: (B,) bool, rows that restart before the window; or (B, N) bool, rows that
            restart before token i, which must be the first token of a segment.
        method: "mrbp" (memory replay), "checkpoint" (torch.utils.checkpoint per segment) or
            "bptt" (one graph over the window, the reference).
        loss_weight: the gradients are those of ``loss_weight * loss`` (e.g. 1 / windows per step
            when accumulating).
        grad_scaler: a ``torch.amp.GradScaler`` for float16 autocast: the losses are scaled
            before each backward; unscale and step with the scaler as usual.

    Returns:
        WindowResult(loss, state, num_targets).

    Call it inside ``torch.autocast`` to train in mixed precision; the engine runs its backward
    passes with autocast off.
    """
    if method not in _ENGINES:
        raise ValueError(f"method must be one of {', '.join(map(repr, _ENGINES))}, got {method!r}")
    inner, ddp = _unwrap(model)
    input_ids = check_id_tensor(input_ids)
    batch, length = input_ids.shape
    labels = input_ids if labels is None else _check_labels(labels, input_ids)
    reset_BN = None if reset is None else _check_reset(reset, batch, length, input_ids.device)
    if state is None:
        state = inner.init_state(batch, device=input_ids.device)
    elif not isinstance(state, inner.state_class):
        raise TypeError(
            f"state must be a {inner.state_class.__name__} (from init_state or a WindowResult), got {type(state).__name__}"
        )
    state = state.detach()
    position = _window_position(state, reset_BN, batch)
    _check_reset_positions(reset_BN, position, inner.config.segment_len)
    if isinstance(loss_weight, bool) or not isinstance(loss_weight, (int, float)):
        raise ValueError(f"loss_weight must be a number, got {loss_weight!r}")

    plan = cut_window(input_ids, labels, reset_BN, position=position, segment_len=inner.config.segment_len)
    runner = Runner(
        inner, ddp=ddp, device=input_ids.device, loss_weight=float(loss_weight), grad_scaler=grad_scaler
    )
    with torch.enable_grad():
        loss, new_state = _ENGINES[method](runner, plan, state)
    return WindowResult(loss=loss, state=new_state, num_targets=plan.count)


def _unwrap(model: StepModel | DistributedDataParallel) -> tuple[StepModel, DistributedDataParallel | None]:
    """The model the engines call, and the DDP wrapper around it (None when not distributed)."""
    if isinstance(model, DistributedDataParallel):
        if not isinstance(model.module, StepModule):
            raise TypeError(
                "under DistributedDataParallel, wrap a StepModule: "
                "DistributedDataParallel(torch_memformer.training.StepModule(model))"
            )
        check_step_model(model.module.model)
        return model.module.model, model
    check_step_model(model)
    return model, None


def _check_labels(labels: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    if not isinstance(labels, torch.Tensor) or labels.shape != input_ids.shape:
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"labels must have the shape of input_ids {tuple(input_ids.shape)}, got {shape}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must hold integer token ids (-100 to ignore), got dtype {labels.dtype}")
    return labels.to(device=input_ids.device, dtype=torch.long)


def _check_reset(reset: torch.Tensor, batch: int, length: int, device: torch.device) -> torch.Tensor:
    """A (B,) or (B, N) reset as (B, N) bool: True where a row restarts before that token."""
    if not isinstance(reset, torch.Tensor) or reset.shape not in ((batch,), (batch, length)):
        shape = tuple(reset.shape) if isinstance(reset, torch.Tensor) else type(reset).__name__
        raise ValueError(
            f"reset must be a bool tensor of shape ({batch},) (rows restarting before the window) "
            f"or ({batch}, {length}) (rows restarting before a token), got {shape}"
        )
    reset = reset.to(device=device, dtype=torch.bool)
    if reset.dim() == 1:
        return torch.nn.functional.pad(reset.unsqueeze(1), (0, length - 1))
    return reset


def _window_position(state: StepState, reset_BN: torch.Tensor | None, batch: int) -> int:
    """The in-segment position of the window's first token, shared by all rows."""
    if state.position.shape != (batch,) or state.started.shape != (batch,):
        raise ValueError(
            f"state is for a batch of {state.position.shape[0]} rows but input_ids has {batch}; "
            "pass a state made for this batch size"
        )
    # A fresh row, or one restarting before the first token, begins a new segment.
    restarts_B = ~state.started
    if reset_BN is not None:
        restarts_B = restarts_B | reset_BN[:, 0]
    positions = state.position.masked_fill(restarts_B, 0).tolist()
    if len(set(positions)) > 1:
        raise ValueError(
            f"the rows of the incoming state are at different positions inside their segment "
            f"({sorted(set(positions))}); the engines need one shared position. Feed rows that "
            "start mid-segment separately, or pad documents to whole segments so resets fall on "
            "segment boundaries"
        )
    return positions[0]


def _check_reset_positions(reset_BN: torch.Tensor | None, position: int, segment_len: int) -> None:
    """Inside the window a row may only restart where a segment starts."""
    if reset_BN is None:
        return
    inner = torch.nonzero(reset_BN[:, 1:].any(dim=0)).flatten().add(1).tolist()
    misplaced = [i for i in inner if (position + i) % segment_len]
    if misplaced:
        first = misplaced[0]
        starts = list(range((segment_len - position) % segment_len or segment_len, reset_BN.size(1), segment_len))
        allowed = ", ".join(map(str, starts[:4])) + (", ..." if len(starts) > 4 else "") if starts else "none"
        raise ValueError(
            f"reset before token {first} falls at position {(position + first) % segment_len} of a segment "
            f"(segment_len {segment_len}); inside a window a row may only restart where a segment starts "
            f"(in this window: tokens {allowed}). "
            "Pad each document to a multiple of segment_len, or start a new window at the reset"
        )

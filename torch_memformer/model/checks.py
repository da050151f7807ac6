"""The input checks of the stream contract, shared by every stream LM (``stream_lm.py``).

Bad input from a user raises ``TypeError`` / ``ValueError`` with a message that says what to pass
instead (style principle 12). Each check runs before any computation, so an error never leaves a
half-read stream behind.
"""

from __future__ import annotations

from typing import Any

import torch


def check_batch_size(batch_size: int) -> None:
    """``init_state``'s argument: a positive int (a bool is not one)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def check_id_tensor(input_ids: torch.Tensor) -> torch.Tensor:
    """A (B, N) tensor of integer ids, B, N >= 1, returned as int64; no vocabulary bound (the
    gradient engines check this much of any step-contract model's input)."""
    if not isinstance(input_ids, torch.Tensor):
        raise TypeError(f"input_ids must be a torch.Tensor of token ids, got {type(input_ids).__name__}")
    if input_ids.dim() != 2 or input_ids.size(1) < 1 or input_ids.size(0) < 1:
        raise ValueError(f"input_ids must have shape (batch, n) with n >= 1, got {tuple(input_ids.shape)}")
    if input_ids.dtype.is_floating_point or input_ids.dtype == torch.bool:
        raise ValueError(f"input_ids must hold integer token ids, got dtype {input_ids.dtype}")
    return input_ids.long()


def check_ids(input_ids: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Token ids (B, N), B, N >= 1, inside the vocabulary; returned as int64."""
    check_id_tensor(input_ids)
    # One host sync for both bounds: an out-of-range id would otherwise fail deep inside the
    # embedding (or, on a GPU, as an asynchronous device assert).
    low, high = int(input_ids.min()), int(input_ids.max())
    if low < 0 or high >= vocab_size:
        bad = low if low < 0 else high
        raise ValueError(
            f"token id {bad} is outside the vocabulary 0..{vocab_size - 1}; "
            "check the tokenizer matches the model's vocab_size"
        )
    return input_ids.long()


def check_embeds(inputs_embeds: torch.Tensor, d_model: int) -> torch.Tensor:
    """Embedded inputs (B, N, d_model), B, N >= 1, floating point (``Memformer.forward_embeds``)."""
    if not isinstance(inputs_embeds, torch.Tensor):
        raise TypeError(f"inputs_embeds must be a torch.Tensor, got {type(inputs_embeds).__name__}")
    shape = tuple(inputs_embeds.shape)
    if inputs_embeds.dim() != 3 or shape[0] < 1 or shape[1] < 1 or shape[2] != d_model:
        raise ValueError(f"inputs_embeds must have shape (batch, n, d_model={d_model}) with n >= 1, got {shape}")
    if not inputs_embeds.dtype.is_floating_point:
        raise ValueError(f"inputs_embeds must be floating point, got dtype {inputs_embeds.dtype}")
    return inputs_embeds


def check_labels(labels: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """Labels with the shape of ``input_ids``; returned as int64."""
    if not isinstance(labels, torch.Tensor) or labels.shape != input_ids.shape:
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"labels must have the shape of input_ids {tuple(input_ids.shape)}, got {shape}")
    return labels.long()


def check_reset(reset: torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    """A (B,) mask of the rows to restart; returned as bool on ``device`` (the input's)."""
    if not isinstance(reset, torch.Tensor) or reset.shape != (batch,):
        shape = tuple(reset.shape) if isinstance(reset, torch.Tensor) else type(reset).__name__
        raise ValueError(f"reset must be a bool tensor of shape ({batch},), got {shape}")
    return reset.to(device=device, dtype=torch.bool)


def check_state_class(state: Any, state_class: type) -> None:
    """A state of the model's own class (checked before its shapes, which a model reads off it)."""
    if not isinstance(state, state_class):
        raise TypeError(
            f"state must be a {state_class.__name__} (from init_state or an output), got {type(state).__name__}"
        )


def check_state_shapes(state: Any, expected: dict[str, tuple[int, ...]]) -> None:
    """A state whose fields have the ``expected`` shapes."""
    for name, shape in expected.items():
        actual = tuple(getattr(state, name).shape)
        if actual != shape:
            raise ValueError(
                f"state.{name} has shape {actual} but this model and batch expect {shape}; "
                "pass a state made by this model for the same batch size"
            )

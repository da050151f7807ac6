"""Bad input to ``backward_window`` fails early, with a message that says how to fix it."""

from __future__ import annotations

import pytest
import torch

from torch_memformer import Memformer, MemformerConfig
from torch_memformer.training.engines import StepModule, backward_window

SEGMENT = 4


@pytest.fixture(scope="module")
def model() -> Memformer:
    torch.manual_seed(0)
    config = MemformerConfig(
        vocab_size=11, d_model=8, num_heads=2, d_ff=16, num_encoder_layers=1, num_decoder_layers=1,
        num_slots=2, segment_len=SEGMENT,
    )
    return Memformer(config)


def ids(batch: int = 2, length: int = 10) -> torch.Tensor:
    return torch.randint(0, 11, (batch, length), generator=torch.Generator().manual_seed(0))


def test_unknown_method(model) -> None:
    with pytest.raises(ValueError, match="method must be one of 'bptt', 'checkpoint', 'mrbp'"):
        backward_window(model, ids(), method="tbptt")


def test_reset_inside_a_segment_is_refused_with_the_boundaries(model) -> None:
    reset = torch.zeros(2, 10, dtype=torch.bool)
    reset[1, 5] = True
    with pytest.raises(ValueError, match=r"reset before token 5 falls at position 1 of a segment.*tokens 4, 8\)"):
        backward_window(model, ids(), reset=reset)


def test_reset_boundaries_follow_the_incoming_position(model) -> None:
    with torch.no_grad():
        state = model(ids(length=3)).state  # position 3: the window's segments start at tokens 1, 5, 9
    reset = torch.zeros(2, 10, dtype=torch.bool)
    reset[0, 5] = True
    backward_window(model, ids(), state=state, reset=reset)
    reset[0, 4] = True
    with pytest.raises(ValueError, match="tokens 1, 5, 9"):
        backward_window(model, ids(), state=state, reset=reset)


def test_rows_at_different_positions_are_refused(model) -> None:
    with torch.no_grad():
        state = model(ids(length=3)).state
    # Restarting one row before the window puts it at position 0 while the other stays at 3.
    with pytest.raises(ValueError, match=r"different positions inside their segment \(\[0, 3\]\)"):
        backward_window(model, ids(), state=state, reset=torch.tensor([True, False]))
    # Restarting all of them is fine.
    backward_window(model, ids(), state=state, reset=torch.tensor([True, True]))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"input_ids": torch.zeros(4, dtype=torch.long)}, ValueError, r"shape \(batch, n\)"),
        ({"input_ids": torch.zeros(2, 3)}, ValueError, "integer token ids"),
        ({"labels": torch.zeros(2, 9, dtype=torch.long)}, ValueError, "labels must have the shape"),
        ({"reset": torch.zeros(3, dtype=torch.bool)}, ValueError, r"reset must be a bool tensor of shape \(2,\)"),
        ({"state": "fresh"}, TypeError, "state must be a MemformerState"),
        ({"loss_weight": "half"}, ValueError, "loss_weight must be a number"),
    ],
)
def test_bad_arguments(model, kwargs, error, message) -> None:
    arguments = {"input_ids": ids(), **kwargs}
    with pytest.raises(error, match=message):
        backward_window(model, arguments.pop("input_ids"), **arguments)


def test_state_for_another_batch_size(model) -> None:
    with pytest.raises(ValueError, match="batch of 3 rows but input_ids has 2"):
        backward_window(model, ids(), state=model.init_state(3))


def test_model_must_be_a_memformer_or_a_wrapped_step_module(model) -> None:
    with pytest.raises(TypeError, match="must be a Memformer"):
        backward_window(torch.nn.Linear(2, 2), ids())
    with pytest.raises(TypeError, match="StepModule wraps a torch.nn.Module"):
        StepModule(lambda x: x)
    linear = torch.nn.Linear(2, 2)
    assert StepModule(linear)(lambda m: m) is linear


def test_runs_even_when_called_under_no_grad(model) -> None:
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        result = backward_window(model, ids())
    assert all(p.grad is not None for p in model.decoder.parameters())
    assert torch.isfinite(result.loss)

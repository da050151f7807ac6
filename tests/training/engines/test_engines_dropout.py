"""With dropout, MRBP's gradient is the gradient of its own loss: the recomputed segments replay
the dropout masks of the no-grad pass.

The check is black-box. With the generator seeded the same way, a window draws the same masks
whatever the parameter values, so its loss F(theta) is a deterministic function; its directional
derivative, by central differences in float64, must match <gradient, direction>. If a recomputed
segment drew fresh masks, the memory it hands back would not be the one the later segments were
trained on, and the gradient would be that of no function at all; the negative control switches
the RNG restore off and sees the check fail.
"""

from __future__ import annotations

import pytest
import torch

from engine_support import tiny_memformer
from torch_memformer import Memformer
from torch_memformer.training.engines import backward_window
from torch_memformer.training.engines import mrbp as mrbp_module

SEGMENT = 4
VOCAB = 13


def make_model() -> Memformer:
    # A writer that starts by taking half of each segment (write_keep_init 0.5), so the encoder's
    # dropout reaches the memory strongly enough for the negative control.
    return tiny_memformer(vocab_size=VOCAB, segment_len=SEGMENT, num_encoder_layers=2, dropout=0.3,
                          write_keep_init=0.5).double().train()


def loss_and_grad(model: Memformer, input_ids: torch.Tensor, method: str) -> tuple[float, list[torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    torch.manual_seed(1234)
    result = backward_window(model, input_ids, method=method)
    return float(result.loss), [p.grad.clone() for p in model.parameters()]


def loss_at(model: Memformer, input_ids: torch.Tensor, method: str, direction: list[torch.Tensor], step: float) -> float:
    with torch.no_grad():
        for p, d in zip(model.parameters(), direction):
            p.add_(d, alpha=step)
    loss, _ = loss_and_grad(model, input_ids, method)
    with torch.no_grad():
        for p, d in zip(model.parameters(), direction):
            p.sub_(d, alpha=step)
    return loss


def directional_mismatch(model: Memformer, input_ids: torch.Tensor, method: str) -> float:
    """Worst relative gap between <grad, d> and the central difference of the loss along d."""
    _, grad = loss_and_grad(model, input_ids, method)
    generator = torch.Generator().manual_seed(7)
    worst = 0.0
    for _ in range(2):
        direction = [torch.randn(p.shape, generator=generator, dtype=p.dtype) for p in model.parameters()]
        predicted = sum(float((g * d).sum()) for g, d in zip(grad, direction))
        step = 1e-6
        measured = (loss_at(model, input_ids, method, direction, step) - loss_at(model, input_ids, method, direction, -step)) / (2 * step)
        worst = max(worst, abs(predicted - measured) / abs(measured))
    return worst


@pytest.fixture(scope="module")
def window() -> tuple[Memformer, torch.Tensor]:
    model = make_model()
    return model, torch.randint(0, VOCAB, (2, 4 * SEGMENT), generator=torch.Generator().manual_seed(3))


def test_dropout_is_on_and_draws_per_call(window) -> None:
    """Guard for the checks below: the seeded loss is reproducible, a new seed changes it."""
    model, input_ids = window
    first, _ = loss_and_grad(model, input_ids, "mrbp")
    again, _ = loss_and_grad(model, input_ids, "mrbp")
    torch.manual_seed(99)
    other = float(backward_window(model, input_ids, method="mrbp").loss)
    assert first == again
    assert abs(first - other) > 1e-3


@pytest.mark.parametrize("method", ["mrbp", "checkpoint"])
def test_gradient_with_dropout_is_the_gradient_of_the_loss(window, method: str) -> None:
    model, input_ids = window
    assert directional_mismatch(model, input_ids, method) < 1e-6


def test_without_mask_replay_the_gradient_is_wrong(window, monkeypatch) -> None:
    """Negative control: the same check fails when MRBP does not restore the generators."""
    model, input_ids = window
    monkeypatch.setattr(mrbp_module.rng, "restore", lambda snapshot: None)
    assert directional_mismatch(model, input_ids, "mrbp") > 1e-3

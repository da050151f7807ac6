"""MRBP and checkpointing compute BPTT's gradients exactly (float64, no dropout), for windows of
1, 2 and 5 segments, starting and ending mid-segment, with padding and with resets; and the
loss and outgoing state are the ones ``model(...)`` defines."""

from __future__ import annotations

import pytest
import torch

from engine_support import tiny_memformer
from torch_memformer import Memformer
from torch_memformer.training.engines import backward_window

SEGMENT = 4
BATCH = 3
VOCAB = 17


def make_model(seed: int = 0) -> Memformer:
    return tiny_memformer(seed=seed, vocab_size=VOCAB, segment_len=SEGMENT, num_encoder_layers=2,
                          num_decoder_layers=2).double()


def run(model: Memformer, method: str, input_ids: torch.Tensor, **kwargs):
    """The window's result and every parameter's gradient (zeros where none arrived)."""
    model.zero_grad(set_to_none=True)
    result = backward_window(model, input_ids, method=method, **kwargs)
    grads = {
        name: torch.zeros_like(p) if p.grad is None else p.grad.clone() for name, p in model.named_parameters()
    }
    return result, grads


def max_relative_error(grads: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> float:
    """max |a - b| / max |b| per parameter, the worst over parameters.

    Some parameters get a gradient that is exactly zero in exact arithmetic (a key bias adds
    the same number to all logits of a query, which the softmax ignores), so BPTT's own value
    is rounding noise (~1e-20); for those, relative error has no meaning and the gradient is
    compared to the largest gradient of the model instead.
    """
    scale = max(float(g.abs().max()) for g in reference.values())
    worst = 0.0
    for name, ref in reference.items():
        size = float(ref.abs().max())
        diff = float((grads[name] - ref).abs().max())
        worst = max(worst, diff / size if size > 1e-12 * scale else diff / scale)
    return worst


def assert_same_state(state, reference) -> None:
    for name, tensor in reference.tensors().items():
        other = state.tensors()[name]
        assert other.dtype == tensor.dtype, name
        assert torch.allclose(other, tensor, rtol=0, atol=1e-12) if tensor.is_floating_point() else torch.equal(other, tensor), name


def mid_segment_state(model: Memformer, prefix: int) -> object:
    """A state whose rows are ``prefix`` tokens into a stream (position prefix % SEGMENT)."""
    with torch.no_grad():
        return model(torch.randint(0, VOCAB, (BATCH, prefix))).state


@pytest.mark.parametrize("segments", [1, 2, 5])
@pytest.mark.parametrize("case", ["plain", "mid_start_mid_end", "padding", "resets", "restart_all_mid_segment"])
def test_mrbp_and_checkpoint_gradients_equal_bptt(segments: int, case: str) -> None:
    model = make_model()
    torch.manual_seed(1)
    length = segments * SEGMENT
    kwargs = {}
    if case == "mid_start_mid_end":
        # Start 3 tokens into a segment and end 2 tokens into one: the first and last chunks are partial.
        kwargs["state"] = mid_segment_state(model, 2 * SEGMENT + 3)
        length = segments * SEGMENT - 1
    input_ids = torch.randint(0, VOCAB, (BATCH, length))
    if case == "padding":
        labels = input_ids.clone()
        labels[0, length // 2 :] = -100  # a short row, padded to the window
        labels[2, 1:3] = -100
        kwargs["labels"] = labels
    if case == "resets":
        kwargs["state"] = mid_segment_state(model, 5 * SEGMENT)
        reset = torch.zeros(BATCH, length, dtype=torch.bool)
        reset[0, 0] = True  # row 0 starts a new document with the window
        if segments > 1:
            reset[1, SEGMENT] = True  # row 1 starts one at the second segment
        if segments > 2:
            reset[2, 3 * SEGMENT] = True
            reset[0, 2 * SEGMENT] = True  # and row 0 another one
        kwargs["reset"] = reset
    if case == "restart_all_mid_segment":
        # Every row restarts before the window: the window then starts a segment, whatever the
        # incoming position was.
        kwargs["state"] = mid_segment_state(model, 2 * SEGMENT + 1)
        kwargs["reset"] = torch.ones(BATCH, dtype=torch.bool)
    reference, reference_grads = run(model, "bptt", input_ids, **kwargs)
    for method in ("checkpoint", "mrbp"):
        result, grads = run(model, method, input_ids, **kwargs)
        assert max_relative_error(grads, reference_grads) <= 1e-9, method
        assert abs(float(result.loss - reference.loss)) <= 1e-12, method
        assert int(result.num_targets) == int(reference.num_targets)
        assert_same_state(result.state, reference.state)


def test_loss_and_state_are_what_the_model_defines() -> None:
    model = make_model()
    torch.manual_seed(2)
    state = mid_segment_state(model, 6)
    input_ids = torch.randint(0, VOCAB, (BATCH, 3 * SEGMENT + 1))
    labels = input_ids.clone()
    labels[1, 5:] = -100
    with torch.no_grad():
        expected = model(input_ids, state=state, labels=labels)
    for method in ("bptt", "checkpoint", "mrbp"):
        result, _ = run(model, method, input_ids, state=state, labels=labels)
        assert abs(float(result.loss - expected.loss)) <= 1e-12, method
        assert_same_state(result.state, expected.state)
        assert not result.loss.requires_grad and not result.state.memory.requires_grad
        assert int(result.num_targets) == int((labels[:, 1:] != -100).sum())


def test_a_reset_inside_the_window_starts_a_new_stream() -> None:
    """Row by row, a window with a reset at token i scores the tokens before i as the old
    stream and the tokens after it as a fresh stream whose first token is not predicted."""
    model = make_model()
    torch.manual_seed(3)
    state = mid_segment_state(model, SEGMENT).select([0])
    input_ids = torch.randint(0, VOCAB, (1, 3 * SEGMENT))
    cut = 2 * SEGMENT
    reset = torch.zeros(1, 3 * SEGMENT, dtype=torch.bool)
    reset[0, cut] = True
    with torch.no_grad():
        before = model(input_ids[:, :cut], state=state, labels=input_ids[:, :cut])
        after = model(input_ids[:, cut:], labels=input_ids[:, cut:])
    expected = (before.loss * (cut - 1) + after.loss * (3 * SEGMENT - cut - 1)) / (3 * SEGMENT - 2)
    for method in ("bptt", "checkpoint", "mrbp"):
        result, _ = run(model, method, input_ids, state=state, reset=reset)
        assert abs(float(result.loss - expected)) <= 1e-12, method
        assert_same_state(result.state, after.state)


def test_gradients_accumulate_across_windows_with_the_carried_state() -> None:
    """Two windows back to back without zeroing: the sum of each window's BPTT gradients, the
    second window continuing from the first one's state; loss_weight scales them."""
    model = make_model()
    torch.manual_seed(4)
    first, second = torch.randint(0, VOCAB, (2, BATCH, 2 * SEGMENT + 2))
    expected = {}
    state = None
    for window in (first, second):
        result, grads = run(model, "bptt", window, state=state)
        state = result.state
        for name, grad in grads.items():
            expected[name] = expected.get(name, 0) + 0.5 * grad
    for method in ("checkpoint", "mrbp"):
        model.zero_grad(set_to_none=True)
        state = None
        for window in (first, second):
            state = backward_window(model, window, state=state, method=method, loss_weight=0.5).state
        grads = {name: p.grad for name, p in model.named_parameters()}
        assert max_relative_error(grads, expected) <= 1e-9, method

"""The stream contract: causality, split-anywhere equivalence, resets, constant state, the three views."""

import pytest
import torch

from conftest import tiny_model


def test_logits_shape_and_loss_matches_manual(model, ids):
    out = model(ids, labels=ids)
    assert out.logits.shape == (3, 45, 50)
    manual = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, 50), ids[:, 1:].reshape(-1))
    torch.testing.assert_close(out.loss, manual)


def test_loss_ignores_minus_100(model, ids):
    labels = ids.clone()
    labels[:, 10:20] = -100
    out = model(ids, labels=labels)
    keep = labels[:, 1:] != -100
    manual = torch.nn.functional.cross_entropy(out.logits[:, :-1][keep], labels[:, 1:][keep])
    torch.testing.assert_close(out.loss, manual)


def test_causality_changing_a_token_never_changes_earlier_logits(model, ids):
    base = model(ids).logits
    for j in [0, 5, 7, 8, 9, 23, 44]:
        changed = ids.clone()
        changed[:, j] = (changed[:, j] + 1) % 50
        logits = model(changed).logits
        torch.testing.assert_close(logits[:, :j], base[:, :j], rtol=0, atol=0)
        assert not torch.allclose(logits[:, j], base[:, j]), "token j must influence its own logit"


@pytest.mark.parametrize("cuts", [[1], [7], [8], [9], [16], [3, 4, 5], [8, 16, 24, 32, 40], [44], list(range(1, 45))])
def test_split_anywhere_equals_one_call(model, ids, cuts):
    whole = model(ids, labels=ids)
    state, pieces = None, []
    for start, end in zip([0] + cuts, cuts + [ids.size(1)]):
        out = model(ids[:, start:end], state=state)
        pieces.append(out.logits)
        state = out.state
    torch.testing.assert_close(torch.cat(pieces, 1), whole.logits, rtol=0, atol=1e-5)
    for name, value in whole.state.tensors().items():
        torch.testing.assert_close(getattr(state, name), value, rtol=0, atol=1e-5, msg=name)


def test_predict_and_advance_agree_with_forward(model, ids):
    first = model(ids[:, :13])
    out = model(ids[:, 13:], state=first.state)
    predicted = model.predict(ids[:, 13:], state=first.state)
    # predict gives the distribution of each token itself; forward, of the token after it.
    torch.testing.assert_close(predicted[:, 1:], out.logits[:, :-1], rtol=0, atol=1e-5)
    torch.testing.assert_close(predicted[:, 0], first.logits[:, -1], rtol=0, atol=1e-5)
    advanced = model.advance(ids[:, 13:], state=first.state)
    for name, value in out.state.tensors().items():
        torch.testing.assert_close(getattr(advanced, name), value, rtol=0, atol=1e-6, msg=name)


def test_state_size_is_constant_over_10k_tokens(model):
    stream = torch.randint(0, 50, (2, 10_240), generator=torch.Generator().manual_seed(2))
    state = model.init_state(2)
    sizes = {state.num_bytes()}
    shapes = {tuple((k, tuple(v.shape)) for k, v in state.tensors().items())}
    with torch.no_grad():
        for start in range(0, stream.size(1), 333):
            state = model.advance(stream[:, start : start + 333], state=state)
            sizes.add(state.num_bytes())
            shapes.add(tuple((k, tuple(v.shape)) for k, v in state.tensors().items()))
    assert len(sizes) == 1 and len(shapes) == 1
    assert state.memory.shape == (2, 6, 32)


def test_memory_rows_have_unit_norm(model, ids):
    state = model.init_state(3)
    torch.testing.assert_close(state.memory.norm(dim=-1), torch.ones(3, 6))
    out = model(ids, state=state)
    torch.testing.assert_close(out.state.memory.norm(dim=-1), torch.ones(3, 6))
    assert not torch.allclose(out.state.memory, state.memory), "writing must change the memory"


def test_reset_row_equals_a_fresh_stream_and_other_rows_are_untouched(model, ids):
    history = model(ids[:, :19])  # rows are mid-segment (position 3)
    reset = torch.tensor([False, True, False])
    out = model(ids[:, 19:], state=history.state, reset=reset)
    fresh = model(ids[1:2, 19:])
    untouched = model(ids[:, 19:], state=history.state)
    torch.testing.assert_close(out.logits[1:2], fresh.logits, rtol=0, atol=1e-5)
    torch.testing.assert_close(out.logits[[0, 2]], untouched.logits[[0, 2]], rtol=0, atol=1e-5)
    for name, value in fresh.state.tensors().items():
        torch.testing.assert_close(getattr(out.state, name)[1:2], value, rtol=0, atol=1e-5, msg=name)


def test_rows_at_different_positions_continue_correctly(model, ids):
    # After a mid-segment reset rows sit at different in-segment positions; continuing the batch
    # must equal continuing each row on its own.
    history = model(ids[:, :11])
    reset = torch.tensor([True, False, False])
    first = model(ids[:, 11:20], state=history.state, reset=reset)
    second = model(ids[:, 20:], state=first.state)
    assert first.state.position.tolist() == [1, 4, 4]
    for row in range(3):
        alone = model(ids[row : row + 1, 20:], state=first.state.select([row]))
        torch.testing.assert_close(second.logits[row : row + 1], alone.logits, rtol=0, atol=1e-5)


def test_one_model_serves_interleaved_streams(model):
    a = torch.randint(0, 50, (1, 30), generator=torch.Generator().manual_seed(3))
    b = torch.randint(0, 50, (1, 30), generator=torch.Generator().manual_seed(4))
    state_a = state_b = None
    logits_a = []
    for start in range(0, 30, 7):
        out_a = model(a[:, start : start + 7], state=state_a)
        out_b = model(b[:, start : start + 7], state=state_b)  # interleaved on the same module
        state_a, state_b = out_a.state, out_b.state
        logits_a.append(out_a.logits)
    torch.testing.assert_close(torch.cat(logits_a, 1), model(a).logits, rtol=0, atol=1e-5)


def test_model_holds_no_stream_state(model, ids):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    buffers = {k for k, _ in model.named_buffers()}
    model(ids)
    assert {k for k, _ in model.named_buffers()} == buffers
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])


def test_state_given_is_never_modified(model, ids):
    state = model(ids[:, :10]).state
    copies = {k: v.clone() for k, v in state.tensors().items()}
    model(ids[:, 10:], state=state, reset=torch.tensor([True, False, True]))
    model.generate(ids[:, 10:12], 9, state=state)
    for name, value in copies.items():
        assert torch.equal(getattr(state, name), value), name


def test_memory_carries_information_across_segments(model):
    # Two streams that differ only in their first segment must give different predictions
    # several segments later: information travels through the memory.
    stream = torch.randint(0, 50, (1, 40), generator=torch.Generator().manual_seed(5))
    other = stream.clone()
    other[:, :8] = (other[:, :8] + 7) % 50
    late = slice(32, 40)
    assert not torch.allclose(model(stream).logits[:, late], model(other).logits[:, late])
    no_memory = tiny_model(use_memory=False)
    # Without memory the decoder sees only the previous segment: segment 4 cannot know segment 0.
    torch.testing.assert_close(no_memory(stream).logits[:, late], no_memory(other).logits[:, late], rtol=0, atol=0)


@pytest.mark.parametrize(
    "changes", [dict(use_memory=False), dict(forgetting=False), dict(write_heads="single"), dict(num_slots=1)]
)
def test_ablations_stream_consistently(changes, ids):
    model = tiny_model(**changes)
    whole = model(ids)
    first = model(ids[:, :21])
    rest = model(ids[:, 21:], state=first.state)
    torch.testing.assert_close(torch.cat([first.logits, rest.logits], 1), whole.logits, rtol=0, atol=1e-5)
    assert whole.state.memory.shape == (3, model.num_slots, 32)


def test_bad_inputs_raise_clear_errors(model, ids):
    with pytest.raises(ValueError, match="outside the vocabulary 0..49"):
        model(torch.tensor([[1, 50]]))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model(torch.tensor([[-1, 2]]))
    with pytest.raises(ValueError, match=r"shape \(batch, n\) with n >= 1"):
        model(torch.zeros(2, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="integer token ids"):
        model(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="labels must have the shape"):
        model(ids, labels=ids[:, :-1])
    with pytest.raises(ValueError, match=r"reset must be a bool tensor of shape \(3,\)"):
        model(ids, reset=torch.tensor([True]))
    with pytest.raises(ValueError, match=r"state.memory has shape"):
        model(ids, state=model.init_state(2))
    with pytest.raises(TypeError, match="MemformerState"):
        model(ids, state={"memory": 1})
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        model.init_state(0)


def test_bf16_autocast_runs_and_keeps_the_state_in_float32(model, ids):
    with torch.no_grad():
        reference = model(ids, labels=ids)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(ids, labels=ids)
    assert out.state.memory.dtype == torch.float32 and out.state.context.dtype == torch.float32
    torch.testing.assert_close(out.state.memory.norm(dim=-1), torch.ones(3, 6))
    # bfloat16 keeps ~3 significant digits: the loss agrees to 2%.
    assert abs(float(out.loss) - float(reference.loss)) < 0.02 * float(reference.loss)

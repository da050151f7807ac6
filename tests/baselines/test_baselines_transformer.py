"""The plain Transformer specifics: the sliding window, the fixed or growing KV cache, rotary
positions that make far-along windows equal fresh ones, and config validation."""

import pytest
import torch

from torch_memformer.baselines import TransformerConfig, TransformerLM


def build(seed: int = 0, **changes) -> TransformerLM:
    torch.manual_seed(seed)
    base = dict(vocab_size=40, d_model=32, num_heads=4, d_ff=64, num_layers=2, context_len=8, segment_len=8)
    return TransformerLM(TransformerConfig(**{**base, **changes})).eval()


@pytest.mark.parametrize("num_layers", [1, 2])
def test_span_is_the_context_window_per_layer(num_layers):
    model = build(num_layers=num_layers, context_len=5, segment_len=3)
    ids = torch.randint(0, 40, (1, 30), generator=torch.Generator().manual_seed(0))
    t, reach = 25, num_layers * 4
    base = model(ids).logits[:, t]
    inside, outside = ids.clone(), ids.clone()
    inside[:, t - reach] = (inside[:, t - reach] + 1) % 40
    outside[:, t - reach - 1] = (outside[:, t - reach - 1] + 1) % 40
    assert not torch.allclose(model(inside).logits[:, t], base), "the farthest position in reach must matter"
    torch.testing.assert_close(model(outside).logits[:, t], base, rtol=0, atol=0)


def test_a_window_far_into_the_stream_equals_the_same_tokens_on_a_fresh_stream():
    # One layer: position t sees exactly tokens t - 7 .. t. Rotary scores depend only on
    # distances, so 5000 tokens in, the window gives what a fresh stream of those 8 tokens gives.
    model = build(num_layers=1, context_len=8, segment_len=500)
    stream = torch.randint(0, 40, (2, 5000), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        far = model(stream).logits[:, -1]
        fresh = model(stream[:, -8:]).logits[:, -1]
    torch.testing.assert_close(far, fresh, rtol=0, atol=1e-5)


def test_bounded_cache_has_a_fixed_size():
    model = build(context_len=8)
    stream = torch.randint(0, 40, (2, 2000), generator=torch.Generator().manual_seed(2))
    state = model.init_state(2)
    sizes = {state.num_bytes()}
    with torch.no_grad():
        for start in range(0, stream.size(1), 333):
            state = model.advance(stream[:, start : start + 333], state=state)
            sizes.add(state.num_bytes())
    assert len(sizes) == 1 and state.keys.shape == (2, 2, 4, 7, 8)
    assert state.position.tolist() == [2000, 2000]


def test_unbounded_cache_grows_with_the_stream_and_shrinks_when_every_row_resets():
    model = build(context_len=None)
    ids = torch.randint(0, 40, (2, 30), generator=torch.Generator().manual_seed(3))
    state = model.init_state(2)
    assert state.keys.size(3) == 0
    state = model.advance(ids[:, :10], state=state)
    assert state.keys.size(3) == 10
    state = model.advance(ids[:, 10:], state=state)
    assert state.keys.size(3) == 30
    # A full KV cache: the last position sees the whole stream.
    changed = ids.clone()
    changed[:, 0] = (changed[:, 0] + 1) % 40
    assert not torch.allclose(model(changed).logits[:, -1], model(ids).logits[:, -1])
    one_reset = model.advance(ids[:, :3], state=state, reset=torch.tensor([True, False]))
    assert one_reset.keys.size(3) == 33 and one_reset.position.tolist() == [3, 33]
    all_reset = model.advance(ids[:, :3], state=state, reset=torch.tensor([True, True]))
    assert all_reset.keys.size(3) == 3


def test_unbounded_states_of_different_lengths_concatenate():
    model = build(context_len=None)
    ids = torch.randint(0, 40, (2, 20), generator=torch.Generator().manual_seed(4))
    long_state = model.advance(ids[:1])
    short_state = model.advance(ids[1:, :6])
    both = type(long_state).cat([long_state, short_state])
    assert both.keys.shape[3] == 20 and both.position.tolist() == [20, 6]
    out = model(ids[:, :4], state=both)
    torch.testing.assert_close(out.logits[0], model(ids[:1, :4], state=long_state).logits[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(out.logits[1], model(ids[1:, :4], state=short_state).logits[0], rtol=0, atol=1e-5)


def test_gradcheck_float64_across_chunks():
    torch.manual_seed(0)
    config = TransformerConfig(vocab_size=11, d_model=8, num_heads=2, d_ff=16, num_layers=2, context_len=4, segment_len=3)
    model = TransformerLM(config).double().eval()
    ids = torch.randint(0, 11, (2, 9), generator=torch.Generator().manual_seed(1))
    state = model.advance(ids[:, :2])
    keys = state.keys.detach().clone().requires_grad_(True)
    names = ["layers.0.qkv.weight", "layers.1.out.bias"]
    params = dict(model.named_parameters())
    originals = [params[n].detach().clone().requires_grad_(True) for n in names]

    def loss_of(keys_BNHUK, *values):
        given = state.replace(keys=keys_BNHUK)
        out = torch.func.functional_call(model, dict(zip(names, values)), (ids[:, 2:],), {"state": given, "labels": ids[:, 2:]})
        return out.loss, out.state.keys

    assert torch.autograd.gradcheck(loss_of, (keys, *originals), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(context_len=0), "context_len must be >= 1"),
        (dict(context_len=8.5), "context_len must be an integer"),
        (dict(d_model=24, num_heads=8), "must be even"),
        (dict(d_model=30, num_heads=4), "divisible by num_heads"),
        (dict(rope_base=1.0), "rope_base"),
        (dict(vocab_size=1), "vocab_size"),
        (dict(tie_embeddings=1), "tie_embeddings must be true or false"),
    ],
)
def test_config_rejects_bad_values(changes, message):
    with pytest.raises(ValueError, match=message):
        TransformerConfig(**changes)


def test_config_json_round_trip_keeps_an_unbounded_context(tmp_path):
    config = TransformerConfig(context_len=None, num_layers=3)
    assert '"context_len": null' in config.to_json()
    path = tmp_path / "config.json"
    config.to_json(path)
    assert TransformerConfig.from_json(path) == config
    assert config.replace(context_len=64).context_len == 64

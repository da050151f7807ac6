"""Transformer-XL specifics: the span definition, a fixed-size cache, the stop-gradient of the
cache, float64 gradient checks, and config validation."""

import pytest
import torch

from torch_memformer.baselines import TransformerXL, TransformerXLConfig


def build(seed: int = 0, **changes) -> TransformerXL:
    torch.manual_seed(seed)
    base = dict(vocab_size=40, d_model=32, num_heads=4, d_ff=64, num_layers=2, mem_len=6, segment_len=8)
    return TransformerXL(TransformerXLConfig(**{**base, **changes})).eval()


@pytest.mark.parametrize("num_layers", [1, 2])
def test_span_is_mem_len_per_layer(num_layers):
    # A query sees itself and the mem_len positions before it; through N layers the receptive
    # field is N * mem_len positions, wherever the calls were cut.
    model = build(num_layers=num_layers, mem_len=4, segment_len=3)
    ids = torch.randint(0, 40, (1, 30), generator=torch.Generator().manual_seed(0))
    t, reach = 25, num_layers * 4
    base = model(ids).logits[:, t]
    inside, outside = ids.clone(), ids.clone()
    inside[:, t - reach] = (inside[:, t - reach] + 1) % 40
    outside[:, t - reach - 1] = (outside[:, t - reach - 1] + 1) % 40
    assert not torch.allclose(model(inside).logits[:, t], base), "the farthest position in reach must matter"
    torch.testing.assert_close(model(outside).logits[:, t], base, rtol=0, atol=0)


def test_state_size_is_constant_over_a_long_stream():
    model = build()
    stream = torch.randint(0, 40, (2, 3000), generator=torch.Generator().manual_seed(2))
    state = model.init_state(2)
    sizes, shapes = {state.num_bytes()}, {tuple(state.memory.shape)}
    with torch.no_grad():
        for start in range(0, stream.size(1), 333):
            state = model.advance(stream[:, start : start + 333], state=state)
            sizes.add(state.num_bytes())
            shapes.add(tuple(state.memory.shape))
    assert len(sizes) == 1 and shapes == {(2, 2, 6, 32)}
    assert state.length.tolist() == [6, 6]
    assert model.init_state(2).length.tolist() == [0, 0]


def test_cached_memory_holds_each_layers_input_at_the_last_positions():
    model = build()
    ids = torch.randint(0, 40, (2, 20), generator=torch.Generator().manual_seed(3))
    state = model.advance(ids)
    # Layer 0's input is the embedding of the last mem_len tokens, newest last.
    torch.testing.assert_close(state.memory[:, 0], model.embedding(ids[:, -6:]))
    short = model.advance(ids[:, :2])
    assert short.length.tolist() == [2, 2]
    torch.testing.assert_close(short.memory[:, 0, -2:], model.embedding(ids[:, :2]))


def test_no_gradient_flows_through_the_cache():
    model = build()
    ids = torch.randint(0, 40, (2, 12), generator=torch.Generator().manual_seed(4))
    state = model.advance(ids[:, :5]).detach()
    memory = state.memory.clone().requires_grad_(True)
    out = model(ids[:, 5:], state=state.replace(memory=memory), labels=ids[:, 5:])
    out.loss.backward()
    assert memory.grad is None, "the paper's SG(): the cache carries no gradient"
    assert not out.state.memory.requires_grad

    through = build(detach_memory=False)
    memory = state.memory.clone().requires_grad_(True)
    through(ids[:, 5:], state=state.replace(memory=memory), labels=ids[:, 5:]).loss.backward()
    assert memory.grad is not None and memory.grad.abs().sum() > 0


@pytest.mark.parametrize("detach_memory", [True, False])
def test_one_call_of_two_chunks_has_the_gradients_of_two_calls_with_a_detached_state(detach_memory):
    ids = torch.randint(0, 40, (2, 16), generator=torch.Generator().manual_seed(5))

    def gradients(split: bool) -> dict[str, torch.Tensor]:
        model = build(detach_memory=detach_memory)
        if split:
            first = model(ids[:, :8])
            second = model(ids[:, 8:], state=first.state.detach())
            logits = torch.cat([first.logits, second.logits], dim=1)
        else:
            logits = model(ids).logits
        torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 40), ids[:, 1:].reshape(-1)).backward()
        return {name: p.grad.clone() for name, p in model.named_parameters()}

    one, two = gradients(split=False), gradients(split=True)
    same = all(torch.allclose(one[name], two[name], rtol=0, atol=1e-6) for name in one)
    # With the paper's stop-gradient a chunk boundary inside a call cuts the graph exactly as a
    # detached state between calls does; without it, the one-call graph is longer.
    assert same == detach_memory


def _double_model(**changes) -> TransformerXL:
    torch.manual_seed(0)
    config = TransformerXLConfig(
        vocab_size=11, d_model=8, num_heads=2, d_ff=16, num_layers=2, mem_len=3, segment_len=4, **changes
    )
    return TransformerXL(config).double().eval()


def test_gradcheck_through_the_cache_across_chunks():
    model = _double_model(detach_memory=False)
    ids = torch.randint(0, 11, (2, 10), generator=torch.Generator().manual_seed(1))
    state = model.advance(ids[:, :2])  # a partly filled cache: length 2 of 3
    memory = state.memory.detach().clone().requires_grad_(True)
    last_hidden = state.last_hidden.detach().clone().requires_grad_(True)

    def outputs(memory_BNMD, last_hidden_BD):
        given = state.replace(memory=memory_BNMD, last_hidden=last_hidden_BD)
        out = model(ids[:, 2:], state=given, labels=ids[:, 2:])
        return out.loss, out.state.memory, model.predict(ids[:, 2:], state=given)[:, :2]

    assert torch.autograd.gradcheck(outputs, (memory, last_hidden), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("detach_memory", [True, False])
def test_gradcheck_parameters_of_the_relative_attention(detach_memory):
    model = _double_model(detach_memory=detach_memory)
    ids = torch.randint(0, 11, (1, 11), generator=torch.Generator().manual_seed(2))
    state = model.advance(ids[:, :4]).detach()
    names = [
        "layers.0.attention.content_bias",
        "layers.0.attention.position_bias",
        "layers.1.attention.position_key.weight",
        "layers.1.attention.query.weight",
    ]
    params = dict(model.named_parameters())
    originals = [params[n].detach().clone().requires_grad_(True) for n in names]
    # With the stop-gradient on, a parameter's effect on the cache is invisible to autograd but
    # not to finite differences, so that case is checked within one chunk.
    tokens = ids[:, 4:] if not detach_memory else ids[:, 4:8]

    def loss_of(*values):
        out = torch.func.functional_call(model, dict(zip(names, values)), (tokens,), {"state": state, "labels": tokens})
        return out.loss

    assert torch.autograd.gradcheck(loss_of, tuple(originals), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(mem_len=0), "mem_len must be >= 1"),
        (dict(d_model=30, num_heads=4), "divisible by num_heads"),
        (dict(d_model=9, num_heads=3), "must be even"),
        (dict(segment_len=0), "segment_len"),
        (dict(dropout=1.0), "dropout"),
        (dict(attention_impl="flash"), "attention_impl"),
        (dict(detach_memory="yes"), "detach_memory must be true or false"),
        (dict(num_layers=2.0), "num_layers must be an integer"),
    ],
)
def test_config_rejects_bad_values(changes, message):
    with pytest.raises(ValueError, match=message):
        TransformerXLConfig(**changes)


def test_config_json_round_trip(tmp_path):
    config = TransformerXLConfig(d_model=64, num_heads=4, mem_len=128, detach_memory=False)
    path = tmp_path / "config.json"
    config.to_json(path)
    assert TransformerXLConfig.from_json(path) == config
    assert TransformerXLConfig.from_json(config.to_json()) == config
    with pytest.raises(ValueError, match="unknown TransformerXLConfig field"):
        TransformerXLConfig.from_dict({"num_slots": 3})
    with pytest.raises(TypeError, match="TransformerXLConfig"):
        TransformerXL(config.to_dict())

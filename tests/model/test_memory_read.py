"""The encoder's memory read (spec 1.1), its null slot (decision 17) and the null slot's logit
offset (decision 18), against the formula."""

import math

import torch

from torch_memformer.model.encoder import EncoderLayer

from conftest import tiny_config, tiny_model


def _layer(**changes) -> EncoderLayer:
    torch.manual_seed(0)
    layer = EncoderLayer(tiny_config(attention_impl="reference", **changes)).double()
    with torch.no_grad():  # non-trivial LayerNorm gains and projection biases
        for parameter in layer.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.3)
    return layer


def _read(layer: EncoderLayer, h_BTD: torch.Tensor, memory_BSD: torch.Tensor) -> torch.Tensor:
    return layer.memory_read(layer.read_norm(h_BTD), layer.read_source(memory_BSD),
                             logit_bias=layer.read_logit_bias(memory_BSD.size(1)))


def _written_out_read(
    layer: EncoderLayer, h_BTD: torch.Tensor, source_BUD: torch.Tensor, null_offset_H: torch.Tensor | None = None
) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d_h) [+ the offset on the last source's logit]) V and the output
    projection, one head at a time."""
    attention = layer.memory_read
    heads, d = attention.num_heads, h_BTD.size(-1)
    dh = d // heads
    q = attention.query(layer.read_norm(h_BTD))
    k, v = attention.key_value(source_BUD).chunk(2, dim=-1)
    outputs = []
    for head in range(heads):
        part = slice(head * dh, (head + 1) * dh)
        logits = q[..., part] @ k[..., part].transpose(-1, -2) / math.sqrt(dh)
        if null_offset_H is not None:
            logits = logits.clone()
            logits[..., -1] += null_offset_H[head]
        weights = logits.softmax(dim=-1)
        outputs.append(weights @ v[..., part])
    return attention.out(torch.cat(outputs, dim=-1))


def _inputs(slots: int = 6):
    g = torch.Generator().manual_seed(3)
    h = torch.randn(2, 5, 32, generator=g, dtype=torch.float64)
    memory = torch.nn.functional.normalize(torch.randn(2, slots, 32, generator=g, dtype=torch.float64), dim=-1)
    return h, memory


def test_the_null_slot_is_one_more_key_and_value_after_the_normalised_slots():
    layer = _layer(read_null_slot=True)
    h, memory = _inputs()
    null = layer.null_slot.expand(2, 1, -1)  # raw: the null slot is not LayerNormed
    expected = _written_out_read(layer, h, torch.cat([layer.slot_norm(memory), null], dim=1))
    torch.testing.assert_close(_read(layer, h, memory), expected, rtol=1e-10, atol=1e-12)
    plain = _layer(read_null_slot=False)
    assert plain.null_slot is None
    torch.testing.assert_close(_read(plain, h, memory), _written_out_read(plain, h, plain.slot_norm(memory)))


def test_a_null_slot_the_queries_prefer_makes_the_read_ignore_the_memory():
    # Every query is the same vector e; the keys are the sources themselves. The LayerNormed slots
    # have norm sqrt(d), so a null slot of 100 e wins every softmax and the read is W_v(null).
    layer = _layer(read_null_slot=True)
    d = 32
    e = torch.nn.functional.normalize(torch.ones(d, dtype=torch.float64), dim=0)
    with torch.no_grad():
        layer.memory_read.query.weight.zero_()
        layer.memory_read.query.bias.copy_(e * math.sqrt(d) * 4)
        layer.memory_read.key_value.weight[:d].copy_(torch.eye(d))
        layer.memory_read.key_value.bias[:d].zero_()
        layer.null_slot.copy_(100 * e)
    h, memory = _inputs()
    _, other_memory = _inputs(slots=6)
    other_memory = other_memory.flip(1) * -1
    read = _read(layer, h, memory)
    torch.testing.assert_close(read, _read(layer, h, other_memory), rtol=1e-9, atol=1e-9)
    null_value = layer.memory_read.key_value(layer.null_slot)[d:]
    torch.testing.assert_close(read, layer.memory_read.out(null_value).expand_as(read), rtol=1e-9, atol=1e-9)
    # Without the null slot the same read does depend on the memory.
    plain = _layer(read_null_slot=False)
    assert not torch.allclose(_read(plain, h, memory), _read(plain, h, other_memory))


def test_the_null_slot_is_learned_per_layer_and_never_written():
    model = tiny_model(read_null_slot=True).train()
    names = [name for name, _ in model.named_parameters() if name.endswith("null_slot")]
    assert names == [f"encoder.layers.{i}.null_slot" for i in range(model.config.num_encoder_layers)]
    ids = torch.randint(0, model.config.vocab_size, (2, 3 * model.config.segment_len))
    out = model(ids)
    assert out.state.memory.shape[1] == model.config.num_slots  # the state holds the slots only
    out.logits.logsumexp(-1).mean().backward()
    for name, parameter in model.named_parameters():
        if name.endswith("null_slot"):
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_sdpa_and_the_written_out_attention_agree_with_a_null_slot():
    fast = tiny_model(seed=2, read_null_slot=True).double()
    reference = tiny_model(seed=2, read_null_slot=True, attention_impl="reference").double()
    reference.load_state_dict(fast.state_dict())
    ids = torch.randint(0, fast.config.vocab_size, (2, 3 * fast.config.segment_len))
    torch.testing.assert_close(fast(ids).logits, reference(ids).logits, rtol=1e-9, atol=1e-9)


def test_without_memory_there_is_no_null_slot():
    model = tiny_model(read_null_slot=True, use_memory=False)
    assert not any(name.endswith("null_slot") for name, _ in model.named_parameters())


def test_the_null_logit_offset_is_added_to_the_null_slots_logit_in_each_head():
    layer = _layer(read_null_slot=True, read_null_logit_init=-4.0)
    with torch.no_grad():  # a different offset in every head
        layer.null_logit_H.copy_(torch.tensor([-4.0, 1.5, 0.0, -1.0], dtype=torch.float64))
    h, memory = _inputs()
    source = torch.cat([layer.slot_norm(memory), layer.null_slot.expand(2, 1, -1)], dim=1)
    expected = _written_out_read(layer, h, source, layer.null_logit_H)
    torch.testing.assert_close(_read(layer, h, memory), expected, rtol=1e-10, atol=1e-12)
    # It changes the read: the same layer without the offset reads something else.
    assert not torch.allclose(_read(layer, h, memory), _written_out_read(layer, h, source), atol=1e-6)


def test_a_very_low_offset_gives_the_read_without_a_null_slot():
    # At -30 the null slot's weight is e^-30 of a slot's: the read is the paper's to 1e-12.
    with_offset = _layer(read_null_slot=True, read_null_logit_init=-30.0)
    plain = _layer(read_null_slot=False)
    plain.load_state_dict(with_offset.state_dict(), strict=False)
    h, memory = _inputs()
    torch.testing.assert_close(_read(with_offset, h, memory), _read(plain, h, memory), rtol=1e-9, atol=1e-11)


def test_the_offset_is_learned_per_layer_and_head_and_sdpa_agrees_with_the_reference():
    model = tiny_model(read_null_slot=True, read_null_logit_init=-4.0).train()
    names = [name for name, _ in model.named_parameters() if name.endswith("null_logit_H")]
    assert names == [f"encoder.layers.{i}.null_logit_H" for i in range(model.config.num_encoder_layers)]
    assert all(torch.equal(model.get_parameter(n), torch.full((model.config.num_heads,), -4.0)) for n in names)
    ids = torch.randint(0, model.config.vocab_size, (2, 3 * model.config.segment_len))
    model(ids).logits.logsumexp(-1).mean().backward()
    for name in names:
        assert model.get_parameter(name).grad.abs().min() > 0, name
    fast = tiny_model(seed=2, read_null_slot=True, read_null_logit_init=-1.0).double()
    reference = tiny_model(seed=2, read_null_slot=True, read_null_logit_init=-1.0, attention_impl="reference").double()
    with torch.no_grad():
        for layer in fast.encoder.layers:
            layer.null_logit_H.add_(torch.randn_like(layer.null_logit_H))
    reference.load_state_dict(fast.state_dict())
    torch.testing.assert_close(fast(ids).logits, reference(ids).logits, rtol=1e-9, atol=1e-9)


def test_no_offset_without_the_null_slot():
    model = tiny_model(read_null_slot=False, read_null_logit_init=-4.0)
    assert not any(name.endswith("null_logit_H") for name, _ in model.named_parameters())

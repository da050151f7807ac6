"""The fast attention path (scaled_dot_product_attention) against the written-out reference."""

import pytest
import torch

from torch_memformer.model.attention import Rotary, attention, reference_attention

from conftest import tiny_model


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sdpa_equals_reference(causal, dtype):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 8, generator=g, dtype=dtype) for _ in range(3))
    tolerance = 1e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(
        attention(q, k, v, causal=causal), reference_attention(q, k, v, causal=causal), rtol=0, atol=tolerance
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sdpa_equals_reference_with_a_learned_logit_bias(dtype):
    # The memory read's null-slot offset (decision 18) goes in as an additive bias on the logits;
    # both paths must add it and pass its gradient.
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 3, 5, 8, generator=g, dtype=dtype) for _ in range(3))
    bias = torch.randn(1, 3, 1, 5, generator=g, dtype=dtype, requires_grad=True)
    fast, = torch.autograd.grad(attention(q, k, v, logit_bias=bias).square().sum(), bias)
    slow, = torch.autograd.grad(reference_attention(q, k, v, logit_bias=bias).square().sum(), bias)
    tolerance = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(attention(q, k, v, logit_bias=bias), reference_attention(q, k, v, logit_bias=bias),
                               rtol=0, atol=tolerance)
    torch.testing.assert_close(fast, slow, rtol=0, atol=tolerance)
    assert not torch.allclose(attention(q, k, v, logit_bias=bias), attention(q, k, v))
    with pytest.raises(ValueError, match="causal or a logit bias"):
        attention(q, k, v, causal=True, logit_bias=bias)


def test_cross_attention_with_different_lengths():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 3, 5, 8, generator=g)
    k, v = torch.randn(2, 3, 11, 8, generator=g), torch.randn(2, 3, 11, 8, generator=g)
    torch.testing.assert_close(attention(q, k, v), reference_attention(q, k, v), rtol=0, atol=1e-6)


def test_whole_model_on_reference_attention_equals_sdpa(ids):
    fast = tiny_model(attention_impl="sdpa")
    ref = tiny_model(attention_impl="reference")
    ref.load_state_dict(fast.state_dict())
    torch.testing.assert_close(fast(ids).logits, ref(ids).logits, rtol=0, atol=1e-5)
    fast_gen = fast.generate(ids[:, :5], 20, temperature=0)
    ref_gen = ref.generate(ids[:, :5], 20, temperature=0)
    assert torch.equal(fast_gen.tokens, ref_gen.tokens)


def test_rotary_is_a_relative_position_encoding():
    # <R(a) q, R(b) k> depends only on a - b: the property RoPE exists for.
    rotary = Rotary(8, 32, 10000.0)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)

    def score(a, b):
        return (rotary(q, a) * rotary(k, b)).sum()

    torch.testing.assert_close(score(5, 2), score(20, 17))
    assert not torch.allclose(score(5, 2), score(5, 3))


def test_decoder_context_positions_tell_recent_from_old_states():
    # With rotary context positions (decision 1) the decoder's attention to the previous segment
    # depends on where each encoder state stands; without them it is a set, and permuting the
    # context changes nothing.
    from conftest import tiny_model

    ids = torch.randint(0, 50, (2, 7), generator=torch.Generator().manual_seed(3))  # decoder inputs: BOS + 7
    context = torch.randn(2, 8, 32, generator=torch.Generator().manual_seed(4))
    flipped = context.flip(1)
    for positions, should_differ in (("rotary", True), ("none", False)):
        model = tiny_model(context_positions=positions)
        a, b = model.decode(ids, context), model.decode(ids, flipped)
        assert (not torch.allclose(a, b, atol=1e-5)) == should_differ, positions

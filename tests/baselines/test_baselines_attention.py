"""Fast paths of the baselines' attention against written-out references: the relative shift vs a
gather, SDPA with a window mask vs the plain formula, and Transformer-XL's attention vs the
paper's four score terms computed one (query, key) pair at a time."""

import math

import pytest
import torch

from torch_memformer.baselines import TransformerConfig, TransformerLM, TransformerXL, TransformerXLConfig
from torch_memformer.baselines.relative_attention import (
    RelativeSelfAttention,
    reference_position_scores,
    relative_shift,
    sinusoid_table,
)
from torch_memformer.baselines.windowed_attention import (
    reference_windowed_attention,
    window_mask,
    windowed_attention,
)


@pytest.mark.parametrize("cached, new", [(0, 5), (4, 1), (6, 3), (3, 8)])
def test_relative_shift_equals_the_gather_reference(cached, new):
    g = torch.Generator().manual_seed(0)
    qv_BHTK = torch.randn(2, 3, new, 4, generator=g)
    r_by_distance_HUK = torch.randn(3, cached + new, 4, generator=g)
    shifted = relative_shift(qv_BHTK @ r_by_distance_HUK.flip(1).transpose(-1, -2))
    reference = reference_position_scores(qv_BHTK, r_by_distance_HUK)
    # Only past and present keys are defined (distance >= 0); the rest is masked in the model.
    past_TU = torch.ones(new, cached + new, dtype=torch.bool).tril(cached)
    torch.testing.assert_close(shifted[..., past_TU], reference[..., past_TU], rtol=0, atol=1e-6)
    # And the reference itself: entry (i, j) uses distance cached + i - j.
    i, j = new - 1, cached
    expected = (qv_BHTK[:, :, i] * r_by_distance_HUK[:, cached + i - j]).sum(-1)
    torch.testing.assert_close(reference[:, :, i, j], expected)


def test_window_mask_follows_the_span_definition():
    valid_B = torch.tensor([4, 1])
    allowed = window_mask(valid_B=valid_B, num_cached=4, num_new=3, max_distance=2)
    assert allowed.shape == (2, 1, 3, 7)
    for b, valid in enumerate(valid_B.tolist()):
        for i in range(3):
            for u in range(7):
                distance = 4 + i - u
                expected = 0 <= distance <= 2 and u >= 4 - valid
                assert bool(allowed[b, 0, i, u]) == expected, (b, i, u)


@pytest.mark.parametrize("with_bias", [False, True])
def test_windowed_sdpa_equals_the_written_out_attention(with_bias):
    g = torch.Generator().manual_seed(1)
    q, k, v = torch.randn(2, 3, 5, 8, generator=g), torch.randn(2, 3, 9, 8, generator=g), torch.randn(2, 3, 9, 8, generator=g)
    allowed = window_mask(valid_B=torch.tensor([4, 2]), num_cached=4, num_new=5, max_distance=3)
    bias = torch.randn(2, 3, 5, 9, generator=g) if with_bias else None
    fast = windowed_attention(q, k, v, allowed_B1TU=allowed, bias_BHTU=bias)
    slow = reference_windowed_attention(q, k, v, allowed_B1TU=allowed, bias_BHTU=bias)
    torch.testing.assert_close(fast, slow, rtol=0, atol=1e-5)


@pytest.mark.parametrize("impl", ["sdpa", "reference"])
def test_relative_attention_equals_the_papers_four_terms_pair_by_pair(impl):
    torch.manual_seed(2)
    d, h, cached, new = 8, 2, 3, 4
    attention = RelativeSelfAttention(d, h, dropout=0.0, impl=impl)
    for p in attention.parameters():
        torch.nn.init.normal_(p, std=0.5)
    x_UD = torch.randn(1, cached + new, d)
    r_UD = sinusoid_table(cached + new, d, dtype=torch.float32, device=torch.device("cpu"))
    allowed = window_mask(valid_B=torch.tensor([cached]), num_cached=cached, num_new=new, max_distance=2)
    out = attention(x_UD, num_new=new, r_UD=r_UD, allowed_B1TU=allowed)

    # A_rel[i, j] = q_i.k_j + q_i.W_kR R_{i-j} + u.k_j + v.W_kR R_{i-j} (Dai et al. 2019, eq. in 3.3)
    k_dim = d // h
    w_q = attention.query.weight
    w_ke, w_v = attention.key_value.weight.chunk(2, dim=0)
    w_kr = attention.position_key.weight
    heads = []
    for head in range(h):
        rows = slice(head * k_dim, (head + 1) * k_dim)
        u, v = attention.content_bias[head], attention.position_bias[head]
        outputs = []
        for i in range(new):
            qi = w_q[rows] @ x_UD[0, cached + i]
            scores, values = [], []
            for j in range(cached + new):
                distance = cached + i - j
                if not (0 <= distance <= 2):
                    continue
                kj = w_ke[rows] @ x_UD[0, j]
                rj = w_kr[rows] @ r_UD[distance]
                scores.append((qi @ kj + qi @ rj + u @ kj + v @ rj) / math.sqrt(k_dim))
                values.append(w_v[rows] @ x_UD[0, j])
            weights = torch.stack(scores).softmax(0)
            outputs.append((weights.unsqueeze(1) * torch.stack(values)).sum(0))
        heads.append(torch.stack(outputs))
    expected = attention.out(torch.cat(heads, dim=-1)).unsqueeze(0)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)


def test_sinusoid_table_is_sin_then_cos_of_the_distance():
    table = sinusoid_table(5, 6, dtype=torch.float64, device=torch.device("cpu"))
    inv_freq = 1.0 / 10000 ** (torch.arange(0, 6, 2, dtype=torch.float64) / 6)
    torch.testing.assert_close(table[3], torch.cat([(3 * inv_freq).sin(), (3 * inv_freq).cos()]))


@pytest.mark.parametrize(
    "make",
    [
        lambda impl: TransformerXL(TransformerXLConfig(vocab_size=30, d_model=16, num_heads=2, d_ff=32, num_layers=2, mem_len=5, segment_len=6, attention_impl=impl)),
        lambda impl: TransformerLM(TransformerConfig(vocab_size=30, d_model=16, num_heads=2, d_ff=32, num_layers=2, context_len=7, segment_len=6, attention_impl=impl)),
    ],
    ids=["transformer-xl", "transformer"],
)
def test_whole_model_sdpa_equals_reference(make):
    ids = torch.randint(0, 30, (2, 25), generator=torch.Generator().manual_seed(3))
    torch.manual_seed(0)
    fast = make("sdpa").eval()
    torch.manual_seed(0)
    slow = make("reference").eval()
    first_fast, first_slow = fast(ids[:, :11]), slow(ids[:, :11])
    torch.testing.assert_close(
        fast(ids[:, 11:], state=first_fast.state).logits, slow(ids[:, 11:], state=first_slow.state).logits, rtol=0, atol=1e-5
    )

"""The memory writer (spec 1.2) and forgetting (spec 1.3), checked against their definitions."""

import math

import pytest
import torch

from torch_memformer.model.memory import (
    BiasedMemoryNormalization,
    MemoryWriter,
    _write_sdpa,
    mix_slots,
    spread_keep_shares,
)

from conftest import tiny_model


def _writer(impl: str = "sdpa", heads: int = 4, temperature: float = 0.5, keep_init: float | None = None) -> MemoryWriter:
    torch.manual_seed(0)
    writer = MemoryWriter(32, heads, temperature, impl, 1e-5, keep_init=keep_init, segment_len=9)
    for p in writer.parameters():  # non-trivial biases and norms
        torch.nn.init.normal_(p, std=0.3)
    return writer


def _inputs():
    g = torch.Generator().manual_seed(1)
    memory = torch.nn.functional.normalize(torch.randn(2, 6, 32, generator=g), dim=-1)
    tokens = torch.randn(2, 9, 32, generator=g)
    return memory, tokens


def test_slot_i_depends_only_on_slot_i_and_the_tokens():
    writer = _writer()
    memory, tokens = _inputs()
    base = writer(memory, tokens)
    for i in range(6):
        changed = memory.clone()
        changed[:, i] = torch.nn.functional.normalize(torch.randn(2, 32), dim=-1)
        out = writer(changed, tokens)
        others = [j for j in range(6) if j != i]
        torch.testing.assert_close(out[:, others], base[:, others], rtol=0, atol=1e-6)
        assert not torch.allclose(out[:, i], base[:, i])
    # ... and the tokens reach every slot.
    out = writer(memory, tokens + 1.0)
    assert (out - base).abs().amax(dim=-1).min() > 1e-4


def test_writer_matches_the_equations_written_per_slot():
    writer = _writer(heads=1)
    memory, tokens = _inputs()
    out = writer(memory, tokens)
    normed = writer.slot_norm(memory)
    q, k_self = writer.query(normed), writer.key(normed)
    k_tok, v_tok = writer.key(tokens), writer.value(tokens)
    for b in range(2):
        for i in range(6):
            logits = torch.cat([(q[b, i] * k_self[b, i]).sum()[None], k_tok[b] @ q[b, i]]) / (32**0.5 * 0.5)
            a = logits.softmax(0)
            expected = a[0] * memory[b, i] + a[1:] @ v_tok[b]
            torch.testing.assert_close(out[b, i], expected, rtol=0, atol=1e-5)


def test_writer_with_a_keep_bias_matches_the_equations_written_per_slot():
    writer = _writer(heads=1, keep_init=0.9)
    memory, tokens = _inputs()
    out = writer(memory, tokens)
    normed = writer.slot_norm(memory)
    q, k_self = writer.query(normed), writer.key(normed)
    k_tok, v_tok = writer.key(tokens), writer.value(tokens)
    bias = writer.self_bias_H[0]
    for b in range(2):
        for i in range(6):
            self_logit = (q[b, i] * k_self[b, i]).sum() / (32**0.5 * 0.5) + bias
            logits = torch.cat([self_logit[None], k_tok[b] @ q[b, i] / (32**0.5 * 0.5)])
            a = logits.softmax(0)
            expected = a[0] * memory[b, i] + a[1:] @ v_tok[b]
            torch.testing.assert_close(out[b, i], expected, rtol=0, atol=1e-5)


def test_sdpa_writer_equals_reference_writer():
    memory, tokens = _inputs()
    for heads in (1, 4):
        for keep_init in (None, 0.9):
            fast, ref = _writer("sdpa", heads, keep_init=keep_init), _writer("reference", heads, keep_init=keep_init)
            # float64: the two paths round differently in float32 (about 1e-6), never in the math.
            fast, ref = fast.double(), ref.double()
            torch.testing.assert_close(fast(memory.double(), tokens.double()), ref(memory.double(), tokens.double()),
                                       rtol=0, atol=1e-12)


def test_a_fresh_writer_keeps_keep_init_of_each_slot():
    # With equal token logits (here all zero), the self bias alone decides: a slot keeps exactly
    # keep_init of itself and spreads the rest evenly over the segment's tokens.
    for keep_init in (0.5, 0.9, 0.99):
        writer = MemoryWriter(32, 4, 0.5, "reference", 1e-5, keep_init=keep_init, segment_len=9)
        torch.nn.init.zeros_(writer.query.weight)
        torch.nn.init.zeros_(writer.query.bias)
        memory, tokens = _inputs()
        keep, take = writer.weights(memory, tokens)
        torch.testing.assert_close(keep, torch.full_like(keep, keep_init), rtol=0, atol=1e-6)
        torch.testing.assert_close(take, torch.full_like(take, (1 - keep_init) / 9), rtol=0, atol=1e-6)


def test_spread_heads_keep_over_timescales_from_one_to_64_segments():
    # Decision 16: head 0 is the paper's writer (no bias, keeps 1 / (L + 1) of a slot at init);
    # head h keeps 1 - 1 / tau_h with tau_h geometric from 1 to 64 segments.
    assert spread_keep_shares(1) == [None]
    shares = spread_keep_shares(4)
    assert shares[0] is None and shares[1:] == pytest.approx([1 - 1 / 4, 1 - 1 / 16, 1 - 1 / 64])
    taus = [1 / (1 - share) for share in spread_keep_shares(7)[1:]]
    assert taus[-1] == pytest.approx(64) and all(b / a == pytest.approx(taus[1] / taus[0]) for a, b in zip(taus, taus[1:]))
    writer = MemoryWriter(32, 4, 0.5, "reference", 1e-5, keep_init="spread", segment_len=9)
    torch.nn.init.zeros_(writer.query.weight)
    torch.nn.init.zeros_(writer.query.bias)
    memory, tokens = _inputs()
    keep, _ = writer.weights(memory, tokens)  # (B, H, S, 1): equal token logits, so the bias decides
    expected = torch.tensor([1 / 10, 0.75, 1 - 1 / 16, 1 - 1 / 64]).view(1, 4, 1, 1).expand_as(keep)
    torch.testing.assert_close(keep, expected, rtol=0, atol=1e-6)
    # The fused path computes the same write as the written-out one.
    fast = MemoryWriter(32, 4, 0.5, "sdpa", 1e-5, keep_init="spread", segment_len=9).double()
    ref = MemoryWriter(32, 4, 0.5, "reference", 1e-5, keep_init="spread", segment_len=9).double()
    ref.load_state_dict(fast.state_dict())
    torch.testing.assert_close(fast(memory.double(), tokens.double()), ref(memory.double(), tokens.double()),
                               rtol=0, atol=1e-12)


def test_the_keep_bias_gets_a_gradient():
    writer = _writer(keep_init=0.9)
    memory, tokens = _inputs()
    writer(memory, tokens).square().sum().backward()
    assert writer.self_bias_H.grad is not None and writer.self_bias_H.grad.abs().min() > 0


def test_a_kept_slot_stays_float32_exactly_under_bfloat16_autocast():
    # A write that keeps the slot (keep weight 1) must hand back the float32 slot bit for bit, not
    # its bfloat16 rounding (decision 11): the rounding would compound over thousands of segments.
    for impl in ("sdpa", "reference"):
        writer = MemoryWriter(32, 4, 0.5, impl, 1e-5, keep_init=1 - 1e-12, segment_len=9)
        memory, tokens = _inputs()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = writer(memory, tokens)
        assert out.dtype == torch.float32
        assert torch.equal(out, memory), impl


def test_a_slot_that_attends_only_to_itself_is_unchanged():
    # A self logit far above every token logit puts all weight on the slot's raw vector, which
    # (no output projection, spec 1.2) comes back exactly: both implementations.
    memory, _ = _inputs()
    raw_BHSK = memory.unsqueeze(1)
    q_BHSK = torch.ones(2, 1, 6, 32)
    k_self_BHSK = torch.full((2, 1, 6, 32), 10.0)
    k_tok_BHTK = torch.zeros(2, 1, 9, 32)
    v_tok_BHTK = torch.randn(2, 1, 9, 32)
    out = _write_sdpa(q_BHSK, k_self_BHSK, k_tok_BHTK, raw_BHSK, v_tok_BHTK, 1.0, None)
    torch.testing.assert_close(out, raw_BHSK, rtol=0, atol=1e-6)
    keep_BHS1, take_BHST = torch.ones(2, 1, 6, 1), torch.zeros(2, 1, 6, 9)
    torch.testing.assert_close(mix_slots(keep_BHS1, take_BHST, raw_BHSK, v_tok_BHTK), raw_BHSK, rtol=0, atol=0)


def test_rows_are_unit_norm_after_bmn():
    bmn = BiasedMemoryNormalization(6, 32, forgetting=True)
    written = torch.randn(3, 6, 32) * 5
    torch.testing.assert_close(bmn(written).norm(dim=-1), torch.ones(3, 6))
    torch.testing.assert_close(bmn.initial_memory().norm(dim=-1), torch.ones(6))


def test_a_slot_that_takes_nothing_new_converges_to_its_normalised_bias():
    torch.manual_seed(0)
    bmn = BiasedMemoryNormalization(6, 32, forgetting=True, form="vector")
    with torch.no_grad():
        bmn.bias_SD.mul_(torch.linspace(0.5, 3.0, 6).unsqueeze(-1))  # different forgetting speeds
    target = bmn.initial_memory()
    memory = torch.nn.functional.normalize(torch.randn(1, 6, 32), dim=-1)
    distances = []
    for _ in range(60):
        memory = bmn(memory)  # the writer kept every slot as it was: m' = m
        distances.append((memory - target).norm(dim=-1))
    torch.testing.assert_close(memory[0], target, rtol=0, atol=1e-4)
    # Larger ||v_i|| forgets faster (spec 1.3): after 3 writes the big-bias slot is closer.
    assert distances[2][0, -1] < distances[2][0, 0]
    # And the distance shrinks monotonically.
    d = torch.stack(distances)[:, 0]
    assert bool((d[1:] <= d[:-1] + 1e-6).all())


def test_without_forgetting_a_kept_slot_stays_put():
    bmn = BiasedMemoryNormalization(6, 32, forgetting=False)
    memory = torch.nn.functional.normalize(torch.randn(1, 6, 32), dim=-1)
    torch.testing.assert_close(bmn(memory), memory)


def test_memory_of_a_real_model_fades_to_the_initial_memory_when_the_writer_keeps_everything():
    model = tiny_model()
    with torch.no_grad():  # forgetting biases of norm 3: a fast fade
        model.memory_norm.log_norm_S.fill_(math.log(3.0))
    memory = model.init_state(1).memory
    other = torch.nn.functional.normalize(torch.randn(1, 6, 32), dim=-1)
    for _ in range(40):
        other = model.memory_norm(other)
    torch.testing.assert_close(other, memory, rtol=0, atol=1e-5)


def test_forgetting_biases_start_at_the_configured_norm():
    for form in ("polar", "vector"):
        for norm in (0.02, 0.1, 1.0, 2.5):
            bmn = BiasedMemoryNormalization(6, 32, forgetting=True, init_norm=norm, form=form)
            torch.testing.assert_close(bmn.bias().norm(dim=-1), torch.full((6,), norm))


def test_without_forgetting_the_polar_form_learns_no_rate():
    # The paper's ablation adds no bias, so no forgetting rate exists to learn: only m_0's direction.
    bmn = BiasedMemoryNormalization(6, 32, forgetting=False, form="polar")
    assert [name for name, _ in bmn.named_parameters()] == ["direction_SD"]
    assert not bmn.bias().any()
    memory = torch.nn.functional.normalize(torch.randn(1, 6, 32), dim=-1)
    torch.testing.assert_close(bmn(memory), memory)


def test_polar_and_vector_forms_compute_the_same_forgetting():
    # Decision 15 changes how v_i is held, not the equations: the same v_i gives the same write.
    torch.manual_seed(0)
    polar = BiasedMemoryNormalization(6, 32, forgetting=True, init_norm=0.3, form="polar")
    vector = BiasedMemoryNormalization(6, 32, forgetting=True, form="vector")
    with torch.no_grad():
        polar.direction_SD.mul_(torch.linspace(0.5, 4.0, 6).unsqueeze(-1))  # the direction's norm is free
        polar.log_norm_S.copy_(torch.linspace(-3.0, 1.0, 6))
        vector.bias_SD.copy_(polar.bias())
    written = torch.randn(2, 6, 32)
    torch.testing.assert_close(polar(written), vector(written))
    torch.testing.assert_close(polar.initial_memory(), vector.initial_memory())
    torch.testing.assert_close(polar.bias().norm(dim=-1), torch.linspace(-3.0, 1.0, 6).exp())


def test_polar_forgetting_rate_moves_only_as_far_as_the_gradient_pushes():
    # Why decision 15: under Adam, a vector v_i whose gradient is pure noise still grows in norm
    # (each of its d coordinates moves by about lr per step), while a log-norm scalar fed the
    # same noise random-walks by about lr * sqrt(steps) in log space.
    torch.manual_seed(0)
    norms = {}
    for form in ("polar", "vector"):
        bmn = BiasedMemoryNormalization(16, 64, forgetting=True, init_norm=0.02, form=form)
        optimizer = torch.optim.Adam(bmn.parameters(), lr=2e-3)
        g = torch.Generator().manual_seed(1)
        for _ in range(600):
            optimizer.zero_grad()
            written = torch.nn.functional.normalize(torch.randn(8, 16, 64, generator=g), dim=-1)
            noise = torch.randn(8, 16, 64, generator=g)
            (bmn(written) * noise).sum().backward()  # a loss with no preferred forgetting rate
            optimizer.step()
        norms[form] = float(bmn.bias().detach().norm(dim=-1).mean())
    assert norms["polar"] < 0.03, norms  # stays near 0.02
    assert norms["vector"] > 0.1, norms  # grown fivefold by noise alone

"""Cached generation against the full forward, and the sampling filters."""

import pytest
import torch

from torch_memformer.model.generation import sample_next


def _greedy_by_full_forward(model, prompt, steps, state=None):
    seq = prompt
    for _ in range(steps):
        logits = model(seq, state=state).logits[:, -1]
        seq = torch.cat([seq, logits.argmax(-1, keepdim=True)], 1)
    return seq[:, prompt.size(1) :]


@pytest.mark.parametrize("prompt_len", [1, 5, 8, 15])
def test_greedy_equals_argmax_of_the_full_forward(model, ids, prompt_len):
    prompt = ids[:, :prompt_len]
    out = model.generate(prompt, 30, temperature=0)  # crosses several segments of 8
    expected = _greedy_by_full_forward(model, prompt, 30)
    assert torch.equal(out.tokens, expected)
    full = model(torch.cat([prompt, out.tokens], 1))
    for name, value in full.state.tensors().items():
        torch.testing.assert_close(getattr(out.state, name), value, rtol=0, atol=1e-5, msg=name)


def test_generation_continues_a_carried_state(model, ids):
    history = model(ids[:, :19])
    out = model.generate(ids[:, 19:21], 12, state=history.state, temperature=0)
    expected = _greedy_by_full_forward(model, ids[:, 19:21], 12, state=history.state)
    assert torch.equal(out.tokens, expected)
    # and the returned state keeps streaming like a forward would
    after = model(ids[:, :3], state=out.state).logits
    reference = model(torch.cat([ids[:, 19:21], out.tokens, ids[:, :3]], 1), state=history.state).logits[:, -3:]
    torch.testing.assert_close(after, reference, rtol=0, atol=1e-5)


def test_generation_with_rows_at_different_positions(model, ids):
    history = model(ids[:, :11])
    state = model(ids[:, 11:14], state=history.state, reset=torch.tensor([False, True, False])).state
    out = model.generate(ids[:, 14:15], 10, state=state, temperature=0)
    for row in range(3):
        alone = model.generate(ids[row : row + 1, 14:15], 10, state=state.select([row]), temperature=0)
        assert torch.equal(out.tokens[row : row + 1], alone.tokens)


def test_cached_decoder_equals_uncached(model, ids):
    state = model(ids[:, :8]).state  # a full context
    prefix = ids[:, 8:14]
    full = model.decode(prefix, state.context)
    cache = model.decoder.new_cache(state.context, model.rotary)
    bos = torch.full((3, 1), model.config.bos_token_id)
    inputs = torch.cat([bos, prefix], 1)
    prefill = model.decoder.forward_cached(model.embedding(inputs[:, :3]), 0, cache, model.rotary)
    steps = [model.decoder.forward_cached(model.embedding(inputs[:, i : i + 1]), i, cache, model.rotary) for i in range(3, 7)]
    torch.testing.assert_close(torch.cat([prefill] + steps, 1), full, rtol=0, atol=1e-5)


def test_sampling_is_reproducible_with_a_generator(model, ids):
    a = model.generate(ids[:, :4], 20, generator=torch.Generator().manual_seed(7))
    b = model.generate(ids[:, :4], 20, generator=torch.Generator().manual_seed(7))
    c = model.generate(ids[:, :4], 20, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a.tokens, b.tokens)
    assert not torch.equal(a.tokens, c.tokens)
    assert a.tokens.shape == (3, 20) and a.tokens.min() >= 0 and a.tokens.max() < 50


def test_top_k_and_top_p_keep_only_the_allowed_tokens():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).repeat(2000, 1)
    g = torch.Generator().manual_seed(0)
    top2 = sample_next(logits, temperature=1.0, top_k=2, top_p=None, generator=g)
    assert set(top2.tolist()) == {0, 1}
    nucleus = sample_next(logits, temperature=1.0, top_k=None, top_p=0.7, generator=g)
    assert set(nucleus.tolist()) == {0, 1}  # 0.5 < 0.7, 0.5 + 0.3 >= 0.7: keep two
    tiny = sample_next(logits, temperature=1.0, top_k=None, top_p=0.1, generator=g)
    assert set(tiny.tolist()) == {0}  # the most likely token always stays
    everything = sample_next(logits, temperature=1.0, top_k=None, top_p=None, generator=g)
    assert set(everything.tolist()) == {0, 1, 2, 3}
    frequency = (everything == 0).float().mean()
    assert 0.45 < frequency < 0.55


def test_zero_new_tokens_and_bad_arguments(model, ids):
    out = model.generate(ids[:, :5], 0)
    assert out.tokens.shape == (3, 0)
    assert torch.equal(out.state.tokens, model(ids[:, :5]).state.tokens)
    for kwargs, message in [
        (dict(max_new_tokens=-1), "max_new_tokens"),
        (dict(max_new_tokens=3, temperature=-1.0), "temperature"),
        (dict(max_new_tokens=3, top_k=0), "top_k"),
        (dict(max_new_tokens=3, top_p=1.5), "top_p"),
    ]:
        with pytest.raises(ValueError, match=message):
            model.generate(ids[:, :5], **kwargs)


def test_decoding_cursor_reads_like_the_full_forward(model, ids):
    from torch_memformer.model.cursor import DecodingCursor

    state = model(ids[:, :5]).state
    cursor = DecodingCursor.start(state)
    expected = model(ids[:, 5:25], state=state)
    for i in range(20):  # crosses the segment ends at 8, 16 and 24
        cursor.push(model, ids[:, 5 + i])
        if i % 3:  # the decoder runs lazily: skipped positions are caught up when logits are asked for
            torch.testing.assert_close(cursor.logits(model), expected.logits[:, i], rtol=0, atol=1e-5)
    for name, value in cursor.state().tensors().items():
        torch.testing.assert_close(value, expected.state.tensors()[name], rtol=0, atol=1e-5, msg=name)
    picked = cursor.select(torch.tensor([2, 0]))
    torch.testing.assert_close(picked.logits(model), cursor.logits(model)[[2, 0]], rtol=0, atol=1e-6)
    assert torch.equal(state.tokens, model(ids[:, :5]).state.tokens)  # pushing never wrote into the state

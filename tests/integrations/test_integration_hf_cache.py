"""HF ``generate`` on a MemformerCache: equal to the native generator and to the uncached reference
(greedy, beams, left-padded batches, a starting state), one cached decoder step per token, and the
transformers Cache API (reorder, select, repeat, no crop, continuing a returned cache)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never touch the network (read when huggingface_hub loads)

import pytest
import torch

pytest.importorskip("transformers")

from transformers.cache_utils import Cache  # noqa: E402

from torch_memformer.integrations.hf import MemformerCache, from_native  # noqa: E402

from conftest import tiny_model  # noqa: E402

SEGMENT = 8  # tiny_model's segment_len


@pytest.fixture(scope="module")
def native():
    return tiny_model(seed=3, vocab_size=256)


@pytest.fixture(scope="module")
def hf(native):
    return from_native(native)


def ids_of(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (batch, length), generator=torch.Generator().manual_seed(seed))


def left_padded(prompts: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(p.numel() for p in prompts)
    ids = torch.zeros(len(prompts), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, prompt in enumerate(prompts):
        ids[row, width - prompt.numel():] = prompt
        mask[row, width - prompt.numel():] = 1
    return ids, mask


@pytest.mark.parametrize("prompt_len", [1, 7, 8, 13])
def test_greedy_generate_equals_stream_generate_token_for_token(hf, prompt_len):
    prompt = ids_of(2, prompt_len, seed=prompt_len)
    out = hf.generate(prompt, max_new_tokens=30, do_sample=False, return_dict_in_generate=True)
    assert isinstance(out.cache, MemformerCache) and isinstance(out.cache, Cache)
    fast = hf.stream_generate(prompt, 30, temperature=0)
    assert torch.equal(out.sequences[:, prompt_len:], fast.tokens)  # crosses several segments of 8
    # The cache read the prompt and every new token but the last (whose prediction nobody asked for).
    assert out.cache.get_seq_length() == prompt_len + 29
    expected = hf(out.sequences[:, :-1]).memformer_state
    for name, value in out.cache.memformer_state.tensors().items():
        torch.testing.assert_close(value, expected.tensors()[name], rtol=0, atol=1e-5, msg=name)


def test_cached_generate_equals_the_uncached_reference(hf, native):
    prompt = ids_of(3, 5, seed=1)
    state = native(ids_of(3, 11, seed=2)).state  # continuing streams, mid-segment
    cached = hf.generate(prompt, max_new_tokens=20, do_sample=False, memformer_state=state)
    reference = hf.generate(prompt, max_new_tokens=20, do_sample=False, memformer_state=state, use_cache=False)
    assert torch.equal(cached, reference)
    assert torch.equal(cached[:, 5:], native.generate(prompt, 20, state=state, temperature=0).tokens)


def test_left_padded_batch_equals_single_prompts(hf):
    # Lengths 3, 12 and 6 leave the rows at positions 3, 4 and 6 of their segments: they finish
    # segments at different steps, so the cache runs them as three groups.
    prompts = [ids_of(1, n, seed=10 + n)[0] for n in (3, 12, 6)]
    ids, mask = left_padded(prompts)
    batched = hf.generate(ids, attention_mask=mask, max_new_tokens=25, do_sample=False, return_dict_in_generate=True)
    assert len(batched.cache.groups) == 3
    for row, prompt in enumerate(prompts):
        alone = hf.generate(prompt[None], max_new_tokens=25, do_sample=False)
        assert torch.equal(batched.sequences[row, ids.size(1):], alone[0, prompt.numel():]), row


def test_beam_search_reorders_the_cache(hf, native):
    prompts = [ids_of(1, n, seed=20 + n)[0] for n in (4, 9)]
    ids, mask = left_padded(prompts)
    kwargs = dict(attention_mask=mask, max_new_tokens=14, num_beams=3, num_return_sequences=2, do_sample=False)
    cached = hf.generate(ids, **kwargs)
    assert torch.equal(cached, hf.generate(ids, use_cache=False, **kwargs))
    # Beams fan out from a starting state too (one state row per prompt, repeated for the beams).
    state = native(ids_of(2, 10, seed=5)).state
    with_state = hf.generate(ids, memformer_state=state, **kwargs)
    assert torch.equal(with_state, hf.generate(ids, memformer_state=state, use_cache=False, **kwargs))
    assert not torch.equal(with_state, cached)


def test_one_cached_decoder_step_per_new_token(hf, monkeypatch):
    decoder = hf.memformer.decoder
    positions, full_calls = [], []
    cached_step, full = decoder.forward_cached, decoder.forward
    monkeypatch.setattr(decoder, "forward_cached", lambda x, *a: positions.append(x.size(1)) or cached_step(x, *a))
    monkeypatch.setattr(decoder, "forward", lambda *a: full_calls.append(1) or full(*a))
    prompt_len, new = 13, 40
    hf.generate(ids_of(1, prompt_len, seed=3), max_new_tokens=new, do_sample=False)
    assert not full_calls  # the prompt goes through the encoder only, never the whole decoder
    # The prefill decodes [BOS, the prompt's last partial segment], then one position per new token
    # but the last: linear in the number of tokens.
    assert positions[0] == prompt_len % SEGMENT + 1 and positions[1:] == [1] * (new - 1)


def test_a_returned_cache_continues_generation(hf):
    prompt = ids_of(2, 6, seed=7)
    whole = hf.generate(prompt, max_new_tokens=24, do_sample=False)
    first = hf.generate(prompt, max_new_tokens=10, do_sample=False, return_dict_in_generate=True)
    more = hf.generate(first.sequences, max_new_tokens=14, do_sample=False, cache=first.cache)
    assert torch.equal(more, whole)


def test_cache_rows_can_be_selected_repeated_and_reordered(hf):
    prompts = [ids_of(1, n, seed=30 + n)[0] for n in (5, 10, 3)]
    ids, mask = left_padded(prompts)
    cache = MemformerCache()
    with torch.no_grad():
        logits = hf(ids, attention_mask=mask, cache=cache, logits_to_keep=1).logits[:, -1]
        states = cache.memformer_state
        cache.reorder_cache(torch.tensor([2, 2, 0, 1]))
        assert cache.batch_size == 4
        torch.testing.assert_close(cache.logits(hf.memformer), logits[[2, 2, 0, 1]], rtol=0, atol=1e-6)
        for name, value in cache.memformer_state.tensors().items():
            assert torch.equal(value, states.tensors()[name][[2, 2, 0, 1]]), name
        cache.batch_select_indices(torch.tensor([1, 3]))
        cache.batch_repeat_interleave(2)
        assert torch.equal(cache.memformer_state.position, states.position[[2, 2, 1, 1]])
        # A step after the reordering equals the forward of each source row's whole sequence.
        token = torch.tensor([[7], [8], [9], [10]])
        stepped = hf(token, cache=cache).logits[:, -1]
    for row, (source, t) in enumerate(zip([2, 2, 1, 1], [7, 8, 9, 10])):
        whole = torch.cat([prompts[source], torch.tensor([t])])[None]
        torch.testing.assert_close(stepped[row], hf(whole).logits[0, -1], rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="cannot be cropped"):
        cache.crop(1)


def test_generation_mistakes_are_refused_in_one_line(hf):
    ids, mask = left_padded([ids_of(1, 4)[0], ids_of(1, 6)[0]])
    with pytest.raises(ValueError, match="pad prompts on the left only"):
        hf.generate(ids, attention_mask=mask.flip(1), max_new_tokens=3, do_sample=False)
    state = hf(ids_of(3, 5)).memformer_state
    with pytest.raises(ValueError, match="memformer_state holds 3 streams but generate has 2 rows"):
        hf.generate(ids_of(2, 4), memformer_state=state, max_new_tokens=3)
    cache = MemformerCache()
    hf(ids_of(2, 4), cache=cache)
    with pytest.raises(ValueError, match="cache holds 2 streams"):
        hf(ids_of(3, 1), cache=cache)
    with pytest.raises(ValueError, match="logits_to_keep must be a non-negative integer"):
        hf(ids_of(1, 4), logits_to_keep=-1)


def test_a_prefill_that_keeps_every_logit_then_steps(hf):
    ids, mask = left_padded([ids_of(1, n, seed=40 + n)[0] for n in (6, 11)])
    cache = MemformerCache()
    with torch.no_grad():
        prefill = hf(ids, attention_mask=mask, cache=cache)  # logits_to_keep 0: the full forward
        torch.testing.assert_close(prefill.logits, hf(ids, attention_mask=mask).logits, rtol=0, atol=1e-6)
        nxt = torch.tensor([[5, 6], [7, 8]])
        stepped = hf(nxt, attention_mask=torch.cat([mask, torch.ones_like(nxt)], 1), cache=cache).logits
        whole = hf(torch.cat([ids, nxt], 1), attention_mask=torch.cat([mask, torch.ones_like(nxt)], 1)).logits
    torch.testing.assert_close(stepped, whole[:, -2:], rtol=0, atol=1e-5)
    assert cache.get_seq_length() == ids.size(1) + 2

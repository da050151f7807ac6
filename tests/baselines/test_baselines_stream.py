"""The stream contract of the baselines, for each of them: causality, split-anywhere equality,
resets, predict/advance vs forward, cached generation vs the full forward, state handling."""

import pytest
import torch

from torch_memformer.baselines import TransformerConfig, TransformerLM, TransformerXL, TransformerXLConfig

VOCAB = 50
SMALL = dict(vocab_size=VOCAB, d_model=32, num_heads=4, d_ff=64, num_layers=2, segment_len=8)


def build(kind: str, seed: int = 0, **changes):
    torch.manual_seed(seed)
    if kind == "transformer-xl":
        return TransformerXL(TransformerXLConfig(**{**SMALL, "mem_len": 6, **changes})).eval()
    context_len = 10 if kind == "transformer" else None
    return TransformerLM(TransformerConfig(**{**SMALL, "context_len": context_len, **changes})).eval()


KINDS = ["transformer-xl", "transformer", "transformer-growing"]


@pytest.fixture
def ids() -> torch.Tensor:
    return torch.randint(0, VOCAB, (3, 45), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("kind", KINDS)
def test_loss_is_shifted_cross_entropy_ignoring_minus_100(kind, ids):
    model = build(kind)
    labels = ids.clone()
    labels[:, 10:20] = -100
    out = model(ids, labels=labels)
    assert out.logits.shape == (3, 45, VOCAB)
    keep = labels[:, 1:] != -100
    manual = torch.nn.functional.cross_entropy(out.logits[:, :-1][keep], labels[:, 1:][keep])
    torch.testing.assert_close(out.loss, manual)


@pytest.mark.parametrize("kind", KINDS)
def test_causality_changing_a_token_never_changes_earlier_logits(kind, ids):
    model = build(kind)
    base = model(ids).logits
    for j in [0, 7, 8, 9, 30, 44]:
        changed = ids.clone()
        changed[:, j] = (changed[:, j] + 1) % VOCAB
        logits = model(changed).logits
        torch.testing.assert_close(logits[:, :j], base[:, :j], rtol=0, atol=0)
        assert not torch.allclose(logits[:, j], base[:, j]), "token j must influence its own logit"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cuts", [[1], [5], [8], [9], [3, 4, 5], [8, 16, 24, 32, 40], [44], list(range(1, 45))])
def test_split_anywhere_equals_one_call(kind, ids, cuts):
    model = build(kind)
    whole = model(ids)
    state, pieces = None, []
    for start, end in zip([0] + cuts, cuts + [ids.size(1)]):
        out = model(ids[:, start:end], state=state)
        pieces.append(out.logits)
        state = out.state
    torch.testing.assert_close(torch.cat(pieces, 1), whole.logits, rtol=0, atol=1e-5)
    for name, value in whole.state.tensors().items():
        torch.testing.assert_close(getattr(state, name), value, rtol=0, atol=1e-5, msg=name)


@pytest.mark.parametrize("kind", KINDS)
def test_segment_len_never_changes_a_value(kind, ids):
    logits = [build(kind, segment_len=length)(ids).logits for length in (1, 7, 45)]
    torch.testing.assert_close(logits[0], logits[1], rtol=0, atol=1e-5)
    torch.testing.assert_close(logits[0], logits[2], rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_predict_and_advance_agree_with_forward(kind, ids):
    model = build(kind)
    first = model(ids[:, :13])
    out = model(ids[:, 13:], state=first.state)
    predicted = model.predict(ids[:, 13:], state=first.state)
    # predict gives the distribution of each token itself; forward, of the token after it.
    torch.testing.assert_close(predicted[:, 1:], out.logits[:, :-1], rtol=0, atol=1e-5)
    torch.testing.assert_close(predicted[:, 0], first.logits[:, -1], rtol=0, atol=1e-5)
    advanced = model.advance(ids[:, 13:], state=first.state)
    for name, value in out.state.tensors().items():
        torch.testing.assert_close(getattr(advanced, name), value, rtol=0, atol=1e-6, msg=name)


@pytest.mark.parametrize("kind", KINDS)
def test_predict_on_a_fresh_stream_leaves_the_first_token_unpredicted(kind, ids):
    model = build(kind)
    predicted = model.predict(ids)
    assert torch.count_nonzero(predicted[:, 0]) == 0, "the first token of a stream gets all-zero logits"
    torch.testing.assert_close(predicted[:, 1:], model(ids).logits[:, :-1], rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_reset_rows_restart_as_fresh_streams(kind, ids):
    model = build(kind)
    state = model(ids[:, :20]).state
    reset = torch.tensor([True, False, True])
    out = model(ids[:, 20:], state=state, reset=reset)
    fresh = model(ids[:, 20:])
    continued = model(ids).logits[:, 20:]
    torch.testing.assert_close(out.logits[reset], fresh.logits[reset], rtol=0, atol=1e-5)
    torch.testing.assert_close(out.logits[~reset], continued[~reset], rtol=0, atol=1e-5)
    # The reset rows' states continue as a fresh stream's would.
    later = model(ids[:, :7], state=out.state)
    fresh_later = model(ids[:, :7], state=fresh.state)
    torch.testing.assert_close(later.logits[reset], fresh_later.logits[reset], rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("prompt_len", [1, 3, 11])
def test_greedy_generation_equals_argmax_of_the_full_forward(kind, ids, prompt_len):
    model = build(kind)
    prompt = ids[:, :prompt_len]
    generated = model.generate(prompt, 20, temperature=0)
    text = torch.cat([prompt, generated.tokens], dim=1)
    full = model(text)
    torch.testing.assert_close(full.logits[:, prompt_len - 1 : -1].argmax(-1), generated.tokens, rtol=0, atol=0)
    for name, value in full.state.tensors().items():
        torch.testing.assert_close(getattr(generated.state, name), value, rtol=0, atol=1e-5, msg=name)


@pytest.mark.parametrize("kind", KINDS)
def test_greedy_generation_continues_rows_at_different_places(kind, ids):
    # Row 0 restarts two tokens before the prompt, so rows hold caches of different lengths.
    model = build(kind)
    state = model.advance(ids[:, 5:7], state=model.advance(ids[:, :5]), reset=torch.tensor([True, False, False]))
    generated = model.generate(ids[:, 7:9], 15, state=state, temperature=0)
    full = model(torch.cat([ids[:, 7:9], generated.tokens], dim=1), state=state)
    torch.testing.assert_close(full.logits[:, 1:-1].argmax(-1), generated.tokens, rtol=0, atol=0)
    for name, value in full.state.tensors().items():
        torch.testing.assert_close(getattr(generated.state, name), value, rtol=0, atol=1e-5, msg=name)


@pytest.mark.parametrize("kind", KINDS)
def test_sampling_is_reproducible_with_a_generator_and_continues_a_state(kind, ids):
    model = build(kind)
    state = model(ids[:, :9]).state
    draws = [
        model.generate(ids[:, 9:12], 15, state=state, top_k=5, top_p=0.9, generator=torch.Generator().manual_seed(3))
        for _ in range(2)
    ]
    torch.testing.assert_close(draws[0].tokens, draws[1].tokens, rtol=0, atol=0)
    assert draws[0].tokens.shape == (3, 15) and int(draws[0].tokens.max()) < VOCAB
    empty = model.generate(ids[:, 9:12], 0, state=state)
    assert empty.tokens.shape == (3, 0)
    with pytest.raises(ValueError, match="temperature"):
        model.generate(ids[:, :2], 3, temperature=-1.0)


@pytest.mark.parametrize("kind", KINDS)
def test_state_select_cat_and_tensor_round_trip(kind, ids):
    model = build(kind)
    state = model(ids[:, :17]).state
    halves = [state.select([2, 0]), state.select(torch.tensor([1]))]
    merged = type(state).cat(halves).select([1, 2, 0])
    for name, value in state.tensors().items():
        torch.testing.assert_close(getattr(merged, name), value, rtol=0, atol=0, msg=name)
    again = type(state).from_tensors({k: v.clone() for k, v in state.tensors().items()})
    torch.testing.assert_close(model(ids[:, 17:], state=again).logits, model(ids[:, 17:], state=state).logits)
    assert state.detach().num_bytes() == state.num_bytes() > 0


@pytest.mark.parametrize("kind", KINDS)
def test_bad_inputs_raise_actionable_errors(kind, ids):
    model = build(kind)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model(torch.full((1, 3), VOCAB))
    with pytest.raises(ValueError, match="shape"):
        model(torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="batch size"):
        model(ids, state=model.init_state(2))
    with pytest.raises(ValueError, match="reset"):
        model(ids, reset=torch.tensor([True]))
    with pytest.raises(ValueError, match="labels"):
        model(ids, labels=ids[:, :3])
    with pytest.raises(ValueError, match="batch_size"):
        model.init_state(0)
    with pytest.raises(TypeError, match="state must be"):
        model(ids, state=object())

"""A stream's state as a file: round trip, continuation equals one uninterrupted stream, refusal
against another model / tokenizer / corrupted file, and `memformer generate --state-in/--state-out`."""

import json

import pytest
import torch
from safetensors.torch import save_file

from torch_memformer.checkpoint import CheckpointError, save_model
from torch_memformer.cli import main
from torch_memformer.data import ByteTokenizer, train_bpe
from torch_memformer.generate import generate_text
from torch_memformer.registry import build_model
from torch_memformer.state_file import load_state, read_state_info, save_state

from conftest import tiny_config, tiny_model


def ids_of(batch, length, seed=0):
    return torch.randint(0, 256, (batch, length), generator=torch.Generator().manual_seed(seed))


def test_round_trip_continues_the_stream_exactly(tmp_path):
    model = tiny_model(seed=1, vocab_size=256)
    ids = ids_of(2, 37, seed=2)  # stops mid-segment (segment_len 8): tokens and position matter
    with torch.no_grad():
        state = model(ids[:, :21]).state
        save_state(tmp_path / "s.state", state, model=model, tokenizer=ByteTokenizer())
        loaded = load_state(tmp_path / "s.state", model=model, tokenizer=ByteTokenizer())
        for name, value in state.tensors().items():
            assert torch.equal(loaded.tensors()[name], value) and loaded.tensors()[name].dtype == value.dtype, name
        assert torch.equal(model(ids[:, 21:], state=loaded).logits, model(ids[:, 21:], state=state).logits)
    info = read_state_info(tmp_path / "s.state")
    assert info["state"] == "MemformerState" and info["tokenizer"] == {"kind": "byte"}
    assert info["config"]["model_type"] == "memformer" and info["config"]["d_model"] == 32


def test_baseline_states_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_model("transformer-xl", dict(vocab_size=256, d_model=32, num_heads=4, mem_len=8)).eval()
    with torch.no_grad():
        state = model(ids_of(1, 13), state=None).state
    save_state(tmp_path / "txl.state", state, model=model)
    loaded = load_state(tmp_path / "txl.state", model=model)
    assert type(loaded) is type(state)
    assert all(torch.equal(loaded.tensors()[n], v) for n, v in state.tensors().items())


def test_another_model_or_tokenizer_or_file_is_refused(tmp_path):
    model = tiny_model(seed=1, vocab_size=256)
    state = model.init_state(1)
    path = save_state(tmp_path / "s.state", state, model=model, tokenizer=ByteTokenizer())
    other = tiny_model(seed=1, vocab_size=256, d_model=64, num_heads=4)
    with pytest.raises(CheckpointError, match=r"state of another model: d_model 32 \(file\) vs 64 \(model\)"):
        load_state(path, model=other)
    with pytest.raises(CheckpointError, match="the state of a 'memformer' model, not of this 'transformer-xl' model"):
        load_state(path, model=build_model("transformer-xl", dict(vocab_size=256, d_model=32, num_heads=4)))
    bpe = train_bpe(["some words and more words " * 30], vocab_size=260)
    with pytest.raises(CheckpointError, match="written with the tokenizer"):
        load_state(path, model=model, tokenizer=bpe)
    with pytest.raises(TypeError, match="needs a MemformerState"):
        save_state(tmp_path / "x.state", object(), model=model)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_state(tmp_path / "nowhere.state", model=model)
    (tmp_path / "junk.state").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_state(tmp_path / "junk.state", model=model)
    save_file({"x": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(CheckpointError, match="not a torch-memformer state file"):
        load_state(tmp_path / "plain.safetensors", model=model)
    # Right metadata, wrong tensors.
    info = json.dumps(read_state_info(path), sort_keys=True)
    tensors = {n: v.clone() for n, v in state.tensors().items()}
    tensors["memory"] = torch.zeros(1, 7, 32)
    save_file(tensors, str(tmp_path / "bad.state"), metadata={"torch_memformer": info})
    with pytest.raises(CheckpointError, match=r"memory has shape \(1, 7, 32\), but this model's is \(batch, 6, 32\)"):
        load_state(tmp_path / "bad.state", model=model)
    assert tiny_config(vocab_size=256) == model.config  # nothing above touched the model


def test_generate_text_returns_the_state_after_every_token():
    model = tiny_model(seed=4, vocab_size=256).double()
    tokenizer = ByteTokenizer()
    pieces = generate_text(model, tokenizer, "abc", max_new_tokens=13, temperature=0.0, chunk_tokens=5)
    text = ""
    while True:
        try:
            text += next(pieces)
        except StopIteration as stop:
            state = stop.value
            break
    prompt = torch.tensor([list(b"abc")])
    new_tokens = model.generate(prompt, 13, temperature=0.0).tokens
    assert text == tokenizer.decode(new_tokens[0].tolist())
    expected = model.advance(torch.cat([prompt, new_tokens], dim=1), state=None)
    for name, value in expected.tensors().items():
        torch.testing.assert_close(state.tensors()[name], value, rtol=0, atol=1e-9, msg=name)


def test_generate_command_state_in_and_out(tmp_path, capsys):
    model = tiny_model(seed=6, vocab_size=256)
    save_model(tmp_path / "ckpt", model, tokenizer=ByteTokenizer())
    base = ["generate", "--checkpoint", str(tmp_path / "ckpt"), "--temperature", "0", "--threads", "1", "--no-echo"]
    # Day 1: read a text into a state without generating.
    assert main(base + ["--prompt", "first part of the stream. ", "--max-new-tokens", "0",
                        "--state-out", str(tmp_path / "day1.state")]) == 0
    assert capsys.readouterr().out == "\n"
    # Day 2: continue from the file; the same tokens as reading everything in one go.
    assert main(base + ["--prompt", "then more", "--max-new-tokens", "12", "--state-in", str(tmp_path / "day1.state"),
                        "--state-out", str(tmp_path / "day2.state")]) == 0
    continued = capsys.readouterr().out
    assert main(base + ["--prompt", "first part of the stream. then more", "--max-new-tokens", "12"]) == 0
    assert continued == capsys.readouterr().out and len(continued) > 1
    day2 = load_state(tmp_path / "day2.state", model=model)
    prompt = torch.tensor([list(b"first part of the stream. then more")])
    new_tokens = model.generate(prompt, 12, temperature=0.0).tokens
    assert continued == ByteTokenizer().decode(new_tokens[0].tolist()) + "\n"
    expected = model.advance(torch.cat([prompt, new_tokens], dim=1), state=None)
    torch.testing.assert_close(day2.memory, expected.memory, rtol=0, atol=1e-5)
    assert torch.equal(day2.tokens, expected.tokens) and torch.equal(day2.position, expected.position)
    # Another model's state: one line, exit code 2.
    save_model(tmp_path / "other", tiny_model(seed=6, vocab_size=256, num_slots=4), tokenizer=ByteTokenizer())
    other = ["generate", "--checkpoint", str(tmp_path / "other"), "--prompt", "x", "--threads", "1"]
    assert main(other + ["--state-in", str(tmp_path / "day1.state")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("memformer: error:") and "state of another model: num_slots 6 (file) vs 4 (model)" in err
    assert len(err.strip().splitlines()) == 1
    assert main(other + ["--state-in", str(tmp_path / "missing.state")]) == 2
    assert "does not exist" in capsys.readouterr().err

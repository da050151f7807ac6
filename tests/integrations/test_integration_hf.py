"""Hugging Face adapter: config, auto classes, forward/state parity with the native model, padding,
save/load in safetensors, generate, tokenizers, conversion both ways, and the convert command."""

import dataclasses
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never touch the network (read when huggingface_hub loads)
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest
import torch

pytest.importorskip("transformers")

from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from torch_memformer import MemformerConfig  # noqa: E402
from torch_memformer.checkpoint import CheckpointError, load_model, save_model  # noqa: E402
from torch_memformer.cli import main  # noqa: E402
from torch_memformer.data import ByteTokenizer, train_bpe  # noqa: E402
from torch_memformer.integrations.hf import (  # noqa: E402
    MemformerForCausalLM,
    MemformerHFConfig,
    from_native,
    hf_to_native,
    native_to_hf,
    to_hf_tokenizer,
)
from torch_memformer.registry import build_model  # noqa: E402

from conftest import tiny_config, tiny_model  # noqa: E402

TEXT = "Memformer reads a stream: héllo, wörld! 😀 \t\n  tabs\r\nand CRLF … 中文 " * 3


@pytest.fixture(scope="module")
def native():
    return tiny_model(seed=3, vocab_size=256)


@pytest.fixture(scope="module")
def hf(native):
    return from_native(native)


@pytest.fixture(scope="module")
def bpe():
    return train_bpe([TEXT * 5, "another document, with other words " * 20], vocab_size=300)


def ids_of(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (batch, length), generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------- config and auto classes


def test_config_has_exactly_the_native_fields_and_defaults():
    native_fields = {f.name: f.default for f in dataclasses.fields(MemformerConfig)}
    hf_config = MemformerHFConfig()
    assert {name: getattr(hf_config, name) for name in native_fields} == native_fields
    assert hf_config.to_memformer_config() == MemformerConfig()
    assert MemformerHFConfig.from_memformer_config(tiny_config()).to_memformer_config() == tiny_config()


def test_the_writer_init_scope_round_trips_through_save_pretrained(tmp_path):
    # Decision 21's switch changes only the starting weights, so it must survive config.json for a
    # run started from a saved config to begin as the one that saved it.
    native = tiny_config(writer_init_scope="all", writer_init_std=0.01)
    MemformerHFConfig.from_memformer_config(native).save_pretrained(tmp_path / "c")
    assert AutoConfig.from_pretrained(tmp_path / "c").to_memformer_config() == native


def test_config_validation_is_the_native_one():
    with pytest.raises(ValueError, match=r"d_model \(100\) must be divisible by num_heads \(3\)"):
        MemformerHFConfig(d_model=100, num_heads=3)
    with pytest.raises(ValueError, match="write_heads must be one of"):
        MemformerHFConfig(write_heads="both")


def test_auto_classes_know_model_type_memformer(tmp_path):
    config = AutoConfig.for_model("memformer", **tiny_config().to_dict())
    assert type(config) is MemformerHFConfig and config.d_model == 32
    model = AutoModelForCausalLM.from_config(config)
    assert type(model) is MemformerForCausalLM
    # A fresh model follows the native scheme: unit-norm initial memory, rotary tables rebuilt.
    memory = model.memformer.initial_memory()
    assert torch.allclose(memory.norm(dim=-1), torch.ones(memory.size(0)), atol=1e-5)
    assert torch.equal(model.memformer.rotary.cos_TK, tiny_model().rotary.cos_TK)


# ---------------------------------------------------------------------------- forward and state


def test_forward_equals_native_and_state_streams(native, hf):
    ids = ids_of(2, 30)
    out = hf(ids, labels=ids)
    ref = native(ids, labels=ids)
    assert torch.equal(out.logits, ref.logits) and torch.equal(out.loss, ref.loss)
    first = hf(ids[:, :13])
    second = hf(ids[:, 13:], memformer_state=first.memformer_state)
    assert torch.allclose(torch.cat([first.logits, second.logits], dim=1), ref.logits, atol=1e-5)
    for name, value in second.memformer_state.tensors().items():
        assert torch.allclose(value.float(), ref.state.tensors()[name].float(), atol=1e-5), name
    loss, logits, state = hf(ids, labels=ids, return_dict=False)
    assert torch.equal(logits, ref.logits) and state.batch_size == 2


def test_padding_is_not_read(native, hf):
    ids = ids_of(3, 20, seed=1)
    mask = torch.ones(3, 20, dtype=torch.long)
    mask[0, :6] = 0    # left padding
    mask[1, 15:] = 0   # right padding
    mask[2, :2] = 0
    mask[2, 17:] = 0   # both
    spans = [(6, 20), (0, 15), (2, 17)]
    out = hf(ids, attention_mask=mask, labels=ids)
    total, count = 0.0, 0
    for row, (start, end) in enumerate(spans):
        alone = native(ids[row : row + 1, start:end], labels=ids[row : row + 1, start:end])
        assert torch.allclose(out.logits[row, start:end], alone.logits[0], atol=1e-5)
        assert not out.logits[row, :start].any() and not out.logits[row, end:].any()
        for name, value in out.memformer_state.select([row]).tensors().items():
            assert torch.allclose(value.float(), alone.state.tensors()[name].float(), atol=1e-5), name
        total += float(alone.loss.detach()) * (end - start - 1)
        count += end - start - 1
    assert float(out.loss.detach()) == pytest.approx(total / count, rel=1e-5)


def test_a_row_of_padding_only_leaves_its_stream_where_it_was(native, hf):
    ids = ids_of(2, 12, seed=3)
    state = native(ids).state
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1] = 0
    out = hf(ids, memformer_state=state, attention_mask=mask)
    assert not out.logits[1].any()
    for name, value in out.memformer_state.select([1]).tensors().items():
        assert torch.equal(value, state.select([1]).tensors()[name]), name
    assert torch.allclose(out.logits[0], native(ids[:1], state=state.select([0])).logits[0], atol=1e-5)
    assert not hf(ids, attention_mask=torch.zeros_like(ids)).logits.any()


def test_a_gap_in_the_mask_is_refused(hf):
    mask = torch.ones(1, 10, dtype=torch.long)
    mask[0, 4] = 0
    with pytest.raises(ValueError, match="only pad rows on the left or the right"):
        hf(ids_of(1, 10), attention_mask=mask)


# ---------------------------------------------------------------------------- save / load


def test_save_pretrained_writes_safetensors_and_loads_back(tmp_path, hf):
    hf.save_pretrained(tmp_path / "m")
    names = {p.name for p in (tmp_path / "m").iterdir()}
    assert "model.safetensors" in names and not any(n.endswith((".bin", ".pt", ".pth")) for n in names)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    assert type(loaded) is MemformerForCausalLM
    # Tensors loaded from the file may sit at addresses that are not 64-byte aligned, which sends
    # some CPU kernels down another vectorised path (1e-7 apart); fresh copies are aligned, so the
    # comparison can stay bit for bit.
    with torch.no_grad():
        for parameter in loaded.parameters():
            parameter.data = parameter.data.clone()
    ids = ids_of(2, 19, seed=2)
    assert torch.equal(loaded(ids).logits, hf(ids).logits)
    with pytest.raises(ValueError, match="safetensors only"):
        MemformerForCausalLM.from_pretrained(tmp_path / "m", use_safetensors=False)


def test_spread_write_heads_round_trip_through_save_pretrained(tmp_path):
    # Decision 16's switch is a string in config.json; its per-head biases are weights.
    native = tiny_model(seed=5, vocab_size=256, write_keep_init="spread")
    converted = from_native(native)
    converted.save_pretrained(tmp_path / "m")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    assert loaded.config.write_keep_init == "spread"
    with torch.no_grad():
        for parameter in loaded.parameters():
            parameter.data = parameter.data.clone()  # aligned copies, as above
    ids = ids_of(2, 19, seed=4)
    assert torch.equal(loaded(ids).logits, converted(ids).logits)


def test_the_null_slot_round_trips_through_save_pretrained_and_its_absence_is_refused(tmp_path):
    # Decision 17's switch is a bool in config.json, its vectors are weights; a config that asks
    # for them without them would start them at random, silently.
    import json

    native = tiny_model(seed=6, vocab_size=256, read_null_slot=True, read_null_logit_init=-2.5)
    with torch.no_grad():  # offsets that differ per layer and head, so a wrong copy shows
        for layer in native.encoder.layers:
            layer.null_logit_H.add_(torch.randn_like(layer.null_logit_H))
    converted = from_native(native)
    converted.save_pretrained(tmp_path / "m")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    assert loaded.config.read_null_slot is True and loaded.config.read_null_logit_init == -2.5
    with torch.no_grad():
        for parameter in loaded.parameters():
            parameter.data = parameter.data.clone()  # aligned copies, as above
    ids = ids_of(2, 19, seed=4)
    assert torch.equal(loaded(ids).logits, converted(ids).logits)
    from_native(tiny_model(seed=6, vocab_size=256, read_null_slot=False)).save_pretrained(tmp_path / "plain")
    config_path = tmp_path / "plain" / "config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "read_null_slot": True}))
    with pytest.raises(ValueError, match="no null-slot weights"):
        MemformerForCausalLM.from_pretrained(tmp_path / "plain")
    # The same for a null slot saved without the logit offset its config now asks for.
    from_native(tiny_model(seed=6, vocab_size=256, read_null_slot=True)).save_pretrained(tmp_path / "no-offset")
    config_path = tmp_path / "no-offset" / "config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "read_null_logit_init": -4.0}))
    with pytest.raises(ValueError, match="no null-slot weights"):
        MemformerForCausalLM.from_pretrained(tmp_path / "no-offset")


def test_a_directory_converted_before_forgetting_form_is_refused_with_the_fix(tmp_path):
    # Such a directory holds the forgetting bias as one vector and no forgetting_form in its
    # config.json; loading it as today's default ("polar") would start v from scratch silently.
    import json

    old = MemformerForCausalLM(MemformerHFConfig.from_memformer_config(tiny_config(forgetting_form="vector")))
    old.save_pretrained(tmp_path / "old")
    config_path = tmp_path / "old" / "config.json"
    saved = json.loads(config_path.read_text())
    del saved["forgetting_form"]
    config_path.write_text(json.dumps(saved))
    with pytest.raises(ValueError, match="convert the native checkpoint again"):
        AutoModelForCausalLM.from_pretrained(tmp_path / "old")
    # The same directory with its field still there loads.
    saved["forgetting_form"] = "vector"
    config_path.write_text(json.dumps(saved))
    assert MemformerForCausalLM.from_pretrained(tmp_path / "old").config.forgetting_form == "vector"


# ---------------------------------------------------------------------------- generation


def test_hf_greedy_generate_equals_native_greedy(native, hf):
    prompt = ids_of(2, 11, seed=4)
    hf_tokens = hf.generate(prompt, max_new_tokens=20, do_sample=False)
    assert torch.equal(hf_tokens[:, :11], prompt)
    native_out = native.generate(prompt, 20, temperature=0)
    assert torch.equal(hf_tokens[:, 11:], native_out.tokens)
    fast = hf.stream_generate(prompt, 20, temperature=0)
    assert torch.equal(fast.tokens, native_out.tokens)
    # Sampling runs through the same path; top_k=1 leaves only the greedy choice.
    sampled = hf.generate(prompt, max_new_tokens=20, do_sample=True, top_k=1)
    assert torch.equal(sampled, hf_tokens)


def test_generate_continues_a_given_state_and_left_padded_prompts(native, hf):
    history = ids_of(1, 13, seed=5)
    state = native(history).state
    prompt = ids_of(1, 4, seed=6)
    continued = hf.generate(prompt, max_new_tokens=12, do_sample=False, memformer_state=state)
    assert torch.equal(continued[:, 4:], native.generate(prompt, 12, state=state, temperature=0).tokens)
    short, long = ids_of(1, 5, seed=7), ids_of(1, 9, seed=8)
    batch = torch.cat([torch.cat([torch.zeros(1, 4, dtype=torch.long), short], dim=1), long])
    mask = torch.ones_like(batch)
    mask[0, :4] = 0
    both = hf.generate(batch, attention_mask=mask, max_new_tokens=10, do_sample=False)
    assert torch.equal(both[0, 9:], native.generate(short, 10, temperature=0).tokens[0])
    assert torch.equal(both[1, 9:], native.generate(long, 10, temperature=0).tokens[0])


# ---------------------------------------------------------------------------- tokenizers


def test_byte_tokenizer_as_transformers_tokenizer_gives_byte_ids(tmp_path):
    hf_tok = to_hf_tokenizer(ByteTokenizer())
    text = TEXT + "".join(chr(c) for c in range(0, 600, 7))
    assert hf_tok(text)["input_ids"] == ByteTokenizer().encode(text)
    assert hf_tok.decode(ByteTokenizer().encode(text)) == text
    hf_tok.save_pretrained(tmp_path)
    assert AutoTokenizer.from_pretrained(tmp_path).encode(text) == list(text.encode("utf-8"))


def test_bpe_tokenizer_as_transformers_tokenizer(tmp_path, bpe):
    hf_tok = to_hf_tokenizer(bpe)
    assert hf_tok(TEXT)["input_ids"] == bpe.encode(TEXT) and len(bpe.encode(TEXT)) < len(TEXT.encode())
    hf_tok.save_pretrained(tmp_path)
    assert AutoTokenizer.from_pretrained(tmp_path).decode(bpe.encode(TEXT)) == TEXT


# ---------------------------------------------------------------------------- conversion


@pytest.mark.parametrize("kind", ["byte", "bpe"])
def test_conversion_round_trip(tmp_path, kind, bpe):
    tokenizer = ByteTokenizer() if kind == "byte" else bpe
    model = tiny_model(seed=9, vocab_size=tokenizer.vocab_size, tie_embeddings=kind == "byte")
    save_model(tmp_path / "native", model, tokenizer=tokenizer)
    native_to_hf(tmp_path / "native", tmp_path / "hf")
    hf_model = AutoModelForCausalLM.from_pretrained(tmp_path / "hf")
    hf_tok = AutoTokenizer.from_pretrained(tmp_path / "hf")
    ids = torch.tensor([hf_tok(TEXT)["input_ids"]])
    assert ids[0].tolist() == tokenizer.encode(TEXT)
    # Not bitwise: transformers keeps the weights in the memory-mapped file, whose alignment can
    # pick another float32 matmul kernel (rounding only); the tensors themselves are compared exactly below.
    torch.testing.assert_close(hf_model(ids).logits, model(ids).logits, rtol=0, atol=1e-6)
    hf_to_native(tmp_path / "hf", tmp_path / "back")
    back = load_model(tmp_path / "back")
    assert back.config == model.config and back.tokenizer.identity()["kind"] == kind
    assert back.tokenizer.encode(TEXT) == tokenizer.encode(TEXT)
    assert back.tokenizer.identity() == tokenizer.identity()  # the special tokens' registration is dropped
    original = model.state_dict()
    assert set(back.model.state_dict()) == set(original)
    assert all(torch.equal(value, original[name]) for name, value in back.model.state_dict().items())


def test_conversion_refuses_other_models(tmp_path):
    save_model(tmp_path / "txl", build_model("transformer-xl", dict(d_model=32, num_heads=4, mem_len=8)))
    with pytest.raises(CheckpointError, match="only Memformer checkpoints"):
        native_to_hf(tmp_path / "txl", tmp_path / "hf")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(CheckpointError, match="not 'memformer'"):
        hf_to_native(tmp_path / "other", tmp_path / "native")


def test_convert_command(tmp_path, capsys):
    save_model(tmp_path / "native", tiny_model(vocab_size=256), tokenizer=ByteTokenizer())
    assert main(["convert", str(tmp_path / "native"), "--to", "hf", "--out", str(tmp_path / "hf")]) == 0
    assert main(["convert", str(tmp_path / "hf"), "--to", "native", "--out", str(tmp_path / "back")]) == 0
    assert load_model(tmp_path / "back").config == tiny_config(vocab_size=256)
    capsys.readouterr()
    assert main(["convert", str(tmp_path / "hf"), "--to", "native", "--out", str(tmp_path / "back")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "nowhere"), "--to", "hf", "--out", str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err

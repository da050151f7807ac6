"""The byte tokenizer's pad / bos / eos (NUL, STX, ETX) in transformers: ids unchanged, named in
generation_config.json, and the stock tools that need them (the LM collator, batched pipelines)
work on a converted checkpoint."""

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never touch the network (read when huggingface_hub loads)

import pytest
import torch

pytest.importorskip("transformers")

from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForLanguageModeling, pipeline  # noqa: E402

from torch_memformer.checkpoint import save_model  # noqa: E402
from torch_memformer.data import ByteTokenizer, train_bpe  # noqa: E402
from torch_memformer.integrations.hf import byte_level_backend, from_hf_tokenizer_file, native_to_hf  # noqa: E402
from torch_memformer.integrations.hf import special_token_ids, to_hf_tokenizer  # noqa: E402

from conftest import tiny_model  # noqa: E402

# The characters that stand for bytes 0, 2 and 3 in the byte-level vocabulary, and the bytes themselves.
TRICKY = "Romanian ă, Ā, Ă; control \x00\x02\x03 bytes; 😀 中文"


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("special")
    model = tiny_model(seed=6, vocab_size=256)
    save_model(root / "native", model, tokenizer=ByteTokenizer())
    native_to_hf(root / "native", root / "hf")
    return root / "hf", model


def test_byte_tokenizer_names_nul_stx_etx_and_still_reads_bytes(tmp_path):
    tokenizer = to_hf_tokenizer(ByteTokenizer())
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 2, 3)
    assert len(tokenizer) == 256  # no new ids: old checkpoints stay valid
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    for tok in (tokenizer, loaded):
        assert tok(TRICKY)["input_ids"] == list(TRICKY.encode("utf-8"))
        assert tok.decode(list(TRICKY.encode("utf-8"))) == TRICKY
        assert tok.decode(list(TRICKY.encode("utf-8")), skip_special_tokens=True) == TRICKY.replace("\x00\x02\x03", "")
    # Our converter recognises the byte model with its special tokens, and the file written before them.
    assert isinstance(from_hf_tokenizer_file(tmp_path / "tokenizer.json"), ByteTokenizer)
    byte_level_backend().save(str(tmp_path / "old.json"))
    assert isinstance(from_hf_tokenizer_file(tmp_path / "old.json"), ByteTokenizer)


def test_bpe_tokenizer_names_its_single_byte_tokens_and_keeps_its_ids(tmp_path):
    bpe = train_bpe([TRICKY * 20, "other words in another document " * 20], vocab_size=300)
    tokenizer = to_hf_tokenizer(bpe)
    ids = special_token_ids(bpe)
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (
        ids["pad_token_id"], ids["bos_token_id"], ids["eos_token_id"])
    for name, byte in (("pad_token_id", 0), ("bos_token_id", 2), ("eos_token_id", 3)):
        assert bpe.decode([ids[name]]) == chr(byte)  # the token of that one byte
    assert len(tokenizer) == bpe.vocab_size
    assert tokenizer(TRICKY)["input_ids"] == bpe.encode(TRICKY)
    assert bpe.encode("ă") != [ids["eos_token_id"]]  # the native backend was not given the tokens
    tokenizer.save_pretrained(tmp_path)
    assert AutoTokenizer.from_pretrained(tmp_path)(TRICKY)["input_ids"] == bpe.encode(TRICKY)
    back = from_hf_tokenizer_file(tmp_path / "tokenizer.json")
    assert back.identity() == bpe.identity() and back.encode(TRICKY) == bpe.encode(TRICKY)


def test_generation_config_names_the_special_tokens(converted):
    hf_dir, _ = converted
    saved = json.loads((hf_dir / "generation_config.json").read_text())
    assert (saved["pad_token_id"], saved["bos_token_id"], saved["eos_token_id"]) == (0, 2, 3)
    model = AutoModelForCausalLM.from_pretrained(hf_dir)
    assert model.generation_config.eos_token_id == 3 and model.generation_config.pad_token_id == 0


def test_language_modelling_collator_pads_and_the_loss_ignores_it(converted):
    hf_dir, native = converted
    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    model = AutoModelForCausalLM.from_pretrained(hf_dir).eval()
    texts = ["a short one", "a much longer document that spans segments"]
    batch = DataCollatorForLanguageModeling(tokenizer, mlm=False)([tokenizer(t) for t in texts])
    assert batch["input_ids"][0, len(texts[0]):].eq(0).all() and batch["labels"][0, len(texts[0]):].eq(-100).all()
    total, count = 0.0, 0
    with torch.no_grad():
        loss = model(**batch).loss
        for text in texts:
            ids = torch.tensor([list(text.encode())])
            total += float(native(ids, labels=ids).loss) * (ids.size(1) - 1)
            count += ids.size(1) - 1
    assert float(loss) == pytest.approx(total / count, rel=1e-5)


def test_batched_pipeline_equals_one_prompt_at_a_time(converted):
    hf_dir, _ = converted
    generator = pipeline("text-generation", model=AutoModelForCausalLM.from_pretrained(hf_dir),
                         tokenizer=AutoTokenizer.from_pretrained(hf_dir))
    prompts = ["Once upon", "A much longer prompt, of three segments"]
    batched = generator(prompts, batch_size=2, max_new_tokens=12, do_sample=False)
    for prompt, out in zip(prompts, batched):
        assert out == generator(prompt, max_new_tokens=12, do_sample=False)

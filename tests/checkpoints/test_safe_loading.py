"""No file a user passes is ever unpickled.

Each test puts a malicious pickle (unpickling it creates a marker file) in place of one kind of
file the project reads from users, checks that reading is refused with a clear error, and that
the marker was never created. The native weights (model.safetensors) are covered in
tests/checkpoints/test_checkpoint.py; this file covers everything else: config, tokenizer files, training
state, the token cache, JSON config files, corpus files, and Hugging Face directories.
"""

import json
import os
import pickle

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never touch the network
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from torch_memformer import MemformerConfig
from torch_memformer.checkpoint import CheckpointError, load_model, save_model
from torch_memformer.data import ByteTokenizer, DataSpec, load_or_tokenize, open_corpus, train_bpe
from torch_memformer.training.config import parse_model_config, read_config_file
from torch_memformer.training.training_state import TRAINER_STATE_FILE, TRAINING_STATE_FILE, read_training_state

from conftest import tiny_model


class Exploit:
    """Unpickling this creates (opens for writing) the file ``path``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture
def marker(tmp_path):
    return tmp_path / "pwned"


@pytest.fixture
def payload(marker):
    return pickle.dumps(Exploit(marker))


def test_the_payload_is_live(tmp_path, marker, payload):
    # The control: unpickling does create the marker, so its absence below means nothing was unpickled.
    pickle.loads(payload).close()
    assert marker.exists()
    marker.unlink()
    torch.save({"weights": Exploit(marker)}, tmp_path / "model.pt")
    torch.load(tmp_path / "model.pt", weights_only=False).get("weights").close()
    assert marker.exists()


@pytest.mark.parametrize("name, message", [
    ("config.json", "not readable JSON"),
    ("tokenizer_meta.json", "broken tokenizer"),
    ("tokenizer.json", "broken tokenizer"),
])
def test_native_checkpoint_files(tmp_path, marker, payload, name, message):
    tokenizer = train_bpe(["some text to learn a few merges from " * 20], vocab_size=270)
    save_model(tmp_path / "ckpt", tiny_model(vocab_size=tokenizer.vocab_size), tokenizer=tokenizer)
    (tmp_path / "ckpt" / name).write_bytes(payload)
    with pytest.raises(CheckpointError, match=message):
        load_model(tmp_path / "ckpt")
    assert not marker.exists()


def test_training_state_files(tmp_path, marker, payload):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / TRAINER_STATE_FILE).write_text(json.dumps({"format_version": 1}))
    (ckpt / TRAINING_STATE_FILE).write_bytes(payload)
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        read_training_state(ckpt)
    save_file({"x": torch.zeros(1)}, str(ckpt / TRAINING_STATE_FILE))
    (ckpt / TRAINER_STATE_FILE).write_bytes(payload)
    with pytest.raises(CheckpointError, match="not readable JSON"):
        read_training_state(ckpt)
    assert not marker.exists()


def test_json_config_files(tmp_path, marker, payload):
    path = tmp_path / "config.json"
    path.write_bytes(payload)
    with pytest.raises(ValueError, match="not valid JSON"):
        read_config_file(path)
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_model_config(str(path))
    with pytest.raises(ValueError, match="not valid JSON"):
        MemformerConfig.from_json(path)
    assert not marker.exists()


def test_corpus_files(tmp_path, marker, payload):
    path = tmp_path / "data.jsonl"
    path.write_bytes(payload)
    with pytest.raises(ValueError, match="not valid JSON"):
        list(open_corpus(DataSpec(str(path)), "all").documents())
    assert not marker.exists()


def test_token_cache_refuses_pickled_arrays(tmp_path, marker, caplog):
    path = tmp_path / "doc.txt"
    path.write_text("a small document")
    corpus = open_corpus(DataSpec(str(path)), "all")
    load_or_tokenize(corpus, ByteTokenizer(), cache_dir=tmp_path / "cache")
    (entry,) = [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]
    # An object array: np.save pickles its elements, np.load runs them only with allow_pickle=True.
    np.save(entry / "doc_offsets.npy", np.array([Exploit(marker)], dtype=object), allow_pickle=True)
    again = load_or_tokenize(corpus, ByteTokenizer(), cache_dir=tmp_path / "cache")
    assert "unreadable" in caplog.text  # refused, rebuilt from the source
    assert again.num_tokens == len("a small document")
    assert not marker.exists()


# ---------------------------------------------------------------------------- Hugging Face directories

hf = pytest.importorskip("torch_memformer.integrations.hf")


@pytest.fixture
def hf_dir(tmp_path):
    save_model(tmp_path / "native", tiny_model(vocab_size=256), tokenizer=ByteTokenizer())
    return hf.native_to_hf(tmp_path / "native", tmp_path / "hf")


@pytest.mark.parametrize("name, message, auto_class, auto_error", [
    ("model.safetensors", "not a readable safetensors file", "AutoModelForCausalLM", "header"),
    ("config.json", "not readable JSON", "AutoModelForCausalLM", "not a valid JSON file"),
    ("tokenizer.json", "cannot read the tokenizer", "AutoTokenizer", "can't decode"),
])
def test_hf_directory_files(tmp_path, marker, payload, hf_dir, name, message, auto_class, auto_error):
    import transformers

    (hf_dir / name).write_bytes(payload)
    with pytest.raises(CheckpointError, match=message):
        hf.hf_to_native(hf_dir, tmp_path / "back")
    # transformers' own loaders refuse it too (this adapter never asks them to unpickle).
    with pytest.raises(Exception, match=auto_error):
        getattr(transformers, auto_class).from_pretrained(hf_dir)
    assert not marker.exists() and not (tmp_path / "back").exists()


def test_hf_pickled_weights_are_never_read(tmp_path, marker, hf_dir):
    from transformers import AutoModelForCausalLM

    (hf_dir / "model.safetensors").unlink()
    torch.save({"memformer.embedding.weight": Exploit(marker)}, hf_dir / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pytorch_model.bin, a pickle, which is never read"):
        hf.hf_to_native(hf_dir, tmp_path / "back")
    with pytest.raises(OSError, match="model.safetensors"):
        AutoModelForCausalLM.from_pretrained(hf_dir)  # safetensors only, even through the auto class
    assert not marker.exists()

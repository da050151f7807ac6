"""Fuzzing the config JSON a user or a file hands us: ``memformer train --config FILE``,
``--model-config JSON``, and a checkpoint's ``config.json``. Whatever the JSON, the command
either works or says what is wrong in one line with exit 2: never a traceback, never a crash
while building a model the config describes."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz_strategies import near_valid_dicts, json_texts
from fuzz_support import check_clean_exit, examples, run_cli
from torch_memformer import registry
from torch_memformer.training import TrainConfig
from torch_memformer.training.presets import PRESETS

pytestmark = pytest.mark.slow

_TRAIN_CHOICES = {
    "model": registry.model_names(), "ablation": list(registry.ABLATIONS), "preset": list(PRESETS),
    "data_format": ["auto", "text", "folder", "jsonl", "hf", "stdlib"], "method": ["mrbp", "bptt", "checkpoint"],
    "precision": ["auto", "fp32", "bf16", "fp16"], "data": ["stdlib", "", "/nonexistent"],
    "tokenizer": ["byte", "", "/nonexistent"], "model_config": [{}, {"d_model": 64}, {"num_heads": 3}],
}
_MODEL_CHOICES = {
    "write_heads": ["multi", "single"], "attention_impl": ["sdpa", "reference"],
    "context_positions": ["rotary", "none"], "forgetting_form": ["polar", "vector"],
    "model_type": registry.model_names(),
}
# A small valid Memformer config, so that a mutated one that still validates builds in milliseconds.
_TINY_MODEL = dict(vocab_size=256, d_model=16, num_heads=2, d_ff=32, num_encoder_layers=1, num_decoder_layers=1,
                   num_slots=4, segment_len=8)


def _train_print_config(tmp_path, *flags: str):
    return run_cli(["train", "--out", str(tmp_path / "never-written"), "--print-config", *flags])


@settings(max_examples=examples())
@given(text=json_texts(near_valid_dicts(TrainConfig().to_dict(), _TRAIN_CHOICES)))
def test_train_config_file(tmp_path, text):
    path = tmp_path / "config.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    code, out, err = _train_print_config(tmp_path, "--config", str(path))
    check_clean_exit(code, err)
    if code == 0:  # what it printed is a config that validates again
        TrainConfig.from_dict(json.loads(out))


@settings(max_examples=examples())
@given(text=json_texts(near_valid_dicts(_TINY_MODEL, _MODEL_CHOICES)))
def test_model_config_flag(tmp_path, text):
    code, out, err = _train_print_config(tmp_path, "--model-config", text)
    check_clean_exit(code, err)
    if code == 0:
        assert json.loads(out)["model_config"] == {**PRESETS["quickstart"]["models"]["memformer"], **json.loads(text)}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A fresh tiny Memformer saved as a checkpoint with the byte tokenizer."""
    import torch

    from torch_memformer.checkpoint import save_model
    from torch_memformer.data import ByteTokenizer
    from torch_memformer.model import Memformer
    from torch_memformer.config import MemformerConfig

    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("fuzz-checkpoint") / "ckpt"
    return save_model(directory, Memformer(MemformerConfig(**_TINY_MODEL)), tokenizer=ByteTokenizer())


_SAVED = {"model_type": "memformer", **dataclasses.asdict(__import__("torch_memformer").MemformerConfig(**_TINY_MODEL))}


@settings(max_examples=examples(0.5))
@given(text=json_texts(near_valid_dicts(_SAVED, _MODEL_CHOICES)))
def test_checkpoint_config_json(tmp_path, checkpoint, text):
    copy = tmp_path / "ckpt"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(checkpoint, copy)
    (copy / "config.json").write_text(text, encoding="utf-8", errors="surrogatepass")
    code, out, err = run_cli(["generate", "--checkpoint", str(copy), "--prompt", "ab", "--max-new-tokens", "2",
                              "--threads", "1", "--no-echo"])
    check_clean_exit(code, err)

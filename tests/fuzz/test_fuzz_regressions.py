"""Plain tests for the bugs fuzzing found (tests/fuzz/test_fuzz_*.py), so each case is kept whatever
hypothesis's search does next time. Each one failed on main before its fix: a traceback, a crash
or a message that was not one line."""

from __future__ import annotations

import gzip
import json
import os

import pytest
import torch

from fuzz_support import check_clean_exit, run_cli
from torch_memformer.checkpoint import CheckpointError, load_model, save_model
from torch_memformer.config import MemformerConfig
from torch_memformer.data import ByteTokenizer, DataSpec, open_corpus
from torch_memformer.model import Memformer
from torch_memformer.training import TrainConfig

TINY = dict(d_model=16, num_heads=2, d_ff=32, num_encoder_layers=1, num_decoder_layers=1, num_slots=4, segment_len=8)


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    return save_model(tmp_path / "ckpt", Memformer(MemformerConfig(**TINY)), tokenizer=ByteTokenizer())


def _print_config(tmp_path, *flags):
    return run_cli(["train", "--out", str(tmp_path / "run"), "--print-config", *flags])


@pytest.mark.parametrize("text, says", [
    ("[" * 100_000, "nested too deeply"),                 # was RecursionError
    ('{"steps": ' + "9" * 5000 + "}", "a number with more than 4300 digits"),   # was a ValueError naming no file
])
def test_config_file_json_the_parser_cannot_hold(tmp_path, text, says):
    (tmp_path / "c.json").write_text(text)
    code, _, err = _print_config(tmp_path, "--config", str(tmp_path / "c.json"))
    check_clean_exit(code, err)
    assert code == 2 and "is not valid JSON" in err and says in err


def test_model_config_nested_too_deeply(tmp_path):
    code, _, err = _print_config(tmp_path, "--model-config", '{"a":' * 50_000 + "1" + "}" * 50_000)
    check_clean_exit(code, err)
    assert code == 2 and "--model-config is not valid JSON (arrays or objects nested too deeply" in err


@pytest.mark.parametrize("field", ["model", "ablation", "preset"])
def test_a_list_where_a_name_belongs(tmp_path, field):
    """Was TypeError: unhashable type: 'list' (a membership test on a dict)."""
    (tmp_path / "c.json").write_text(json.dumps({field: [None]}))
    code, _, err = _print_config(tmp_path, "--config", str(tmp_path / "c.json"))
    check_clean_exit(code, err)
    assert code == 2


@pytest.mark.parametrize("argv_tail", [
    ["--config", "FILE"],       # an unknown field named "\x1e" (a line break to str.splitlines)
    ["\r"],                     # an unknown argument that returns the cursor over the message
])
def test_values_echoed_in_errors_stay_on_one_line(tmp_path, argv_tail):
    (tmp_path / "c.json").write_text(json.dumps({"\x1e": 1, "bad\nfield": 2}))
    argv_tail = [str(tmp_path / "c.json") if word == "FILE" else word for word in argv_tail]
    code, _, err = _print_config(tmp_path, *argv_tail)
    check_clean_exit(code, err)
    assert code == 2


def test_checkpoint_config_describing_a_huge_model(checkpoint):
    """Was RuntimeError from the allocator (12 TB for the embedding): shapes are checked first."""
    config = json.loads((checkpoint / "config.json").read_text())
    (checkpoint / "config.json").write_text(json.dumps({**config, "vocab_size": 10**11}))
    with pytest.raises(CheckpointError, match="embedding.weight has shape .* but config.json implies"):
        load_model(checkpoint)


def test_threads_past_the_cores_are_refused(checkpoint):
    """Was a segmentation fault (torch.set_num_threads(1_000_000) then a parallel kernel)."""
    code, _, err = run_cli(["generate", "--checkpoint", str(checkpoint), "--prompt", "a", "--threads", "1000000"])
    assert code == 2 and err == f"memformer: error: --threads must be at most {os.cpu_count()}, the CPU cores of " \
                                "this machine, got 1000000\n"
    with pytest.raises(ValueError, match="--threads must be at most"):
        from torch_memformer.training.precision import check_threads

        check_threads((os.cpu_count() or 1) + 1)


def test_seed_past_64_bits(checkpoint, tmp_path):
    """Was 'Overflow when unpacking long long', naming no flag."""
    code, _, err = run_cli(["generate", "--checkpoint", str(checkpoint), "--prompt", "a", "--seed", str(2**64)])
    assert code == 2 and "--seed must fit in 64 bits" in err
    with pytest.raises(ValueError, match="seed must be < 2\\*\\*63"):
        TrainConfig(seed=2**63)


def test_eval_batch_size_past_the_data(checkpoint, tmp_path):
    """Was numpy's MemoryError (7 TiB of row indices) for --batch-size 10**12."""
    (tmp_path / "corpus.txt").write_text("x" * 100)
    code, _, err = run_cli(["eval", "--checkpoint", str(checkpoint), "--data", str(tmp_path / "corpus.txt"),
                            "--split", "all", "--cache-dir", str(tmp_path / "cache"), "--batch-size", str(10**12),
                            "--threads", "1"])
    check_clean_exit(code, err)
    assert code == 2 and "make 13 segment(s) of 8; use --batch-size 13 or less" in err


def _damaged_gzip(text: bytes) -> bytes:
    data = bytearray(gzip.compress(text))
    data[20:30] = b"\xff" * 10  # inside the deflate stream: zlib.error, not an OSError
    return bytes(data)


@pytest.mark.parametrize("name", ["data.jsonl.gz", "doc.txt.gz"])
def test_damaged_gzip_is_a_value_error(tmp_path, name):
    """Was zlib.error: Error -3 while decompressing data."""
    (tmp_path / name).write_bytes(_damaged_gzip(b'{"text": "hello"}\n' * 1000))
    with pytest.raises(ValueError, match="cannot decompress"):
        list(open_corpus(DataSpec(str(tmp_path / name)), "all").documents())


def test_damaged_gzip_in_a_folder_is_skipped(tmp_path):
    (tmp_path / "good.txt").write_text("good")
    (tmp_path / "bad.txt.gz").write_bytes(_damaged_gzip(b"hello\n" * 1000))
    assert list(open_corpus(DataSpec(str(tmp_path), format="folder"), "all").documents()) == ["good"]

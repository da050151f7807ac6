"""Fuzzing the flags of ``memformer train``, ``eval`` and ``generate`` at the parse-and-validate
level: any values (numbers of any size and sign, non-finite floats, arbitrary text, bytes that
are not UTF-8 as the shell hands them over, unknown flags) end in success or in one line with
exit 2, never a traceback or a crash.

``train`` stops after validation (``--print-config``); ``eval`` and ``generate`` run a tiny
checkpoint, with ``generate``'s token count capped so a large valid ``--max-new-tokens`` costs
nothing (the cap is below the flag checks, so they still see the value typed)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz_support import check_clean_exit, examples, run_cli

pytestmark = pytest.mark.slow

# What a shell can pass: any text without NUL, and bytes that are not UTF-8 (Python turns them
# into lone surrogates, ``os.fsdecode``).
ARGV_TEXT = st.one_of(
    st.text(st.characters(blacklist_characters="\x00"), max_size=20),
    st.binary(max_size=12).filter(lambda b: b"\x00" not in b).map(os.fsdecode),
)
NUMBER_TEXT = st.one_of(st.integers().map(str), st.floats().map(str),
                        st.sampled_from(["0", "-0", "1", "-1", "1e400", "nan", "inf", "0x10", "1_000", " 3", "2.",
                                         str(2**63), str(2**64), str(10**100), "9" * 5000]))
VALUE = st.one_of(NUMBER_TEXT, ARGV_TEXT)


def _flags(spec: dict[str, st.SearchStrategy | None]) -> st.SearchStrategy[list[str]]:
    """Some of the flags in ``spec`` (None: a switch without a value), in any order, plus now and
    then an unknown or misspelled flag."""
    def one(name):
        strategy = spec[name]
        return st.just([name]) if strategy is None else st.one_of(strategy, VALUE).map(lambda v: [name, v])

    chosen = st.lists(st.sampled_from(sorted(spec)), max_size=5, unique=True).flatmap(
        lambda names: st.tuples(*[one(n) for n in names]) if names else st.just(()))
    extra = st.lists(st.one_of(ARGV_TEXT, st.sampled_from(["--stps", "--batch", "-", "--", "--=", "-x"])), max_size=1)
    return st.tuples(chosen, extra).map(lambda t: [word for pair in t[0] for word in pair] + t[1])


def _choices(*values):
    return st.sampled_from(values)


_INTS = st.integers(-3, 40).map(str)
TRAIN = {
    "--steps": _INTS, "--batch-size": _INTS, "--window": _INTS, "--lr": NUMBER_TEXT, "--min-lr-ratio": NUMBER_TEXT,
    "--warmup-steps": _INTS, "--weight-decay": NUMBER_TEXT, "--beta1": NUMBER_TEXT, "--beta2": NUMBER_TEXT,
    "--grad-clip": NUMBER_TEXT, "--seed": NUMBER_TEXT, "--threads": _INTS, "--log-every": _INTS,
    "--eval-every": _INTS, "--eval-batches": _INTS, "--eval-batch-size": _INTS, "--checkpoint-every": _INTS,
    "--keep-checkpoints": _INTS, "--segment-len": _INTS, "--valid-fraction": NUMBER_TEXT,
    "--test-fraction": NUMBER_TEXT, "--preset": _choices("tiny", "quickstart", "cpu-20min"),
    "--model": _choices("memformer", "transformer-xl", "transformer"), "--ablation": _choices("no-memory", "slots-1"),
    "--method": _choices("mrbp", "bptt", "checkpoint"), "--precision": _choices("auto", "fp32", "bf16", "fp16"),
    "--device": _choices("auto", "cpu", "cuda", "cuda:7", "cpu:0", "meta", "mps"), "--data-format": _choices(
        "auto", "text", "folder", "jsonl"), "--text-field": ARGV_TEXT, "--tokenizer": _choices("byte", ""),
    "--model-config": _choices('{"d_model": 64}', "{}", "{"), "--shuffle": None, "--no-shuffle": None,
    "--resume": None, "--allow-binary": None,
}


@settings(max_examples=examples())
@given(flags=_flags(TRAIN))
def test_train_flags(tmp_path, flags):
    code, out, err = run_cli(["train", "--out", str(tmp_path / "never-written"), "--print-config", *flags])
    check_clean_exit(code, err)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny byte-level checkpoint and a small text corpus to evaluate it on."""
    import torch

    from torch_memformer.checkpoint import save_model
    from torch_memformer.config import MemformerConfig
    from torch_memformer.data import ByteTokenizer
    from torch_memformer.model import Memformer

    root = tmp_path_factory.mktemp("fuzz-run")
    torch.manual_seed(0)
    config = MemformerConfig(d_model=16, num_heads=2, d_ff=32, num_encoder_layers=1, num_decoder_layers=1,
                             num_slots=4, segment_len=8)
    checkpoint = save_model(root / "ckpt", Memformer(config), tokenizer=ByteTokenizer())
    (root / "corpus.txt").write_text("a small corpus for a tiny model. " * 20)
    (root / "corpus.jsonl").write_text('{"text": "one"}\n{"text": "two"}\n')
    return root, checkpoint


@pytest.fixture
def capped_generation(monkeypatch):
    """generate_text with at most 3 new tokens, whatever --max-new-tokens said (it was checked
    before this is called)."""
    import torch_memformer.generate as generate_module

    real = generate_module.generate_text

    def capped(*args, max_new_tokens, **kwargs):
        return real(*args, max_new_tokens=min(max_new_tokens, 3), **kwargs)

    monkeypatch.setattr(generate_module, "generate_text", capped)


EVAL = {
    "--split": _choices("train", "valid", "test", "all"), "--batch-size": _INTS, "--max-batches": NUMBER_TEXT,
    "--memory": _choices("both", "carried", "reset"), "--layout": _choices("contiguous", "documents"),
    "--device": _choices("auto", "cpu", "cuda", "cpu:0", "meta"), "--precision": _choices("fp32", "bf16", "auto"),
    "--threads": NUMBER_TEXT, "--valid-fraction": NUMBER_TEXT, "--test-fraction": NUMBER_TEXT,
    "--data-format": _choices("auto", "text", "folder", "jsonl"), "--text-field": ARGV_TEXT, "--json": None,
    "--raw": None, "--allow-binary": None, "--data": _choices("corpus.txt", "corpus.jsonl", "missing.txt", "."),
}


@settings(max_examples=examples(0.3))
@given(flags=_flags(EVAL))
def test_eval_flags(tiny_run, flags):
    root, checkpoint = tiny_run
    # --data names files of the fixture's folder; "." is that folder (read as a folder of documents).
    flags = [str(root / f) if i and flags[i - 1] == "--data" else f for i, f in enumerate(flags)]
    data = [] if "--data" in flags else ["--data", str(root / "corpus.txt")]
    code, out, err = run_cli(["eval", "--checkpoint", str(checkpoint), "--cache-dir", str(root / "cache"),
                              *data, *flags])
    check_clean_exit(code, err)


GENERATE = {
    "--prompt": ARGV_TEXT, "--max-new-tokens": NUMBER_TEXT, "--temperature": NUMBER_TEXT, "--top-k": NUMBER_TEXT,
    "--top-p": NUMBER_TEXT, "--seed": NUMBER_TEXT, "--device": _choices("auto", "cpu", "cuda", "cpu:0", "meta"),
    "--threads": NUMBER_TEXT, "--no-echo": None, "--raw": None, "--state-in": _choices("missing.state"),
}


@settings(max_examples=examples(0.5))
@given(flags=_flags(GENERATE))
def test_generate_flags(tiny_run, capped_generation, flags):
    root, checkpoint = tiny_run
    prompt = [] if "--prompt" in flags else ["--prompt", "abc"]
    code, out, err = run_cli(["generate", "--checkpoint", str(checkpoint), *prompt, *flags])
    check_clean_exit(code, err)

"""lm-evaluation-harness adapter: the shipped bits-per-byte task equals `memformer eval`, and each
request type equals a plain computation from the full forward."""

import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never touch the network
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest
import torch

pytest.importorskip("lm_eval")

from lm_eval.api.instance import Instance  # noqa: E402
from lm_eval.api.registry import get_model  # noqa: E402

from torch_memformer.checkpoint import save_model  # noqa: E402
from torch_memformer.cli import main  # noqa: E402
from torch_memformer.data import ByteTokenizer, train_bpe  # noqa: E402
from torch_memformer.integrations.lm_eval import MemformerLM, task_manager  # noqa: E402

from conftest import tiny_model  # noqa: E402

DOCS = [
    "Hello world. " * 4 + "é😀",
    "x",
    "",
    "Memformer keeps a memory of what it read. " * 3,
    "中文 text, then ASCII.\n" * 2,
    "a",
    "short one",
]


def request(kind, *args):
    return Instance(request_type=kind, doc={}, arguments=args, idx=0)


@pytest.fixture(scope="module")
def model():
    return tiny_model(seed=2, vocab_size=256)


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": text}) + "\n" for text in DOCS))
    return path


def reference_logprobs(model, ids):
    """log p(ids[i] | ids[:i]) for i >= 1, from one plain forward over the whole sequence."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float().log_softmax(-1)
    return [float(logits[i - 1, ids[i]]) for i in range(1, len(ids))]


def test_registered_as_memformer():
    assert get_model("memformer") is MemformerLM


def memformer_eval_bpb(checkpoint, corpus_file, cache_dir, capsys):
    """`memformer eval` with each document scored whole (the layout lm-eval's rolling requests use)."""
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(checkpoint), "--data", str(corpus_file), "--split", "all",
                 "--layout", "documents", "--memory", "carried", "--batch-size", "2", "--device", "cpu",
                 "--cache-dir", str(cache_dir), "--json"]) == 0
    return json.loads(capsys.readouterr().out)["carried"]


def test_bpb_task_equals_memformer_eval(tmp_path, model, corpus_file, capsys):
    save_model(tmp_path / "ckpt", model, tokenizer=ByteTokenizer())
    reference = memformer_eval_bpb(tmp_path / "ckpt", corpus_file, tmp_path / "cache", capsys)
    assert reference["num_target_bytes"] == sum(len(d.encode()) - 1 for d in DOCS if d)
    code = main(["lm-eval", "--checkpoint", str(tmp_path / "ckpt"), "--tasks", "memformer_bpb", "--data",
                 str(corpus_file), "--split", "all", "--batch-size", "3", "--window", "16", "--device", "cpu",
                 "--output", str(tmp_path / "out.json")])
    assert code == 0 and "memformer_bpb" in capsys.readouterr().out
    task_bpb = json.loads((tmp_path / "out.json").read_text())["results"]["memformer_bpb"]["bits_per_byte,none"]
    # Equal up to float32 summation order (the two read the stream in different pieces).
    assert task_bpb == pytest.approx(reference["bits_per_byte"], rel=1e-6)
    # Without --data, the data the checkpoint records it was trained on (as memformer eval).
    (tmp_path / "ckpt" / "trainer_state.json").write_text(json.dumps({"config": {"data": str(corpus_file)}}))
    assert main(["lm-eval", "--checkpoint", str(tmp_path / "ckpt"), "--tasks", "memformer_bpb", "--split", "all",
                 "--device", "cpu", "--output", str(tmp_path / "again.json")]) == 0
    again = json.loads((tmp_path / "again.json").read_text())["results"]["memformer_bpb"]["bits_per_byte,none"]
    assert again == pytest.approx(reference["bits_per_byte"], rel=1e-6)


def test_bpb_task_counts_the_bytes_of_scored_bpe_tokens(tmp_path, corpus_file, capsys):
    tokenizer = train_bpe(DOCS * 5, vocab_size=280)
    model = tiny_model(seed=4, vocab_size=tokenizer.vocab_size)
    save_model(tmp_path / "ckpt", model, tokenizer=tokenizer)
    reference = memformer_eval_bpb(tmp_path / "ckpt", corpus_file, tmp_path / "cache", capsys)
    # The first token of a document is often several bytes here: counting all bytes would differ.
    first_bytes = sum(int(tokenizer.token_byte_lengths()[tokenizer.encode(d)[0]]) for d in DOCS if d)
    assert first_bytes > len([d for d in DOCS if d])
    assert reference["num_target_bytes"] == sum(len(d.encode()) for d in DOCS) - first_bytes
    import lm_eval

    manager = task_manager(metadata={"data": str(corpus_file), "split": "all", "tokenizer": str(tmp_path / "ckpt")})
    lm = MemformerLM(model=model, tokenizer=tokenizer, batch_size=2, device="cpu", window=8)
    results = lm_eval.simple_evaluate(model=lm, tasks=["memformer_bpb"], task_manager=manager)
    assert results["results"]["memformer_bpb"]["bits_per_byte,none"] == pytest.approx(reference["bits_per_byte"],
                                                                                        rel=1e-6)


def test_rolling_loglikelihood_is_every_token_but_the_first(model):
    lm = MemformerLM(model=model, tokenizer=ByteTokenizer(), batch_size=2, device="cpu", window=8)
    texts = [d for d in DOCS if d]
    got = lm.loglikelihood_rolling([request("loglikelihood_rolling", t) for t in texts])
    for text, value in zip(texts, got):
        assert value == pytest.approx(sum(reference_logprobs(model, list(text.encode()))), rel=1e-5, abs=1e-5)


def test_loglikelihood_reads_the_context_then_scores_the_continuation(model):
    lm = MemformerLM(model=model, tokenizer=ByteTokenizer(), batch_size=3, device="cpu")
    pairs = [("The capital of France is", " Paris"), ("The capital of France is", " Rome"),
             ("A much longer context that spans several segments of eight bytes:", " yes"),
             ("Q: 2+2? A:", " 4"), ("", "starts the stream"), ("ctx", "")]
    got = lm.loglikelihood([request("loglikelihood", c, x) for c, x in pairs])
    for (context, continuation), (logprob, greedy) in zip(pairs, got):
        ids = list((context + continuation).encode())
        start = max(len(context.encode()), 1)  # an empty context leaves the first token unscored
        scores = reference_logprobs(model, ids)[start - 1 :]
        assert logprob == pytest.approx(sum(scores), rel=1e-5, abs=1e-5)
        logits = model(torch.tensor([ids])).logits[0]
        assert greedy == all(int(logits[i - 1].argmax()) == ids[i] for i in range(start, len(ids)))


def test_generate_until_equals_native_greedy_cut_at_the_stop(model):
    lm = MemformerLM(model=model, tokenizer=ByteTokenizer(), batch_size=2, device="cpu")
    contexts = ["Once upon a time", "x", "A third prompt, longer than a segment"]
    native = [model.generate(torch.tensor([list(c.encode())]), 40, temperature=0).tokens[0].tolist()
              for c in contexts]
    texts = [ByteTokenizer().decode(ids) for ids in native]
    # Stop at a string that occurs in the first continuation (after the first chunk of 32 tokens
    # when possible), none in the others, which then run to max_gen_toks.
    stop = texts[0][33:35] if len(texts[0]) > 35 else texts[0][-2:]
    got = lm.generate_until([request("generate_until", c, {"until": [stop], "max_gen_toks": 40}) for c in contexts])
    for text, expected in zip(got, texts):
        assert text == (expected[: expected.find(stop)] if stop in expected else expected)
    assert stop in texts[0] and got[0] == texts[0][: texts[0].find(stop)]


def test_bad_arguments_are_refused(model, tmp_path, capsys):
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        MemformerLM(model=model, tokenizer=ByteTokenizer(), batch_size="auto")
    with pytest.raises(ValueError, match="exactly one of checkpoint"):
        MemformerLM(tokenizer=ByteTokenizer())
    lm = MemformerLM(model=model, tokenizer=ByteTokenizer(), device="cpu")
    with pytest.raises(ValueError, match="non-empty context"):
        lm.generate_until([request("generate_until", "", {"until": ["."]})])
    save_model(tmp_path / "ckpt", model, tokenizer=ByteTokenizer())
    assert main(["lm-eval", "--checkpoint", str(tmp_path / "ckpt"), "--tasks", "memformer_bpb",
                 "--include-path", str(tmp_path / "missing")]) == 2
    assert "is not a directory" in capsys.readouterr().err


@pytest.mark.slow  # a fresh Python process importing lm_eval
def test_registering_memformer_keeps_lm_evals_own_models():
    # A fresh process: lm-eval loads its built-in models only into an empty registry, so the order of
    # imports is what is tested here, and another test may already have imported lm_eval.models.
    script = ("import torch_memformer.integrations.lm_eval\n"
              "from lm_eval.api.registry import get_model\n"
              "print(get_model('hf').__name__, get_model('memformer').__name__, get_model('dummy').__name__)\n")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]), OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["HFLM", "MemformerLM", "DummyLM"]


def test_lm_evals_own_hf_model_on_a_converted_checkpoint(tmp_path, model):
    pytest.importorskip("transformers")
    from torch_memformer.integrations.hf import native_to_hf

    save_model(tmp_path / "native", model, tokenizer=ByteTokenizer())
    native_to_hf(tmp_path / "native", tmp_path / "hf")
    # As `lm_eval --model hf --model_args pretrained=DIR,trust_remote_code=True` builds it.
    hf = get_model("hf")(pretrained=str(tmp_path / "hf"), trust_remote_code=True, batch_size=2, device="cpu")
    ours = MemformerLM(model=model, tokenizer=ByteTokenizer(), batch_size=2, device="cpu")
    assert (hf.eot_token_id, hf.prefix_token_id) == (3, 2)  # ETX ends a text, STX starts one
    pairs = [("The capital of France is", " Paris"), ("Q: 2+2? A:", " 4"),
             ("A much longer context that spans several segments of eight bytes:", " yes")]
    requests = [request("loglikelihood", c, x) for c, x in pairs]
    for (hf_logprob, hf_greedy), (logprob, greedy) in zip(hf.loglikelihood(requests), ours.loglikelihood(requests)):
        assert hf_logprob == pytest.approx(logprob, rel=1e-5) and hf_greedy == greedy
    settings = {"until": ["\n\n"], "max_gen_toks": 20}
    prompts = ["Once upon a time", "x"]
    # The two generate the same tokens (same logits, bit for bit), but lm-eval's hf model also stops
    # at its eos text (ETX) and decodes with skip_special_tokens=True, which drops the bytes NUL, STX
    # and ETX (the byte tokenizer's pad / bos / eos, integrations/hf/tokenizer.py). This model's
    # greedy continuation of the first prompt has NULs from byte 17 on: MemformerLM keeps them.
    texts = ours.generate_until([request("generate_until", p, {**settings, "until": ["\n\n", "\x03"]})
                                 for p in prompts])
    assert (hf.generate_until([request("generate_until", p, settings) for p in prompts])
            == [text.replace("\x00", "").replace("\x02", "") for text in texts])

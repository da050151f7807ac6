"""``memformer train``, ``eval`` and ``generate`` end to end on a tiny corpus, and every bad input
the issue names: each ends in one line on stderr and exit code 2 (Ctrl-C: a saved checkpoint and
exit code 130), never a traceback, never a damaged checkpoint."""

from __future__ import annotations

import json
import logging
import signal

import pytest
import torch

from torch_memformer.checkpoint import load_model, save_model
from torch_memformer.cli import main
from torch_memformer.data import ByteTokenizer
from torch_memformer.runs import latest_checkpoint, resolve_checkpoint
from torch_memformer.training.training_state import read_training_state

from conftest import tiny_model
from train_support import make_corpus, start_memformer, train_losses, wait_for


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpus):
    """One tiny run shared by the tests that only read it."""
    root = tmp_path_factory.mktemp("trained")
    code = main(["train", "--preset", "tiny", "--data", str(corpus), "--cache-dir", str(root / "cache"),
                 "--out", str(root / "run")])
    assert code == 0
    return root / "run", root / "cache"


def _one_line_error(capsys, code, *needles):
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("memformer")]
    assert len(lines) == 1 and lines[0].startswith(("memformer: error: ", "memformer train: error: ")), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_train_writes_the_run_then_eval_and_generate_read_it(trained, capsys):
    run, cache = trained
    checkpoint = latest_checkpoint(run)
    assert checkpoint.name == "step-000008" and (run / "latest").read_text().strip() == "checkpoints/step-000008"
    assert sorted(p.name for p in checkpoint.iterdir()) == [
        "config.json", "model.safetensors", "tokenizer_meta.json", "trainer_state.json", "training_state.safetensors"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000004", "step-000008"]  # keep 2
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if r["kind"] == "train"]
    assert len(losses) == 8 and losses[-1] < losses[0]  # it learns something even in 8 steps
    assert [r["step"] for r in records if r["kind"] == "valid"] == [4, 8]
    # The memory-use signal: every validation also scores the memory reset every segment.
    for valid in (r for r in records if r["kind"] == "valid"):
        carried, reset = valid["bits_per_byte"], valid["bits_per_byte_memory_reset"]
        assert valid["memory_gain_bits_per_byte"] == pytest.approx(reset - carried, abs=1e-12)
        assert carried != reset
    state = read_training_state(checkpoint)
    assert state.step == 8 and state.stream["position"] == 8 and state.config.preset == "tiny"
    assert state.carried["memory"].shape == (2, 4, 32)  # batch 2, 4 slots, d_model 32
    assert state.optimizer["state"] and state.rng[0]["cpu"].dtype == torch.uint8
    capsys.readouterr()

    # eval: with --checkpoint a run directory, on the run's own data (the valid split).
    assert main(["eval", "--checkpoint", str(run), "--cache-dir", str(cache), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["checkpoint"] == str(checkpoint) and result["split"] == "valid"
    carried, reset = result["carried"], result["reset"]
    assert carried["num_targets"] == reset["num_targets"] > 0
    assert 0 < carried["bits_per_byte"] < 8.5 and carried["bits_per_byte"] != reset["bits_per_byte"]
    assert carried["perplexity"] == pytest.approx(2 ** carried["bits_per_token"])

    assert main(["eval", "--checkpoint", str(checkpoint), "--cache-dir", str(cache), "--memory", "carried"]) == 0
    out = capsys.readouterr().out
    assert "memory carried:" in out and "bits/byte" in out and "reset" not in out

    # --by-distance: one line per bucket of segments since the state was reset, with the memory's worth.
    assert main(["eval", "--checkpoint", str(checkpoint), "--cache-dir", str(cache), "--by-distance"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("segments since reset"))
    assert lines[header].endswith("memory worth") and lines[header + 1].split("|")[0].strip() == "0"
    assert lines[header + 1].split("|")[-1].strip() == "+0.0000"  # nothing to carry in a first segment

    # generate: the prompt, then the sample; the same seed gives the same text.
    args = ["generate", "--checkpoint", str(run), "--prompt", "def f(", "--max-new-tokens", "40", "--seed", "3"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert first.startswith("def f(") and len(first) > len("def f(")
    assert main(args) == 0 and capsys.readouterr().out == first


@pytest.mark.parametrize("flags, model_type", [
    (["--model", "transformer-xl"], "transformer-xl"),
    (["--model", "transformer"], "transformer"),
    (["--ablation", "no-memory", "--method", "bptt"], "memformer"),
    (["--method", "checkpoint"], "memformer"),
])
def test_every_model_and_method_trains_evaluates_and_generates(flags, model_type, corpus, tmp_path, capsys):
    common = ["--cache-dir", str(tmp_path / "cache")]
    assert main(["train", "--preset", "tiny", "--data", str(corpus), "--steps", "3", "--eval-every", "3",
                 "--out", str(tmp_path / "run"), *common, *flags]) == 0
    assert load_model(resolve_checkpoint(tmp_path / "run")).model_type == model_type
    losses = train_losses(tmp_path / "run")
    assert len(losses) == 3 and all(loss == loss for _, loss in losses)
    valid = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "valid"]
    # Only a model with a memory reports what it is worth (the baselines and the ablation have none).
    has_memory = model_type == "memformer" and "no-memory" not in flags
    assert valid and all(("memory_gain_bits_per_byte" in r) == has_memory for r in valid)
    assert main(["eval", "--checkpoint", str(tmp_path / "run"), "--max-batches", "2", *common]) == 0
    out = capsys.readouterr().out
    assert "memory carried:" in out and ("memory reset every segment:" in out) == (model_type == "memformer")
    assert main(["generate", "--checkpoint", str(tmp_path / "run"), "--prompt", "def", "--max-new-tokens", "9"]) == 0


def test_a_bpe_tokenizer_travels_with_the_checkpoint(corpus, tmp_path, capsys):
    assert main(["tokenizer", "train", "--data", str(corpus), "--vocab-size", "300",
                 "--out", str(tmp_path / "bpe")]) == 0
    common = ["--cache-dir", str(tmp_path / "cache")]
    assert main(["train", "--preset", "tiny", "--data", str(corpus), "--tokenizer", str(tmp_path / "bpe"),
                 "--steps", "2", "--out", str(tmp_path / "run"), *common]) == 0
    loaded = load_model(resolve_checkpoint(tmp_path / "run"))
    assert loaded.tokenizer.name == "bpe" and loaded.model.config.vocab_size == loaded.tokenizer.vocab_size == 300
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(tmp_path / "run"), "--memory", "carried", "--json", "--by-distance",
                 *common]) == 0
    result = json.loads(capsys.readouterr().out)["carried"]
    # Several bytes per BPE token: bits per byte is the per-token loss spread over more bytes.
    assert result["num_target_bytes"] > 1.5 * result["num_targets"]
    assert result["bits_per_byte"] < result["bits_per_token"]
    # --by-distance counts each bucket's bytes from its own tokens: they add up to the total.
    buckets = result["by_distance"]
    assert len(buckets) > 1 and sum(b["num_target_bytes"] for b in buckets) == result["num_target_bytes"]
    assert sum(b["num_targets"] for b in buckets) == result["num_targets"]
    assert main(["generate", "--checkpoint", str(tmp_path / "run"), "--prompt", "def", "--max-new-tokens", "5"]) == 0


def test_print_config_merges_preset_file_and_flags(tmp_path, capsys):
    config_file = tmp_path / "train.json"
    config_file.write_text(json.dumps({"lr": 0.5, "steps": 11, "model_config": {"num_slots": 3}}))
    assert main(["train", "--preset", "tiny", "--config", str(config_file), "--steps", "13", "--segment-len", "8",
                 "--out", str(tmp_path / "run"), "--print-config"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["steps"] == 13 and config["lr"] == 0.5 and config["batch_size"] == 2  # flag > file > preset
    assert config["model_config"]["num_slots"] == 3 and config["model_config"]["segment_len"] == 8
    assert config["model_config"]["d_model"] == 32 and config["preset"] == "tiny"
    assert not (tmp_path / "run").exists()


def test_bad_data_inputs(tmp_path, capsys):
    base = ["train", "--preset", "tiny", "--cache-dir", str(tmp_path / "cache")]
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "small.txt").write_text("print('hi')\n" * 3)
    (tmp_path / "empty_dir").mkdir()
    cases = {
        "missing data": (["--data", str(tmp_path / "nope.jsonl")], ["does not exist"]),
        "empty file": (["--data", str(tmp_path / "empty.txt")], ["holds no text"]),
        "empty folder": (["--data", str(tmp_path / "empty_dir")], ["holds no files"]),
        "corpus smaller than one batch": (["--data", str(tmp_path / "small.txt")], ["too small for one batch"]),
    }
    for name, (args, needles) in cases.items():
        out = tmp_path / name.replace(" ", "_")
        code = main(base + args + ["--out", str(out)])
        _one_line_error(capsys, code, *needles)
        assert not out.exists()  # nothing written for a run that never started


def test_undecodable_bytes_are_replaced_with_one_warning(tmp_path, caplog):
    data = tmp_path / "data"
    (data / "train").mkdir(parents=True)
    for i in range(6):
        text = ("x = 1\n" * 40).encode() + (b"\xff\xfe broken \x80\n" if i % 2 else b"")
        (data / "train" / f"f{i}.py").write_bytes(text)
    (data / "valid.txt").write_bytes(b"y = 2\n" * 50 + b"\xc3\x28\n")
    with caplog.at_level(logging.WARNING):
        code = main(["train", "--preset", "tiny", "--data", str(data), "--cache-dir", str(tmp_path / "cache"),
                     "--steps", "2", "--eval-every", "2", "--out", str(tmp_path / "run")])
    assert code == 0
    warnings = [r.getMessage() for r in caplog.records if "not valid UTF-8" in r.getMessage()]
    # One per split read, naming how many documents were affected: train (3 files) and valid (1).
    assert len(warnings) == 2, warnings
    assert any("3 document(s)" in w for w in warnings) and any("1 document(s)" in w for w in warnings)


def test_token_ids_outside_the_vocabulary(tmp_path, corpus, capsys):
    code = main(["train", "--preset", "tiny", "--data", str(corpus), "--model-config", '{"vocab_size": 100}',
                 "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "run")])
    _one_line_error(capsys, code, "vocab_size 100", "tokenizer's 256")
    # A checkpoint whose model has fewer ids than its tokenizer produces: the data layer refuses
    # the ids when evaluating.
    save_model(tmp_path / "small_vocab", tiny_model(vocab_size=100), tokenizer=ByteTokenizer())
    code = main(["eval", "--checkpoint", str(tmp_path / "small_vocab"), "--data", str(corpus),
                 "--cache-dir", str(tmp_path / "cache")])
    _one_line_error(capsys, code, "outside the model's vocabulary of 100")


def test_bad_checkpoints(trained, tmp_path, capsys):
    run, cache = trained
    good = latest_checkpoint(run)

    def damaged(name, damage):
        target = tmp_path / name
        target.mkdir()
        for path in good.iterdir():
            (target / path.name).write_bytes(path.read_bytes())
        damage(target)
        return target

    incomplete = damaged("incomplete", lambda d: (d / "model.safetensors").unlink())
    corrupted = damaged("corrupted", lambda d: (d / "model.safetensors").write_bytes(
        (good / "model.safetensors").read_bytes()[:300]))

    def other_model(d):
        config = json.loads((d / "config.json").read_text())
        config["d_model"] = 64
        (d / "config.json").write_text(json.dumps(config))

    incompatible = damaged("incompatible", other_model)
    unknown_field = damaged("unknown_field", lambda d: (d / "config.json").write_text('{"d_modle": 32}'))
    cases = {
        "missing": (tmp_path / "nowhere", "does not exist"),
        "not a checkpoint": (tmp_path, "holds no checkpoint"),
        "incomplete": (incomplete, "model.safetensors is missing"),
        "corrupted": (corrupted, "corrupted or truncated"),
        "incompatible config": (incompatible, "different models"),
        "invalid config": (unknown_field, "unknown Memformer config field"),
    }
    for name, (path, needle) in cases.items():
        for command in (["eval", "--data", str(run.parent / "missing")], ["generate", "--prompt", "x"]):
            code = main([command[0], "--checkpoint", str(path), *command[1:]])
            _one_line_error(capsys, code, needle)

    # Resuming needs the training state, and refuses one from an incompatible format.
    resume_run = tmp_path / "resume_run"
    (resume_run / "checkpoints").mkdir(parents=True)
    state = damaged("resume_run/checkpoints/step-000008", lambda d: None)
    meta = json.loads((state / "trainer_state.json").read_text())
    meta["format_version"] = 99
    (state / "trainer_state.json").write_text(json.dumps(meta))
    code = main(["train", "--out", str(resume_run), "--resume", "--cache-dir", str(cache)])
    _one_line_error(capsys, code, "format 99")
    (state / "training_state.safetensors").unlink()
    code = main(["train", "--out", str(resume_run), "--resume", "--cache-dir", str(cache)])
    _one_line_error(capsys, code, "no training_state.safetensors")
    assert (good / "model.safetensors").is_file()  # nothing touched the real run


def test_unknown_and_contradictory_flags(trained, tmp_path, capsys):
    run, cache = trained
    out = ["--out", str(tmp_path / "new"), "--cache-dir", str(cache)]
    cases = {
        "unknown flag": (["train", "--bogus", "1"], "unrecognized arguments: --bogus"),
        "bad value": (["train", "--steps", "many"], "invalid int value"),
        "bad choice": (["train", "--method", "magic"], "invalid choice"),
        "mrbp for a baseline": (["train", "--model", "transformer-xl", "--method", "mrbp", *out], "use --method bptt"),
        "ablation for a baseline": (["train", "--model", "transformer", "--ablation", "no-memory", *out],
                                    "Memformer only"),
        "window not positive": (["train", "--window", "0", *out], "window must be >= 1"),
        "bad model field": (["train", "--model-config", '{"num_heads": 3}', *out], "divisible by num_heads"),
        "unknown model field": (["train", "--model-config", '{"slots": 3}', *out], "unknown Memformer config field"),
        "resume without a run": (["train", "--resume", "--out", str(tmp_path / "none")], "does not exist"),
        "resume with another batch size": (["train", "--resume", "--out", str(run), "--batch-size", "4"],
                                           "--batch-size 4 contradicts"),
        "resume with other data": (["train", "--resume", "--out", str(run), "--data", "stdlib"], "--data stdlib"),
        "resume past the end": (["train", "--resume", "--out", str(run), "--steps", "4"],
                                "already reached step 8, past --steps 4"),
        "new run over an old one": (["train", "--out", str(run)], "already holds a training run"),
        "fp16 on a CPU": (["train", "--precision", "fp16", "--device", "cpu", *out], "needs a CUDA device"),
        "empty prompt": (["generate", "--checkpoint", str(run), "--prompt", ""], "--prompt is empty"),
        "bad temperature": (["generate", "--checkpoint", str(run), "--prompt", "x", "--temperature", "-1"],
                            "temperature must be >= 0"),
    }
    for name, (args, needle) in cases.items():
        _one_line_error(capsys, main(args), needle)
    assert not (tmp_path / "new").exists()
    assert latest_checkpoint(run).name == "step-000008"


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(corpus, tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", "--preset", "tiny", "--data", str(corpus), "--cache-dir", str(tmp_path / "cache"),
                 "--lr", "1e30", "--warmup-steps", "0", "--checkpoint-every", "1", "--precision", "fp32",
                 "--out", str(run)])
    line = _one_line_error(capsys, code, "became non-finite at step", "stopped without saving")
    last = latest_checkpoint(run)
    assert str(last) in line
    step = read_training_state(last).step
    assert f"at step {step + 1}" in line  # the checkpoint before the bad step is the last one written
    load_model(last)
    assert max(s for s, _ in train_losses(run)) == step  # the bad step's loss was not recorded


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(corpus, tmp_path):
    run, cache = tmp_path / "run", tmp_path / "cache"
    process = start_memformer("train", "--preset", "tiny", "--data", corpus, "--cache-dir", cache, "--steps", "50",
                              "--checkpoint-every", "0", "--eval-every", "0", "--precision", "fp32",
                              "--debug-slow-step", "0.2", "--out", run, log=tmp_path / "log")
    try:
        wait_for(lambda: (run / "metrics.jsonl").exists() and len(train_losses(run)) >= 2, process=process,
                 what="two training steps")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 130
    finally:
        process.kill()
    log = (tmp_path / "log").read_text()
    assert "Traceback" not in log and "memformer: interrupted at step" in log and "--resume" in log
    checkpoint = resolve_checkpoint(run)
    stopped = read_training_state(checkpoint).step
    assert 2 <= stopped < 50 and max(s for s, _ in train_losses(run)) == stopped
    load_model(checkpoint)

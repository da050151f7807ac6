"""The training config (layers, validation, what a resume may change), the learning-rate schedule,
and the baselines' window step against a plain reference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from torch_memformer import registry
from torch_memformer.training import PRESETS, TrainConfig, resolve_config
from torch_memformer.training.config import resume_config
from torch_memformer.training.engines import train_window
from torch_memformer.training.schedule import learning_rate


def test_layers_merge_defaults_preset_file_flags():
    config = resolve_config()
    assert config.preset == "quickstart" and config.steps == PRESETS["quickstart"]["train"]["steps"]
    assert config.model_config == PRESETS["quickstart"]["models"]["memformer"]
    layered = resolve_config(
        file_values={"preset": "tiny", "lr": 0.01, "steps": 5, "model_config": {"num_slots": 2, "d_ff": 48}},
        flag_values={"steps": 7, "model_config": {"d_ff": 40}},
    )
    assert layered.preset == "tiny" and layered.batch_size == PRESETS["tiny"]["train"]["batch_size"]
    assert (layered.lr, layered.steps) == (0.01, 7)
    assert layered.model_config == {**PRESETS["tiny"]["models"]["memformer"], "num_slots": 2, "d_ff": 40}
    # A baseline takes the preset's sizes for that model.
    xl = resolve_config(flag_values={"model": "transformer-xl", "preset": "tiny"})
    assert xl.model_config == PRESETS["tiny"]["models"]["transformer-xl"] and xl.resolved_method == "bptt"
    assert resolve_config().resolved_method == "mrbp"
    config = TrainConfig.from_dict(layered.to_dict())
    assert config == layered


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_builds_every_model(preset):
    for model in registry.model_names():
        config = resolve_config(flag_values={"preset": preset, "model": model})
        built = config.build_model_config(vocab_size=256)
        assert built.vocab_size == 256 and built.segment_len == config.model_config["segment_len"]


@pytest.mark.parametrize("values, message", [
    ({"steps": 0}, "steps must be >= 1"),
    ({"lr": float("nan")}, "lr must be a finite number"),
    ({"min_lr_ratio": 2.0}, "min_lr_ratio must be <= 1"),
    ({"method": "magic"}, "method must be one of"),
    ({"model": "rnn"}, "unknown model 'rnn'"),
    ({"model": "transformer", "method": "mrbp"}, "use --method bptt"),
    ({"ablation": "no-such"}, "unknown ablation"),
    ({"shuffle": "yes"}, "shuffle must be true or false"),
    ({"compile": 1}, "compile must be true or false"),
    ({"model": "transformer", "method": "bptt", "compile": True}, "--compile compiles a Memformer's segment step"),
    # A model field's error names the field and where model fields are set.
    ({"model_config": {"num_slots": 0}}, "model_config: num_slots must be >= 1, got 0 (set model fields with "
                                         "--model-config or the config file's model_config)"),
    ({"precision": "fp8"}, "precision must be one of"),
    ({"bogus": 1}, "unknown training config field(s) bogus"),
])
def test_invalid_settings_name_the_field(values, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TrainConfig.from_dict(values)


def test_vocab_size_comes_from_the_tokenizer_and_may_only_grow():
    assert TrainConfig().build_model_config(vocab_size=300).vocab_size == 300
    assert TrainConfig(model_config={"vocab_size": 320}).build_model_config(vocab_size=300).vocab_size == 320
    with pytest.raises(ValueError, match="smaller than the tokenizer's 300"):
        TrainConfig(model_config={"vocab_size": 200}).build_model_config(vocab_size=300)
    ablated = TrainConfig(ablation="no-memory").build_model_config(vocab_size=256)
    assert ablated.use_memory is False


@pytest.mark.parametrize("model, model_config, ablation", [
    ("memformer", {}, None),
    ("memformer", {"d_model": 48, "num_heads": 4, "segment_len": 5}, "slots-1"),
    ("memformer", {"vocab_size": 400}, "no-memory"),
    ("transformer-xl", {"d_model": 32, "num_heads": 2, "mem_len": 7}, None),
    ("transformer", {"vocab_size": 300, "num_layers": 1}, None),
])
def test_the_model_config_is_validated_once_and_builds_what_the_fields_say(monkeypatch, model, model_config,
                                                                          ablation):
    # The reference: what the fields say, built directly from the registry with the real vocabulary.
    vocab_size = 300
    expected = registry.config_from_dict(model, {"vocab_size": vocab_size, **model_config})
    if ablation is not None:
        expected = registry.apply_ablation(expected, ablation)
    calls = []
    original = registry.config_from_dict
    monkeypatch.setattr(registry, "config_from_dict", lambda *a, **k: calls.append(a) or original(*a, **k))
    config = TrainConfig(model=model, model_config=model_config, ablation=ablation)
    assert len(calls) == 1  # at construction, before any data is read
    assert config.build_model_config(vocab_size=vocab_size) == expected
    assert config.build_model_config(vocab_size=vocab_size) == expected
    assert len(calls) == 1  # building reuses it: only the vocabulary is set
    # train_config.json keeps the fields as given, nothing derived from the validation.
    assert config.to_dict()["model_config"] == model_config
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_a_bad_vocabulary_from_the_data_is_refused_by_the_model_class():
    with pytest.raises(ValueError, match="vocab_size must be >= 2, got 1"):
        TrainConfig().build_model_config(vocab_size=1)


def test_a_resume_may_change_runtime_and_optimiser_settings_only():
    saved = resolve_config(flag_values={"preset": "tiny"})
    changed = resume_config(saved, {"steps": 20, "device": "cpu", "lr": 1e-4, "eval_every": 3, "preset": "tiny",
                                    "batch_size": saved.batch_size, "model_config": {"d_model": 32}})
    assert (changed.steps, changed.lr, changed.eval_every) == (20, 1e-4, 3)
    assert changed.replace(steps=saved.steps, lr=saved.lr, eval_every=saved.eval_every, device=saved.device) == saved
    for flags, message in [({"batch_size": 5}, "--batch-size 5 contradicts"),
                           ({"seed": 9}, "--seed 9 contradicts"),
                           ({"window": 9}, "--window 9 contradicts"),
                           ({"data": "elsewhere"}, "--data elsewhere contradicts"),
                           ({"preset": "quickstart"}, "--preset quickstart contradicts"),
                           ({"model_config": {"d_model": 64}}, "differs on d_model")]:
        with pytest.raises(ValueError, match=message):
            resume_config(saved, flags)


def test_learning_rate_warms_up_then_follows_a_cosine_to_the_floor():
    kwargs = dict(lr=1.0, warmup_steps=10, total_steps=110, min_lr_ratio=0.1)
    rates = [learning_rate(step, **kwargs) for step in range(1, 121)]
    assert rates[:10] == pytest.approx([s / 10 for s in range(1, 11)])
    assert rates[59] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))  # halfway
    assert rates[109] == pytest.approx(0.1) and rates[119] == pytest.approx(0.1)  # floor, and it stays
    assert all(a >= b for a, b in zip(rates[9:], rates[10:]))
    assert learning_rate(5, lr=2.0, warmup_steps=0, total_steps=5, min_lr_ratio=0.5) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        learning_rate(0, **kwargs)


def test_baseline_window_step_equals_separate_streams():
    """Truncated BPTT for a baseline: a row that restarts inside the window is scored as two
    fresh streams, a row that does not as one; loss and gradients match doing exactly that."""
    torch.manual_seed(0)
    model = registry.build_model("transformer-xl", dict(vocab_size=20, d_model=16, num_heads=2, d_ff=32,
                                                        num_layers=2, mem_len=4, segment_len=4)).double()
    ids = torch.randint(0, 20, (2, 12))
    reset = torch.zeros(2, 12, dtype=torch.bool)
    reset[:, 0] = True
    reset[0, 8] = True  # row 0 starts a new document at the third segment
    labels = ids.masked_fill(reset, -100)
    result = train_window(model, ids, labels=labels, reset=reset, state=None, method="bptt")
    grads = [p.grad.clone() for p in model.parameters()]

    model.zero_grad()
    pieces = [(0, 0, 8), (0, 8, 12), (1, 0, 12)]  # (row, start, stop): each read from a fresh state
    total = sum(F.cross_entropy(model(ids[row:row + 1, a:b]).logits[0, :-1], ids[row, a + 1:b], reduction="sum")
                for row, a, b in pieces)
    count = sum(b - a - 1 for _, a, b in pieces)
    (total / count).backward()
    assert int(result.num_targets) == count
    assert float(result.loss) == pytest.approx(float(total.detach() / count), rel=1e-12)
    for got, want in zip(grads, (p.grad for p in model.parameters())):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="trains with method 'bptt'"):
        train_window(model, ids, labels=labels, reset=reset, state=None, method="mrbp")


def test_the_old_import_path_gives_the_same_public_names():
    # torch_memformer.train is the training package's name before issue 12, kept for users.
    import torch_memformer.train as old
    import torch_memformer.training as training

    assert "train" in old.__all__ and "TrainConfig" in old.__all__
    assert all(getattr(old, name) is getattr(training, name) for name in old.__all__)

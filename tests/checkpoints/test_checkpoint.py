"""Model checkpoints: round trip, atomic writes, and clear errors for every kind of damage."""

import json
import pickle

import pytest
import torch

from torch_memformer import registry
from torch_memformer.checkpoint import CheckpointError, atomic_directory, load_model, save_model
from torch_memformer.data import ByteTokenizer

from conftest import tiny_model


def test_round_trip_gives_identical_logits(tmp_path, ids):
    model = tiny_model(forgetting=False)
    save_model(tmp_path / "ckpt", model, tokenizer=ByteTokenizer())
    loaded = load_model(tmp_path / "ckpt")
    assert loaded.model_type == "memformer" and loaded.config == model.config
    assert loaded.tokenizer.vocab_size == 256
    assert torch.equal(loaded.model(ids).logits, model(ids).logits)


def test_a_checkpoint_saved_before_the_memory_switches_loads_as_it_was_trained(tmp_path, ids):
    # A config.json written before write_keep_init, forgetting_init_norm and context_positions
    # existed means the behaviour of that time: no keep bias, position-free decoder context.
    from torch_memformer.config import LEGACY_VALUES

    model = tiny_model(**LEGACY_VALUES)
    save_model(tmp_path / "old", model)
    config_path = tmp_path / "old" / "config.json"
    saved = json.loads(config_path.read_text())
    for name in LEGACY_VALUES:
        del saved[name]
    config_path.write_text(json.dumps(saved))
    loaded = load_model(tmp_path / "old")
    assert loaded.config == model.config
    assert loaded.model.writer.self_bias_H is None
    assert torch.equal(loaded.model(ids).logits, model(ids).logits)
    # A config written by hand without those fields gets today's defaults instead.
    assert registry.config_from_dict("memformer", {}).context_positions == "rotary"


def test_baselines_round_trip(tmp_path):
    for name, values in [("transformer-xl", dict(d_model=32, num_heads=4, mem_len=8)),
                         ("transformer", dict(d_model=32, num_heads=4))]:
        model = registry.build_model(name, values)
        save_model(tmp_path / name, model)
        loaded = load_model(tmp_path / name)
        assert type(loaded.model) is type(model) and loaded.tokenizer is None
        ids = torch.randint(0, 50, (2, 9))
        assert torch.equal(loaded.model.eval()(ids).logits, model.eval()(ids).logits)


def test_a_failed_write_leaves_the_previous_checkpoint(tmp_path, ids):
    model = tiny_model()
    save_model(tmp_path / "ckpt", model)

    def crash(_):
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        save_model(tmp_path / "ckpt", tiny_model(seed=1), extra=crash)
    assert torch.equal(load_model(tmp_path / "ckpt").model(ids).logits, model(ids).logits)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temporary left behind


def test_atomic_directory_replaces_only_when_complete(tmp_path):
    final = tmp_path / "d"
    with atomic_directory(final) as tmp:
        (tmp / "a").write_text("1")
        assert not final.exists()
    assert (final / "a").read_text() == "1"
    with atomic_directory(final) as tmp:
        (tmp / "b").write_text("2")
    assert sorted(p.name for p in final.iterdir()) == ["b"]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "model.safetensors").unlink(), "incomplete: model.safetensors is missing"),
        (lambda d: (d / "config.json").unlink(), "incomplete: config.json is missing"),
        (lambda d: (d / "config.json").write_text("{oops"), "not readable JSON"),
        (lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:100]), "corrupted or truncated"),
        (lambda d: (d / "config.json").write_text(json.dumps({**json.loads((d / "config.json").read_text()), "d_model": 64, "num_heads": 4})),
         "has shape .* but config.json implies"),
        (lambda d: (d / "config.json").write_text(json.dumps({**json.loads((d / "config.json").read_text()), "use_memory": False})),
         "does not match its config.json"),
        (lambda d: (d / "config.json").write_text(json.dumps({**json.loads((d / "config.json").read_text()), "num_heads": 3})),
         "not a valid model config: d_model"),
        (lambda d: (d / "config.json").write_text(json.dumps({**json.loads((d / "config.json").read_text()), "model_type": "lstm"})),
         "unknown model 'lstm'"),
    ],
)
def test_damaged_checkpoints_give_clear_errors(tmp_path, damage, message):
    save_model(tmp_path / "ckpt", tiny_model())
    damage(tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match=message):
        load_model(tmp_path / "ckpt")


def test_missing_directory(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nope")


def test_a_pickle_in_place_of_the_weights_is_refused_not_executed(tmp_path):
    save_model(tmp_path / "ckpt", tiny_model())
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (tmp_path / "ckpt" / "model.safetensors").write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        load_model(tmp_path / "ckpt")
    assert not marker.exists()

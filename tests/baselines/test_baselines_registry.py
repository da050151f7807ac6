"""The model registry: saved config -> the same model class and config; Memformer ablation presets."""

import json

import pytest
import torch

from torch_memformer import Memformer, MemformerConfig, registry
from torch_memformer.baselines import TransformerConfig, TransformerLM, TransformerXL, TransformerXLConfig

CONFIGS = {
    "memformer": MemformerConfig(vocab_size=30, d_model=16, num_heads=2, d_ff=32, num_slots=4, segment_len=4),
    "transformer-xl": TransformerXLConfig(vocab_size=30, d_model=16, num_heads=2, d_ff=32, mem_len=5, segment_len=4),
    "transformer": TransformerConfig(vocab_size=30, d_model=16, num_heads=2, d_ff=32, context_len=None, segment_len=4),
}
CLASSES = {"memformer": Memformer, "transformer-xl": TransformerXL, "transformer": TransformerLM}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_saved_config_builds_the_same_class_and_config(name):
    config = CONFIGS[name]
    saved = json.loads(json.dumps(registry.config_to_dict(config)))
    assert saved["model_type"] == name
    assert registry.config_from_saved(saved) == config
    model = registry.build_model(saved["model_type"], saved)
    assert type(model) is CLASSES[name] and model.config == config
    assert registry.model_type(model) == name == registry.model_type(config)
    # Every registered model honours the same contract.
    ids = torch.randint(0, 30, (2, 9), generator=torch.Generator().manual_seed(0))
    out = model(ids, labels=ids)
    assert out.logits.shape == (2, 9, 30) and torch.isfinite(out.loss)
    assert model.predict(ids[:, :3], state=out.state).shape == (2, 3, 30)
    assert model.generate(ids[:, :2], 3, state=model.advance(ids), temperature=0).tokens.shape == (2, 3)
    # A saved state comes back through the registered state class.
    restored = registry.spec(name).state_class.from_tensors(out.state.tensors())
    torch.testing.assert_close(model(ids, state=restored).logits, model(ids, state=out.state).logits)


@pytest.mark.parametrize("name", registry.model_names())
def test_every_model_has_valid_sizes_for_every_training_preset(name):
    from torch_memformer.model.stream_lm import StreamLM
    from torch_memformer.training.presets import PRESETS

    spec = registry.spec(name)
    assert issubclass(spec.model_class, StreamLM)
    assert set(spec.presets) == set(PRESETS)
    for fields in spec.presets.values():
        registry.config_from_dict(name, {"vocab_size": 256, **fields})


def test_a_config_saved_without_model_type_is_a_memformer_config():
    values = CONFIGS["memformer"].to_dict()
    assert registry.config_from_saved(values) == CONFIGS["memformer"]


def test_registry_errors_name_the_choices():
    with pytest.raises(ValueError, match="memformer, transformer-xl, transformer"):
        registry.build_model("lstm", {})
    with pytest.raises(ValueError, match="--model transformer-xl"):
        registry.config_from_dict("transformer", registry.config_to_dict(CONFIGS["transformer-xl"]))
    with pytest.raises(ValueError, match="unknown TransformerConfig field"):
        registry.config_from_dict("transformer", {"mem_len": 4})
    with pytest.raises(ValueError, match="needs a TransformerXLConfig"):
        registry.build_model("transformer-xl", CONFIGS["transformer"])
    assert registry.model_names() == ["memformer", "transformer-xl", "transformer"]


@pytest.mark.parametrize(
    "name, field, value",
    [
        ("no-memory", "use_memory", False),
        ("slots-1", "num_slots", 1),
        ("slots-16", "num_slots", 16),
        ("slots-32", "num_slots", 32),
        ("slots-64", "num_slots", 64),
        ("temperature-1", "write_temperature", 1.0),
        ("no-forgetting", "forgetting", False),
        ("single-head-write", "write_heads", "single"),
    ],
)
def test_ablations_change_one_switch_and_build(name, field, value):
    base = CONFIGS["memformer"]
    ablated = registry.apply_ablation(base, name)
    assert getattr(ablated, field) == value
    differing = {f for f in base.to_dict() if getattr(base, f) != getattr(ablated, f)}
    assert differing <= {field}
    assert registry.config_from_saved(registry.config_to_dict(ablated)) == ablated
    model = registry.build_model("memformer", ablated)
    assert model.init_state(1).memory.shape[1] == (0 if name == "no-memory" else ablated.num_slots)


def test_unknown_ablation_lists_the_known_ones():
    assert set(registry.ABLATIONS) == {
        "no-memory", "slots-1", "slots-16", "slots-32", "slots-64", "temperature-1", "no-forgetting", "single-head-write"
    }
    with pytest.raises(ValueError, match="no-memory"):
        registry.apply_ablation(CONFIGS["memformer"], "slots-3")
    with pytest.raises(ValueError, match="MemformerConfig"):
        registry.apply_ablation(CONFIGS["transformer-xl"], "no-memory")

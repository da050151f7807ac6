import json

import pytest

from torch_memformer import MemformerConfig


def test_json_round_trip(tmp_path):
    config = MemformerConfig(d_model=64, num_heads=4, num_slots=3, write_heads="single", forgetting=False)
    path = tmp_path / "config.json"
    config.to_json(path)
    assert MemformerConfig.from_json(path) == config
    assert MemformerConfig.from_json(config.to_json()) == config
    assert json.loads(path.read_text())["write_heads"] == "single"


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(d_model=100, num_heads=3), r"d_model \(100\) must be divisible by num_heads \(3\)"),
        (dict(d_model=12, num_heads=4), r"head size .* must be even"),
        (dict(vocab_size=0), r"vocab_size must be >= 2"),
        (dict(num_slots=0), r"num_slots must be >= 1"),
        (dict(segment_len=2.5), r"segment_len must be an integer"),
        (dict(num_encoder_layers=True), r"num_encoder_layers must be an integer"),
        (dict(dropout=1.0), r"dropout must be < 1"),
        (dict(dropout=-0.1), r"dropout must be >= 0"),
        (dict(write_temperature=0), r"write_temperature must be > 0"),
        (dict(write_temperature=float("nan")), r"write_temperature must be a finite number"),
        (dict(write_heads="many"), r"write_heads must be one of 'multi', 'single'"),
        (dict(attention_impl="flash"), r"attention_impl must be one of"),
        (dict(forgetting="yes"), r"forgetting must be true or false"),
        (dict(write_keep_init=1.0), r"write_keep_init must be < 1"),
        (dict(write_keep_init=0), r"write_keep_init must be > 0"),
        (dict(write_keep_init="high"), r"write_keep_init must be one of 'spread'"),
        (dict(write_keep_init=[0.5, 0.9]), r"write_keep_init must be a finite number"),
        (dict(forgetting_init_norm=0), r"forgetting_init_norm must be > 0"),
        (dict(context_positions="absolute"), r"context_positions must be one of 'rotary', 'none'"),
        (dict(read_null_slot=1), r"read_null_slot must be true or false"),
        (dict(read_null_logit_init="low"), r"read_null_logit_init must be a finite number"),
        (dict(read_null_logit_init=-100.0), r"read_null_logit_init must be >= -30"),
        (dict(init_std=0.0), r"init_std must be > 0"),
        (dict(init_std="wide"), r"init_std must be a finite number"),
        (dict(writer_init_std=-0.02), r"writer_init_std must be > 0"),
        (dict(writer_init_scope="query"), r"writer_init_scope must be one of 'value', 'all'"),
    ],
)
def test_invalid_values_name_the_field(changes, message):
    with pytest.raises(ValueError, match=message):
        MemformerConfig(**changes)


def test_unknown_field_and_bad_json(tmp_path):
    with pytest.raises(ValueError, match="unknown Memformer config field.*num_layer"):
        MemformerConfig.from_dict({"num_layer": 3})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        MemformerConfig.from_json(bad)
    with pytest.raises(ValueError, match="cannot read config file"):
        MemformerConfig.from_json(tmp_path / "missing.json")


def test_new_switches_round_trip_through_json():
    config = MemformerConfig(write_keep_init=None, forgetting_init_norm=2.0, context_positions="none")
    assert MemformerConfig.from_json(config.to_json()) == config
    again = MemformerConfig(write_keep_init=0.75)
    assert MemformerConfig.from_json(again.to_json()).write_keep_init == 0.75
    spread = MemformerConfig(write_keep_init="spread")
    assert MemformerConfig.from_json(spread.to_json()) == spread
    flipped = MemformerConfig(read_null_slot=not MemformerConfig().read_null_slot)
    assert MemformerConfig.from_json(flipped.to_json()) == flipped
    for offset in (None, -4.0):
        offset_config = MemformerConfig(read_null_slot=True, read_null_logit_init=offset)
        assert MemformerConfig.from_json(offset_config.to_json()) == offset_config


def test_init_std_defaults_to_the_inverse_square_root_of_the_width():
    # Decision 20: None scales the starting weights with d_model; a number is used as given.
    for d_model in (64, 128, 256):
        config = MemformerConfig(d_model=d_model, num_heads=4)
        assert config.init_std is None and config.initial_std == pytest.approx(d_model ** -0.5)
    assert MemformerConfig(init_std=0.02).initial_std == 0.02
    for value in (None, 0.02):
        config = MemformerConfig(init_std=value, writer_init_std=value)
        assert MemformerConfig.from_json(config.to_json()) == config
    for scope in ("value", "all"):
        config = MemformerConfig(writer_init_scope=scope)
        assert MemformerConfig.from_json(config.to_json()) == config

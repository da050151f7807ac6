"""The config base (``config_base.py``) and the ``memformer train`` flags derived from
``TrainConfig``'s fields (``commands/_config_flags.py``): a field without its flag, or a flag whose
type, choices or help differs from its field, fails here."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Literal

import pytest

from torch_memformer.baselines import TransformerXLConfig
from torch_memformer.cli import build_parser
from torch_memformer.commands._config_flags import add_config_flags, config_flag_fields
from torch_memformer.commands._data_args import DATA_FLAGS
from torch_memformer.config import MemformerConfig
from torch_memformer.config_base import JsonConfig, check_int, setting
from torch_memformer.training import TrainConfig

# Flags of `memformer train` that are the command's own, not a TrainConfig field.
CLI_ONLY = {"help", "out", "resume", "config", "print_config", "cache_dir", "model_config", "segment_len",
            "debug_slow_save", "debug_slow_step"}


def _train_actions() -> dict[str, argparse.Action]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {action.dest: action for action in sub.choices["train"]._actions}


def test_every_train_config_field_has_its_flag_and_every_flag_a_field():
    actions = _train_actions()
    fields = {field.name for field in config_flag_fields(TrainConfig)}
    assert fields - set(actions) == set(), "TrainConfig fields without a memformer train flag"
    assert set(actions) - fields - CLI_ONLY == set(), "flags that are neither a field nor listed as CLI-only"
    assert "model_config" not in fields  # filled by --model-config / --segment-len


def test_derived_flags_take_type_choices_and_help_from_the_field():
    actions = _train_actions()
    hints = typing.get_type_hints(TrainConfig)
    for field in config_flag_fields(TrainConfig):
        action = actions[field.name]
        assert action.option_strings[0] == "--" + field.name.replace("_", "-")
        if field.name in DATA_FLAGS:  # the flags every corpus-reading command shares
            assert action.default is None  # "not given": the preset's value stays
            continue
        assert action.default is argparse.SUPPRESS, field.name  # only typed flags override
        assert action.help == field.metadata["help"], field.name
        base = _without_none(hints[field.name])
        if base in (int, float):
            assert action.type is base, field.name
        elif base is bool:
            assert isinstance(action, argparse.BooleanOptionalAction), field.name
        elif typing.get_origin(base) is Literal:
            assert list(action.choices) == list(typing.get_args(base)), field.name
        if field.metadata["choices"] is not None:
            assert list(action.choices) == list(field.metadata["choices"]), field.name


def _without_none(hint):
    """``X`` for ``X | None`` (None is a field's "not set", never typed on a command line)."""
    if typing.get_origin(hint) is Literal:
        return hint
    args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    return args[0] if args else hint


def test_parsed_flags_are_the_fields_values():
    args = build_parser().parse_args(["train", "--warmup", "7", "--no-shuffle", "--lr", "0.5", "--method", "bptt",
                                      "--window", "3"])
    assert (args.warmup_steps, args.shuffle, args.lr, args.method, args.window) == (7, False, 0.5, "bptt", 3)
    assert not hasattr(args, "steps")  # not given: the lower layers decide


@dataclasses.dataclass(frozen=True)
class _Toy(JsonConfig):
    count: int = setting(1, help="how many")
    rate: float | None = setting(None, group="g")
    mode: Literal["a", "b"] = setting("a", group="g", metavar="M")
    on: bool = setting(True)
    extra: dict = setting(default_factory=dict, flag=False)

    def __post_init__(self) -> None:
        check_int(self, "count", minimum=1)


def test_add_config_flags_derives_each_flag_from_its_field():
    parser = argparse.ArgumentParser()
    add_config_flags(parser, _Toy, group=None)
    add_config_flags(parser, _Toy, group="g")
    args = parser.parse_args(["--count", "3", "--rate", "0.5", "--mode", "b", "--no-on"])
    assert vars(args) == {"count": 3, "rate": 0.5, "mode": "b", "on": False}
    assert vars(parser.parse_args([])) == {}
    with pytest.raises(SystemExit):
        parser.parse_args(["--mode", "c"])


def test_a_field_of_a_type_without_a_flag_form_must_say_so():
    @dataclasses.dataclass(frozen=True)
    class Bad(JsonConfig):
        sizes: list = setting(default_factory=list)

    with pytest.raises(TypeError, match="sizes.*flag=False"):
        add_config_flags(argparse.ArgumentParser(), Bad, group=None)


@pytest.mark.parametrize("config", [MemformerConfig(d_model=64, num_heads=4), TransformerXLConfig(mem_len=3),
                                    TrainConfig(steps=5, model_config={"d_model": 64, "num_heads": 4})])
def test_every_config_round_trips_through_json(config, tmp_path):
    path = tmp_path / "c.json"
    text = config.to_json(path)
    assert path.read_text() == text
    assert type(config).from_json(path) == config == type(config).from_json(text)
    assert type(config).from_dict(config.to_dict()) == config


@pytest.mark.parametrize("cls, name", [(MemformerConfig, "Memformer config"),
                                       (TransformerXLConfig, "TransformerXLConfig"),
                                       (TrainConfig, "training config")])
def test_json_errors_name_the_config_and_the_field(cls, name, tmp_path):
    with pytest.raises(ValueError, match=f"unknown {name} field\\(s\\) bogus; known fields: "):
        cls.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match=f"a {name} must be a JSON object, got list"):
        cls.from_dict([1])
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes(b'{"x": "\xe9"}')
    with pytest.raises(ValueError, match="not valid JSON \\(not UTF-8 text\\)"):
        cls.from_json(latin1)
    with pytest.raises(ValueError, match="config is not valid JSON"):
        cls.from_json("{nope")


def test_toy_config_uses_the_base_round_trip_and_validators():
    assert _Toy.from_json('{"count": 2, "mode": "b"}') == _Toy(count=2, mode="b")
    with pytest.raises(ValueError, match="count must be >= 1, got 0"):
        _Toy.from_dict({"count": 0})
    with pytest.raises(ValueError, match="unknown _Toy field"):
        _Toy.from_dict({"cnt": 0})

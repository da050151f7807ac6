"""What every config of the package shares: the field validators and the JSON round trip.

``MemformerConfig`` (``config.py``), the baselines' configs (``baselines/config.py``) and
``TrainConfig`` (``training/config.py``) are frozen dataclasses that subclass ``JsonConfig`` and
check their fields in ``__post_init__`` with the ``check_*`` functions below, so a bad value fails
where it is written with a message that names the field, and reading JSON fails the same way for
all of them (an unknown field is named with the known ones; a file that is not JSON says so).

Imports only ``json_input.py`` (the import map in ``docs/architecture.md``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from . import json_input

ConfigT = TypeVar("ConfigT", bound="JsonConfig")


class JsonConfig:
    """The JSON round trip of a frozen dataclass config: ``to_dict`` / ``from_dict`` /
    ``to_json`` / ``from_json`` / ``replace``. Every way in goes through the class's
    ``__post_init__``, so a config read from a file is validated like one built in code."""

    # How messages name the config ("unknown <name> field(s) ..."); None: the class's name.
    config_name: ClassVar[str | None] = None

    @classmethod
    def _config_name(cls) -> str:
        return cls.config_name or cls.__name__

    def replace(self: ConfigT, **changes: Any) -> ConfigT:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def check_known(cls, values: dict[str, Any], *, where: str | None = None) -> None:
        """ValueError naming the keys of ``values`` that are not fields, and the fields that are.
        ``where`` (a file, say) starts the message instead of the config's name."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            what = f"{where}: unknown field(s)" if where else f"unknown {cls._config_name()} field(s)"
            raise ValueError(f"{what} {field_names(unknown)}; known fields: {', '.join(sorted(known))}")

    @classmethod
    def from_dict(cls: type[ConfigT], values: dict[str, Any]) -> ConfigT:
        if not isinstance(values, dict):
            raise ValueError(f"a {cls._config_name()} must be a JSON object, got {type(values).__name__}")
        cls.check_known(values)
        return cls(**values)

    def to_json(self, path: str | Path | None = None) -> str:
        """The config as JSON text (sorted keys, one field a line); also written to ``path`` if given."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_json(cls: type[ConfigT], path_or_text: str | Path) -> ConfigT:
        """Read a config from a JSON file path, or from JSON text (text starts with ``{``)."""
        text = str(path_or_text)
        if not text.lstrip().startswith("{"):
            path = Path(path_or_text)
            try:
                text = path.read_text()
            except OSError as error:
                raise ValueError(f"cannot read config file {path}: {error.strerror}") from None
            except UnicodeDecodeError:
                raise ValueError(f"config file {path} is not valid JSON (not UTF-8 text)") from None
        try:
            values = json_input.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"config is not valid JSON ({error.msg} at line {error.lineno})") from None
        return cls.from_dict(values)


def field_names(names: list[str]) -> str:
    """Names from a user's JSON for a message: as they are, or quoted and escaped when they would
    not show (empty, or holding a newline or a control character that would break the one-line error)."""
    return ", ".join(name if name and name.isprintable() else repr(name) for name in names)


def check_int(config: Any, name: str, *, minimum: int) -> None:
    """``config.<name>`` is an int (not a bool) >= ``minimum``."""
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def check_float(
    config: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """``config.<name>`` is a finite number (an int is one; a bool is not) within the bounds,
    each closed unless its ``*_open`` says otherwise."""
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value >= high if high_open else value > high):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value}")


def initial_std(config: Any) -> float:
    """The standard deviation the weights start from: ``config.init_std``, or with None (the
    default, decision 20) ``d_model ** -0.5``, so that a projection of a LayerNormed vector has
    unit-variance coordinates and attention logits start at order one whatever the width."""
    return config.init_std if config.init_std is not None else config.d_model ** -0.5


def check_init_std(config: Any) -> None:
    """``init_std`` is None (scaled with the width, decision 20) or a number > 0."""
    if config.init_std is not None:
        check_float(config, "init_std", low=0.0, low_open=True)


def check_choice(config: Any, name: str, choices: tuple[str, ...]) -> None:
    """``config.<name>`` is one of ``choices``."""
    value = getattr(config, name)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def check_bool(config: Any, name: str) -> None:
    """``config.<name>`` is True or False (JSON's true / false), not 0, 1 or a string."""
    value = getattr(config, name)
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")


def setting(
    default: Any = dataclasses.MISSING,
    *,
    default_factory: Any = dataclasses.MISSING,
    help: str | None = None,
    group: str | None = None,
    metavar: str | None = None,
    choices: Any = None,
    aliases: tuple[str, ...] = (),
    flag: bool = True,
) -> Any:
    """A dataclass field that also describes its command-line flag, so that a new setting is one
    edit: the field. ``commands/_config_flags.py`` turns each into ``--field-name`` with the
    field's type (an int, a float, a ``Literal`` of choices, a bool as ``--x / --no-x``), this
    ``help``, ``metavar`` and ``aliases``, in the named argparse ``group``; ``choices`` overrides
    the ones the type gives (for lists known only at run time, like the registered models).
    ``flag=False``: the field has no flag of its own (the command fills it another way)."""
    metadata = {"help": help, "group": group, "metavar": metavar, "choices": choices, "aliases": aliases,
                "flag": flag}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata)

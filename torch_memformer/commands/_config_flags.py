"""Command-line flags derived from a config dataclass's fields (not a command itself).

Each field made with ``config_base.setting`` becomes ``--field-name``: its type gives the flag's
type (``int``, ``float``), its choices (a ``Literal``) or its form (a bool is ``--x / --no-x``);
the field's metadata gives the help, metavar, aliases and argparse group. ``memformer train``
builds its config flags this way, so a new ``TrainConfig`` field needs no edit here or there.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Literal


def config_flag_fields(config_cls: type) -> list[dataclasses.Field]:
    """The fields of ``config_cls`` that have a flag (``setting(flag=False)`` ones have none)."""
    return [field for field in dataclasses.fields(config_cls) if field.metadata.get("flag", True)]


def add_config_flags(container: Any, config_cls: type, *, group: str | None) -> None:
    """Add to ``container`` (a parser or an argument group) a flag for each field of
    ``config_cls`` whose ``setting`` names ``group`` (``None``: fields without a group).

    A flag not given leaves no attribute on the parsed namespace (``argparse.SUPPRESS``): the
    config's own default, a preset or a config file decide, and only typed flags override them.
    """
    hints = typing.get_type_hints(config_cls)
    for field in config_flag_fields(config_cls):
        if field.metadata.get("group") != group:
            continue
        meta = field.metadata
        kwargs: dict[str, Any] = {"dest": field.name, "default": argparse.SUPPRESS, "help": meta.get("help")}
        if meta.get("metavar") is not None:
            kwargs["metavar"] = meta["metavar"]
        kwargs.update(_type_arguments(field.name, hints[field.name]))
        if meta.get("choices") is not None:
            kwargs["choices"] = list(meta["choices"])
        container.add_argument("--" + field.name.replace("_", "-"), *meta.get("aliases", ()), **kwargs)


def _type_arguments(name: str, annotation: Any) -> dict[str, Any]:
    """argparse's ``type`` / ``choices`` / ``action`` for a field annotated ``annotation``;
    ``X | None`` is X's (None is the field's "not set", never typed on a command line)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(args) != 1:
            raise TypeError(f"field {name}: no flag for the union {annotation}")
        annotation = args[0]
    if annotation is bool:
        return {"action": argparse.BooleanOptionalAction}
    if annotation in (int, float):
        return {"type": annotation}
    if annotation is str:
        return {}
    if typing.get_origin(annotation) is Literal:
        return {"choices": list(typing.get_args(annotation))}
    raise TypeError(f"field {name}: no flag for the type {annotation}; give it setting(flag=False) and a flag "
                    "of its own")

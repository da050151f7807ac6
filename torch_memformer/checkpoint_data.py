"""Which corpus a saved checkpoint is scored on: the ``--data*`` values given, else the data it
was trained on (recorded in its ``trainer_state.json``).

``memformer eval``, ``memformer lm-eval``, ``memformer analyze`` and the memory-analysis
experiment all follow this one rule, so a checkpoint is evaluated on its own data unless told
otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import json_input
from .data import DataSpec
from .training.training_state import TRAINER_STATE_FILE

# The DataSpec settings a caller may give, by their flag destinations (and TrainConfig's field
# names, which is how the trainer records them).
DATA_FIELDS = ("data", "data_format", "text_field", "hf_config", "valid_fraction", "test_fraction", "allow_binary")


def data_spec_for_checkpoint(checkpoint: Path, given: Mapping[str, Any]) -> DataSpec:
    """The ``DataSpec`` to score ``checkpoint`` on.

    given: values of ``DATA_FIELDS`` (missing or None: not given). A given ``data`` replaces the
    recorded source; the other given values replace the recorded ones either way.
    Raises ValueError (naming ``--data``) when ``data`` is not given and the checkpoint records none.
    """
    given = {name: given[name] for name in DATA_FIELDS if given.get(name) is not None}
    trainer_state = checkpoint / TRAINER_STATE_FILE
    saved = {}
    if "data" not in given:
        if not trainer_state.is_file():
            raise ValueError(f"the checkpoint does not record its training data ({trainer_state.name} is missing); "
                             "pass --data")
        try:
            config = json_input.loads(trainer_state.read_text())["config"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"cannot read the training data from {trainer_state} ({error}); pass --data") from None
        # The defaults are TrainConfig's, for a trainer state written before a field existed.
        saved = {"data": config.get("data"), "data_format": config.get("data_format", "auto"),
                 "text_field": config.get("text_field", "text"), "hf_config": config.get("hf_config"),
                 "valid_fraction": config.get("valid_fraction", 0.05),
                 "test_fraction": config.get("test_fraction", 0.05),
                 "allow_binary": config.get("allow_binary", False)}
    values = {**saved, **given}
    return DataSpec(source=values["data"], format=values.get("data_format") or "auto",
                    text_field=values.get("text_field") or "text", hf_config=values.get("hf_config"),
                    valid_fraction=values.get("valid_fraction", 0.05) if values.get("valid_fraction") is not None
                    else 0.05,
                    test_fraction=values.get("test_fraction", 0.05) if values.get("test_fraction") is not None
                    else 0.05,
                    allow_binary=bool(values.get("allow_binary")))

"""The data a checkpoint is scored on (``checkpoint_data.data_spec_for_checkpoint``): the given
``--data*`` values over the ones recorded in its ``trainer_state.json``."""

from __future__ import annotations

import json

import pytest

from torch_memformer.checkpoint_data import data_spec_for_checkpoint
from torch_memformer.data import DataSpec
from torch_memformer.training.training_state import TRAINER_STATE_FILE


def _record(checkpoint, **config):
    checkpoint.mkdir(exist_ok=True)
    (checkpoint / TRAINER_STATE_FILE).write_text(json.dumps({"config": config}))


def test_the_recorded_data_is_used_when_none_is_given(tmp_path):
    _record(tmp_path, data="corpus.jsonl", data_format="jsonl", text_field="body", valid_fraction=0.2)
    spec = data_spec_for_checkpoint(tmp_path, {"data": None, "text_field": None})
    assert spec == DataSpec(source="corpus.jsonl", format="jsonl", text_field="body", valid_fraction=0.2,
                            test_fraction=0.05)


def test_given_values_replace_the_recorded_ones(tmp_path):
    _record(tmp_path, data="corpus.jsonl", data_format="jsonl", text_field="body", test_fraction=0.3)
    spec = data_spec_for_checkpoint(tmp_path, {"text_field": "text", "test_fraction": 0.1, "unrelated": 1})
    assert (spec.source, spec.format, spec.text_field, spec.test_fraction) == ("corpus.jsonl", "jsonl", "text", 0.1)


def test_given_data_needs_no_record(tmp_path):
    spec = data_spec_for_checkpoint(tmp_path, {"data": "other.txt"})
    assert spec == DataSpec(source="other.txt")


@pytest.mark.parametrize("content", [None, "{not json", json.dumps({"step": 3})])
def test_a_missing_or_unreadable_record_asks_for_data(tmp_path, content):
    if content is not None:
        (tmp_path / TRAINER_STATE_FILE).write_text(content)
    with pytest.raises(ValueError, match="pass --data"):
        data_spec_for_checkpoint(tmp_path, {})

"""The plans of the experiments that train Memformer and its baselines on one budget share one
definition of the sizes and the training recipe (``experiments/common/comparison_plan.py``)."""

from __future__ import annotations

import dataclasses

import pytest

from torch_memformer.experiments import copy_after_gap, recall, value_tracking
from torch_memformer.experiments.common import memory_tasks
from torch_memformer.experiments.common.comparison_plan import ComparisonPlan
from torch_memformer.experiments.digits import plan as digits_plan
from torch_memformer.experiments.digits.training import model_config as digits_model_config

SHARED = [field.name for field in dataclasses.fields(ComparisonPlan)]


@pytest.mark.parametrize("plan", [recall.DEFAULT, copy_after_gap.QUICK, value_tracking.DEFAULT, digits_plan.DEFAULT,
                                  digits_plan.QUICK])
def test_each_plan_takes_the_shared_fields_from_the_one_definition(plan):
    assert isinstance(plan, ComparisonPlan)
    # The shared fields are the base's: they come first, in its order.
    assert [field.name for field in dataclasses.fields(plan)][:len(SHARED)] == SHARED


def test_the_shared_fields_build_the_models_as_written_out():
    plan = recall.QUICK
    task = plan.task
    memformer = memory_tasks.model_config(plan, "memformer")
    assert memformer == dict(vocab_size=task.vocab_size, d_model=plan.d_model, num_heads=plan.num_heads,
                             d_ff=plan.d_ff, segment_len=task.segment_len, num_encoder_layers=plan.encoder_layers,
                             num_decoder_layers=plan.decoder_layers, num_slots=plan.num_slots)
    digits = digits_plan.QUICK
    transformer = digits_model_config(digits, "transformer")
    assert (transformer["num_layers"], transformer["d_model"], transformer["segment_len"]) == (
        digits.baseline_layers, digits.d_model, digits.segment_len)
    assert plan.recipe() == dict(steps=plan.steps, batch_size=plan.batch_size, window=plan.window, lr=plan.lr,
                                 warmup_steps=plan.warmup_steps)

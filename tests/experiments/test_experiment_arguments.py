"""The flags the experiments share: --seeds as a count or as a list of seeds; the memory tasks' --lr and --warmup-steps."""

import argparse

import pytest

from torch_memformer.errors import UserError
from torch_memformer.experiments import copy_after_gap, digits
from torch_memformer.experiments.common.arguments import ExperimentParser, add_shared_arguments, seed_list
from torch_memformer.experiments.common.memory_tasks import plan_from_args


def test_seeds_is_a_count_or_a_list_of_distinct_seeds():
    assert seed_list("3") == (0, 1, 2)
    assert seed_list("3,4,5") == (3, 4, 5)
    for bad in ("0", "a,b", "3,3", "-1,2", "2,"):
        with pytest.raises(argparse.ArgumentTypeError):
            seed_list(bad)


def test_a_seed_list_reaches_the_plan_and_a_bad_one_is_one_line():
    parser = ExperimentParser(prog="memformer bench copy-after-gap")
    add_shared_arguments(parser)
    copy_after_gap.add_arguments(parser)
    args = parser.parse_args(["--seeds", "3,4", "--quick"])
    assert plan_from_args(copy_after_gap.EXPERIMENT, args).seeds == (3, 4)
    assert plan_from_args(copy_after_gap.EXPERIMENT, parser.parse_args(["--seeds", "2"])).seeds == (0, 1)
    with pytest.raises(UserError, match="--seeds"):
        parser.parse_args(["--seeds", "1,1"])


def test_digits_takes_the_same_seed_list():
    parser = ExperimentParser(prog="memformer bench digits")
    add_shared_arguments(parser)
    digits.add_arguments(parser)
    assert digits.plan_from_args(parser.parse_args(["--seeds", "2,5", "--quick"])).seeds == (2, 5)
    assert digits.plan_from_args(parser.parse_args(["--quick"])).seeds == digits.QUICK.seeds


def test_a_memory_tasks_learning_rate_and_warmup_reach_every_models_recipe():
    parser = ExperimentParser(prog="memformer bench copy-after-gap")
    add_shared_arguments(parser)
    copy_after_gap.add_arguments(parser)
    plan = plan_from_args(copy_after_gap.EXPERIMENT, parser.parse_args(["--lr", "4e-3", "--warmup-steps", "120"]))
    assert plan.lr == 4e-3 and plan.recipe()["lr"] == 4e-3
    assert plan.warmup_steps == 120 and plan.recipe()["warmup_steps"] == 120
    assert plan_from_args(copy_after_gap.EXPERIMENT, parser.parse_args([])).lr == copy_after_gap.DEFAULT.lr
    assert plan_from_args(copy_after_gap.EXPERIMENT, parser.parse_args(["--warmup-steps", "0"])).warmup_steps == 0
    with pytest.raises(UserError, match="--lr"):
        parser.parse_args(["--lr", "0"])
    with pytest.raises(UserError, match="--warmup-steps"):
        parser.parse_args(["--warmup-steps", "-5"])

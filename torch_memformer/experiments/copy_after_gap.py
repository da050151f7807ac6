"""Copy after a gap: a payload of P symbols, G segments of filler, a cue, then the payload again in
order; accuracy on the reproduced symbols against G for Memformer, Transformer-XL with the same
state bytes, and Memformer without memory. Trained with G <= 4, tested at G = 1 .. 32.

The task (``data/copy_after_gap.py``), segments of L = 16 tokens: a start marker and 4 symbols
(uniform over 16) then filler in segment 0; G segments of filler; a RECALL cue in segment G + 1;
the 4 symbols again, in order, at the start of segment G + 2 (scored). Unlike recall there is no
key: the memory must keep which symbol stood where. The shared machinery (training, models,
test, report) is ``common/memory_tasks.py``.

    memformer bench copy-after-gap --update-results
    memformer bench copy-after-gap --quick
"""

from __future__ import annotations

import argparse

from ..data.copy_after_gap import CopyTask
from .common import memory_tasks
from .common.memory_tasks import MODELS, Plan, Target

NAME = "copy-after-gap"
TITLE = "Copy after a gap: reproducing a payload in order after G segments of filler"

DEFAULT = Plan(task=CopyTask(), d_model=64, num_heads=4, d_ff=128, encoder_layers=2, decoder_layers=2,
               num_slots=16, baseline_layers=4, max_train_gap=4, curriculum_hold=0.4, curriculum_ramp=0.4,
               steps=600, batch_size=16, window=16, lr=2e-3, warmup_steps=200, test_gaps=(1, 2, 4, 8, 16, 32),
               test_documents=256, seeds=(0,), models=MODELS, jobs=2)
QUICK = Plan(task=CopyTask(payload_len=2, num_symbols=4, num_fillers=4, segment_len=8), d_model=16, num_heads=2,
             d_ff=32, encoder_layers=1, decoder_layers=1, num_slots=4, baseline_layers=2, max_train_gap=2,
             curriculum_hold=0.0, curriculum_ramp=0.0, steps=2, batch_size=4, window=4, lr=2e-3, warmup_steps=1,
             test_gaps=(1, 4), test_documents=8, seeds=(0,), models=MODELS, jobs=1)
EXPERIMENT = memory_tasks.Experiment(
    name=NAME, title=TITLE, scored_per_document=DEFAULT.task.payload_len, default=DEFAULT, quick=QUICK,
    layout="the payload in segment 0, the cue in segment G + 1, the payload again in segment G + 2.",
    # Issue 10: trained on gaps <= 4 only, what is kept must not fade by G = 16.
    targets=(Target(gaps=(16,), accuracy=0.90),),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    memory_tasks.add_arguments(EXPERIMENT, parser)


def run(args: argparse.Namespace) -> dict:
    return memory_tasks.run(EXPERIMENT, args)

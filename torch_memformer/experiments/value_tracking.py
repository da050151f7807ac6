"""Value tracking: a variable set 1 to 3 times in successive segments, then asked for after G
segments of filler; accuracy on the latest value against G for Memformer, Transformer-XL with the
same state bytes, and Memformer without memory. Trained with G <= 4, tested at G = 1 .. 32.

The task (``data/value_tracking.py``), segments of L = 16 tokens: U updates (SET v, one per
segment at a random position, U uniform in 1..3 in training, 3 in every test document), G
segments of filler, a QUERY segment, then the latest value at the start of the next segment
(scored). Unlike recall and copy, what the memory holds goes stale: each SET must replace the
value kept so far. The shared machinery is ``common/memory_tasks.py``.

    memformer bench value-tracking --update-results
    memformer bench value-tracking --quick
"""

from __future__ import annotations

import argparse

from ..data.value_tracking import TrackingTask
from .common import memory_tasks
from .common.memory_tasks import MODELS, Plan, Target

NAME = "value-tracking"
TITLE = "Value tracking: the latest of several values, asked for after G segments of filler"

DEFAULT = Plan(task=TrackingTask(), d_model=64, num_heads=4, d_ff=128, encoder_layers=2, decoder_layers=2,
               num_slots=16, baseline_layers=4, max_train_gap=4, curriculum_hold=0.4, curriculum_ramp=0.4,
               steps=600, batch_size=16, window=16, lr=2e-3, warmup_steps=200, test_gaps=(1, 2, 4, 8, 16, 32),
               test_documents=256, seeds=(0,), models=MODELS, jobs=2)
QUICK = Plan(task=TrackingTask(max_updates=2, num_values=4, num_fillers=4, segment_len=8), d_model=16, num_heads=2,
             d_ff=32, encoder_layers=1, decoder_layers=1, num_slots=4, baseline_layers=2, max_train_gap=2,
             curriculum_hold=0.0, curriculum_ramp=0.0, steps=2, batch_size=4, window=4, lr=2e-3, warmup_steps=1,
             test_gaps=(1, 4), test_documents=8, seeds=(0,), models=MODELS, jobs=1)
EXPERIMENT = memory_tasks.Experiment(
    name=NAME, title=TITLE, scored_per_document=1, default=DEFAULT, quick=QUICK,
    layout="3 updates in segments 0..2, G segments of filler, the query in segment G + 3, the latest value "
           "at the start of segment G + 4.",
    # Issue 10: trained on gaps <= 4 only, what is kept must not fade by G = 16.
    targets=(Target(gaps=(16,), accuracy=0.90),),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    memory_tasks.add_arguments(EXPERIMENT, parser)


def run(args: argparse.Namespace) -> dict:
    return memory_tasks.run(EXPERIMENT, args)

"""Long-range recall: key-value pairs in the first segment, G segments of filler, then the keys as
queries; accuracy on the values against G for Memformer, Transformer-XL with the same state
bytes, and Memformer without memory. Trained with G <= 8, tested at G = 1 .. 32.

The task (``data/recall.py``), segments of L = 16 tokens: 4 key-value pairs (distinct keys out
of 16, values uniform over 16) then filler in segment 0; G segments of random filler (16 filler
tokens); the 4 keys in a random order (the queries) in segment G + 1; in segment G + 2 each key
again followed by its value. Accuracy is the share of those values that are the model's most
likely token at their position (over the whole vocabulary); chance is 1/16. Only the answered
values are targets (the rest of a document is random: its loss is irreducible noise), so the
trainer's loss is the recall loss.

- **Training.** A curriculum of gaps (``data.recall.curriculum_gaps``): the first 40% of the
  steps see G = 0 only (writing and reading the pairs), over the next 40% the largest gap grows
  to 8 (keeping them); ``--curriculum 0,0`` mixes every gap from the first step instead. Fresh
  random documents back to back, the state reset at each; windows of 16 segments (256 tokens),
  so a document of up to 11 segments (G = 8) usually lies inside one window and MRBP carries the
  gradient from the answers back to the segment that wrote the pairs (the baselines' truncated
  BPTT spans the same window). Same trainer, steps and tokens for every model
  (``common/memory_tasks.py``), float32, AdamW at 2e-3 after 200 steps of linear warm-up
  (decision 19: after 50, half the value-tracking seeds never learn to write what they must keep).
- **Models.** d_model 64, 4 heads, FFN 128. Memformer 2 encoder + 2 decoder layers, 16 slots.
  Transformer-XL 4 layers with the largest mem_len whose cache holds no more bytes than
  Memformer's state (memory + one segment of context, ``common/matching.py``): its queries see
  mem_len positions back per layer. Memformer without memory (``registry.ABLATIONS``) sees only
  the previous segment.
- **Test.** 256 fresh documents per G in 1, 2, 4, 8, 16, 32, each read from a fresh state,
  segment by segment with the state carried (``evaluate.score_segment``).

    memformer bench recall --update-results     # see docs/experiments.md for the run time
    memformer bench recall --quick              # a smoke test of the files, seconds
"""

from __future__ import annotations

import argparse

from ..data.recall import RecallTask
from .common import memory_tasks
from .common.memory_tasks import MODELS, Plan, Target

NAME = "recall"
TITLE = "Long-range recall: accuracy on key-value pairs after G segments of filler"

DEFAULT = Plan(task=RecallTask(), d_model=64, num_heads=4, d_ff=128, encoder_layers=2, decoder_layers=2,
               num_slots=16, baseline_layers=4, max_train_gap=8, curriculum_hold=0.4, curriculum_ramp=0.4,
               steps=1000, batch_size=16, window=16, lr=2e-3, warmup_steps=200, test_gaps=(1, 2, 4, 8, 16, 32),
               test_documents=256, seeds=(0,), models=MODELS, jobs=2)
QUICK = Plan(task=RecallTask(num_pairs=2, num_keys=4, num_values=4, num_fillers=4, segment_len=8), d_model=16,
             num_heads=2, d_ff=32, encoder_layers=1, decoder_layers=1, num_slots=4, baseline_layers=2,
             max_train_gap=2, curriculum_hold=0.0, curriculum_ramp=0.0, steps=2, batch_size=4, window=4, lr=2e-3,
             warmup_steps=1, test_gaps=(1, 4), test_documents=8, seeds=(0,), models=MODELS, jobs=1)
EXPERIMENT = memory_tasks.Experiment(
    name=NAME, title=TITLE, scored_per_document=DEFAULT.task.num_pairs, default=DEFAULT, quick=QUICK,
    layout="the pairs in segment 0, the queries in segment G + 1, the answers in segment G + 2 (an answer is "
           "(G + 2) x L tokens after its pair).",
    # Issue 5's targets, kept by issue 10.
    targets=(Target(gaps=(1, 2, 4), accuracy=0.95), Target(gaps=(32,), accuracy=0.90)),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    memory_tasks.add_arguments(EXPERIMENT, parser)


def run(args: argparse.Namespace) -> dict:
    return memory_tasks.run(EXPERIMENT, args)

"""The plan fields of an experiment that trains Memformer and its baselines on one budget.

The memory tasks (``memory_tasks.Plan``: recall, copy after a gap, value tracking) and the digits
(``digits/plan.py``) train every model they compare at the same sizes with the same recipe; each
plan subclasses ``ComparisonPlan`` and adds only what is its own (the task, the variants, the
test). The fields keep their names (they are the keys of each result's ``"plan"`` record).
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class ComparisonPlan:
    """The sizes every compared model is built at, and the training recipe they all follow."""

    d_model: int
    num_heads: int
    d_ff: int
    # Memformer's depth and memory
    encoder_layers: int
    decoder_layers: int
    num_slots: int
    # Transformer-XL's and the plain Transformer's depth
    baseline_layers: int
    steps: int
    batch_size: int
    window: int  # segments per training window
    lr: float
    warmup_steps: int
    seeds: tuple[int, ...]
    # Training runs at a time (each in a fresh process, on ``--threads`` threads); 1: in this process.
    jobs: int

    def memformer_fields(self, *, vocab_size: int, segment_len: int) -> dict[str, Any]:
        """Memformer's model_config at these sizes."""
        return dict(self._shared_fields(vocab_size, segment_len), num_encoder_layers=self.encoder_layers,
                    num_decoder_layers=self.decoder_layers, num_slots=self.num_slots)

    def baseline_fields(self, *, vocab_size: int, segment_len: int) -> dict[str, Any]:
        """The fields a baseline's model_config starts from (its memory is the experiment's choice)."""
        return dict(self._shared_fields(vocab_size, segment_len), num_layers=self.baseline_layers)

    def recipe(self) -> dict[str, Any]:
        """The ``TrainConfig`` fields of the training recipe."""
        return dict(steps=self.steps, batch_size=self.batch_size, window=self.window, lr=self.lr,
                    warmup_steps=self.warmup_steps)

    def _shared_fields(self, vocab_size: int, segment_len: int) -> dict[str, Any]:
        return dict(vocab_size=vocab_size, d_model=self.d_model, num_heads=self.num_heads, d_ff=self.d_ff,
                    segment_len=segment_len)

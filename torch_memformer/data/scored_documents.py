"""What the synthetic memory tasks hand an experiment: documents and the positions that are scored.

The three tasks (``recall.py``, ``copy_after_gap.py``, ``value_tracking.py``) differ in what the
memory must do, not in how they are scored: a few positions of each document are predictable
from something G segments back, everything else is random. An experiment trains on them and
reports the accuracy at ``value_positions`` against G (``experiments/memory_tasks.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from .tokenized import TokenizedCorpus


@dataclasses.dataclass(frozen=True, eq=False)
class ScoredDocuments:
    """Documents of a task and where their scored tokens are.

    task: the task that made them (has ``segment_len``, ``vocab_size``, ``chance``).
    corpus: one document per gap, in the order given; only the scored tokens are targets.
    gaps: (D,) int64, the filler segments G of each document.
    value_positions: (D, P) int64, the positions (within each document) of the scored tokens.
    """

    task: Any
    corpus: TokenizedCorpus
    gaps: np.ndarray
    value_positions: np.ndarray


def check_gaps_and_seed(gaps: Sequence[int], seed: int) -> np.ndarray:
    """``gaps`` as an int64 array; ValueError unless they are non-negative and the seed is too."""
    gaps = np.asarray(gaps, dtype=np.int64).reshape(-1)
    if gaps.size == 0 or gaps.min() < 0:
        raise ValueError(f"gaps must be a non-empty list of non-negative integers, got {gaps.tolist()!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return gaps


def check_positive_fields(task: Any) -> None:
    """ValueError naming the first field of the task dataclass ``task`` that is not an integer >= 1."""
    for field in dataclasses.fields(task):
        value = getattr(task, field.name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{field.name} must be an integer >= 1, got {value!r}")

"""Synthetic value tracking: a variable set, then set again, then asked for after G segments.

One document (one stream, read from a fresh state) of ``(U + G + 2) * L`` tokens, L the segment
length, U the number of updates (1 .. ``max_updates``):

    segments 0 .. U - 1    f f SET v_k f f f ...     one update per segment, at a random position
    segments U .. U+G-1    f f f f f f f f ...       G segments of filler after the last update
    segment U + G          QUERY f f f f f ...       the question
    segment U + G + 1      v_U f f f f f ...         the latest value (scored)

The vocabulary: values [0, V), filler [V, V + F), then SET and QUERY. Values are uniform and
independent, so chance is 1 / V; an earlier value is the right answer only by coincidence.

What it asks of the memory, unlike recall and copy: what it holds goes stale. Each SET must
*replace* the value kept so far (a memory that only accumulates answers with a mixture), and
the latest must then survive G writes of filler. Test documents all have ``max_updates``
updates, so they share one length; training documents draw U uniformly.

    task = TrackingTask()
    docs = tracking_documents(task, gaps=[1, 4], seed=0)
    docs.value_positions     # (2, 1): where the latest value is asked for
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from .scored_documents import ScoredDocuments, check_gaps_and_seed, check_positive_fields
from .tokenized import TokenizedCorpus


@dataclasses.dataclass(frozen=True)
class TrackingTask:
    """The token format of the value-tracking task (module docstring)."""

    max_updates: int = 3
    num_values: int = 16
    num_fillers: int = 16
    segment_len: int = 16

    def __post_init__(self) -> None:
        check_positive_fields(self)
        if self.segment_len < 2:
            raise ValueError(f"segment_len must be >= 2 (SET and its value share a segment), got {self.segment_len}")

    @property
    def set_token(self) -> int:
        return self.num_values + self.num_fillers

    @property
    def query_token(self) -> int:
        return self.set_token + 1

    @property
    def vocab_size(self) -> int:
        return self.num_values + self.num_fillers + 2

    @property
    def chance(self) -> float:
        """The accuracy of guessing a value: 1 / num_values."""
        return 1.0 / self.num_values

    def documents(self, *, gaps: Sequence[int], seed: int, name: str = "tracking",
                  updates: Sequence[int] | None = None) -> ScoredDocuments:
        return tracking_documents(self, gaps=gaps, seed=seed, name=name, updates=updates)

    def training_documents(self, *, gaps: Sequence[int], seed: int, name: str = "train") -> ScoredDocuments:
        """Training documents: each with U updates drawn uniformly from 1 .. max_updates."""
        updates = np.random.Generator(np.random.PCG64(seed + 1)).integers(1, self.max_updates + 1, size=len(gaps))
        return tracking_documents(self, gaps=gaps, seed=seed, name=name, updates=updates)


def tracking_documents(task: TrackingTask, *, gaps: Sequence[int], seed: int, name: str = "tracking",
                       updates: Sequence[int] | None = None) -> ScoredDocuments:
    """One document per entry of ``gaps`` (filler segments G >= 0 after the last update), from NumPy's
    PCG64 seeded with ``seed``. ``updates`` gives each document's U (default ``max_updates``, so
    all documents of one gap have one length); None per the default, or one int per document."""
    gaps = check_gaps_and_seed(gaps, seed)
    counts = np.full(len(gaps), task.max_updates, dtype=np.int64) if updates is None else np.asarray(updates)
    if counts.shape != gaps.shape or counts.min() < 1 or counts.max() > task.max_updates:
        raise ValueError(f"updates must give one count in 1..{task.max_updates} per gap, got {np.asarray(updates).tolist()!r}")
    rng = np.random.Generator(np.random.PCG64(seed))
    L = task.segment_len
    documents, scored, positions = [], [], np.zeros((len(gaps), 1), dtype=np.int64)
    for d, (gap, count) in enumerate(zip(gaps.tolist(), counts.tolist())):
        doc = task.num_values + rng.integers(0, task.num_fillers, size=(count + gap + 2) * L)
        values = rng.integers(0, task.num_values, size=count)
        for k in range(count):
            where = k * L + int(rng.integers(0, L - 1))  # SET and its value inside segment k
            doc[where], doc[where + 1] = task.set_token, values[k]
        query, answer = (count + gap) * L, (count + gap + 1) * L
        doc[query] = task.query_token
        doc[answer] = values[-1]
        positions[d] = answer
        mask = np.zeros(len(doc), dtype=bool)
        mask[answer] = True
        documents.append(doc)
        scored.append(mask)
    corpus = TokenizedCorpus.from_documents(documents, vocab_size=task.vocab_size, name=name, scored=scored)
    return ScoredDocuments(task=task, corpus=corpus, gaps=gaps, value_positions=positions)


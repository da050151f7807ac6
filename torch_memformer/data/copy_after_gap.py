"""Synthetic copy after a gap: a short payload, G segments of filler, then the payload again, in order.

One document (one stream, read from a fresh state) of ``(G + 3) * L`` tokens, L the segment length:

    segment 0          BEGIN p1 p2 ... pP  f f f ...     a start marker, P payload symbols, filler
    segments 1 .. G    f f f f f f f f f f ...           random filler
    segment G + 1      RECALL f f f f f f ...             the cue to reproduce
    segment G + 2      p1 p2 ... pP  f f f ...            the payload again, in order (scored)

The vocabulary: symbols [0, S), filler [S, S + F), then BEGIN and RECALL. Payload symbols are
uniform and independent (repeats allowed), so chance on each reproduced symbol is 1 / S.

What it asks of the memory, unlike key-value recall (``recall.py``): there is no key to look up
by, so the memory must keep *which symbol stood where*: P symbols in order through G writes of
filler, and give them back position by position. The cue gets a segment of its own for the same
reason the recall queries do: the decoder of segment t + 1 reads the encoder of segment t, and
that encoder is where the memory is read. Only the reproduced payload is scored
(``TokenizedCorpus.scored``); everything else is random and carries label -100.

    task = CopyTask()
    docs = copy_documents(task, gaps=[1, 4], seed=0)
    docs.value_positions     # (2, P): where the reproduced symbols sit
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from .scored_documents import ScoredDocuments, check_gaps_and_seed, check_positive_fields
from .tokenized import TokenizedCorpus


@dataclasses.dataclass(frozen=True)
class CopyTask:
    """The token format of the copy-after-gap task (module docstring)."""

    payload_len: int = 4
    num_symbols: int = 16
    num_fillers: int = 16
    segment_len: int = 16

    def __post_init__(self) -> None:
        check_positive_fields(self)
        if self.payload_len + 1 > self.segment_len:
            raise ValueError(
                f"a payload of {self.payload_len} after the start marker takes {self.payload_len + 1} tokens, more "
                f"than one segment of {self.segment_len}; lower payload_len or raise segment_len"
            )

    @property
    def begin_token(self) -> int:
        return self.num_symbols + self.num_fillers

    @property
    def recall_token(self) -> int:
        return self.begin_token + 1

    @property
    def vocab_size(self) -> int:
        return self.num_symbols + self.num_fillers + 2

    @property
    def chance(self) -> float:
        """The accuracy of guessing a symbol: 1 / num_symbols."""
        return 1.0 / self.num_symbols

    def document_len(self, gap: int) -> int:
        return (gap + 3) * self.segment_len

    def documents(self, *, gaps: Sequence[int], seed: int, name: str = "copy") -> ScoredDocuments:
        return copy_documents(self, gaps=gaps, seed=seed, name=name)

    def training_documents(self, *, gaps: Sequence[int], seed: int, name: str = "train") -> ScoredDocuments:
        """Training documents: the same format as the test documents."""
        return copy_documents(self, gaps=gaps, seed=seed, name=name)


def copy_documents(task: CopyTask, *, gaps: Sequence[int], seed: int, name: str = "copy") -> ScoredDocuments:
    """One document per entry of ``gaps`` (filler segments G >= 0), from NumPy's PCG64 seeded with ``seed``."""
    gaps = check_gaps_and_seed(gaps, seed)
    rng = np.random.Generator(np.random.PCG64(seed))
    L, P = task.segment_len, task.payload_len
    documents, scored, positions = [], [], np.zeros((len(gaps), P), dtype=np.int64)
    for d, gap in enumerate(gaps.tolist()):
        doc = task.num_symbols + rng.integers(0, task.num_fillers, size=task.document_len(gap))
        payload = rng.integers(0, task.num_symbols, size=P)
        doc[0] = task.begin_token
        doc[1 : 1 + P] = payload
        cue, answer = (gap + 1) * L, (gap + 2) * L
        doc[cue] = task.recall_token
        doc[answer : answer + P] = payload
        positions[d] = answer + np.arange(P)
        mask = np.zeros(len(doc), dtype=bool)
        mask[positions[d]] = True
        documents.append(doc)
        scored.append(mask)
    corpus = TokenizedCorpus.from_documents(documents, vocab_size=task.vocab_size, name=name, scored=scored)
    return ScoredDocuments(task=task, corpus=corpus, gaps=gaps, value_positions=positions)

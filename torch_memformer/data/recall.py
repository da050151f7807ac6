"""Synthetic long-range recall: key-value pairs, G segments of filler, then the keys as queries.

One document (one stream, read from a fresh state) of ``(G + 3) * L`` tokens, L the segment length:

    segment 0          k1 v1 k2 v2 ... kP vP  f f f ...     P pairs, then filler up to L tokens
    segments 1 .. G    f f f f f f f f f f ...              random filler
    segment G + 1      kπ1 kπ2 ... kπP  f f f ...           the queries: the keys in a random order
    segment G + 2      kπ1 vπ1 kπ2 vπ2 ... kπP vπP  f ...   the answers: each key again, then its value

The vocabulary is split into three ranges, so a token says what it is: keys [0, K), values
[K, K + V), filler [K + V, K + V + F). The keys of a document are distinct; each value is
uniform over the V values and each filler token uniform over the F fillers, all independent.

Why the queries get a segment of their own: a Memformer decoder predicts segment t + 1 from the
encoding of segment t, and that encoder is where the memory is read (spec section 1). A query
asked in segment G + 1 is read, with the memory, by that segment's encoder; the answers follow
in segment G + 2. (Asked and answered in one segment, the memory would have to be read by the
encoder of a filler segment, before the keys are known.) A decoder-only baseline sees both
segments directly, so the format costs it nothing.

The only tokens a model can predict better than chance from the document itself are the values
of the last segment (``value_positions``); recall accuracy is the share of them whose most likely
token is right, and chance is 1 / V. The corpus marks exactly those tokens as scored
(``TokenizedCorpus.scored``): everything else is still read, but carries label -100 like
padding, so the trainer's loss is the recall loss alone. (With every token scored, the random
keys, values and filler contribute an irreducible loss several times larger whose gradient noise
buried the recall signal: small models learned nothing in our CPU budget.)

    task = RecallTask()                                   # 4 pairs, 16 keys, 16 values, 16 fillers, L = 16
    docs = recall_documents(task, gaps=[1, 2, 4], seed=0) # three documents
    docs.corpus                                           # a TokenizedCorpus
    docs.value_positions                                  # (3, 4): where the queried values sit
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from .scored_documents import ScoredDocuments, check_gaps_and_seed, check_positive_fields
from .tokenized import TokenizedCorpus


@dataclasses.dataclass(frozen=True)
class RecallTask:
    """The token format of the recall task (module docstring)."""

    num_pairs: int = 4
    num_keys: int = 16
    num_values: int = 16
    num_fillers: int = 16
    segment_len: int = 16

    def __post_init__(self) -> None:
        check_positive_fields(self)
        if self.num_pairs > self.num_keys:
            raise ValueError(
                f"num_pairs ({self.num_pairs}) must be <= num_keys ({self.num_keys}): the keys of a document are distinct"
            )
        if 2 * self.num_pairs > self.segment_len:
            raise ValueError(
                f"{self.num_pairs} pairs take {2 * self.num_pairs} tokens, more than one segment of "
                f"{self.segment_len}; lower num_pairs or raise segment_len"
            )

    @property
    def vocab_size(self) -> int:
        return self.num_keys + self.num_values + self.num_fillers

    @property
    def chance(self) -> float:
        """The accuracy of guessing a value: 1 / num_values."""
        return 1.0 / self.num_values

    def document_len(self, gap: int) -> int:
        return (gap + 3) * self.segment_len

    def documents(self, *, gaps: Sequence[int], seed: int, name: str = "recall") -> "ScoredDocuments":
        return recall_documents(self, gaps=gaps, seed=seed, name=name)

    def training_documents(self, *, gaps: Sequence[int], seed: int, name: str = "train") -> ScoredDocuments:
        """Training documents: the same format as the test documents."""
        return recall_documents(self, gaps=gaps, seed=seed, name=name)


# The recall task's documents are the shared scored-documents record (``scored_documents.py``).
RecallDocuments = ScoredDocuments


def recall_documents(task: RecallTask, *, gaps: Sequence[int], seed: int, name: str = "recall") -> ScoredDocuments:
    """One document per entry of ``gaps`` (each >= 0 filler segments), drawn from a generator
    seeded with ``seed`` (NumPy's PCG64: the same seed gives the same documents everywhere)."""
    gaps = check_gaps_and_seed(gaps, seed)
    rng = np.random.Generator(np.random.PCG64(seed))
    L, P = task.segment_len, task.num_pairs
    value_base, filler_base = task.num_keys, task.num_keys + task.num_values
    documents, scored, positions = [], [], np.zeros((len(gaps), P), dtype=np.int64)
    for d, gap in enumerate(gaps.tolist()):
        doc = filler_base + rng.integers(0, task.num_fillers, size=task.document_len(gap))
        keys = rng.permutation(task.num_keys)[:P]
        values = value_base + rng.integers(0, task.num_values, size=P)
        doc[0 : 2 * P : 2], doc[1 : 2 * P : 2] = keys, values
        order = rng.permutation(P)
        query, answer = (gap + 1) * L, (gap + 2) * L
        doc[query : query + P] = keys[order]
        doc[answer : answer + 2 * P : 2], doc[answer + 1 : answer + 2 * P : 2] = keys[order], values[order]
        positions[d] = answer + 1 + 2 * np.arange(P)
        mask = np.zeros(len(doc), dtype=bool)
        mask[positions[d]] = True
        documents.append(doc)
        scored.append(mask)
    corpus = TokenizedCorpus.from_documents(documents, vocab_size=task.vocab_size, name=name, scored=scored)
    return RecallDocuments(task=task, corpus=corpus, gaps=gaps, value_positions=positions)


def curriculum_gaps(*, segments: int, max_gap: int, seed: int, hold: float = 0.4, ramp: float = 0.4) -> np.ndarray:
    """The gaps of one training row of at least ``segments`` segments, as a curriculum.

    The first ``hold`` share of the row's segments holds documents with G = 0 only (the pairs
    written, then read by the query segment: this teaches writing and reading); over the next
    ``ramp`` share the largest gap allowed grows linearly from 1 to ``max_gap`` (this teaches
    keeping); after that it stays at ``max_gap``. Each document's gap is uniform from 0 to the
    cap of its position, so every shorter gap keeps appearing.

    Why: at initialisation a slot's write attention is nearly uniform over itself and the tokens,
    so a filler segment overwrites most of a slot. Trained on mixed gaps from the start (uniform,
    or weighted 1 / (G + 1)), our models stayed at chance for 400 to 900 steps, while trained on
    G = 0 alone the same model left chance after ~200 steps (docs/experiments.md, experiment 5).

    Lay the same gaps on every row (``np.tile``) and train without shuffling: the rows then have
    equal lengths, the trainer cuts the stream exactly into them, and every row follows the
    curriculum in step with the others.
    """
    for name, value, low in (("segments", segments, 1), ("max_gap", max_gap, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if not (0.0 <= hold < 1.0 and 0.0 <= ramp <= 1.0 - hold):
        raise ValueError(f"hold and ramp must be shares with 0 <= hold < 1 and 0 <= ramp <= 1 - hold, "
                         f"got hold={hold!r}, ramp={ramp!r}")
    rng = np.random.Generator(np.random.PCG64(seed))
    gaps, done = [], 0
    while done < segments:
        share = done / segments
        if share < hold:
            cap = 0
        elif ramp == 0.0 or share >= hold + ramp:
            cap = max_gap
        else:
            cap = min(max_gap, 1 + int(max_gap * (share - hold) / ramp))
        gap = int(rng.integers(0, cap + 1))
        gaps.append(gap)
        done += gap + 3  # pairs, G filler, queries, answers
    return np.asarray(gaps, dtype=np.int64)

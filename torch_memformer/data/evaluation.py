"""Evaluation batches: a whole split, every real token exactly once, in the training layout.

Like the training stream (``streams.py``), documents start at multiples of the segment length
and rows are read window by window with the memory carried between batches. Unlike it, nothing
is dropped: rows are rounded *up*, and the last batch is filled out with padding (label -100).

Two layouts (``layout=``):

- ``"contiguous"`` (default): the training layout, the padded documents back to back cut into
  ``batch_size * world_size`` equal rows. Least padding; a document cut at a row boundary
  continues, without its beginning as context, at the start of the next row.
- ``"documents"``: every document whole in one row from its first token, so each document is
  scored with exactly the context it has in a batch-size-1 run, whatever the batch size. Costs
  padding when a few documents are much longer than the rest (rows are as long as the longest).

Bits per byte: sum the loss (in nats) over positions whose label is not -100, divide by
ln(2) times the sum of ``EvalBatch.num_target_bytes``: the UTF-8 bytes of exactly the tokens
scored. The tokens never scored are each stream's first token (a document's, or a row's in
the contiguous layout): the model has nothing to predict them from (``docs/data.md``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator
from typing import Literal, NamedTuple

import numpy as np
import torch

from .layout import (
    IGNORE_INDEX,
    RowLayout,
    check_geometry,
    check_pad_id,
    contiguous_layout,
    document_layout,
    gather,
)
from .tokenized import TokenizedCorpus

EvalLayout = Literal["contiguous", "documents"]


class EvalBatch(NamedTuple):
    """One evaluation batch: ``input_ids``, ``labels``, ``reset`` as in ``streams.Batch`` (B, N),
    plus how many positions are scored (``labels != -100``) and the UTF-8 bytes those tokens spell."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    reset: torch.Tensor
    num_targets: int
    num_target_bytes: int

    def to(self, device: torch.device | str, *, non_blocking: bool = False) -> "EvalBatch":
        return EvalBatch(self.input_ids.to(device, non_blocking=non_blocking),
                         self.labels.to(device, non_blocking=non_blocking),
                         self.reset.to(device, non_blocking=non_blocking),
                         self.num_targets, self.num_target_bytes)


@dataclasses.dataclass(frozen=True)
class EvalStats:
    """Counts over this rank's rows (sum them over ranks for the whole split).

    num_tokens: real tokens read; num_targets: those scored (all but each stream's first token);
    num_target_bytes: UTF-8 bytes of the scored tokens; padding_fraction: padded share of the
    positions read.
    """

    num_batches: int
    num_tokens: int
    num_targets: int
    num_target_bytes: int
    padding_fraction: float


class EvalBatches:
    """The evaluation batches of a split; iterate as many times as you like (same batches each time).

    ``len()`` is the number of batches, equal on every rank, so distributed ranks stay in step.
    """

    def __init__(
        self,
        corpus: TokenizedCorpus,
        *,
        batch_size: int,
        segment_len: int,
        window: int,
        layout: EvalLayout = "contiguous",
        rank: int = 0,
        world_size: int = 1,
        pad_id: int = 0,
        vocab_size: int | None = None,
    ) -> None:
        check_geometry(batch_size=batch_size, segment_len=segment_len, window=window, rank=rank, world_size=world_size)
        if layout not in ("contiguous", "documents"):
            raise ValueError(f"layout must be 'contiguous' or 'documents', got {layout!r}")
        if corpus.num_documents == 0:
            raise ValueError(f"{corpus.name} holds no documents; check the data source and split")
        if vocab_size is not None:
            corpus.check_vocab(vocab_size)
        check_pad_id(pad_id, corpus, vocab_size)
        self.corpus = corpus
        self.window, self.pad_id = window, pad_id
        num_rows = batch_size * world_size
        if layout == "contiguous":
            order = np.arange(corpus.num_documents, dtype=np.int64)
            self._layout: RowLayout = contiguous_layout(corpus, order=order, num_rows=num_rows,
                                                        segment_len=segment_len, round_up=True)
        else:
            self._layout = document_layout(corpus, num_rows=num_rows, segment_len=segment_len)
        self._rows = np.arange(rank * batch_size, (rank + 1) * batch_size)
        self._num_batches = -(-self._layout.row_len // window)

    def __len__(self) -> int:
        return self._num_batches

    def __iter__(self) -> Iterator[EvalBatch]:
        for index in range(self._num_batches):
            yield self.batch_at(index)

    def batch_at(self, index: int) -> EvalBatch:
        if not 0 <= index < self._num_batches:
            raise IndexError(f"evaluation batch {index} out of range [0, {self._num_batches})")
        block = gather(self.corpus, self._layout, rows=self._rows, start=index * self.window, length=self.window,
                       pad_id=self.pad_id)
        targets = block.labels[block.labels != IGNORE_INDEX]
        return EvalBatch(
            torch.from_numpy(block.input_ids),
            torch.from_numpy(block.labels),
            torch.from_numpy(block.reset),
            int(targets.size),
            int(self.corpus.token_bytes[targets].sum()),
        )

    @functools.cached_property
    def stats(self) -> EvalStats:
        """Counted by reading every batch once (cheap next to running a model over them)."""
        tokens = targets = target_bytes = 0
        for index in range(self._num_batches):
            block = gather(self.corpus, self._layout, rows=self._rows, start=index * self.window,
                           length=self.window, pad_id=self.pad_id)
            scored = block.labels[block.labels != IGNORE_INDEX]
            tokens += int(block.is_token.sum())
            targets += int(scored.size)
            target_bytes += int(self.corpus.token_bytes[scored].sum())
        positions = self._num_batches * self.window * len(self._rows)
        return EvalStats(self._num_batches, tokens, targets, target_bytes, (positions - tokens) / positions)


def eval_batches(
    corpus: TokenizedCorpus,
    *,
    batch_size: int,
    segment_len: int,
    window: int,
    layout: EvalLayout = "contiguous",
    rank: int = 0,
    world_size: int = 1,
    pad_id: int = 0,
    vocab_size: int | None = None,
) -> EvalBatches:
    """The evaluation batches of ``corpus``; arguments as ``EvalBatches``."""
    return EvalBatches(corpus, batch_size=batch_size, segment_len=segment_len, window=window, layout=layout,
                       rank=rank, world_size=world_size, pad_id=pad_id, vocab_size=vocab_size)

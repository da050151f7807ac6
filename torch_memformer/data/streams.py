"""The training stream: Transformer-XL style batches of B contiguous rows, resumable.

Each epoch the documents (shuffled or not) are padded to multiples of the segment length L,
joined into one stream and cut into ``batch_size * world_size`` equal rows; batch k of the epoch
is the window [k * N, (k + 1) * N) of every row, so row b of batch k + 1 continues exactly where
row b of batch k ended and the model's memory can be carried from one batch to the next:

    stream:  |doc 0 ....|pad|doc 1 ...........|pad|doc 2 ..|pad|doc 3 ...
             cut into rows of equal length (a multiple of L):
    row 0:   [doc 0 ....|pad|doc 1 ....] [......|pad|doc 2..] ...    <- batch 0 | batch 1 | ...
    row 1:   [doc 3 ........|pad|doc 4 ] [.|pad|doc 5 ......] ...
             each [...] is one window of N tokens (N a multiple of L)

``reset`` is True at each document's first token (always at a segment boundary) and at every
row's first token of an epoch (the row starts a fresh stream there); those tokens and the padding
have label -100: the model never predicts the first token of a stream (spec decision 6). An
epoch ends when the rows run out (the remainder, less than one window per row, is dropped).

With ``world_size`` W, rank r yields rows r*B .. (r+1)*B - 1 of the same B*W-row layout, so two
ranks of batch B see exactly what one process of batch 2B sees.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
import torch

from .layout import RowLayout, check_geometry, check_pad_id, contiguous_layout, gather, padded_lengths
from .tokenized import TokenizedCorpus


class Batch(NamedTuple):
    """One training batch; all (B, N).

    input_ids: long token ids (the pad id at padding).
    labels: long; ``labels[b, i] == input_ids[b, i]`` where the model predicts that token from
        what came before, -100 at padding and wherever ``reset`` is True.
    reset: bool; True where a fresh stream starts: the row's memory returns to its initial value
        before that token. Only ever True at multiples of the segment length.
    """

    input_ids: torch.Tensor
    labels: torch.Tensor
    reset: torch.Tensor

    def to(self, device: torch.device | str, *, non_blocking: bool = False) -> "Batch":
        return Batch(*(t.to(device, non_blocking=non_blocking) for t in self))


@dataclasses.dataclass(frozen=True)
class StreamStats:
    """What the layout costs and holds (over all ranks).

    padding_fraction: share of the padded stream that is padding (documents rounded up to L).
    dropped_fraction: share of the padded stream an epoch never visits (the rows' remainders).
    """

    num_documents: int
    num_tokens: int
    padded_tokens: int
    padding_fraction: float
    num_rows: int
    row_len: int
    batches_per_epoch: int
    tokens_per_batch: int
    dropped_fraction: float


class TrainStream:
    """Batches for training, in the layout of the module docstring; resumable.

    Args:
        corpus: the tokenized training split.
        batch_size: rows per batch on this rank (B).
        segment_len: the model's segment length L; documents start at multiples of it.
        window: tokens per row per batch (N), a multiple of ``segment_len``.
        rank, world_size: this process's place in distributed training (rows r*B..(r+1)*B-1).
        shuffle: shuffle the document order each epoch (seeded by ``seed`` and the epoch number).
        pad_id: the id placed at padding (its label is -100, so any valid id works).
        vocab_size: the model's vocabulary; if given, a token id outside it raises ValueError.

    ``next_batch()`` returns the batch at ``position`` and advances; ``batch_at(p)`` reads any
    position without moving. ``state_dict()`` / ``load_state_dict()`` save and restore the
    position, so a resumed run sees exactly the batches an uninterrupted one would have.
    """

    def __init__(
        self,
        corpus: TokenizedCorpus,
        *,
        batch_size: int,
        segment_len: int,
        window: int,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = False,
        seed: int = 0,
        pad_id: int = 0,
        vocab_size: int | None = None,
    ) -> None:
        check_geometry(batch_size=batch_size, segment_len=segment_len, window=window, rank=rank, world_size=world_size)
        if corpus.num_documents == 0:
            raise ValueError(f"{corpus.name} holds no documents; check the data source and split")
        if vocab_size is not None:
            corpus.check_vocab(vocab_size)
        check_pad_id(pad_id, corpus, vocab_size)
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.corpus = corpus
        self.batch_size, self.segment_len, self.window = batch_size, segment_len, window
        self.rank, self.world_size = rank, world_size
        self.shuffle, self.seed, self.pad_id = bool(shuffle), seed, pad_id
        num_rows = batch_size * world_size
        padded = int(padded_lengths(corpus, segment_len).sum())
        needed = num_rows * window
        if padded < needed:
            raise ValueError(
                f"{corpus.name} is too small for one batch: its {corpus.num_documents:,} document(s) make "
                f"{padded:,} tokens once each is padded to a multiple of segment_len {segment_len}, and one batch "
                f"takes batch_size {batch_size} x world_size {world_size} x window {window} = {needed:,}; "
                "lower the batch size or the window, or give more text"
            )
        row_len = padded // segment_len // num_rows * segment_len
        self.batches_per_epoch = row_len // window
        self._rows = np.arange(rank * batch_size, (rank + 1) * batch_size)
        self._position = 0
        self._layout_epoch = -1
        self._layout: RowLayout | None = None
        self.stats = StreamStats(
            num_documents=corpus.num_documents,
            num_tokens=corpus.num_tokens,
            padded_tokens=padded,
            padding_fraction=(padded - corpus.num_tokens) / padded,
            num_rows=num_rows,
            row_len=row_len,
            batches_per_epoch=self.batches_per_epoch,
            tokens_per_batch=num_rows * window,
            dropped_fraction=(padded - num_rows * self.batches_per_epoch * window) / padded,
        )

    @property
    def position(self) -> int:
        """The number of batches taken so far, over all epochs (the next batch's index)."""
        return self._position

    @property
    def epoch(self) -> int:
        return self._position // self.batches_per_epoch

    def next_batch(self) -> Batch:
        batch = self.batch_at(self._position)
        self._position += 1
        return batch

    def __iter__(self) -> Iterator[Batch]:
        """Batches without end (epoch after epoch); stop by counting steps."""
        while True:
            yield self.next_batch()

    def batch_at(self, position: int) -> Batch:
        """The batch at ``position`` (epoch = position // batches_per_epoch), without moving."""
        if isinstance(position, bool) or not isinstance(position, int) or position < 0:
            raise ValueError(f"position must be a non-negative integer, got {position!r}")
        epoch, index = divmod(position, self.batches_per_epoch)
        block = gather(self.corpus, self._layout_of(epoch), rows=self._rows, start=index * self.window,
                       length=self.window, pad_id=self.pad_id)
        return Batch(torch.from_numpy(block.input_ids), torch.from_numpy(block.labels), torch.from_numpy(block.reset))

    def document_order(self, epoch: int) -> np.ndarray:
        """(D,) the order of the documents in ``epoch``: the corpus order, or a seeded shuffle.

        The shuffle sorts raw 64-bit draws of a PCG64 generator seeded by (seed, epoch); bit
        generator streams are fixed across NumPy versions, so the order is too.
        """
        count = self.corpus.num_documents
        if not self.shuffle:
            return np.arange(count, dtype=np.int64)
        draws = np.random.PCG64(np.random.SeedSequence([self.seed, epoch])).random_raw(count)
        return np.argsort(draws, kind="stable").astype(np.int64)

    def state_dict(self) -> dict[str, Any]:
        """JSON-able: the position and what the layout was made of (checked on load)."""
        return {"position": self._position, "layout": self._fingerprint()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a saved position; raises ValueError if the saved layout differs from this one."""
        if not isinstance(state, dict) or "position" not in state or "layout" not in state:
            raise ValueError("a stream state must be a dict with 'position' and 'layout' (from TrainStream.state_dict)")
        mine = self._fingerprint()
        theirs = state["layout"]
        differ = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        if differ:
            details = ", ".join(f"{k} {theirs.get(k)!r} -> {mine.get(k)!r}" for k in differ)
            raise ValueError(
                f"cannot resume the data stream: the layout changed ({details}); resume with the same data, "
                "batch size, world size, segment length, window and shuffle settings"
            )
        position = state["position"]
        if isinstance(position, bool) or not isinstance(position, int) or position < 0:
            raise ValueError(f"a stream state's position must be a non-negative integer, got {position!r}")
        self._position = position

    def _fingerprint(self) -> dict[str, Any]:
        return {
            "num_documents": self.corpus.num_documents,
            "num_tokens": self.corpus.num_tokens,
            "batch_size": self.batch_size,
            "world_size": self.world_size,
            "segment_len": self.segment_len,
            "window": self.window,
            "shuffle": self.shuffle,
            "seed": self.seed,
        }

    def _layout_of(self, epoch: int) -> RowLayout:
        if epoch != self._layout_epoch:
            self._layout = contiguous_layout(self.corpus, order=self.document_order(epoch),
                                             num_rows=self.stats.num_rows, segment_len=self.segment_len,
                                             round_up=False)
            self._layout_epoch = epoch
        assert self._layout is not None
        return self._layout

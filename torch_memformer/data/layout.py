"""Laying documents out on batch rows, and reading windows of those rows.

The model reads B rows in lockstep, segment by segment (L tokens), and a memory reset can only
happen at a segment boundary. So every document starts at a multiple of L inside its row: each
document is followed by padding up to the next multiple of L (pad id, label -100).

A *layout* places documents on R rows of ``row_len`` positions. Global row g covers the stream
positions [g * row_len, (g + 1) * row_len); document ``order[k]`` starts at position
``starts[k]`` (a multiple of L); whatever no document covers is padding. Two layouts:

- contiguous (Transformer-XL): the padded documents back to back in one stream, cut into R
  equal rows; a document may run from the end of one row into the next row.
- documents: each document whole in one row, documents dealt in order to the shortest row.

``gather`` reads any (rows x window) block of a layout with vectorised numpy; the
``reference_*`` functions build the same rows with plain Python lists, for the tests.
"""

from __future__ import annotations

import dataclasses
import heapq
from typing import NamedTuple

import numpy as np

from .tokenized import TokenizedCorpus

IGNORE_INDEX = -100


@dataclasses.dataclass(frozen=True, eq=False)
class RowLayout:
    """Documents on rows (see the module docstring). ``starts`` increases; ``num_rows * row_len``
    positions in all, ``row_len`` a multiple of the segment length."""

    order: np.ndarray
    starts: np.ndarray
    num_rows: int
    row_len: int


class Block(NamedTuple):
    """A (rows, window) block of a layout, as numpy arrays.

    input_ids: int64 token ids, the pad id where no document is.
    labels: int64, the token id where the model predicts the token, -100 at padding, at resets and
        at tokens the corpus marks as not scored (``TokenizedCorpus.scored``).
    reset: bool, True where a fresh stream starts (a document's first token, a row's first token).
    is_token: bool, True at real tokens, False at padding.
    """

    input_ids: np.ndarray
    labels: np.ndarray
    reset: np.ndarray
    is_token: np.ndarray


def padded_lengths(corpus: TokenizedCorpus, segment_len: int) -> np.ndarray:
    """(D,) int64: each document's length rounded up to a multiple of ``segment_len``."""
    return -(-corpus.doc_lengths // segment_len) * segment_len


def contiguous_layout(
    corpus: TokenizedCorpus, *, order: np.ndarray, num_rows: int, segment_len: int, round_up: bool
) -> RowLayout:
    """The padded documents in ``order`` back to back, cut into ``num_rows`` equal rows.

    ``round_up=False`` (training) makes rows of floor(segments / rows) segments and drops the
    rest; ``round_up=True`` (evaluation) makes them ceil(...) long so every token has a row,
    leaving padding at the end of the last row(s).
    """
    padded = padded_lengths(corpus, segment_len)[order]
    starts = np.zeros(len(order), dtype=np.int64)
    np.cumsum(padded[:-1], out=starts[1:])
    segments = int(padded.sum()) // segment_len
    row_segments = -(-segments // num_rows) if round_up else segments // num_rows
    return RowLayout(np.asarray(order, dtype=np.int64), starts, num_rows, row_segments * segment_len)


def document_layout(corpus: TokenizedCorpus, *, num_rows: int, segment_len: int) -> RowLayout:
    """Each document whole in one row, dealt in corpus order to the row filled least so far
    (ties: the lowest row). Rows are as long as the longest one."""
    padded = padded_lengths(corpus, segment_len)
    heap = [(0, row) for row in range(num_rows)]
    rows = np.zeros(corpus.num_documents, dtype=np.int64)
    offsets = np.zeros(corpus.num_documents, dtype=np.int64)
    for doc, length in enumerate(padded.tolist()):
        filled, row = heapq.heappop(heap)
        rows[doc], offsets[doc] = row, filled
        heapq.heappush(heap, (filled + length, row))
    row_len = max(filled for filled, _ in heap)
    starts = rows * row_len + offsets
    order = np.argsort(starts, kind="stable")
    return RowLayout(order, starts[order], num_rows, row_len)


def gather(
    corpus: TokenizedCorpus, layout: RowLayout, *, rows: np.ndarray, start: int, length: int, pad_id: int
) -> Block:
    """Positions [start, start + length) of the global ``rows`` of ``layout``; positions past a
    row's end are padding. Row position 0 is a reset (each row is its own stream)."""
    local = start + np.arange(length, dtype=np.int64)
    positions = np.asarray(rows, dtype=np.int64)[:, None] * layout.row_len + local[None, :]
    assert len(layout.order) > 0, "a layout holds at least one document"
    k = np.searchsorted(layout.starts, positions, side="right") - 1
    placed = k >= 0
    k = np.where(placed, k, 0)
    doc = layout.order[k]
    offset = positions - layout.starts[k]
    lengths = corpus.doc_lengths
    real = placed & (offset < lengths[doc]) & (local < layout.row_len)[None, :]
    input_ids = np.full(positions.shape, pad_id, dtype=np.int64)
    input_ids[real] = corpus.tokens[(corpus.doc_offsets[doc] + offset)[real]]
    reset = real & (offset == 0)
    if start == 0:
        reset[:, 0] = True
    target = real & ~reset
    if corpus.scored is not None:
        target[real] &= corpus.scored[(corpus.doc_offsets[doc] + offset)[real]]
    labels = np.where(target, input_ids, IGNORE_INDEX)
    return Block(input_ids, labels, reset, real)


def reference_contiguous_rows(
    corpus: TokenizedCorpus, *, order: list[int], num_rows: int, segment_len: int, row_len: int, pad_id: int
) -> Block:
    """The contiguous layout built the obvious way: one padded list, cut into rows. Resets mark
    document starts and row starts; (num_rows, row_len) arrays."""
    ids: list[int] = []
    labels: list[int] = []
    reset: list[bool] = []
    is_token: list[bool] = []
    for d in order:
        doc = [int(t) for t in corpus.document(d)]
        pad = -len(doc) % segment_len
        ids += doc + [pad_id] * pad
        labels += [IGNORE_INDEX] + _scored_labels(corpus, d)[1:] + [IGNORE_INDEX] * pad
        reset += [True] + [False] * (len(doc) - 1 + pad)
        is_token += [True] * len(doc) + [False] * pad
    total = num_rows * row_len
    ids = (ids + [pad_id] * total)[:total]
    labels = (labels + [IGNORE_INDEX] * total)[:total]
    reset = (reset + [False] * total)[:total]
    is_token = (is_token + [False] * total)[:total]
    block = Block(
        np.array(ids, dtype=np.int64).reshape(num_rows, row_len),
        np.array(labels, dtype=np.int64).reshape(num_rows, row_len),
        np.array(reset, dtype=bool).reshape(num_rows, row_len),
        np.array(is_token, dtype=bool).reshape(num_rows, row_len),
    )
    block.reset[:, 0] = True
    block.labels[:, 0] = IGNORE_INDEX
    return block


def reference_document_rows(corpus: TokenizedCorpus, *, num_rows: int, segment_len: int, pad_id: int) -> Block:
    """The documents layout built the obvious way: python lists per row, the shortest row takes
    the next document; rows padded to the longest."""
    rows: list[list[tuple[int, int, bool, bool]]] = [[] for _ in range(num_rows)]
    for d in range(corpus.num_documents):
        row = min(range(num_rows), key=lambda r: (len(rows[r]), r))
        doc = [int(t) for t in corpus.document(d)]
        pad = -len(doc) % segment_len
        labels = _scored_labels(corpus, d)
        rows[row] += [(doc[0], IGNORE_INDEX, True, True)] + [(t, y, False, True) for t, y in zip(doc[1:], labels[1:])]
        rows[row] += [(pad_id, IGNORE_INDEX, False, False)] * pad
    width = max(len(r) for r in rows)
    for r in rows:
        r += [(pad_id, IGNORE_INDEX, False, False)] * (width - len(r))
    table = np.array(rows, dtype=object).reshape(num_rows, width, 4)
    block = Block(table[..., 0].astype(np.int64), table[..., 1].astype(np.int64), table[..., 2].astype(bool),
                  table[..., 3].astype(bool))
    block.reset[:, 0] = True
    block.labels[:, 0] = IGNORE_INDEX
    return block


def _scored_labels(corpus: TokenizedCorpus, d: int) -> list[int]:
    """Document d's tokens as labels, -100 where the corpus marks a token as not scored."""
    doc = [int(t) for t in corpus.document(d)]
    if corpus.scored is None:
        return doc
    mask = corpus.scored[corpus.doc_offsets[d] : corpus.doc_offsets[d + 1]]
    return [t if keep else IGNORE_INDEX for t, keep in zip(doc, mask.tolist())]


def check_geometry(*, batch_size: int, segment_len: int, window: int, rank: int, world_size: int) -> None:
    """Validate the shape arguments shared by the training stream and the evaluation batches."""
    for name, value in (("batch_size", batch_size), ("segment_len", segment_len), ("window", window),
                        ("world_size", world_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if window % segment_len:
        raise ValueError(
            f"window ({window}) must be a multiple of segment_len ({segment_len}) so that every batch ends on a "
            f"segment boundary; use {max(1, window // segment_len) * segment_len} or "
            f"{(window // segment_len + 1) * segment_len}"
        )
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 0 <= rank < world_size:
        raise ValueError(f"rank must be an integer in [0, world_size={world_size}), got {rank!r}")


def check_pad_id(pad_id: int, corpus: TokenizedCorpus, vocab_size: int | None) -> None:
    limit = corpus.vocab_size if vocab_size is None else min(vocab_size, corpus.vocab_size)
    if isinstance(pad_id, bool) or not isinstance(pad_id, (int, np.integer)) or not 0 <= pad_id < limit:
        raise ValueError(f"pad_id must be a valid token id in [0, {limit}), got {pad_id!r}")

"""``MemformerCache``: the ``transformers`` cache of a Memformer, so ``generate`` costs one cached
decoder step per new token instead of re-reading the whole sequence.

Shape legend: B batch (rows of ``input_ids``), V vocabulary.

What a Memformer needs to continue a stream is not a growing list of keys and values per layer
but its ``MemformerState`` (memory, previous segment's encoding, current segment's tokens) plus
the decoder's KV cache inside the current segment. Both live in the native ``DecodingCursor``
(``model/cursor.py``), which the native sampler uses too, so HF ``generate`` and
``stream_generate`` run the same computation.

Rows of a batch can sit at different places in their segments (left-padded prompts of different
lengths), and then finish segments at different steps. The cache keeps one cursor per group of
rows that share an in-segment position (as the native sampler groups them) and runs each group's
step on its own; every row steps once per call, so the groups never change.

The ``transformers`` cache API mutates in place (``generate`` calls ``reorder_cache`` for its side
effect), so this object does too; ``memformer_state`` gives the immutable native state at any
point. Nothing can be cropped: a segment's memory write cannot be undone, so assisted decoding,
which rolls back rejected tokens, is refused.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache

from ...model import Memformer, MemformerState
from ...model.cursor import DecodingCursor


class MemformerCache(Cache):
    """The streams of one ``generate`` call: cursors by in-segment position, and the columns read.

    Empty until the model's first forward with it (the prompt); after that every forward reads
    new columns one token per row (``MemformerForCausalLM.forward(..., cache=cache)``).
    """

    def __init__(self) -> None:
        super().__init__(layers=[])
        # (rows_R, cursor): the batch rows a cursor holds, in the cursor's order.
        self.groups: list[tuple[torch.Tensor, DecodingCursor]] = []
        self.columns_read = 0
        # True when one cursor holds rows 0 .. B - 1 in order (the usual case): no gather or scatter.
        self._whole_batch = False

    # ------------------------------------------------------------------ transformers' Cache API

    def get_seq_length(self, layer_idx: int = 0) -> int:
        """Columns of ``input_ids`` read so far, padding included: ``generate`` slices a
        continued sequence by this."""
        del layer_idx
        return self.columns_read

    @property
    def is_initialized(self) -> bool:
        return bool(self.groups)

    @property
    def is_compileable(self) -> bool:
        return False

    @property
    def is_croppable(self) -> bool:
        return False

    @property
    def batch_size(self) -> int:
        return sum(int(rows_R.numel()) for rows_R, _ in self.groups)

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Beam search: row r continues from row ``beam_idx[r]``."""
        self.select_rows(beam_idx)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self.select_rows(indices)

    def batch_repeat_interleave(self, repeats: int) -> None:
        self.select_rows(torch.arange(self.batch_size).repeat_interleave(repeats))

    def crop(self, tokens_to_remove: int) -> None:
        raise ValueError(
            "a Memformer cache cannot be cropped: a segment's memory write cannot be undone, so assisted "
            "decoding (which rolls back tokens) is not supported; generate without an assistant"
        )

    def reset(self) -> None:
        self._set_groups([])
        self.columns_read = 0

    # ------------------------------------------------------------------ Memformer

    def start(self, state: MemformerState, columns: int) -> None:
        """Begin from ``state`` (after the prompt, ``columns`` wide): one cursor per in-segment position."""
        positions_B = state.position
        groups = []
        for p in torch.unique(positions_B).tolist():
            rows_R = torch.nonzero(positions_B == p).flatten()
            groups.append((rows_R, DecodingCursor.start(state.select(rows_R))))
        self._set_groups(groups)
        self.columns_read = columns

    def logits(self, model: Memformer) -> torch.Tensor:
        """(B, V) each row's distribution of its next token."""
        if self._whole_batch:
            return self.groups[0][1].logits(model)
        parts = [(rows_R, cursor.logits(model)) for rows_R, cursor in self.groups]
        logits_BV = parts[0][1].new_empty(self.batch_size, parts[0][1].size(-1))
        for rows_R, logits_RV in parts:
            logits_BV[rows_R] = logits_RV
        return logits_BV

    def push(self, model: Memformer, token_B: torch.Tensor) -> None:
        """Read one token per row."""
        for rows_R, cursor in self.groups:
            cursor.push(model, token_B if self._whole_batch else token_B[rows_R])
        self.columns_read += 1

    @property
    def memformer_state(self) -> MemformerState:
        """The native state after every token read (rows in batch order); continues the streams."""
        if self._whole_batch:
            return self.groups[0][1].state()
        order_B = torch.argsort(torch.cat([rows_R for rows_R, _ in self.groups]))
        return MemformerState.cat([cursor.state() for _, cursor in self.groups]).select(order_B)

    def select_rows(self, sources_B: torch.Tensor) -> None:
        """Row r becomes a copy of row ``sources_B[r]`` (reordered, repeated or dropped)."""
        sources_B = torch.as_tensor(sources_B, dtype=torch.long).cpu()
        owner_B = torch.empty(self.batch_size, dtype=torch.long)  # row -> (group, place in the group)
        place_B = torch.empty(self.batch_size, dtype=torch.long)
        for g, (rows_R, _) in enumerate(self.groups):
            owner_B[rows_R.cpu()] = g
            place_B[rows_R.cpu()] = torch.arange(rows_R.numel())
        groups = []
        for g, (rows_R, cursor) in enumerate(self.groups):
            new_rows_R = torch.nonzero(owner_B[sources_B] == g).flatten()
            if new_rows_R.numel():
                picked_R = place_B[sources_B[new_rows_R]].to(cursor.tokens_BL.device)
                groups.append((new_rows_R.to(rows_R.device), cursor.select(picked_R)))
        self._set_groups(groups)

    def _set_groups(self, groups: list[tuple[torch.Tensor, DecodingCursor]]) -> None:
        self.groups = groups
        self._whole_batch = len(groups) == 1 and torch.equal(groups[0][0].cpu(), torch.arange(groups[0][0].numel()))

    def __repr__(self) -> str:
        positions = [cursor.position for _, cursor in self.groups]
        return f"MemformerCache(batch_size={self.batch_size}, columns_read={self.columns_read}, positions={positions})"
